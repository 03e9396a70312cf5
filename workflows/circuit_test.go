package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

func TestCircuitWorkflowID(t *testing.T) {
	t.Parallel()
	if got, want := workflows.CircuitWorkflowID("sendgrid"), "dispatchflow-circuit-sendgrid"; got != want {
		t.Errorf("CircuitWorkflowID(sendgrid) = %q, want %q", got, want)
	}
}

// A circuit moves as its reports say: a trip opens a closed circuit for the
// report's OpenFor; a probe's failure opens it again; a close closes it and
// forgets its failures. A trip while open only counts.
func TestCircuitStateApply(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	trip := workflows.CircuitReport{Kind: workflows.ReportTrip, At: at(0), Failures: 5, Error: "sendgrid answered 503", Reason: "5 consecutive failures on one worker", OpenFor: time.Minute}

	st := workflows.NewCircuitState("sendgrid")
	st.Apply(trip)
	require.Equal(t, workflows.CircuitOpen, st.State)
	sameTime(t, at(0), st.OpenedAt)
	sameTime(t, at(time.Minute), st.NextProbeAt)
	require.Equal(t, 5, st.Failures)
	require.Equal(t, 1, st.Opens)
	require.Equal(t, "sendgrid answered 503", st.LastError)

	again := trip
	again.At, again.Failures, again.Error = at(10*time.Second), 2, "timeout"
	st.Apply(again)
	require.Equal(t, workflows.CircuitOpen, st.State, "a trip while open changes nothing but the counts")
	sameTime(t, at(time.Minute), st.NextProbeAt, "a trip while open does not delay the probe")
	require.Equal(t, 7, st.Failures)
	require.Equal(t, "timeout", st.LastError)

	require.Equal(t, workflows.CircuitOpen, st.At(at(59*time.Second)).State)
	half := st.At(at(time.Minute))
	require.Equal(t, workflows.CircuitHalfOpen, half.State, "open circuit past its next probe")
	sameTime(t, at(time.Minute), half.Since)

	st.Apply(workflows.CircuitReport{Kind: workflows.ReportProbeFailed, At: at(70 * time.Second), Error: "503 again", OpenFor: 2 * time.Minute})
	require.Equal(t, workflows.CircuitOpen, st.State)
	sameTime(t, at(70*time.Second+2*time.Minute), st.NextProbeAt)
	sameTime(t, at(0), st.OpenedAt, "OpenedAt keeps the start of the outage")
	require.Equal(t, 1, st.Opens)
	require.Equal(t, 8, st.Failures)

	st.Apply(workflows.CircuitReport{Kind: workflows.ReportClose, At: at(4 * time.Minute), Reason: "a probe succeeded"})
	require.Equal(t, workflows.CircuitClosed, st.State)
	require.Zero(t, st.Failures)
	require.True(t, st.NextProbeAt.IsZero() && st.OpenedAt.IsZero())
	require.Equal(t, "a probe succeeded", st.Reason)
	require.Equal(t, workflows.CircuitClosed, st.At(at(time.Hour)).State)

	// A probe's failure reported after another worker's success closed it:
	// counted, the circuit stays closed.
	st.Apply(workflows.CircuitReport{Kind: workflows.ReportProbeFailed, At: at(4*time.Minute + time.Second), Error: "late"})
	require.Equal(t, workflows.CircuitClosed, st.State)
	require.Equal(t, 1, st.Failures)
}

