package activities

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
)

// circuitRecord is one Circuits.Record call.
type circuitRecord struct {
	provider       string
	probe, final   bool
	failed         bool
	failureMessage string
}

// recordingCircuits is a Circuits whose open providers are set by the test
// (why they are skipped) and which records what Send tells it.
type recordingCircuits struct {
	mu      sync.Mutex
	open    map[string]string
	records []circuitRecord
}

func (c *recordingCircuits) Allow(_ context.Context, provider string) (bool, bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	why, open := c.open[provider]
	return !open, false, why
}

func (c *recordingCircuits) Record(_ context.Context, provider string, probe bool, failure error, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := circuitRecord{provider: provider, probe: probe, final: final, failed: failure != nil}
	if failure != nil {
		r.failureMessage = failure.Error()
	}
	c.records = append(c.records, r)
}

// failoverActivities hands emails to a SendGrid and a Postmark fake (real
// HTTP servers speaking their APIs), as a worker with DISPATCHFLOW_ESP=sendgrid,postmark.
func failoverActivities(t *testing.T) (*Activities, *esptest.Fake, *esptest.Fake, *recordingCircuits) {
	t.Helper()
	sg, pm := esptest.SendGrid(t, "SG.test"), esptest.Postmark(t, "pm-test")
	circuits := &recordingCircuits{open: map[string]string{}}
	sgSender := &esp.SendGrid{APIKey: "SG.test", BaseURL: sg.URL, HTTP: esp.NewHTTPClient(esp.APITimeout)}
	acts := &Activities{
		ESP: sgSender,
		Senders: map[string]esp.Sender{
			"sendgrid": sgSender,
			"postmark": &esp.Postmark{ServerToken: "pm-test", BaseURL: pm.URL, HTTP: esp.NewHTTPClient(esp.APITimeout)},
		},
		Circuits: circuits,
	}
	return acts, sg, pm, circuits
}

var failoverEmail = esp.Email{DispatchID: "acf471119f7449d579e8089032003ded", From: "shop@example.com", To: "ann@example.com", Subject: "Order", Text: "Thanks"}

