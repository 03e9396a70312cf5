package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// providersAnswer is GET /v1/providers' answer.
type providersAnswer struct {
	Providers []struct {
		workflows.CircuitState
		StateError string `json:"state_error"`
	} `json:"providers"`
}

func (s *system) providers() providersAnswer {
	s.t.Helper()
	var out providersAnswer
	if resp := s.do("GET", "/v1/providers", nil, &out); resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /v1/providers: %d", resp.StatusCode)
	}
	return out
}

// circuit is provider's circuit as GET /v1/providers shows it.
func (a providersAnswer) circuit(provider string) workflows.CircuitState {
	for _, p := range a.Providers {
		if p.Provider == provider {
			return p.CircuitState
		}
	}
	return workflows.CircuitState{}
}

// sendSummaries lists the summaries the Temporal UI shows for the message's
// Send activities, in order.
func sendSummaries(t *testing.T, s *system, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	iter := s.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Send" {
			var summary string
			if err := converter.GetDefaultDataConverter().FromPayload(ev.GetUserMetadata().GetSummary(), &summary); err != nil {
				t.Fatal(err)
			}
			out = append(out, summary)
		}
	}
	return out
}

// Failover on the real server, DISPATCHFLOW_ESP=sendgrid,postmark, both
// providers' APIs faked (esptest: they check each request as the provider
// would):
//
//   - a refusal by SendGrid (400, invalid address) aborts the message: no
//     failover, Postmark never called, SendGrid's circuit stays closed;
//   - SendGrid answering 503 is retried for DISPATCHFLOW_ESP_FAILOVER_AFTER,
//     then the email goes to Postmark: the timeline, the hand-overs and the
//     UI's activity summaries show both; SendGrid's circuit opens
//     (GET /v1/providers, and the Circuit workflow);
//   - events of both providers move that message, a third provider's do not;
//   - the next message skips SendGrid at once (its circuit is open), and
//     SendGrid's events are ignored for it: it never had the email;
//   - once the circuit is half-open, a message probes SendGrid, which has
//     recovered: the circuit closes and the message goes through SendGrid.
func TestFailover(t *testing.T) {
	t.Parallel()
	keys := newWebhookKeys(t)
	var sendgridCase, postmarkCase, mailgunCase providerCase
	for _, tc := range providerCases {
		switch tc.provider {
		case "sendgrid":
			sendgridCase = tc
		case "postmark":
			postmarkCase = tc
		case "mailgun":
			mailgunCase = tc
		}
	}
	sg, pm := esptest.SendGrid(t, "SG.it"), esptest.Postmark(t, "pm-it")
	const budget, openFor = 3 * time.Second, 8 * time.Second
	s := setup(t, func(c *config.Config) {
		keys.configure(t)(c)
		c.ESP = "sendgrid,postmark"
		c.SendGridAPIKey, c.SendGridBaseURL = "SG.it", sg.URL
		c.PostmarkServerToken, c.PostmarkBaseURL, c.PostmarkMessageStream = "pm-it", pm.URL, "outbound"
		c.ESPFailoverAfter, c.ESPCircuitOpenFor = budget, openFor
		c.ESPCircuitFailures = 1000 // only a message's failover opens the circuit: the test knows when
		c.Intakes = []string{"sendgrid", "postmark", "mailgun"}
	})
	req := func() message.SendRequest {
		return message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "Your order", Text: "Thanks.", PostbackURL: s.postback.URL}
	}

	// 1. A refusal for good does not fail over. SendGrid's error shape
	// {"errors": [{"message", "field", "help"}]} as documented at
	// twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors
	// and quoted in sendgrid/sendgrid-ruby issue #507; its message for a
	// malformed recipient as client code that matches on it quotes it (Mail
	// Send's errors are 400s: twilio.com/docs/sendgrid/api-reference/mail-send/errors).
	sg.Answer(esptest.Answer{Status: http.StatusBadRequest, Body: `{"errors":[{"message":"Does not contain a valid address.",` +
		`"field":"personalizations.0.to.0.email","help":"http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}]}`})
	refused := s.send(req())
	s.postback.waitFor(t, refused, 1)
	st := s.state(refused)
	if st.Status != message.StatusAborted || !strings.Contains(st.Reason, "Does not contain a valid address") {
		t.Fatalf("refused message: %s (%q), want aborted with SendGrid's reason", st.Status, st.Reason)
	}
	if len(st.Handovers) != 1 || st.Handovers[0].Provider != "sendgrid" || st.Handovers[0].Outcome != workflows.HandoverRefused {
		t.Errorf("hand-overs %+v, want sendgrid refused only", st.Handovers)
	}
	if n := len(pm.Requests()); n != 0 {
		t.Errorf("postmark got %d requests after a refusal, want none", n)
	}
	closed := s.providers().circuit("sendgrid")
	if closed.State != workflows.CircuitClosed {
		t.Errorf("sendgrid's circuit after a refusal: %+v, want closed (the provider answered)", closed)
	}

	// 2. SendGrid down: "503 SERVICE NOT AVAILABLE, The SendGrid v3 Web API is
	// not available" (twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/responses;
	// no body documented). The message moves to Postmark after its budget.
	sg.Answer(esptest.Answer{Status: http.StatusServiceUnavailable})
	before := len(sg.Requests())
	start := time.Now()
	id := s.send(req())
	if got := statuses(s.postback.waitFor(t, id, 1)); !slices.Equal(got, []string{"sent"}) {
		t.Fatalf("postbacks %v, want sent", got)
	}
	took := time.Since(start)
	st = s.state(id)
	if st.ESP == nil || st.ESP.Provider != "postmark" || st.ESP.MessageID != esptest.PostmarkMessageID {
		t.Fatalf("receipt %+v, want postmark's", st.ESP)
	}
	sgTries := sg.Requests()[before:]
	if len(sgTries) < 2 || took < budget {
		t.Errorf("sendgrid tried %d times, sent after %s; want retries over the %s budget first", len(sgTries), took, budget)
	}
	for _, r := range sgTries {
		if r.DispatchID != id {
			t.Errorf("sendgrid got dispatch_id %q, want %s", r.DispatchID, id)
		}
	}
	if got := pm.Requests(); len(got) != 1 || got[0].DispatchID != id {
		t.Errorf("postmark got %+v, want this message once", got)
	}
	if len(st.Handovers) != 2 || st.Handovers[0].Outcome != workflows.HandoverFailed || st.Handovers[0].Attempts != len(sgTries) ||
		!strings.Contains(st.Handovers[0].Error, "503") || st.Handovers[1].Provider != "postmark" || st.Handovers[1].Outcome != workflows.HandoverSent {
		t.Errorf("hand-overs %+v, want sendgrid failed after %d attempts (503), then postmark sent", st.Handovers, len(sgTries))
	}
	if len(st.Events) != 2 || st.Events[0].Type != workflows.EventFailover || st.Events[0].Provider != "sendgrid" ||
		!strings.Contains(st.Events[0].Note, "moved on to postmark") || st.Events[1].Type != message.EventSent || st.Events[1].Provider != "postmark" {
		t.Errorf("timeline %+v, want sendgrid's failover, then postmark's sent", st.Events)
	}
	if got, want := sendSummaries(t, s, id), []string{"hand the email to sendgrid", "hand the email to postmark (failover from sendgrid)"}; !slices.Equal(got, want) {
		t.Errorf("Send activities in the UI: %q, want %q", got, want)
	}

	// SendGrid's circuit is open: the API shows it, and so does its workflow.
	var open workflows.CircuitState
	eventually(t, "sendgrid's circuit open", func() bool {
		open = s.providers().circuit("sendgrid")
		return open.State == workflows.CircuitOpen
	})
	all := s.providers()
	if len(all.Providers) != 2 || all.Providers[0].Provider != "sendgrid" || all.Providers[1].Provider != "postmark" ||
		all.Providers[1].State != workflows.CircuitClosed {
		t.Errorf("providers %+v, want sendgrid then postmark (closed), in DISPATCHFLOW_ESP's order", all.Providers)
	}
	if open.Reason != "a message failed over after its budget" || !strings.Contains(open.LastError, "503") ||
		open.NextProbeAt.Sub(open.OpenedAt) != openFor || open.Opens != closed.Opens+1 {
		t.Errorf("open circuit %+v, want opened by the failover, the 503, a probe %s later", open, openFor)
	}
	if resp := s.as("reader").do("GET", "/v1/providers", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/providers with messages:read only: %d, want 403 (endpoints:admin)", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, workflows.CircuitWorkflowID("sendgrid"), "")
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if err := converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary); err != nil ||
		summary != "ESP circuit: sendgrid" {
		t.Errorf("circuit workflow's UI summary %q (%v), want %q", summary, err, "ESP circuit: sendgrid")
	}

	// 3. The next message skips SendGrid at once.
	before = len(sg.Requests())
	start = time.Now()
	skipped := s.send(req())
	s.postback.waitFor(t, skipped, 1)
	st2 := s.state(skipped)
	if took := time.Since(start); took >= budget || len(sg.Requests()) != before {
		t.Errorf("sent after %s with %d sendgrid requests, want at once, sendgrid not called", took, len(sg.Requests())-before)
	}
	if len(st2.Handovers) != 2 || st2.Handovers[0].Outcome != workflows.HandoverSkipped || st2.Handovers[0].Attempts != 0 ||
		!strings.Contains(st2.Handovers[0].Error, "circuit open") || st2.ESP == nil || st2.ESP.Provider != "postmark" {
		t.Errorf("hand-overs %+v, want sendgrid skipped (circuit open), then postmark", st2.Handovers)
	}

	// 4. Events. SendGrid's processed event of its Event Webhook reference
	// (intake/testdata/sendgrid_events.json, from twilio.com/docs/sendgrid/for-developers/tracking-events/event),
	// signed as SendGrid signs (ECDSA, X-Twilio-Email-Event-Webhook-Signature).
	processedOnly := func(id string) []byte {
		var all []map[string]any
		if err := json.Unmarshal(intakeFixture(t, "sendgrid_events.json", id), &all); err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			if e["event"] == "processed" && e["dispatch_id"] == id {
				b, _ := json.Marshal([]map[string]any{e})
				return b
			}
		}
		t.Fatal("no processed event in sendgrid_events.json")
		return nil
	}
	post := func(what string, r *http.Request) {
		t.Helper()
		if code, out := postSigned(t, r); code != http.StatusOK || out["accepted"] != float64(1) {
			t.Fatalf("%s: %d %v, want 200 with 1 accepted", what, code, out)
		}
	}
	post("sendgrid's processed", sendgridCase.sign(t, keys, s.api, processedOnly(id), true))
	eventually(t, "processed by sendgrid's event", func() bool { return s.state(id).Status == message.StatusProcessed })
	// Mailgun's delivered example (intake/testdata/mailgun_delivered.json, from
	// documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads),
	// signed with the webhook signing key: authentic, but Mailgun never had it.
	mailgunBody := intakeFixture(t, "mailgun_delivered.json", id)
	post("mailgun's delivered", mailgunCase.sign(t, keys, s.api, mailgunBody, true))
	// Postmark's delivery webhook example (intake/testdata/postmark_delivery.json,
	// from postmarkapp.com/developer/webhooks/delivery-webhook), basic auth.
	post("postmark's delivery", postmarkCase.sign(t, keys, s.api, intakeFixture(t, "postmark_delivery.json", id), true))
	if got := statuses(s.postback.waitFor(t, id, 3)); !slices.Equal(got, []string{"sent", "processed", "delivered"}) {
		t.Errorf("postbacks %v, want sent, processed (sendgrid), delivered (postmark)", got)
	}
	st = s.state(id)
	var mailgunNote string
	for _, e := range st.Events {
		if e.Provider == "mailgun" {
			mailgunNote = e.Note
			if e.ChangedStatus {
				t.Error("mailgun's event changed the status")
			}
		}
	}
	if want := "ignored: reported by mailgun, but the message was handed to sendgrid, postmark"; mailgunNote != want {
		t.Errorf("mailgun's event note %q, want %q", mailgunNote, want)
	}

	// The skipped message never went to SendGrid: its events are ignored.
	post("sendgrid's processed for the skipped message", sendgridCase.sign(t, keys, s.api, processedOnly(skipped), true))
	eventually(t, "sendgrid's event in the skipped message's timeline", func() bool {
		st2 = s.state(skipped)
		return len(st2.Events) == 3 // the skip, postmark's sent, sendgrid's event
	})
	last := st2.Events[len(st2.Events)-1]
	if last.Provider != "sendgrid" || last.ChangedStatus || last.Note != "ignored: reported by sendgrid, but the message was handed to postmark" {
		t.Errorf("sendgrid's event for the skipped message %+v, want ignored", last)
	}
	if st2.Status != message.StatusSent {
		t.Errorf("skipped message %s, want still sent", st2.Status)
	}

	// 5. SendGrid recovers; once the circuit is half-open, a message probes
	// it and closes it.
	sg.Answer(esptest.Answer{Status: http.StatusAccepted, Header: http.Header{"X-Message-Id": {esptest.SendGridMessageID}}})
	eventually(t, "sendgrid's circuit half-open", func() bool {
		return s.providers().circuit("sendgrid").State == workflows.CircuitHalfOpen
	})
	probe := s.send(req())
	s.postback.waitFor(t, probe, 1)
	if st := s.state(probe); st.ESP == nil || st.ESP.Provider != "sendgrid" || len(st.Handovers) != 1 {
		t.Errorf("probe message: receipt %+v, hand-overs %+v; want sendgrid at once", st.ESP, st.Handovers)
	}
	if got, want := sendSummaries(t, s, probe), []string{"hand the email to sendgrid"}; !slices.Equal(got, want) {
		t.Errorf("probe message's Send activities %q, want %q: one, as with one provider", got, want)
	}
	eventually(t, "sendgrid's circuit closed", func() bool {
		c := s.providers().circuit("sendgrid")
		return c.State == workflows.CircuitClosed && c.Reason == "a probe succeeded" && c.Failures == 0
	})

	// For workflows' replay test (DISPATCHFLOW_RECORD_HISTORY=1): the message
	// that failed over, and the circuit's run so far (it never closes).
	if os.Getenv("DISPATCHFLOW_RECORD_HISTORY") != "" {
		waitClosed(t, s, id)
		recordHistory(t, s, id, "history_failover.json")
		recordHistory(t, s, workflows.CircuitWorkflowID("sendgrid"), "history_circuit.json")
	}
}
