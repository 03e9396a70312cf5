// Command uicheck is `make ui-check`: it checks the Temporal Web UI as an
// operator would use it. It starts bin/dispatchflow-dev on free ports with a
// temporary data directory, sends a delivered, a bounced and an escalated
// message through the API, waits for their final statuses, then opens the UI
// in headless Chromium: the workflow list unfiltered and filtered by the
// DispatchStatus and FallbackState search attributes, the bounced message's
// page and its Queries tab. Then it starts the system again with a payload key
// (DISPATCHFLOW_PAYLOAD_KEY), sends a message, checks that its raw history holds
// only ciphertext and that the UI, through make run's codec server, shows it in
// clear. It saves a screenshot (and the page's text) of each page under -out,
// and exits 1 naming what was missing. It always stops the system.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var c checkConfig
	flag.StringVar(&c.DevBinary, "dev", "bin/dispatchflow-dev", "the dispatchflow-dev binary to start")
	flag.StringVar(&c.Chromium, "chromium", "/usr/bin/chromium", "the Chromium binary")
	flag.StringVar(&c.OutDir, "out", ".ui-check", "directory of the screenshots, page texts and the system's log")
	flag.DurationVar(&c.Timeout, "timeout", 8*time.Minute, "limit for the whole check (both runs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if err := run(ctx, c, os.Stdout); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "ui-check: interrupted; dispatchflow-dev stopped")
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "ui-check: FAIL after %s:\n%v\n", time.Since(start).Round(time.Second), err)
		os.Exit(1)
	}
	fmt.Printf("ui-check: OK in %s; screenshots in %s/\n", time.Since(start).Round(time.Second), c.OutDir)
}
