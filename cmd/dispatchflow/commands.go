package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/client"
	"github.com/dispatchflow/dispatchflow/intake"
)

func sendCommand() *command {
	cmd := newCommand("send", "", 0,
		"Send an email: POST /v1/messages. Prints its dispatch_id. The same --external-send-id\n"+
			"again answers the first send's dispatch_id and sends nothing.",
		"  dispatchflow send --to ok@example.com --subject 'Your order #1234' --text 'Thanks.' \\\n"+
			"    --external-send-id order-1234 --postback-url http://localhost:8080/dev/inbox\n"+
			"  dispatchflow send --file request.json --to bounce@example.com   # flags override the file")
	var req client.SendRequest
	var file string
	fields := map[string]*string{ // flag → JSON field, for --file overrides
		"to": &req.To, "from": &req.From, "subject": &req.Subject, "text": &req.Text, "html": &req.HTML,
		"external-send-id": &req.ExternalSendID, "campaign-api-id": &req.CampaignAPIID,
		"postback-url": &req.PostbackURL, "workspace": &req.Workspace,
	}
	cmd.fs.StringVar(&req.To, "to", "", "recipient `address` (required)")
	cmd.fs.StringVar(&req.From, "from", "", "sender `address` (default: the API's DISPATCHFLOW_FROM)")
	cmd.fs.StringVar(&req.Subject, "subject", "", "subject line (required)")
	cmd.fs.StringVar(&req.Text, "text", "", "plain-text body (text or html is required)")
	cmd.fs.StringVar(&req.HTML, "html", "", "HTML body")
	cmd.fs.StringVar(&req.ExternalSendID, "external-send-id", "", "your `id` of this send: makes the send idempotent")
	cmd.fs.StringVar(&req.CampaignAPIID, "campaign-api-id", "", "campaign `id`, passed on in postbacks")
	cmd.fs.StringVar(&req.PostbackURL, "postback-url", "", "where status postbacks go (default: the API's DISPATCHFLOW_POSTBACK_URL)")
	cmd.fs.StringVar(&req.Workspace, "workspace", "", "`workspace` of the message")
	cmd.fs.StringVar(&file, "file", "", "a full JSON request body (`path`, or - for stdin), fallback policy included")
	cmd.run = func(ctx context.Context, c *client.Client, _ []string, std stdio) error {
		set := map[string]bool{}
		cmd.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var body any = req
		switch {
		case file != "":
			b, err := readInput(file, std.in)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(b, &obj); err != nil {
				return fmt.Errorf("--file %s: not a JSON object: %w", file, err)
			}
			for name, v := range fields {
				if set[name] {
					obj[strings.ReplaceAll(name, "-", "_")], _ = json.Marshal(*v)
				}
			}
			body = obj
		default:
			given := false
			for name := range fields {
				given = given || set[name]
			}
			if !given {
				return &usageError{"nothing to send: give --to, --subject and --text or --html, or --file"}
			}
		}
		res, err := c.Send(ctx, body)
		if err != nil {
			return err
		}
		if cmd.json {
			return printJSON(std.out, res.Raw)
		}
		t := newTable(std.out)
		t.row("dispatch_id", res.DispatchID)
		t.row("status", res.Status)
		if res.Replayed {
			t.row("note", "already sent with this external_send_id: nothing sent again")
		}
		return t.flush()
	}
	return cmd
}