// The Circuit workflow: a trip opens it, its timer turns it half-open when the
// probe is due, a failed probe opens it again, a success closes it; its state
// carries over a continue-as-new.
func TestCircuitWorkflow(t *testing.T) {
	t.Parallel()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)

	var mu sync.Mutex
	got := map[string]workflows.CircuitState{}
	queryAt := func(d time.Duration, name string) {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(workflows.QueryCircuit)
			require.NoError(t, err)
			var st workflows.CircuitState
			require.NoError(t, v.Get(&st))
			mu.Lock()
			got[name] = st
			mu.Unlock()
		}, d)
	}
	signalAt := func(d time.Duration, r workflows.CircuitReport) {
		env.RegisterDelayedCallback(func() {
			r.At = env.Now()
			env.SignalWorkflow(workflows.SignalCircuitReport, r)
		}, d)
	}
	signalAt(time.Second, workflows.CircuitReport{Kind: workflows.ReportTrip, Failures: 5, Error: "sendgrid answered 503", OpenFor: time.Minute})
	queryAt(30*time.Second, "open")
	queryAt(62*time.Second, "half-open")
	signalAt(70*time.Second, workflows.CircuitReport{Kind: workflows.ReportProbeFailed, Error: "timeout", OpenFor: time.Minute})
	queryAt(75*time.Second, "reopened")
	signalAt(3*time.Minute, workflows.CircuitReport{Kind: workflows.ReportClose, Reason: "a probe succeeded"})
	queryAt(3*time.Minute+time.Second, "closed")
	env.RegisterDelayedCallback(func() {
		env.SetContinueAsNewSuggested(true)
		env.SignalWorkflow(workflows.SignalCircuitReport, workflows.CircuitReport{Kind: workflows.ReportTrip, At: env.Now(), Error: "after", OpenFor: time.Minute})
	}, 4*time.Minute)

	env.ExecuteWorkflow(workflows.Circuit, workflows.NewCircuitState("sendgrid"))
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	err := env.GetWorkflowError()
	require.Truef(t, errors.As(err, &can), "got %v, want a continue-as-new", err)
	require.Equal(t, workflows.CircuitWorkflow, can.WorkflowType.Name)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, workflows.CircuitOpen, got["open"].State)
	require.Equal(t, workflows.CircuitHalfOpen, got["half-open"].State, "the timer turned it half-open at its next probe")
	sameTime(t, t0.Add(61*time.Second), got["half-open"].Since)
	require.Equal(t, workflows.CircuitOpen, got["reopened"].State)
	sameTime(t, t0.Add(130*time.Second), got["reopened"].NextProbeAt)
	require.Equal(t, 6, got["reopened"].Failures)
	require.Equal(t, workflows.CircuitClosed, got["closed"].State)
	require.Equal(t, 1, got["closed"].Opens)

	var carried workflows.CircuitState
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &carried), "the state is the next run's input")
	require.Equal(t, workflows.CircuitOpen, carried.State, "the last report, taken in before continuing")
	require.Equal(t, 2, carried.Opens)
	require.Equal(t, "after", carried.LastError)
}

// failoverHarness runs a Message workflow whose Send answers by provider:
// answer decides each attempt from its input (nil: accepted).
type failoverHarness struct {
	*harness
	answer func(in activities.SendInput, attempt int32) error
}

func newFailoverHarness(t *testing.T, providers ...string) *failoverHarness {
	t.Helper()
	h := &failoverHarness{harness: newHarness(t)}
	for _, p := range providers {
		h.in.Providers = append(h.in.Providers, workflows.ESPRoute{Name: p})
	}
	h.in.Policy.FailoverAfter = 2 * time.Minute
	return h
}

func (h *failoverHarness) run() workflows.State {
	h.t.Helper()
	acts := &activities.Activities{}
	h.env.RegisterActivity(acts)
	h.env.OnActivity(acts.Send, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.SendInput) (activities.SendResult, error) {
		attempt := activity.GetInfo(ctx).Attempt
		var err error
		if h.answer != nil {
			err = h.answer(in, attempt)
		}
		h.mu.Lock()
		h.sends = append(h.sends, activityCall{At: h.env.Now(), Attempt: attempt, SendIn: in, Err: err})
		h.mu.Unlock()
		if err != nil {
			return activities.SendResult{}, err
		}
		rcpt := esp.Receipt{Provider: in.Provider, MessageID: in.Provider + "-42", Response: "accepted"}
		return activities.SendResult{Receipt: rcpt, ExecutedAt: h.env.Now(), SentAt: h.env.Now(), Attempt: attempt}, nil
	})
	h.env.OnActivity(acts.Postback, mock.Anything, mock.Anything).Return(h.postback)
	h.env.ExecuteWorkflow(workflows.Message, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
	require.NoError(h.t, h.env.GetWorkflowError())
	var st workflows.State
	require.NoError(h.t, h.env.GetWorkflowResult(&st))
	return st
}

// providersOf lists the provider of each Send call, in order.
func providersOf(calls []activityCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.SendIn.Provider)
	}
	return out
}

// unavailable is Send's transient failure of attempt with provider: what
// activities.Send answers a 503.
func unavailable(provider string, attempt int32) error {
	return activities.UnavailableError(provider, attempt, fmt.Errorf("%s answered 503 Service Unavailable", provider))
}

