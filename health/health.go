// Package health keeps the state of postback endpoints in Temporal, one Endpoint
// workflow per endpoint: whether it is enabled (a 410 Gone disables it, an operator
// enables it again) and how its deliveries go (last success, consecutive
// failures). Workers and API processes share it through the cluster; each process
// caches what it read for a few seconds and batches its reports.
package health

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// Defaults of Store.
const (
	// CacheTTL is how long an endpoint's enabled/disabled state is trusted before
	// it is read again: an operator's enable reaches every worker within it.
	CacheTTL = 5 * time.Second
	// FlushEvery is how often a process sends its batched reports.
	FlushEvery = 2 * time.Second
	// readTimeout bounds one read of an endpoint's state: a postback attempt
	// never waits longer for its switch (the endpoint's workflow may be on a
	// worker that is starting).
	readTimeout = 2 * time.Second
	// readBackoff is how long a failed read is not tried again: meanwhile the
	// last state read (or enabled) stands, so that a burst of attempts after a
	// restart does not each wait for the same unreadable switch.
	readBackoff = 2 * time.Second
)

// Store reads and changes endpoint states. Create it with New; Run flushes reports.
type Store struct {
	// DisableAfter goes with every report (EndpointReport.DisableAfter): an
	// endpoint failing without a success for that long is disabled. Zero:
	// never. The worker sets DISPATCHFLOW_ENDPOINT_DISABLE_AFTER.
	DisableAfter time.Duration

	client    client.Client
	taskQueue string
	logger    *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	cache   map[string]cached
	pending map[string]*workflows.EndpointReport
}

type cached struct {
	state workflows.EndpointState
	at    time.Time
}

var _ postback.Health = (*Store)(nil)

// New returns a Store whose Endpoint workflows run on taskQueue.
func New(c client.Client, taskQueue string, logger *slog.Logger) *Store {
	return &Store{client: c, taskQueue: taskQueue, logger: logger, now: time.Now,
		cache: map[string]cached{}, pending: map[string]*workflows.EndpointReport{}}
}

// Get answers endpoint id's state from its workflow; an endpoint never reported
// on is enabled.
func (s *Store) Get(ctx context.Context, id string) (workflows.EndpointState, error) {
	resp, err := s.client.QueryWorkflow(ctx, workflows.EndpointWorkflowID(id), "", workflows.QueryEndpoint)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return workflows.NewEndpointState(), nil
	}
	if err != nil {
		return workflows.EndpointState{}, err
	}
	var st workflows.EndpointState
	if err := resp.Get(&st); err != nil {
		return workflows.EndpointState{}, err
	}
	s.remember(id, st)
	return st, nil
}

func (s *Store) remember(id string, st workflows.EndpointState) {
	s.mu.Lock()
	s.cache[id] = cached{state: st, at: s.now()}
	s.mu.Unlock()
}

// Disabled implements postback.Health from the cache, read again after CacheTTL.
// When the state cannot be read within readTimeout, the last state read stands
// (enabled if none was: a postback is better tried than held for an unreadable
// switch) for readBackoff.
func (s *Store) Disabled(ctx context.Context, id string) (string, bool) {
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if !ok || s.now().Sub(c.at) > CacheTTL {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		st, err := s.Get(rctx, id)
		cancel()
		if err != nil {
			s.logger.Warn("reading endpoint state", "endpoint", id, "error", err)
			if !ok {
				c.state = workflows.NewEndpointState()
			}
			s.mu.Lock()
			s.cache[id] = cached{state: c.state, at: s.now().Add(readBackoff - CacheTTL)}
			s.mu.Unlock()
			return c.state.DisabledReason, !c.state.Enabled
		}
		c.state = st
	}
	return c.state.DisabledReason, !c.state.Enabled
}

// Disable disables endpoint id until an operator enables it.
func (s *Store) Disable(ctx context.Context, id, reason string) error {
	err := s.signal(ctx, id, workflows.SignalEndpointDisable, workflows.EndpointSwitch{Reason: reason, At: s.now().UTC()})
	if err == nil {
		st := workflows.NewEndpointState()
		st.Enabled, st.DisabledReason = false, reason
		s.remember(id, st)
	}
	return err
}

// Enable enables endpoint id again.
func (s *Store) Enable(ctx context.Context, id, reason string) error {
	err := s.signal(ctx, id, workflows.SignalEndpointEnable, workflows.EndpointSwitch{Reason: reason, At: s.now().UTC()})
	if err == nil {
		s.mu.Lock()
		delete(s.cache, id)
		s.mu.Unlock()
	}
	return err
}

// Report implements postback.Health: the attempt is added to the batch Run sends.
func (s *Store) Report(id string, a postback.Attempt) {
	if id == "" {
		return // a message's own postback_url: no endpoint to keep health for
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pending[id]
	if r == nil {
		r = &workflows.EndpointReport{}
		s.pending[id] = r
	}
	if a.OK() {
		r.Successes++
		r.TrailingFailures, r.FailingSince = 0, time.Time{}
		if a.At.After(r.LastSuccessAt) {
			r.LastSuccessAt = a.At
		}
		return
	}
	r.Failures++
	r.TrailingFailures++
	if r.FailingSince.IsZero() || a.At.Before(r.FailingSince) {
		r.FailingSince = a.At
	}
	if a.At.After(r.LastFailureAt) {
		r.LastFailureAt = a.At
		r.LastError = a.Error
		if r.LastError == "" && a.StatusCode != 0 {
			r.LastError = "answered " + strconv.Itoa(a.StatusCode)
		}
	}
}

// Run sends the batched reports every FlushEvery until ctx is done, then once more.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.Flush(flush)
			cancel()
			return
		case <-t.C:
			s.Flush(ctx)
		}
	}
}

// Flush sends the batched reports now. A report that cannot be sent is merged back.
func (s *Store) Flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[string]*workflows.EndpointReport{}
	s.mu.Unlock()
	for id, r := range batch {
		r.DisableAfter = s.DisableAfter
		if err := s.signal(ctx, id, workflows.SignalEndpointReport, *r); err != nil {
			s.logger.Warn("reporting endpoint health", "endpoint", id, "error", err)
			s.mu.Lock()
			s.pending[id] = merge(r, s.pending[id])
			s.mu.Unlock()
		}
	}
}

// signal delivers a signal to endpoint id's workflow, starting it if needed.
func (s *Store) signal(ctx context.Context, id, name string, arg any) error {
	_, err := s.client.SignalWithStartWorkflow(ctx, workflows.EndpointWorkflowID(id), name, arg,
		client.StartWorkflowOptions{
			ID: workflows.EndpointWorkflowID(id), TaskQueue: s.taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			// A terminated endpoint workflow starts again with a fresh state.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         "postback endpoint " + id,
		}, workflows.EndpointWorkflow, workflows.NewEndpointState())
	return err
}

// merge puts an unsent older report before a newer one (nil: none).
func merge(older, newer *workflows.EndpointReport) *workflows.EndpointReport {
	if newer == nil {
		return older
	}
	m := *newer
	m.Successes += older.Successes
	m.Failures += older.Failures
	if older.LastSuccessAt.After(m.LastSuccessAt) {
		m.LastSuccessAt = older.LastSuccessAt
	}
	if m.LastFailureAt.IsZero() {
		m.LastFailureAt, m.LastError = older.LastFailureAt, older.LastError
	}
	if newer.Successes == 0 {
		m.TrailingFailures += older.TrailingFailures
		if older.TrailingFailures > 0 {
			m.FailingSince = older.FailingSince
		}
	}
	return &m
}
