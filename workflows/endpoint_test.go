package workflows_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/workflows"
)

// endpointHarness runs one Endpoint workflow run in a test environment. The run
// never ends by itself: end() suggests a continue-as-new and sends one last
// signal, and the state the run carries over is its result.
type endpointHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu      sync.Mutex
	queries map[string]workflows.EndpointState
	qerrs   []error
}

func newEndpointHarness(t *testing.T) *endpointHarness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	return &endpointHarness{t: t, env: env, queries: map[string]workflows.EndpointState{}}
}

// signalAt sends signal name with arg at t0+d.
func (h *endpointHarness) signalAt(d time.Duration, name string, arg any) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(name, arg) }, d)
}

// queryAt queries the state at t0+d under name.
func (h *endpointHarness) queryAt(d time.Duration, name string) {
	h.env.RegisterDelayedCallback(func() {
		var st workflows.EndpointState
		v, err := h.env.QueryWorkflow(workflows.QueryEndpoint)
		if err == nil {
			err = v.Get(&st)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.qerrs = append(h.qerrs, fmt.Errorf("query %s: %w", name, err))
			return
		}
		h.queries[name] = st
	}, d)
}

func (h *endpointHarness) query(name string) workflows.EndpointState {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(h.t, h.qerrs)
	st, ok := h.queries[name]
	require.Truef(h.t, ok, "query %q did not run", name)
	return st
}

// endAt suggests a continue-as-new at t0+d and wakes the run with an empty report.
func (h *endpointHarness) endAt(d time.Duration) {
	h.env.RegisterDelayedCallback(func() {
		h.env.SetContinueAsNewSuggested(true)
		h.env.SignalWorkflow(workflows.SignalEndpointReport, workflows.EndpointReport{})
	}, d)
}

// run runs the workflow from st until it continues as new, and returns the
// state it carries over.
func (h *endpointHarness) run(st workflows.EndpointState) workflows.EndpointState {
	h.t.Helper()
	h.env.ExecuteWorkflow(workflows.Endpoint, st)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
	err := h.env.GetWorkflowError()
	var canErr *workflow.ContinueAsNewError
	require.Truef(h.t, errors.As(err, &canErr), "got %v, want a continue-as-new", err)
	require.Equal(h.t, workflows.EndpointWorkflow, canErr.WorkflowType.Name)
	var next workflows.EndpointState
	require.NoError(h.t, converter.GetDefaultDataConverter().FromPayloads(canErr.Input, &next))
	return next
}

func TestEndpointWorkflowID(t *testing.T) {
	require.Equal(t, "dispatchflow-endpoint-crm", workflows.EndpointWorkflowID("crm"))
}

// Worker reports add up: counts, the latest success and failure, and the failures
// since the last success.
func TestEndpointReports(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name    string
		reports []workflows.EndpointReport
		want    workflows.EndpointState
	}{
		{
			name: "failures only: trailing failures add up",
			reports: []workflows.EndpointReport{
				{Failures: 2, LastFailureAt: at(time.Second), LastError: "503", TrailingFailures: 2},
				{Failures: 3, LastFailureAt: at(2 * time.Second), LastError: "timeout", TrailingFailures: 3},
			},
			// Reports without failing_since (older workers): the first report's
			// last failure stands for it.
			want: workflows.EndpointState{Enabled: true, Failures: 5, ConsecutiveFailures: 5,
				LastFailureAt: at(2 * time.Second), LastError: "timeout", FailingSince: at(time.Second)},
		},
		{
			name: "a success resets the consecutive failures",
			reports: []workflows.EndpointReport{
				{Failures: 4, LastFailureAt: at(time.Second), LastError: "503", TrailingFailures: 4},
				{Successes: 1, Failures: 2, LastSuccessAt: at(3 * time.Second), LastFailureAt: at(4 * time.Second), LastError: "502", TrailingFailures: 1},
			},
			want: workflows.EndpointState{Enabled: true, Successes: 1, Failures: 6, ConsecutiveFailures: 1,
				LastSuccessAt: at(3 * time.Second), LastFailureAt: at(4 * time.Second), LastError: "502", FailingSince: at(4 * time.Second)},
		},
		{
			name: "successes only",
			reports: []workflows.EndpointReport{
				{Successes: 10, LastSuccessAt: at(time.Second)},
				{Successes: 5, LastSuccessAt: at(2 * time.Second)},
			},
			want: workflows.EndpointState{Enabled: true, Successes: 15, LastSuccessAt: at(2 * time.Second)},
		},
		{
			// Workers report independently: a batch may arrive after a newer one.
			name: "an older report does not move the times back",
			reports: []workflows.EndpointReport{
				{Successes: 1, Failures: 1, LastSuccessAt: at(5 * time.Second), LastFailureAt: at(6 * time.Second), LastError: "new", TrailingFailures: 1},
				{Successes: 1, Failures: 1, LastSuccessAt: at(time.Second), LastFailureAt: at(2 * time.Second), LastError: "old", TrailingFailures: 0},
			},
			want: workflows.EndpointState{Enabled: true, Successes: 2, Failures: 2, ConsecutiveFailures: 0,
				LastSuccessAt: at(5 * time.Second), LastFailureAt: at(6 * time.Second), LastError: "new", FailingSince: at(6 * time.Second)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newEndpointHarness(t)
			for i, r := range tc.reports {
				h.signalAt(time.Duration(i+1)*time.Minute, workflows.SignalEndpointReport, r)
			}
			h.queryAt(time.Duration(len(tc.reports))*time.Minute+time.Second, "after")
			h.endAt(time.Hour)
			got := h.run(workflows.NewEndpointState())

			jsonEqual(t, tc.want, h.query("after"), "query answer")
			jsonEqual(t, tc.want, got, "state carried over")
		})
	}
}

