package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dispatchflow/dispatchflow/message"
)

// Search attributes of a Message workflow: what operators filter on in the
// Temporal UI and what GET /v1/messages lists by. They are stored unencrypted, so
// they never hold personal data: no address, no phone number.
var (
	// SearchDispatchStatus is the message's status as visibility keeps it
	// (VisibleStatus): every status but processed, which stays sent.
	SearchDispatchStatus = temporal.NewSearchAttributeKeyKeyword("DispatchStatus")
	SearchExternalSendID = temporal.NewSearchAttributeKeyKeyword("ExternalSendId")
	SearchCampaignAPIID  = temporal.NewSearchAttributeKeyKeyword("CampaignApiId")
	SearchWorkspace      = temporal.NewSearchAttributeKeyKeyword("Workspace")
	SearchEspProvider    = temporal.NewSearchAttributeKeyKeyword("EspProvider")
	SearchFallbackState  = temporal.NewSearchAttributeKeyKeyword("FallbackState")
	// SearchEspMessageID is the ESP's id of the message, so that webhook events
	// carrying only that id find their message.
	SearchEspMessageID = temporal.NewSearchAttributeKeyKeyword("EspMessageId")
	// SearchHeldEndpoints and SearchFailedEndpoints list the endpoints (ids) a
	// message holds postbacks for, or failed to deliver to: how an endpoint's
	// recovery finds the messages to replay (POST /v1/endpoints/{id}/replay).
	// Set only when not empty: a message that delivers everything never
	// writes them.
	SearchHeldEndpoints   = temporal.NewSearchAttributeKeyKeywordList("HeldEndpoints")
	SearchFailedEndpoints = temporal.NewSearchAttributeKeyKeywordList("FailedEndpoints")
)

// SearchAttributes lists every custom search attribute the Message workflow needs,
// with its type: the worker checks they exist, make run registers them.
var SearchAttributes = []temporal.SearchAttributeKey{
	SearchDispatchStatus, SearchExternalSendID, SearchCampaignAPIID, SearchWorkspace,
	SearchEspProvider, SearchFallbackState, SearchEspMessageID,
	SearchHeldEndpoints, SearchFailedEndpoints,
}

// StartSearchAttributes are a new message's search attributes, set when the API
// starts its workflow (in the start event: no history event of their own).
func StartSearchAttributes(in MessageInput, espName string) temporal.SearchAttributes {
	updates := []temporal.SearchAttributeUpdate{
		SearchDispatchStatus.ValueSet(string(message.StatusQueued)),
		SearchWorkspace.ValueSet(in.Request.Workspace),
		SearchFallbackState.ValueSet(FallbackNone),
	}
	if in.Fallback != nil {
		updates[2] = SearchFallbackState.ValueSet(FallbackPending)
	}
	if espName != "" {
		updates = append(updates, SearchEspProvider.ValueSet(espName))
	}
	if in.Request.ExternalSendID != "" {
		updates = append(updates, SearchExternalSendID.ValueSet(in.Request.ExternalSendID))
	}
	if in.Request.CampaignAPIID != "" {
		updates = append(updates, SearchCampaignAPIID.ValueSet(in.Request.CampaignAPIID))
	}
	return temporal.NewSearchAttributes(updates...)
}

// searchValues is what the workflow keeps current in its search attributes.
type searchValues struct {
	status, fallback, provider, messageID string
	// held and failed are endpoint ids, sorted, joined by commas.
	held, failed string
}

func (m *messageImpl) searchValues() searchValues {
	status := m.state.Status
	if m.in.SearchVersion >= SearchVersionCurrent {
		status = VisibleStatus(status)
	}
	v := searchValues{status: string(status), fallback: m.state.Fallback.State}
	if r := m.state.ESP; r != nil {
		v.provider, v.messageID = r.Provider, r.MessageID
	}
	var held, failed []string
	for _, p := range m.state.Postbacks {
		if p.Route < 0 || m.in.Routes[p.Route].EndpointID == "" {
			continue
		}
		id := m.in.Routes[p.Route].EndpointID
		switch {
		case p.State == PostbackHeld && !slices.Contains(held, id):
			held = append(held, id)
		case p.State == PostbackFailed && !slices.Contains(failed, id):
			failed = append(failed, id)
		}
	}
	slices.Sort(held)
	slices.Sort(failed)
	v.held, v.failed = strings.Join(held, ","), strings.Join(failed, ",")
	return v
}

// SearchVersionCurrent is MessageInput.SearchVersion of the messages the API
// starts: DispatchStatus is VisibleStatus.
const SearchVersionCurrent = 1