func statusCommand() *command {
	cmd := newCommand("status", "<dispatch_id>", 1,
		"Show a message: its status, the ESP's events, each postback and how its delivery went,\n"+
			"and its fallback. GET /v1/messages/{dispatch_id}.",
		"  dispatchflow status 0f8fad5bd9cb469fa16570867728950e\n"+
			"  dispatchflow status 0f8fad5bd9cb469fa16570867728950e --json | jq -r .status")
	cmd.run = func(ctx context.Context, c *client.Client, args []string, std stdio) error {
		m, err := c.Message(ctx, args[0])
		if err != nil {
			return err
		}
		if cmd.json {
			return printJSON(std.out, m.Raw)
		}
		t := newTable(std.out)
		t.row("dispatch_id", m.DispatchID)
		t.row("status", m.Status)
		if m.Reason != "" {
			t.row("reason", m.Reason)
		}
		t.row("external_send_id", m.ExternalSendID)
		t.row("campaign_api_id", m.CampaignAPIID)
		t.row("recipient", m.Recipient)
		if m.ESP != nil {
			esp := m.ESP.Provider
			if m.ESP.MessageID != "" {
				esp += " (message id " + m.ESP.MessageID + ")"
			}
			t.row("esp", esp)
		} else {
			t.row("esp", "")
		}
		t.row("updated_at", timeCell(m.UpdatedAt))
		t.row("tracking_until", timeCell(m.TrackingUntil))
		t.row("fallback", fallbackCell(m.Fallback))
		if err := t.flush(); err != nil {
			return err
		}

		fmt.Fprintln(std.out, "\nEvents:")
		t = newTable(std.out)
		t.row("  TIME", "TYPE", "PROVIDER", "CHANGED STATUS", "NOTE")
		for _, e := range m.Events {
			note := e.Note
			if e.Reason != "" {
				note = strings.TrimSpace(e.Reason + " " + note)
			}
			t.row("  "+timeCell(e.Timestamp), e.Type, e.Provider, yesNo(e.ChangedStatus), note)
		}
		if m.DuplicateEvents > 0 {
			t.row(fmt.Sprintf("  (%d duplicate events dropped)", m.DuplicateEvents))
		}
		if err := t.flush(); err != nil {
			return err
		}

		fmt.Fprintln(std.out, "\nPostbacks:")
		t = newTable(std.out)
		t.row("  SEQ", "STATUS", "ENDPOINT", "STATE", "ATTEMPTS", "AT", "LAST ERROR")
		for _, p := range m.Postbacks {
			at := timeCell(p.DeliveredAt)
			if !p.NextAttemptAt.IsZero() {
				at = "next " + timeCell(p.NextAttemptAt)
			}
			status := p.Status
			if p.Event != "" {
				status = p.Event
			}
			t.row("  "+strconv.Itoa(p.Seq), status, p.Endpoint, p.State, strconv.Itoa(len(p.Attempts)), at, p.LastError)
		}
		return t.flush()
	}
	return cmd
}

