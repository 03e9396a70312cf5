package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/activities"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/suppression"
)

// Error types of a refused suppression-remove update; the API answers 404 and 400.
const (
	ErrSuppressionLifted  = "SuppressionLifted"
	ErrSuppressionInvalid = "SuppressionInvalid"
)

// Bounds of a Suppression workflow, whatever the traffic: its entries, and
// the signals one run takes in before it continues as new (an address that
// bounces a thousand messages keeps a short history).
const (
	maxSuppressionEntries       = 20
	maxSuppressionSignalsPerRun = 1000
	// maxEntryField bounds an entry's provider and dispatch_id: a signal may
	// come from any client of the namespace.
	maxEntryField = 128
)

// Suppression keeps one suppressed address of one workspace: it records each
// entry signalled (suppression.SignalAdd), answers suppression.QueryState,
// and completes when the suppression is lifted (suppression.UpdateRemove).
// Its memo (suppression.MemoSummary, set by the start) holds the first entry:
// the send's check and the list read it without a query. It continues as new
// every maxSuppressionSignalsPerRun signals, carrying its state (Temporal
// carries the memo and search attributes).
func Suppression(ctx workflow.Context, in suppression.Input) (suppression.State, error) {
	s := &suppressionImpl{state: suppression.State{Workspace: in.Workspace, Hint: in.Hint, Entries: []suppression.Entry{}}}
	if in.Carried != nil {
		s.state = *in.Carried
	}
	if err := s.setup(ctx); err != nil {
		return s.state, err
	}
	return s.run(ctx, in.Carried == nil)
}

type suppressionImpl struct {
	state   suppression.State
	adds    workflow.ReceiveChannel
	signals int
}

func (s *suppressionImpl) setup(ctx workflow.Context) error {
	s.adds = workflow.GetSignalChannel(ctx, suppression.SignalAdd)
	if err := workflow.SetQueryHandler(ctx, suppression.QueryState, func() (suppression.State, error) { return s.state, nil }); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, suppression.UpdateRemove, s.remove,
		workflow.UpdateHandlerOptions{Validator: s.validateRemove})
}

func (s *suppressionImpl) run(ctx workflow.Context, first bool) (suppression.State, error) {
	if first {
		// The list filters on it (GET /v1/suppressions). The Workspace key is
		// this package's; the activity that starts the workflow cannot import it.
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchWorkspace.ValueSet(s.state.Workspace)); err != nil {
			return s.state, err
		}
	}
	for {
		if err := workflow.Await(ctx, func() bool {
			return s.adds.Len() > 0 || s.state.Lifted != nil || s.mustContinue(ctx)
		}); err != nil {
			return s.state, err
		}
		s.drain(ctx)
		if s.state.Lifted != nil {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return s.state, err
			}
			if s.adds.Len() == 0 {
				workflow.GetLogger(ctx).Info("suppression lifted", "workspace", s.state.Workspace)
				return s.state, nil
			}
			continue // reported again meanwhile: suppressed anew
		}
		if s.mustContinue(ctx) {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return s.state, err
			}
			s.drain(ctx)
			if s.state.Lifted != nil {
				continue
			}
			return s.state, workflow.NewContinueAsNewError(ctx, suppression.WorkflowType,
				suppression.Input{Workspace: s.state.Workspace, Hint: s.state.Hint, Carried: &s.state})
		}
	}
}

func (s *suppressionImpl) mustContinue(ctx workflow.Context) bool {
	return s.signals >= maxSuppressionSignalsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// drain records the entries delivered so far.
func (s *suppressionImpl) drain(ctx workflow.Context) {
	var e suppression.Entry
	for s.adds.ReceiveAsync(&e) {
		s.signals++
		s.add(ctx, e)
		e = suppression.Entry{}
	}
}

func (s *suppressionImpl) add(ctx workflow.Context, e suppression.Entry) {
	e.Provider, e.DispatchID = message.Cut(e.Provider, maxEntryField), message.Cut(e.DispatchID, maxEntryField)
	if s.state.Lifted != nil {
		// Reported after the removal, in the same workflow task: the address is
		// suppressed anew, by this entry (the memo says so too).
		s.state = suppression.State{Workspace: s.state.Workspace, Hint: s.state.Hint, Entries: []suppression.Entry{}}
		if err := workflow.UpsertMemo(ctx, map[string]any{
			suppression.MemoSummary: suppression.Summary{Hint: s.state.Hint, Entry: e},
		}); err != nil {
			workflow.GetLogger(ctx).Warn("suppression memo not updated", "error", err)
		}
	}
	for _, old := range s.state.Entries {
		if old.DispatchID == e.DispatchID && old.Cause == e.Cause {
			return // the same report again (an activity retried)
		}
	}
	if len(s.state.Entries) == 0 {
		s.state.Since = workflow.Now(ctx)
	}
	s.state.Count++
	s.state.Entries = append(s.state.Entries, e)
	if len(s.state.Entries) > maxSuppressionEntries {
		s.state.Entries = append(s.state.Entries[:1], s.state.Entries[2:]...) // the first stays: it suppressed
	}
	s.describe(ctx)
}

// describe is the Temporal UI's "Current Details": no address, not even masked
// (details are not encrypted).
func (s *suppressionImpl) describe(ctx workflow.Context) {
	first := s.state.Entries[0]
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Suppressed** since %s: %s via %s (dispatch `%s`)\n\n**Reports:** %d",
		s.state.Since.UTC().Format(time.RFC3339), first.Cause, first.Provider, first.DispatchID, s.state.Count))
}