func runSend(t *testing.T, acts *Activities, in SendInput) (SendResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	val, err := env.ExecuteActivity(acts.Send, in)
	var res SendResult
	if err == nil {
		if gerr := val.Get(&res); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return res, err
}

// A 503 from the named provider is a retryable ErrUnavailable naming it, with
// the attempt's number; its circuit hears of the failure, and that it was the
// attempt before the failover.
func TestSendViaTransientFailure(t *testing.T) {
	t.Parallel()
	acts, sg, pm, circuits := failoverActivities(t)
	// SendGrid documents 503 as "SERVICE NOT AVAILABLE: The SendGrid v3 Web API
	// is not available" (twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/responses;
	// the same table on rapidapi.com/sendgrid/api/SendGrid/details); no body is documented.
	sg.Answer(esptest.Answer{Status: http.StatusServiceUnavailable})
	_, err := runSend(t, acts, SendInput{Email: failoverEmail, Provider: "sendgrid", Failover: true, FinalAttempt: 1})

	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != ErrUnavailable {
		t.Fatalf("got %v, want a retryable %s", err, ErrUnavailable)
	}
	if !strings.HasPrefix(appErr.Message(), "sendgrid: ") || !strings.Contains(appErr.Message(), "503") {
		t.Errorf("message %q, want one naming sendgrid and its 503", appErr.Message())
	}
	var attempt int32
	if err := appErr.Details(&attempt); err != nil || attempt != 1 {
		t.Errorf("details %d (%v), want attempt 1", attempt, err)
	}
	if got := sg.Requests(); len(got) != 1 || got[0].DispatchID != failoverEmail.DispatchID {
		t.Errorf("sendgrid got %+v, want one request carrying the dispatch_id", got)
	}
	if n := len(pm.Requests()); n != 0 {
		t.Errorf("postmark got %d requests, want none: the workflow moves on, not the activity", n)
	}
	want := []circuitRecord{{provider: "sendgrid", final: true, failed: true}}
	if got := circuits.records; len(got) != 1 || got[0].provider != want[0].provider || !got[0].failed || !got[0].final {
		t.Errorf("circuit records %+v, want %+v", got, want)
	}
}

// A refusal for good is ErrRefused with the provider's words, as with one
// provider: the provider answered, so its circuit hears of no failure.
func TestSendViaRefusal(t *testing.T) {
	t.Parallel()
	acts, sg, _, circuits := failoverActivities(t)
	// SendGrid's error shape {"errors": [{"message", "field", "help"}]} as
	// quoted in sendgrid/sendgrid-ruby issue #507 and documented at
	// twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors;
	// the message for a malformed recipient as SendGrid words it, quoted by
	// client code that matches on it (errors listed at
	// twilio.com/docs/sendgrid/api-reference/mail-send/errors, all 400).
	sg.Answer(esptest.Answer{Status: http.StatusBadRequest, Body: `{"errors":[{"message":"Does not contain a valid address.",` +
		`"field":"personalizations.0.to.0.email","help":"http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}]}`})
	_, err := runSend(t, acts, SendInput{Email: failoverEmail, Provider: "sendgrid", Failover: true, FinalAttempt: 5})

	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != ErrRefused {
		t.Fatalf("got %v, want a non-retryable %s", err, ErrRefused)
	}
	if want := "Does not contain a valid address. (field personalizations.0.to.0.email)"; appErr.Message() != want {
		t.Errorf("reason %q, want %q", appErr.Message(), want)
	}
	if got := circuits.records; len(got) != 1 || got[0].failed {
		t.Errorf("circuit records %+v, want one without failure", got)
	}
}

// A provider whose circuit is open is not called when the message may move
// on (Failover): ErrCircuitOpen, not retried, saying why. The last provider
// of the list is called whatever its circuit says.
func TestSendViaOpenCircuit(t *testing.T) {
	t.Parallel()
	acts, sg, pm, circuits := failoverActivities(t)
	circuits.open["sendgrid"] = "circuit open since 2026-11-22T10:00:00Z (5 consecutive failures on one worker)"
	circuits.open["postmark"] = "circuit open since 2026-11-22T10:00:00Z (the probe failed)"

	_, err := runSend(t, acts, SendInput{Email: failoverEmail, Provider: "sendgrid", Failover: true})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != ErrCircuitOpen {
		t.Fatalf("got %v, want a non-retryable %s", err, ErrCircuitOpen)
	}
	if !strings.Contains(appErr.Message(), "sendgrid: circuit open since") {
		t.Errorf("message %q, want the provider and why", appErr.Message())
	}
	var made int32 = -1
	if err := appErr.Details(&made); err != nil || made != 0 {
		t.Errorf("details %d (%v), want 0 attempts made before", made, err)
	}
	if n := len(sg.Requests()); n != 0 {
		t.Errorf("sendgrid got %d requests, want none", n)
	}

	res, err := runSend(t, acts, SendInput{Email: failoverEmail, Provider: "postmark"})
	if err != nil {
		t.Fatalf("the last provider, circuit open: %v, want it tried and accepted", err)
	}
	if res.Receipt.Provider != "postmark" || res.Receipt.MessageID != esptest.PostmarkMessageID || res.Attempt != 1 {
		t.Errorf("receipt %+v attempt %d, want postmark's message id at attempt 1", res.Receipt, res.Attempt)
	}
	if n := len(pm.Requests()); n != 1 {
		t.Errorf("postmark got %d requests, want 1", n)
	}
	if got := circuits.records; len(got) != 1 || got[0].provider != "postmark" || got[0].failed {
		t.Errorf("circuit records %+v, want postmark's success (it closes an open circuit)", got)
	}
}

// A provider the worker does not have (another DISPATCHFLOW_ESP) is a
// retryable failure naming it: another worker may have it.
func TestSendViaUnknownProvider(t *testing.T) {
	t.Parallel()
	acts, _, _, _ := failoverActivities(t)
	_, err := runSend(t, acts, SendInput{Email: failoverEmail, Provider: "mailgun", Failover: true})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.NonRetryable() {
		t.Fatalf("got %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "mailgun") || !strings.Contains(err.Error(), "DISPATCHFLOW_ESP") {
		t.Errorf("error %q, want it to name the provider and DISPATCHFLOW_ESP", err)
	}
}

// instantESP accepts every email at once, without I/O: the benchmark measures
// the activity's own path.
type instantESP struct{ name string }

func (s instantESP) Name() string { return s.name }
func (s instantESP) Send(context.Context, esp.Email) (esp.Receipt, error) {
	return esp.Receipt{Provider: s.name, MessageID: "m-1"}, nil
}

// BenchmarkSend measures the Send activity with one provider (the path of a
// single-provider deployment, unchanged by failover) and with a failover list
// whose first provider is healthy (a cached circuit read, no report).
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name string
		acts *Activities
		in   SendInput
	}{
		{"one provider", &Activities{ESP: instantESP{"sendgrid"}}, SendInput{Email: failoverEmail}},
		{"failover list, healthy", &Activities{ESP: instantESP{"sendgrid"},
			Senders:  map[string]esp.Sender{"sendgrid": instantESP{"sendgrid"}, "postmark": instantESP{"postmark"}},
			Circuits: &recordingCircuits{open: map[string]string{}}},
			SendInput{Email: failoverEmail, Provider: "sendgrid", Failover: true, FinalAttempt: 8}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(bc.acts)
			for b.Loop() {
				if _, err := env.ExecuteActivity(bc.acts.Send, bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