// A provider that keeps failing transiently is retried for its budget
// (FailoverAfter), then the email goes to the next provider — only after the
// last attempt's failure, never while one may still be under way. The
// timeline and the state show the hand-over; sent is posted once.
func TestMessageFailsOverAfterBudget(t *testing.T) {
	h := newFailoverHarness(t, "sendgrid", "postmark")
	h.answer = func(in activities.SendInput, attempt int32) error {
		if in.Provider == "sendgrid" {
			return unavailable(in.Provider, attempt)
		}
		return nil
	}
	st := h.run()

	calls := h.sendCalls()
	require.GreaterOrEqual(t, len(calls), 3, "sendgrid retried, then postmark")
	last := calls[len(calls)-1]
	require.Equal(t, "postmark", last.SendIn.Provider, "the email went to postmark in the end")
	sg := calls[:len(calls)-1]
	for i, c := range sg {
		require.Equalf(t, "sendgrid", c.SendIn.Provider, "call %d: providers %v, want sendgrid until the failover", i, providersOf(calls))
		require.True(t, c.SendIn.Failover, "sendgrid may be skipped: it is not the last")
		require.Equal(t, int32(i+1), c.Attempt)
		require.LessOrEqual(t, c.At.Sub(t0), h.in.Policy.FailoverAfter, "every sendgrid attempt starts within its budget")
	}
	require.Equal(t, sg[len(sg)-1].Attempt, sg[len(sg)-1].SendIn.FinalAttempt, "the last sendgrid attempt knows it is the last")
	require.False(t, last.SendIn.Failover, "the last provider is never skipped")
	require.Zero(t, last.SendIn.FinalAttempt)
	require.False(t, last.At.Before(sg[len(sg)-1].At), "postmark only after sendgrid's last failure")
	require.Greater(t, last.At.Sub(t0), h.in.Policy.FailoverAfter/2, "the budget was mostly used before failing over")

	require.Equal(t, message.StatusSent, st.Status)
	require.Equal(t, "postmark", st.ESP.Provider)
	require.Len(t, st.Handovers, 2)
	require.Equal(t, workflows.HandoverFailed, st.Handovers[0].Outcome)
	require.Equal(t, "sendgrid", st.Handovers[0].Provider)
	require.Equal(t, len(sg), st.Handovers[0].Attempts)
	require.Contains(t, st.Handovers[0].Error, "503")
	require.Equal(t, workflows.HandoverSent, st.Handovers[1].Outcome)
	require.Equal(t, 1, st.Handovers[1].Attempts)

	require.Equal(t, []message.EventType{workflows.EventFailover, message.EventSent}, eventTypes(st.Events))
	fo := st.Events[0]
	require.Equal(t, "sendgrid", fo.Provider)
	require.Equal(t, workflows.HandoverFailed, fo.RawType)
	require.Contains(t, fo.Note, "moved on to postmark")
	require.False(t, fo.ChangedStatus)
	require.Equal(t, "postmark", st.Events[1].Provider)
	require.Equal(t, []message.Status{message.StatusSent}, okCallStatuses(h.postCalls()), "sent is posted once")
}

// A refusal for good (invalid address, suppressed) is the message's fault, not
// the provider's: it is aborted, and no other provider is tried.
func TestMessageRefusalDoesNotFailOver(t *testing.T) {
	h := newFailoverHarness(t, "sendgrid", "postmark")
	h.answer = func(activities.SendInput, int32) error {
		return temporal.NewNonRetryableApplicationError("Does not contain a valid address. (field personalizations.0.to.0.email)", activities.ErrRefused, nil)
	}
	st := h.run()
	require.Equal(t, []string{"sendgrid"}, providersOf(h.sendCalls()))
	require.Equal(t, message.StatusAborted, st.Status)
	require.Contains(t, st.Reason, "valid address")
	require.Len(t, st.Handovers, 1)
	require.Equal(t, workflows.HandoverRefused, st.Handovers[0].Outcome)
	require.Equal(t, []message.EventType{message.EventAborted}, eventTypes(st.Events), "no failover in the timeline")
}

// A provider whose circuit is open is skipped at once (Send answers
// ErrCircuitOpen without calling it): the message goes to the next provider
// without waiting for a budget, and the skipped provider's events are ignored
// (it never had the email), while the carrier's move the message.
func TestMessageSkipsOpenCircuit(t *testing.T) {
	h := newFailoverHarness(t, "sendgrid", "postmark")
	h.answer = func(in activities.SendInput, _ int32) error {
		if in.Provider == "sendgrid" {
			return temporal.NewNonRetryableApplicationError("sendgrid: circuit open since …", activities.ErrCircuitOpen, nil, int32(0))
		}
		return nil
	}
	h.signalAt(time.Minute, message.Event{DispatchID: testDispatchID, Provider: "sendgrid", Type: message.EventDelivered, ID: "sg-1"})
	h.signalAt(2*time.Minute, message.Event{DispatchID: testDispatchID, Provider: "postmark", Type: message.EventProcessed, ID: "pm-1"})
	h.queryAt(3*time.Minute, "after")
	st := h.run()

	calls := h.sendCalls()
	require.Equal(t, []string{"sendgrid", "postmark"}, providersOf(calls))
	require.Zero(t, calls[1].At.Sub(t0), "no budget spent on a skipped provider")
	require.Equal(t, workflows.HandoverSkipped, st.Handovers[0].Outcome)
	require.Zero(t, st.Handovers[0].Attempts)
	require.Equal(t, "postmark", st.ESP.Provider)

	q := h.query("after")
	require.Equal(t, message.StatusProcessed, q.Status, "postmark's event moved it; sendgrid's did not")
	var sgEvent *workflows.EventRecord
	for i, e := range q.Events {
		if e.ID == "sg-1" {
			sgEvent = &q.Events[i]
		}
	}
	require.NotNil(t, sgEvent)
	require.False(t, sgEvent.ChangedStatus)
	require.Equal(t, "ignored: reported by sendgrid, but the message was handed to postmark", sgEvent.Note)
	require.Contains(t, q.Events[0].Note, "circuit open, not tried")
}