// VisibleStatus is the DispatchStatus visibility keeps for status s: s itself,
// but processed stays sent. Each upsert is a history event and a write of the
// visibility row, whose every custom column is indexed: on PostgreSQL it costs
// the server about 13 ms of CPU, a tenth of a message's (docs/benchmarks.md,
// Scaling out). processed — the ESP confirms what it already accepted at the
// hand-over — is the one step operators do not search for: a message stuck
// before its outcome is found by status sent either way, and its own state
// (GET /v1/messages/{id}, the UI's query) shows processed.
func VisibleStatus(s message.Status) message.Status {
	if s == message.StatusProcessed {
		return message.StatusSent
	}
	return s
}

// listUpdate sets key to the comma-joined ids, or unsets it when there are none.
func listUpdate(key temporal.SearchAttributeKeyKeywordList, ids string) temporal.SearchAttributeUpdate {
	if ids == "" {
		return key.ValueUnset()
	}
	return key.ValueSet(strings.Split(ids, ","))
}

// keepSearchAttributesCurrent upserts the search attributes whenever they differ
// from what was last written. It runs as its own coroutine after the others have
// yielded, so the several status changes of one workflow task cost one
// UpsertWorkflowSearchAttributes event, not one each.
func (m *messageImpl) keepSearchAttributesCurrent(ctx workflow.Context) {
	for {
		_ = workflow.Await(ctx, func() bool { return m.searchValues() != m.searchWritten })
		m.flushSearchAttributes(ctx)
	}
}

// flushSearchAttributes writes the search attributes that changed; the workflow
// calls it once more before it closes, so visibility ends on the final status.
func (m *messageImpl) flushSearchAttributes(ctx workflow.Context) {
	now, was := m.searchValues(), m.searchWritten
	var updates []temporal.SearchAttributeUpdate
	if now.status != was.status {
		updates = append(updates, SearchDispatchStatus.ValueSet(now.status))
	}
	if now.fallback != was.fallback {
		updates = append(updates, SearchFallbackState.ValueSet(now.fallback))
	}
	if now.provider != was.provider && now.provider != "" {
		updates = append(updates, SearchEspProvider.ValueSet(now.provider))
	}
	if now.messageID != was.messageID && now.messageID != "" {
		updates = append(updates, SearchEspMessageID.ValueSet(now.messageID))
	}
	if now.held != was.held {
		updates = append(updates, listUpdate(SearchHeldEndpoints, now.held))
	}
	if now.failed != was.failed {
		updates = append(updates, listUpdate(SearchFailedEndpoints, now.failed))
	}
	m.searchWritten = now
	if len(updates) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not updated", "dispatch_id", m.state.DispatchID, "error", err)
	}
}

// startSearchValues are the values StartSearchAttributes wrote: after a
// continue-as-new, the carried run starts from what the previous run wrote.
func (m *messageImpl) startSearchValues() searchValues {
	if m.in.Carried != nil {
		return m.searchValues()
	}
	v := searchValues{status: string(message.StatusQueued), fallback: FallbackNone}
	if m.in.Fallback != nil {
		v.fallback = FallbackPending
	}
	return v
}

// MissingSearchAttributesError names the search attributes a namespace lacks,
// with the command that creates them.
type MissingSearchAttributesError struct {
	Namespace string
	Missing   []string
}

func (e *MissingSearchAttributesError) Error() string {
	return fmt.Sprintf("namespace %q lacks the search attributes %s that dispatchflow needs; create them with:\n\n  %s",
		e.Namespace, strings.Join(e.Missing, ", "), e.Command())
}

// Command is the Temporal CLI command that creates the missing attributes.
func (e *MissingSearchAttributesError) Command() string {
	var b strings.Builder
	b.WriteString("temporal operator search-attribute create --namespace " + e.Namespace)
	types := SearchAttributeTypes()
	for _, name := range e.Missing {
		typ := "Keyword"
		if types[name] == enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST {
			typ = "KeywordList"
		}
		b.WriteString(" --name " + name + " --type " + typ)
	}
	return b.String()
}

// CheckSearchAttributes verifies that every search attribute of SearchAttributes
// exists with its type in namespace (the worker runs it at start). A namespace
// without them would fail every message's start.
func CheckSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("listing the search attributes of namespace %q: %w", namespace, err)
	}
	missing := &MissingSearchAttributesError{Namespace: namespace}
	for name, want := range SearchAttributeTypes() {
		if t, ok := resp.GetCustomAttributes()[name]; !ok || t != want {
			missing.Missing = append(missing.Missing, name)
		}
	}
	slices.Sort(missing.Missing)
	if len(missing.Missing) > 0 {
		return missing
	}
	return nil
}

// SearchAttributeTypes maps each search attribute of SearchAttributes to its type,
// as a namespace registers them (the embedded server of make run does).
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	m := make(map[string]enumspb.IndexedValueType, len(SearchAttributes))
	for _, key := range SearchAttributes {
		m[key.GetName()] = enumspb.IndexedValueType(key.GetValueType())
	}
	return m
}
