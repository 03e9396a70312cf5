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
	// Press, when set, is done once the page shows Ready: a JavaScript
	// expression that returns "" when it could act, else what was wrong.
	Ready []expect
	Press string
}

// run performs the whole check, printing its progress to w: a run of the
// system as make run starts it, then one with a payload key (encrypted).
func run(ctx context.Context, c checkConfig, w io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return err
	}
	for _, pattern := range []string{"*.png", "*.txt", "*.json"} { // nothing stale from an earlier run
		old, _ := filepath.Glob(filepath.Join(c.OutDir, pattern))
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	if _, err := os.Stat(c.Chromium); err != nil {
		return fmt.Errorf("no Chromium at %s (apt-get install -y chromium): %w", c.Chromium, err)
	}
	b, err := startBrowser(ctx, c.Chromium)
	if err != nil {
		return err
	}
	defer b.close()
	s := &session{c: c, b: b, w: w}
	if err := s.plainRun(ctx); err != nil {
		return err
	}
	if err := s.encryptedRun(ctx); err != nil {
		return err
	}
	for _, warning := range s.warnings {
		fmt.Fprintln(w, "ui-check: WARNING:", warning)
	}
	if len(s.failures) > 0 {
		return errors.New(strings.Join(s.failures, "\n"))
	}
	return nil
}

// session is one ui-check: its browser, and what the checks found.
type session struct {
	c                  checkConfig
	b                  *browser
	w                  io.Writer
	failures, warnings []string
}

// check checks page p of the UI at base, keeping its failure and warnings.
func (s *session) check(base string, p page) {
	ws, err := checkPage(s.b, s.c.OutDir, base, p, s.w)
	s.warnings = append(s.warnings, ws...)
	if err != nil {
		s.failures = append(s.failures, err.Error())
	}
}

// withSystem starts dispatchflow-dev with env (besides ui-check's own), its
// output in the log file logName under the output directory, waits until it is
// ready, runs f, and stops it.
func (s *session) withSystem(ctx context.Context, logName string, env []string, f func(sys *system, logPath string) error) (err error) {
	logPath := filepath.Join(s.c.OutDir, logName)
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	sys, err := startSystem(s.c.DevBinary, logFile, env...)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(s.w, "ui-check: stopping dispatchflow-dev")
		if serr := sys.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w (log: %s)", serr, logPath))
		}
	}()
	fmt.Fprintf(s.w, "ui-check: started dispatchflow-dev: API %s, Temporal UI %s, log %s\n", sys.APIURL, sys.UIURL, logPath)
	readyCtx, readyCancel := context.WithTimeout(ctx, 2*time.Minute)
	err = sys.waitReady(readyCtx)
	readyCancel()
	if err != nil {
		return fmt.Errorf("%w (log: %s)", err, logPath)
	}
	return f(sys, logPath)
}