func listCommand() *command {
	cmd := newCommand("list", "", 0,
		"List messages, newest first: GET /v1/messages. The list comes from Temporal's visibility\n"+
			"store, which is eventually consistent: a message sent or changed in the last second or so\n"+
			"may be missing or show its previous status. 'dispatchflow status' is always current.",
		"  dispatchflow list --status bounced\n"+
			"  dispatchflow list --external-send-id order-1234 --json\n"+
			"  dispatchflow list --campaign-api-id spring-sale --all --json | jq -r '.messages[].dispatch_id'")
	var p client.ListParams
	var all bool
	cmd.fs.StringVar(&p.Status, "status", "", "only messages with this `status` (queued, sent, processed, delivered, bounced, aborted)")
	cmd.fs.StringVar(&p.ExternalSendID, "external-send-id", "", "only the message with this external_send_id")
	cmd.fs.StringVar(&p.CampaignAPIID, "campaign-api-id", "", "only messages of this campaign")
	cmd.fs.StringVar(&p.Workspace, "workspace", "", "only messages of this workspace")
	cmd.fs.IntVar(&p.PageSize, "page-size", 0, "messages per page (default: the API's)")
	cmd.fs.StringVar(&p.PageToken, "page-token", "", "continue from this page (a previous answer's next_page_token)")
	cmd.fs.BoolVar(&all, "all", false, "follow next_page_token to the end (with --json: one {\"messages\"} object)")
	cmd.run = func(ctx context.Context, c *client.Client, _ []string, std stdio) error {
		if p.PageSize < 0 {
			return &usageError{"--page-size: must be positive"}
		}
		var msgs []client.MessageSummary
		seen := map[string]bool{}
		for {
			page, err := c.List(ctx, p)
			if err != nil {
				return err
			}
			if cmd.json && !all {
				return printJSON(std.out, page.Raw)
			}
			msgs = append(msgs, page.Messages...)
			if !all || page.NextPageToken == "" {
				p.PageToken = page.NextPageToken
				break
			}
			if seen[page.NextPageToken] {
				return fmt.Errorf("the API answered next_page_token %q twice", page.NextPageToken)
			}
			seen[page.NextPageToken] = true
			p.PageToken = page.NextPageToken
		}
		if cmd.json {
			raws := make([]json.RawMessage, len(msgs))
			for i, m := range msgs {
				raws[i] = m.Raw
			}
			b, err := json.MarshalIndent(map[string]any{"messages": raws}, "", "  ")
			if err != nil {
				return err
			}
			return printJSON(std.out, b)
		}
		t := newTable(std.out)
		t.row("DISPATCH_ID", "STATUS", "EXTERNAL_SEND_ID", "CAMPAIGN_API_ID", "WORKSPACE", "ESP", "FALLBACK", "STARTED", "CLOSED")
		for _, m := range msgs {
			closed := ""
			if m.ClosedAt != nil {
				closed = timeCell(*m.ClosedAt)
			}
			t.row(m.DispatchID, m.Status, m.ExternalSendID, m.CampaignAPIID, m.Workspace, m.ESP, m.FallbackState, timeCell(m.StartedAt), closed)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if len(msgs) == 0 {
			fmt.Fprintln(std.errOut, "no messages (the list can lag a second or so behind sends)")
		}
		if p.PageToken != "" {
			fmt.Fprintf(std.errOut, "more: --page-token %s (or --all)\n", p.PageToken)
		}
		return nil
	}
	return cmd
}

func eventsPostCommand() *command {
	cmd := newCommand("events post", "<provider> <file>", 2,
		"Post an ESP webhook body to POST /v1/events/{provider} (generic, sandbox, …), as the\n"+
			"ESP would: <file> is sent as is (- reads stdin). With $DISPATCHFLOW_INTAKE_SECRET (a\n"+
			"workspace's intake secret, whsec_…) the body is signed the Standard Webhooks way, as\n"+
			"the generic intake requires; other providers' signature headers go with --header.\n"+
			"Events are deduplicated, so posting twice is harmless.",
		"  DISPATCHFLOW_INTAKE_SECRET=whsec_… dispatchflow events post generic bounce.json\n"+
			"  echo '{\"dispatch_id\":\"0f8fad5bd9cb469fa16570867728950e\",\"event\":\"bounced\",\"reason\":\"550 5.1.1\"}' |\n"+
			"    dispatchflow events post generic -\n"+
			"  dispatchflow events post generic events.json --header 'Authorization: Bearer …'")
	header := headerFlag(http.Header{})
	cmd.fs.Var(header, "header", "add a request header `'Name: value'` (repeatable)")
	cmd.run = func(ctx context.Context, c *client.Client, args []string, std stdio) error {
		body, err := readInput(args[1], std.in)
		if err != nil {
			return err
		}
		h := http.Header(header)
		if secret := cmd.intakeSecret; secret != "" && h.Get("webhook-signature") == "" {
			id := "evt_" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if err := intake.SignStandard(h, secret, id, time.Now(), body); err != nil {
				return &usageError{"DISPATCHFLOW_INTAKE_SECRET: " + err.Error()}
			}
		}
		res, err := c.PostEvents(ctx, args[0], body, h)
		if err != nil {
			return err
		}
		if cmd.json {
			return printJSON(std.out, res.Raw)
		}
		_, err = fmt.Fprintf(std.out, "accepted %d, duplicates %d, unmatched %d\n", res.Accepted, res.Duplicates, res.Unmatched)
		if res.Unmatched > 0 {
			fmt.Fprintln(std.errOut, "unmatched: no open message has that dispatch_id (unknown, or its tracking window is over)")
		}
		return err
	}
	return cmd
}

func fallbackCancelCommand() *command {
	cmd := newCommand("fallback cancel", "<dispatch_id>", 1,
		"Cancel a message's pending fallback: you reached the user another way.\n"+
			"POST /v1/messages/{dispatch_id}/fallback/cancel. Fails (409) once it escalated.",
		"  dispatchflow fallback cancel 0f8fad5bd9cb469fa16570867728950e --reason 'called the customer'")
	var reason string
	cmd.fs.StringVar(&reason, "reason", "", "why, for the record")
	cmd.run = func(ctx context.Context, c *client.Client, args []string, std stdio) error {
		fb, err := c.CancelFallback(ctx, args[0], reason)
		if err != nil {
			return err
		}
		if cmd.json {
			return printJSON(std.out, fb.Raw)
		}
		t := newTable(std.out)
		t.row("fallback", fallbackCell(*fb))
		return t.flush()
	}
	return cmd
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fallbackCell says a fallback state in one line: "escalated (bounced) → sent".
func fallbackCell(f client.Fallback) string {
	s := f.State
	if f.Reason != "" {
		s += " (" + f.Reason + ")"
	}
	if f.Outcome != "" {
		s += " → " + f.Outcome
	}
	for _, st := range f.Steps {
		s += fmt.Sprintf("; step %d %s %s %s", st.Step, st.Channel, st.Target, st.State)
	}
	return s
}