// An endpoint is disabled with a reason (a 410 Gone, an operator) and enabled
// again by an operator; the state query answers it at each step.
func TestEndpointSwitch(t *testing.T) {
	h := newEndpointHarness(t)
	gone := workflows.EndpointSwitch{Reason: "answered 410 Gone", At: t0.Add(time.Minute)}
	failing := workflows.EndpointReport{Failures: 3, LastFailureAt: t0.Add(30 * time.Second), LastError: "410", TrailingFailures: 3}
	h.signalAt(time.Minute-time.Second, workflows.SignalEndpointReport, failing)
	h.queryAt(30*time.Second, "new")
	h.signalAt(time.Minute, workflows.SignalEndpointDisable, gone)
	h.queryAt(2*time.Minute, "disabled")
	// A second disable keeps the first reason: it says why it went off.
	h.signalAt(3*time.Minute, workflows.SignalEndpointDisable, workflows.EndpointSwitch{Reason: "operator", At: t0.Add(3 * time.Minute)})
	h.queryAt(4*time.Minute, "disabled twice")
	h.signalAt(5*time.Minute, workflows.SignalEndpointEnable, workflows.EndpointSwitch{Reason: "fixed", At: t0.Add(5 * time.Minute)})
	h.queryAt(6*time.Minute, "enabled")
	h.endAt(time.Hour)
	got := h.run(workflows.NewEndpointState())

	require.Equal(t, workflows.EndpointState{Enabled: true}, h.query("new"), "a new endpoint: enabled")
	for _, name := range []string{"disabled", "disabled twice"} {
		st := h.query(name)
		require.Falsef(t, st.Enabled, "%s: enabled", name)
		require.Equalf(t, "answered 410 Gone", st.DisabledReason, "%s: reason", name)
		sameTime(t, gone.At, st.DisabledAt, name+": disabled at")
		require.Equalf(t, 3, st.ConsecutiveFailures, "%s: the health is kept", name)
	}
	enabled := h.query("enabled")
	require.True(t, enabled.Enabled)
	require.Empty(t, enabled.DisabledReason)
	require.True(t, enabled.DisabledAt.IsZero())
	require.Zero(t, enabled.ConsecutiveFailures, "enabling starts the count of failures afresh")
	require.True(t, enabled.FailingSince.IsZero(), "enabling forgets when the failures began")
	sameTime(t, failing.LastFailureAt, h.query("disabled").FailingSince, "failing since, while disabled")
	require.Equal(t, int64(3), enabled.Failures, "the totals are kept")
	jsonEqual(t, enabled, got, "state carried over")
}

// A run continues as new after endpointSignalsPerRun (500) signals, carrying its
// state; signals already buffered in the run's last task are taken in first.
func TestEndpointContinueAsNew(t *testing.T) {
	tests := []struct {
		name string
		// signals are reports of one failure each, all delivered at t0+1m in one
		// workflow task.
		signals int
		want    int64 // failures carried over
	}{
		{name: "exactly 500", signals: 500, want: 500},
		{name: "more buffered than a run takes", signals: 503, want: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newEndpointHarness(t)
			report := workflows.EndpointReport{Failures: 1, LastFailureAt: t0, LastError: "503", TrailingFailures: 1}
			h.env.RegisterDelayedCallback(func() {
				for range tc.signals {
					h.env.SignalWorkflowSkippingWorkflowTask(workflows.SignalEndpointReport, report)
				}
			}, time.Minute-time.Millisecond)
			h.env.RegisterDelayedCallback(func() {}, time.Minute) // the task that takes them in
			start := workflows.NewEndpointState()
			start.Successes = 7
			got := h.run(start)

			sameTime(t, t0.Add(time.Minute), h.env.Now(), "continued as new in the task of the signals")
			require.Equal(t, tc.want, got.Failures, "failures carried over: no signal lost")
			require.Equal(t, int(tc.want), got.ConsecutiveFailures)
			require.Equal(t, int64(7), got.Successes, "the state the run started with")
			require.True(t, got.Enabled)
		})
	}
}

