package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"

	"github.com/dispatchflow/dispatchflow/client"
	"github.com/dispatchflow/dispatchflow/config"
)

// clientEnv is the client commands' own environment; the processes' is config.Config.
// The key is read from the environment only, never from a flag: flags show in ps.
type clientEnv struct {
	APIURL string `envconfig:"API_URL" default:"http://localhost:8080" desc:"API the client commands call (--api overrides it)"`
	APIKey string `envconfig:"API_KEY" desc:"API key the client commands send as Authorization: Bearer (none by default)"`
	// IntakeSecret signs what events post sends (Standard Webhooks), as the
	// generic and sandbox intakes require.
	IntakeSecret string `envconfig:"INTAKE_SECRET" desc:"whsec_ secret events post signs its body with (a workspace's intake secret)"`
}

// stdio is where a command reads and writes.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

// command is one subcommand: its flags, its arguments and what it does.
type command struct {
	name    string // "events post"
	args    string // "<provider> <file>"
	nargs   int
	summary string
	example string
	fs      *flag.FlagSet
	api     string
	apiKey  string
	// intakeSecret is $DISPATCHFLOW_INTAKE_SECRET, for events post.
	intakeSecret string
	json         bool
	// offline commands (keys new) call no API: run gets a nil client.
	offline bool
	run     func(ctx context.Context, c *client.Client, args []string, std stdio) error
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// commands builds each subcommand by its name: the client commands, and the
// offline keys commands.
var commands = map[string]func() *command{
	"send":                sendCommand,
	"status":              statusCommand,
	"list":                listCommand,
	"events post":         eventsPostCommand,
	"fallback cancel":     fallbackCancelCommand,
	"keys new":            keysNewCommand,
	"keys signing-secret": keysSigningSecretCommand,
}

// groups are the commands with a verb after them, and their verbs.
var groups = map[string][]string{"events": {"post"}, "fallback": {"cancel"}, "keys": {"new", "signing-secret"}}

// newCommand returns a client command, with the flags every client command has.
// Its API key is $DISPATCHFLOW_API_KEY.
func newCommand(name, args string, nargs int, summary, example string) *command {
	c := baseCommand(name, args, nargs, summary, example)
	var env clientEnv
	_ = envconfig.Process(config.Prefix, &env) // strings: it cannot fail
	c.apiKey, c.intakeSecret = env.APIKey, env.IntakeSecret
	c.fs.StringVar(&c.api, "api", env.APIURL, "the API's base `URL` (default $DISPATCHFLOW_API_URL)")
	c.fs.BoolVar(&c.json, "json", false, "print the API's JSON answer, for scripts")
	return c
}

// newOfflineCommand returns a command that calls no API.
func newOfflineCommand(name, args string, nargs int, summary, example string) *command {
	c := baseCommand(name, args, nargs, summary, example)
	c.offline = true
	c.fs.BoolVar(&c.json, "json", false, "print JSON, for scripts")
	return c
}

func baseCommand(name, args string, nargs int, summary, example string) *command {
	c := &command{name: name, args: args, nargs: nargs, summary: summary, example: example}
	c.fs = flag.NewFlagSet("dispatchflow "+name, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard) // errors and usage are printed by runCommand
	c.fs.Usage = func() {}
	return c
}

// runCommand runs a subcommand and returns the exit code: 0 success, 1 error
// (network, or the API answered non-2xx), 2 usage.
func runCommand(args []string, std stdio) int {
	name := args[0]
	if verbs, ok := groups[name]; ok {
		if len(args) < 2 || !slices.Contains(verbs, args[1]) {
			var want []string
			for _, v := range verbs {
				want = append(want, fmt.Sprintf("'dispatchflow %s %s'", name, v))
			}
			fmt.Fprintf(std.errOut, "dispatchflow %s: want %s; see 'dispatchflow %s %s --help'\n", name, strings.Join(want, " or "), name, verbs[0])
			return 2
		}
		name, args = name+" "+args[1], args[1:]
	}
	cmd := commands[name]()
	pos, err := parseInterspersed(cmd.fs, args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		cmd.printUsage(std.out)
		return 0
	case err == nil && len(pos) != cmd.nargs:
		err = fmt.Errorf("want %d argument(s) %s, got %d", cmd.nargs, cmd.args, len(pos))
	}
	if err != nil {
		fmt.Fprintf(std.errOut, "dispatchflow %s: %v\n\n", name, err)
		cmd.printUsage(std.errOut)
		return 2
	}
	var c *client.Client
	if !cmd.offline {
		c, err = client.New(cmd.api, client.WithAPIKey(cmd.apiKey))
		if err != nil {
			source := "--api"
			if errors.Is(err, client.ErrInvalidAPIKey) {
				source = "DISPATCHFLOW_API_KEY"
			}
			fmt.Fprintf(std.errOut, "dispatchflow %s: %s: %v\n", name, source, err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cmd.run(ctx, c, pos, std)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(std.errOut, "dispatchflow %s: %v\n\n", name, err)
		cmd.printUsage(std.errOut)
		return 2
	case err != nil:
		fmt.Fprintf(std.errOut, "dispatchflow %s: %v\n", name, err)
		return 1
	}
	return 0
}

// parseInterspersed parses fs's flags wherever they are among the arguments
// ("status <id> --json" as well as "status --json <id>"), and returns the
// arguments. Everything after "--" is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: dispatchflow %s [flags] %s\n\n%s\n\nFlags:\n", c.name, c.args, c.summary)
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	c.fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  --%s %s\t%s\n", f.Name, arg, usage)
	})
	_ = tw.Flush()
	fmt.Fprintf(w, "\nExample:\n%s\n", c.example)
}

// printJSON writes the API's answer as it came, for scripts.
func printJSON(w io.Writer, raw json.RawMessage) error {
	_, err := fmt.Fprintf(w, "%s\n", raw)
	return err
}

// table writes aligned columns; "" cells print as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)} }

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		cells[i] = strings.ReplaceAll(cells[i], "\t", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// headerFlag collects repeated --header 'Name: value' flags.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	k = strings.TrimSpace(k)
	if !ok || k == "" || strings.ContainsAny(k, " \t") {
		return fmt.Errorf("%q is not 'Name: value'", s)
	}
	http.Header(h).Add(k, strings.TrimSpace(v))
	return nil
}

// readInput reads a file, or stdin for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}