// sendAll sends msgs through the API of sys and waits for their final states.
func (s *session) sendAll(ctx context.Context, sys *system, logPath string, msgs []*message) error {
	key, err := sys.apiKey()
	if err != nil {
		return err
	}
	api := newAPI(sys.APIURL, key)
	for _, m := range msgs {
		if err := api.send(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(s.w, "ui-check: sent the %s message: dispatch_id %s\n", m.Name, m.DispatchID)
	}
	finalCtx, finalCancel := context.WithTimeout(ctx, time.Minute)
	defer finalCancel()
	for _, m := range msgs {
		if err := api.waitFinal(finalCtx, m); err != nil {
			return fmt.Errorf("%w (log: %s)", err, logPath)
		}
	}
	return nil
}

func workflowOf(m *message) expect {
	return expect{m.DispatchID, fmt.Sprintf("the %s message's workflow %s", m.Name, m.DispatchID)}
}

// personal are the texts the summaries and details must never show.
var personal = []expect{
	{"bounce@example.com", "the recipient's address"},
	{fallbackPhone, "the fallback phone number"},
}

// plainRun is the system as make run starts it, payloads in clear: three
// messages, the list filtered by search attributes, two workflow pages and a query.
func (s *session) plainRun(ctx context.Context) error {
	return s.withSystem(ctx, "dispatchflow-dev.log", nil, func(sys *system, logPath string) error {
		msgs := messages(strconv.FormatInt(time.Now().UnixNano(), 36))
		delivered, bounced, escalated := msgs[0], msgs[1], msgs[2]
		if err := s.sendAll(ctx, sys, logPath, msgs); err != nil {
			return err
		}
		fmt.Fprintln(s.w, "ui-check: the API shows delivered, bounced, and bounced with fallback escalated")

		s.check(sys.UIURL, page{
			Name:   "list-all",
			Path:   listPath(""),
			Want:   []expect{workflowOf(delivered), workflowOf(bounced), workflowOf(escalated)},
			Reload: true,
		})
		s.check(sys.UIURL, page{
			Name:    "list-bounced",
			Path:    listPath(`DispatchStatus="bounced"`),
			Want:    []expect{workflowOf(bounced), workflowOf(escalated)},
			WantNot: []expect{workflowOf(delivered)},
			Reload:  true,
		})
		s.check(sys.UIURL, page{
			Name:    "list-escalated",
			Path:    listPath(`FallbackState="escalated"`),
			Want:    []expect{workflowOf(escalated)},
			WantNot: []expect{workflowOf(delivered), workflowOf(bounced)},
			Reload:  true,
		})
		for _, m := range []*message{bounced, escalated} {
			run, err := runPath(s.b, sys.UIURL, m.DispatchID)
			if err != nil {
				s.failures = append(s.failures, err.Error())
				continue
			}
			name := "workflow"
			if m != bounced {
				name += "-" + m.Name
			}
			s.workflowPages(sys.UIURL, run, name, m, nil, personal)
			if m == bounced {
				s.queryPage(sys.UIURL, run, "query", m)
			}
		}
		return nil
	})
}

// workflowPages checks a message's User Metadata and Event History tabs:
// its summary, details and current details; its activities' summaries, and
// history (the Event History tab) shows too; avoid are warned about there.
func (s *session) workflowPages(base, run, name string, m *message, history, avoid []expect) {
	// The User Metadata tab: the static summary and details given at
	// start, and the current details the workflow keeps up to date.
	want := []expect{
		{"Transactional email · external_send_id " + m.ExternalSendID, "the summary"},
		{"campaign_api_id", "the details (campaign_api_id)"},
		{"Status: " + m.WantStatus + " since", "the current details (status)"},
	}
	if m.WantFallback != "" {
		want = append(want, expect{"Fallback: " + m.WantFallback, "the current details (fallback)"})
	}
	s.check(base, page{Name: name, Path: run + "/user-metadata", Want: want, WantNot: personal})
	// The Event History tab: each activity and timer with its summary.
	want = []expect{{"hand the email to the ESP", "the ESP hand-over's summary"}, {"postback 1", "the first postback's summary"}}
	if m.WantFallback != "" {
		want = append(want, expect{"fallback step 1: sandbox", "the fallback step's summary"})
	}
	s.check(base, page{Name: name + "-history", Path: run + "/history", Want: append(want, history...), Avoid: avoid})
}

// queryPage runs the state query on the Queries tab, as an operator would.
func (s *session) queryPage(base, run, name string, m *message) {
	s.check(base, page{
		Name:  name,
		Path:  run + "/query",
		Ready: []expect{{"Run Query", "the Run Query button"}},
		Press: pressRunQuery,
		Want: []expect{
			{`"dispatch_id": "` + m.DispatchID + `"`, "the state query's answer (dispatch_id)"},
			{`"status": "` + m.WantStatus + `"`, "the state query's answer (status)"},
		},
	})
}

// pressRunQuery checks that the Queries tab offers the state query (the
// first one, selected) and presses Run Query.
const pressRunQuery = `(() => {
	const sel = document.getElementById("query-select");
	if (!sel) return "no query type selector";
	if (sel.value !== "state") return "the selected query type is " + JSON.stringify(sel.value) + ", not \"state\"";
	const run = Array.from(document.querySelectorAll("button")).find(b => b.innerText.trim() === "Run Query");
	if (!run) return "no Run Query button";
	run.click();
	return "";
})()`

// listPath is the UI's workflow list filtered by a visibility query (none: all).
func listPath(query string) string {
	p := "/namespaces/" + namespace + "/workflows"
	if query != "" {
		p += "?" + url.Values{"query": {query}}.Encode()
	}
	return p
}

// runPath opens a workflow by its ID, as a link from elsewhere would, and
// returns the path of its latest run (/namespaces/…/workflows/{id}/{runId}),
// to which the UI redirects.
func runPath(b *browser, base, workflowID string) (string, error) {
	prefix := "/namespaces/" + namespace + "/workflows/" + url.PathEscape(workflowID)
	if err := b.open(base + prefix); err != nil {
		return "", err
	}
	deadline := time.Now().Add(b.wait)
	for {
		loc, err := b.location()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(loc, base+prefix+"/"); ok {
			if runID, _, _ := strings.Cut(rest, "/"); runID != "" {
				return prefix + "/" + runID, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s%s did not lead to a run of the workflow (still at %s)", base, prefix, loc)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkPage opens p, waits until it shows what it must (or a timeout), saves
// its screenshot and its text under dir, and reports what is missing or
// should not be there (the error) and what it should better not show (the
// warnings).
func checkPage(b *browser, dir, base string, p page, w io.Writer) (warnings []string, err error) {
	u := base + p.Path
	shot := filepath.Join(dir, p.Name+".png")
	textFile := filepath.Join(dir, p.Name+".txt")
	fail := func(problems ...string) error {
		return fmt.Errorf("%s: %s\n  - %s\n  (see %s and %s)", p.Name, u, strings.Join(problems, "\n  - "), shot, textFile)
	}
	if err := b.open(u); err != nil {
		return nil, err
	}
	reload := time.Duration(0)
	if p.Reload {
		reload = 10 * time.Second // not less: a reload restarts the UI's own loading
	}
	var problems []string
	if p.Press != "" {
		_, missing, err := b.waitText(texts(p.Ready), b.wait, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		if len(missing) > 0 {
			problems = append(problems, "missing "+describe(p.Ready, missing))
		} else if msg, err := b.eval(p.Press); err != nil || msg != "" {
			problems = append(problems, fmt.Sprintf("could not act on the page: %s%v", msg, err))
		}
	}
	if len(problems) == 0 {
		if _, _, err := b.waitText(texts(p.Want), b.wait, reload); err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		time.Sleep(time.Second) // let the table and its icons finish rendering
	}
	text, err := b.text()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if err := b.screenshot(shot); err != nil {
		return nil, err
	}
	loc, _ := b.location()
	_ = os.WriteFile(textFile, []byte(loc+"\n\n"+text), 0o644)

	for _, e := range p.Want {
		if len(problems) == 0 && !strings.Contains(text, e.Text) {
			problems = append(problems, fmt.Sprintf("missing %s (%q)", e.What, e.Text))
		}
	}
	for _, e := range p.WantNot {
		if strings.Contains(text, e.Text) {
			problems = append(problems, fmt.Sprintf("shows %s (%q), which it must not", e.What, e.Text))
		}
	}
	for _, e := range p.Avoid {
		if strings.Contains(text, e.Text) {
			warnings = append(warnings, fmt.Sprintf("%s: %s shows %s (%q)", p.Name, u, e.What, e.Text))
		}
	}
	if len(problems) > 0 {
		return warnings, fail(problems...)
	}
	fmt.Fprintf(w, "ui-check: %s ok: %s → %s\n", p.Name, u, shot)
	return warnings, nil
}

func texts(es []expect) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Text)
	}
	return out
}

// describe names the expectations whose texts are missing.
func describe(es []expect, missing []string) string {
	var out []string
	for _, e := range es {
		for _, m := range missing {
			if e.Text == m {
				out = append(out, fmt.Sprintf("%s (%q)", e.What, e.Text))
			}
		}
	}
	return strings.Join(out, ", ")
}