// An endpoint failing without a success for the report's DisableAfter (5 days
// here) is disabled automatically, saying since when; a success in between
// starts the count afresh, an enable too, and DisableAfter 0 never disables.
func TestEndpointAutoDisable(t *testing.T) {
	const day = 24 * time.Hour
	const after = 5 * day
	fail := func(d time.Duration, disableAfter time.Duration) workflows.EndpointReport {
		return workflows.EndpointReport{Failures: 2, TrailingFailures: 2, FailingSince: t0.Add(d), LastFailureAt: t0.Add(d + time.Minute),
			LastError: "answered 503", DisableAfter: disableAfter}
	}
	ok := func(d time.Duration) workflows.EndpointReport {
		return workflows.EndpointReport{Successes: 1, LastSuccessAt: t0.Add(d), DisableAfter: after}
	}
	type step struct {
		at     time.Duration
		signal string
		arg    any
	}
	tests := []struct {
		name  string
		steps []step
		// check is queried an hour after the last step.
		enabled      bool
		reason       string
		failingSince time.Duration // -1: none
	}{
		{
			name: "5 days of failures: disabled",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, after)}, {2 * day, workflows.SignalEndpointReport, fail(2*day, after)},
				// Its last failure is 5 days and a minute after the first.
				{5 * day, workflows.SignalEndpointReport, fail(5*day, after)}},
			reason:       "failing since 2024-05-01T10:00:00Z (5 days): disabled automatically",
			failingSince: 0,
		},
		{
			name: "4 days of failures: still enabled",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, after)},
				{4 * day, workflows.SignalEndpointReport, fail(4*day, after)}},
			enabled: true, failingSince: 0,
		},
		{
			name: "a success in between starts afresh",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, after)}, {3 * day, workflows.SignalEndpointReport, ok(3*day + time.Hour)},
				{4 * day, workflows.SignalEndpointReport, fail(4*day, after)}, {8 * day, workflows.SignalEndpointReport, fail(8*day, after)}},
			enabled: true, failingSince: 4 * day,
		},
		{
			name: "a late report of an older success does not end the run",
			steps: []step{{0, workflows.SignalEndpointReport, fail(day, after)}, {2 * day, workflows.SignalEndpointReport, ok(12 * time.Hour)},
				{6 * day, workflows.SignalEndpointReport, fail(6*day, after)}},
			reason: "failing since 2024-05-02T10:00:00Z (5 days): disabled automatically", failingSince: day,
		},
		{
			name: "DisableAfter 0: never",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, 0)}, {5 * day, workflows.SignalEndpointReport, fail(5*day, 0)},
				{20 * day, workflows.SignalEndpointReport, fail(20*day, 0)}},
			enabled: true, failingSince: 0,
		},
		{
			name: "an enable starts afresh",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, after)}, {5 * day, workflows.SignalEndpointReport, fail(5*day, after)},
				{6 * day, workflows.SignalEndpointEnable, workflows.EndpointSwitch{Reason: "fixed", At: t0.Add(6 * day)}},
				{7 * day, workflows.SignalEndpointReport, fail(7*day, after)}, {11 * day, workflows.SignalEndpointReport, fail(11*day, after)}},
			enabled: true, failingSince: 7 * day,
		},
		{
			name: "an operator's disable keeps its reason",
			steps: []step{{0, workflows.SignalEndpointReport, fail(0, after)},
				{day, workflows.SignalEndpointDisable, workflows.EndpointSwitch{Reason: "maintenance", At: t0.Add(day)}},
				{5 * day, workflows.SignalEndpointReport, fail(5*day, after)}},
			reason: "maintenance", failingSince: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newEndpointHarness(t)
			for _, s := range tc.steps {
				h.signalAt(s.at+time.Second, s.signal, s.arg)
			}
			last := tc.steps[len(tc.steps)-1].at
			h.queryAt(last+time.Hour, "after")
			h.endAt(last + 2*time.Hour)
			got := h.run(workflows.NewEndpointState())

			st := h.query("after")
			require.Equal(t, tc.enabled, st.Enabled, "enabled")
			require.Equal(t, tc.reason, st.DisabledReason)
			if tc.failingSince < 0 {
				require.True(t, st.FailingSince.IsZero(), "failing since %s, want none", st.FailingSince)
			} else {
				sameTime(t, t0.Add(tc.failingSince), st.FailingSince, "failing since")
			}
			if !tc.enabled && tc.reason != "maintenance" {
				sameTime(t, t0.Add(last+time.Second), st.DisabledAt, "disabled when the report came")
			}
			jsonEqual(t, st, got, "state carried over")
		})
	}
}
