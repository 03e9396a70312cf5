package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// namespace is the Temporal namespace of dispatchflow-dev (DISPATCHFLOW_TEMPORAL_NAMESPACE
// is cleared from its environment).
const namespace = "default"

// checkConfig is the command line of uicheck.
type checkConfig struct {
	DevBinary string
	Chromium  string
	OutDir    string
	Timeout   time.Duration
}

// expect is a text the page must (or must not) show, and what it stands for,
// for the failure message.
type expect struct {
	Text string
	What string
}

// page is one page of the UI to open, screenshot and check.
type page struct {
	Name    string // file names: Name.png, Name.txt
	Path    string // path and query of the UI URL
	Want    []expect
	WantNot []expect
	// Avoid are texts the page should not show; they are reported as
	// warnings, not failures.
	Avoid []expect
	// Reload the page while Want is missing: the workflow list shows what
	// visibility had when it loaded, and visibility is eventually consistent.
	Reload bool
}

// run performs the whole check, printing its progress to w.
func run(ctx context.Context, c checkConfig, w io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return err
	}
	for _, pattern := range []string{"*.png", "*.txt"} { // nothing stale from an earlier run
		old, _ := filepath.Glob(filepath.Join(c.OutDir, pattern))
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	if _, err := os.Stat(c.Chromium); err != nil {
		return fmt.Errorf("no Chromium at %s (apt-get install -y chromium): %w", c.Chromium, err)
	}

	logPath := filepath.Join(c.OutDir, "dispatchflow-dev.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	sys, err := startSystem(c.DevBinary, logFile)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(w, "ui-check: stopping dispatchflow-dev")
		if serr := sys.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w (log: %s)", serr, logPath))
		}
	}()
	fmt.Fprintf(w, "ui-check: started dispatchflow-dev: API %s, Temporal UI %s, log %s\n", sys.APIURL, sys.UIURL, logPath)
	readyCtx, readyCancel := context.WithTimeout(ctx, 2*time.Minute)
	err = sys.waitReady(readyCtx)
	readyCancel()
	if err != nil {
		return fmt.Errorf("%w (log: %s)", err, logPath)
	}

	msgs := messages(strconv.FormatInt(time.Now().UnixNano(), 36))
	delivered, bounced, escalated := msgs[0], msgs[1], msgs[2]
	api := newAPI(sys.APIURL)
	for _, m := range msgs {
		if err := api.send(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(w, "ui-check: sent the %s message: dispatch_id %s\n", m.Name, m.DispatchID)
	}
	finalCtx, finalCancel := context.WithTimeout(ctx, time.Minute)
	defer finalCancel()
	for _, m := range msgs {
		if err := api.waitFinal(finalCtx, m); err != nil {
			return fmt.Errorf("%w (log: %s)", err, logPath)
		}
	}
	fmt.Fprintln(w, "ui-check: the API shows delivered, bounced, and bounced with fallback escalated")

	b, err := startBrowser(ctx, c.Chromium)
	if err != nil {
		return err
	}
	defer b.close()

	workflowOf := func(m *message) expect {
		return expect{m.DispatchID, fmt.Sprintf("the %s message's workflow %s", m.Name, m.DispatchID)}
	}
	pages := []page{
		{
			Name:   "list-all",
			Path:   listPath(""),
			Want:   []expect{workflowOf(delivered), workflowOf(bounced), workflowOf(escalated)},
			Reload: true,
		},
		{
			Name:    "list-bounced",
			Path:    listPath(`DispatchStatus="bounced"`),
			Want:    []expect{workflowOf(bounced), workflowOf(escalated)},
			WantNot: []expect{workflowOf(delivered)},
			Reload:  true,
		},
		{
			Name:    "list-escalated",
			Path:    listPath(`FallbackState="escalated"`),
			Want:    []expect{workflowOf(escalated)},
			WantNot: []expect{workflowOf(delivered), workflowOf(bounced)},
			Reload:  true,
		},
		{
			Name: "workflow",
			// The UI redirects to the latest run, then to its history.
			Path: "/namespaces/" + namespace + "/workflows/" + url.PathEscape(bounced.DispatchID),
			Want: []expect{
				{"Transactional email · external_send_id " + bounced.ExternalSendID, "the static summary"},
				{"external_send_id", "the static details"},
				{"Status: bounced", "the current details (status)"},
			},
			WantNot: []expect{{"bounce@example.com", "the recipient's address (personal data)"}},
		},
	}
	var failures []error
	for _, p := range pages {
		if err := checkPage(b, c.OutDir, sys.UIURL, p, w); err != nil {
			failures = append(failures, err)
		}
	}
	return errors.Join(failures...)
}

// listPath is the UI's workflow list filtered by a visibility query (none: all).
func listPath(query string) string {
	p := "/namespaces/" + namespace + "/workflows"
	if query != "" {
		p += "?" + url.Values{"query": {query}}.Encode()
	}
	return p
}

// checkPage opens p, waits until it shows what it must (or a timeout), saves
// its screenshot and its text under dir, and reports what is missing or
// should not be there.
func checkPage(b *browser, dir, base string, p page, w io.Writer) error {
	u := base + p.Path
	if err := b.open(u); err != nil {
		return err
	}
	var want []string
	for _, e := range p.Want {
		want = append(want, e.Text)
	}
	reload := time.Duration(0)
	if p.Reload {
		reload = 10 * time.Second // a reload restarts the UI's own loading
	}
	text, _, err := b.waitText(want, 30*time.Second, reload)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	time.Sleep(time.Second) // let the table and its icons finish rendering
	if t, err := b.text(); err == nil {
		text = t
	}
	shot := filepath.Join(dir, p.Name+".png")
	if err := b.screenshot(shot); err != nil {
		return err
	}
	loc, _ := b.location()
	_ = os.WriteFile(filepath.Join(dir, p.Name+".txt"), []byte(loc+"\n\n"+text), 0o644)

	var problems []string
	for _, e := range p.Want {
		if !strings.Contains(text, e.Text) {
			problems = append(problems, fmt.Sprintf("missing %s (%q)", e.What, e.Text))
		}
	}
	for _, e := range p.WantNot {
		if strings.Contains(text, e.Text) {
			problems = append(problems, fmt.Sprintf("shows %s (%q), which it must not", e.What, e.Text))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s\n  - %s\n  (see %s and %s)", p.Name, u, strings.Join(problems, "\n  - "),
			shot, filepath.Join(dir, p.Name+".txt"))
	}
	fmt.Fprintf(w, "ui-check: %s ok: %s → %s\n", p.Name, u, shot)
	return nil
}