func (s *suppressionImpl) validateRemove(in suppression.RemoveInput) error {
	if s.state.Lifted != nil {
		return temporal.NewApplicationError("the suppression is already lifted", ErrSuppressionLifted)
	}
	if len(in.Reason) > suppression.MaxNoteLength {
		return temporal.NewApplicationError(fmt.Sprintf("reason: longer than %d bytes", suppression.MaxNoteLength), ErrSuppressionInvalid)
	}
	return nil
}

// remove lifts the suppression. The entries delivered before it are recorded
// first: they came before the removal, which lifts them too; the workflow then
// completes in this same workflow task. It answers the state as lifted.
func (s *suppressionImpl) remove(ctx workflow.Context, in suppression.RemoveInput) (suppression.State, error) {
	if err := s.validateRemove(in); err != nil {
		return s.state, err // two removes validated in one workflow task: the second finds it lifted
	}
	s.drain(ctx)
	s.state.Lifted = &suppression.Lift{At: workflow.Now(ctx), Reason: in.Reason}
	return s.state, nil
}

// Suppression of a message's address, from the Message workflow.

// versionSuppression guards the suppression of the address on a hard bounce,
// complaint or unsubscribe: histories recorded before it (testdata's bounce)
// applied such events without it.
const versionSuppression = "suppression-list"

// Bounds of the Suppress activity: a first local attempt, then regular ones
// for up to an hour.
const (
	suppressFirstTimeout = 5 * time.Second
	suppressTimeout      = 30 * time.Second
	suppressRetryWindow  = time.Hour
)

// suppressIfFinal adds the message's address to its workspace's suppression
// list when event rec, accepted by the message, is a hard bounce, a complaint
// or an unsubscribe (suppression.CauseOf). The activity runs in a coroutine of
// its own: events and postbacks do not wait for it, the message does not close
// before it ends (idle). Nothing happens, and nothing is recorded in the
// history, for any other event.
func (m *messageImpl) suppressIfFinal(ctx workflow.Context, rec EventRecord) {
	cause, ok := suppression.CauseOf(rec.Provider, rec.Type, rec.RawType)
	if !ok || workflow.GetVersion(ctx, versionSuppression, workflow.DefaultVersion, 1) != 1 {
		return
	}
	at := rec.Timestamp
	if at.IsZero() {
		at = rec.ReceivedAt
	}
	recipient := m.state.Recipient
	if recipient == "" {
		recipient = m.in.Request.To
	}
	in := activities.SuppressInput{Workspace: m.workspace(), Recipient: recipient, Entry: suppression.Entry{
		Cause: cause, Provider: rec.Provider, DispatchID: m.state.DispatchID, At: at,
	}}
	m.suppressing++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { m.suppressing-- }()
		var a *activities.Suppressions
		var res activities.SuppressResult
		_, err := execute(ctx, a.Suppress, in, &res, callOptions{
			Summary:      "suppress the address (" + string(cause) + ")",
			FirstTimeout: suppressFirstTimeout,
			Timeout:      suppressTimeout,
			Retry:        retryPolicyWithin(suppressRetryWindow, time.Second, 5*time.Minute),
		})
		var canceled *temporal.CanceledError
		if err != nil && !errors.As(err, &canceled) {
			workflow.GetLogger(ctx).Warn("address not suppressed", "dispatch_id", m.state.DispatchID, "cause", cause, "error", err)
		}
	})
}

// workspace owns the message (the API always sets it; older inputs may not).
func (m *messageImpl) workspace() string {
	if ws := m.in.Request.Workspace; ws != "" {
		return ws
	}
	return message.DefaultWorkspace
}