// Events are accepted from every provider the email was handed to — the one
// that failed may still have taken it — and only from those.
func TestMessageAcceptsEventsOfEveryCarrier(t *testing.T) {
	h := newFailoverHarness(t, "sendgrid", "postmark")
	h.answer = func(in activities.SendInput, attempt int32) error {
		if in.Provider == "sendgrid" {
			return unavailable(in.Provider, attempt)
		}
		return nil
	}
	h.signalAt(10*time.Minute, message.Event{DispatchID: testDispatchID, Provider: "postmark", Type: message.EventProcessed, ID: "pm-1"})
	h.signalAt(11*time.Minute, message.Event{DispatchID: testDispatchID, Provider: "sendgrid", Type: message.EventDelivered, ID: "sg-1"})
	h.signalAt(12*time.Minute, message.Event{DispatchID: testDispatchID, Provider: "mailgun", Type: message.EventBounced, ID: "mg-1"})
	st := h.run()

	require.Equal(t, message.StatusDelivered, st.Status, "sendgrid's delivered counts; mailgun's bounce does not")
	notes := map[string]string{}
	changed := map[string]bool{}
	for _, e := range st.Events {
		notes[e.ID], changed[e.ID] = e.Note, e.ChangedStatus
	}
	require.True(t, changed["pm-1"] && changed["sg-1"])
	require.False(t, changed["mg-1"])
	require.Equal(t, "ignored: reported by mailgun, but the message was handed to sendgrid, postmark", notes["mg-1"])
}

// Every provider failing: the last one is retried for the rest of the send
// retry window, then the message is aborted with its error.
func TestMessageEveryProviderFails(t *testing.T) {
	h := newFailoverHarness(t, "sendgrid", "postmark")
	h.answer = func(in activities.SendInput, attempt int32) error {
		return activities.UnavailableError(in.Provider, attempt, fmt.Errorf("no answer from api.%s.example: i/o timeout", in.Provider))
	}
	st := h.run()

	calls := h.sendCalls()
	first := calls[0].SendIn.Provider
	lastCall := calls[len(calls)-1]
	require.Equal(t, "sendgrid", first)
	require.Equal(t, "postmark", lastCall.SendIn.Provider)
	require.Greater(t, lastCall.At.Sub(t0), h.in.Policy.SendRetryWindow/2, "postmark retried for the rest of the window")
	require.LessOrEqual(t, lastCall.At.Sub(t0), h.in.Policy.SendRetryWindow)
	require.Equal(t, message.StatusAborted, st.Status)
	require.True(t, strings.HasPrefix(st.Reason, "ESP unavailable: "), st.Reason)
	require.Contains(t, st.Reason, "postmark")
	require.Len(t, st.Handovers, 2)
	require.Equal(t, workflows.HandoverFailed, st.Handovers[1].Outcome)
}

// With one provider nothing changes: no provider is named, no hand-over is
// kept, the timeline holds the send alone.
func TestMessageOneProviderUnchanged(t *testing.T) {
	h := newHarness(t)
	st := h.result()
	require.Empty(t, st.Handovers)
	for _, c := range h.sendCalls() {
		require.Empty(t, c.SendIn.Provider)
		require.False(t, c.SendIn.Failover)
	}
	require.Equal(t, message.EventSent, st.Events[0].Type)
}

// TestReplayFailover replays histories recorded on a real server by
// devserver/integration TestFailover (DISPATCHFLOW_RECORD_HISTORY=1): a
// message that failed over from SendGrid to Postmark and took events of both,
// and SendGrid's Circuit run (opened, half-open, closed by a probe). A change
// that would break them fails here: guard it with workflow.GetVersion.
func TestReplayFailover(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/history_failover.json", "testdata/history_circuit.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Message, workflow.RegisterOptions{Name: workflows.MessageWorkflow})
			r.RegisterWorkflowWithOptions(workflows.Circuit, workflow.RegisterOptions{Name: workflows.CircuitWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replaying %s: %v", file, err)
			}
		})
	}
}
