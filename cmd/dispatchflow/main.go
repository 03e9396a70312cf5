// Command dispatchflow runs dispatchflow against a Temporal cluster — the HTTP API,
// the worker, or both in one process — and is the API's command line client (send,
// status, list, events post, fallback cancel). 'keys new' and 'keys
// signing-secret' make API keys and signing secrets offline. Configuration is the
// environment (see --help).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
)

const usage = `dispatchflow tracks transactional email: one durable Temporal workflow per send.

Usage:
  dispatchflow serve     run the HTTP API and the worker in one process
  dispatchflow api       run the HTTP API only
  dispatchflow worker    run the worker only
  dispatchflow help      show this help

Each process connects to the Temporal cluster at TEMPORAL_ADDRESS. To run
everything on this machine with an embedded Temporal server and its Web UI,
use 'make run' instead.

Client commands (call the API at --api, or $DISPATCHFLOW_API_URL, default
http://localhost:8080, with the API key in $DISPATCHFLOW_API_KEY; each has
--help and --json; exit code 0 ok, 1 error, 2 usage):
  dispatchflow send --to … --subject … --text …   send an email
  dispatchflow status <dispatch_id>                 a message's status, events, postbacks
  dispatchflow list [--status …]                    list and search messages
  dispatchflow events post <provider> <file>        post an ESP webhook body
  dispatchflow fallback cancel <dispatch_id>        cancel a pending fallback

Keys (offline, for DISPATCHFLOW_API_KEYS_FILE):
  dispatchflow keys new --workspace … --scopes …  make an API key and its file entry
  dispatchflow keys signing-secret                 make a workspace signing secret

Configuration of the processes (environment variables):
`

func main() {
	os.Exit(run(os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}))
}

// run returns the exit code: 0 success, 1 error, 2 usage.
func run(args []string, std stdio) int {
	stdout, stderr := std.out, std.errOut
	if len(args) > 0 {
		if _, ok := commands[args[0]]; ok {
			return runCommand(args, std)
		}
		if _, ok := groups[args[0]]; ok {
			return runCommand(args, std)
		}
	}
	if len(args) != 1 {
		printUsage(stderr)
		return 2
	}
	var roles app.Roles
	switch args[0] {
	case "serve":
		roles = app.Roles{API: true, Worker: true}
	case "api":
		roles = app.Roles{API: true}
	case "worker":
		roles = app.Roles{Worker: true}
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "dispatchflow: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	cfg, err := config.Load()
	if err == nil && roles.API {
		err = cfg.ValidateAPI() // keys and the id secret: before dialing anything
	}
	if err != nil {
		fmt.Fprintln(stderr, "dispatchflow: configuration:", err)
		return 1
	}
	logger := app.NewLogger(cfg, stderr)
	// SIGTERM as well as Ctrl-C: containers and process managers stop with SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := app.Dial(ctx, cfg, logger)
	if err != nil {
		logger.Error("dispatchflow stopped", "error", err)
		return 1
	}
	defer c.Close()
	if err := app.Run(ctx, c, cfg, logger, roles); err != nil {
		logger.Error("dispatchflow stopped", "error", err)
		return 1
	}
	return 0
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	app.PrintConfigUsage(w)
}
