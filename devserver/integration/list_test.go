package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

type listPage struct {
	Messages []struct {
		DispatchID     string `json:"dispatch_id"`
		Status         string `json:"status"`
		ExternalSendID string `json:"external_send_id"`
		CampaignAPIID  string `json:"campaign_api_id"`
		Workspace      string `json:"workspace"`
		ESP            string `json:"esp"`
	} `json:"messages"`
	NextPageToken string `json:"next_page_token"`
	Error         string `json:"error"`
}

func (s *system) list(q url.Values) (int, listPage) {
	s.t.Helper()
	var page listPage
	resp := s.do("GET", "/v1/messages?"+q.Encode(), nil, &page)
	return resp.StatusCode, page
}

func (p listPage) ids() []string {
	var out []string
	for _, m := range p.Messages {
		out = append(out, m.DispatchID)
	}
	return out
}

// Issue 6: GET /v1/messages finds messages by status, external_send_id and
// workspace through Temporal visibility, page by page; the search attributes
// tell the story without personal data.
func TestListMessages(t *testing.T) {
	t.Parallel()
	// A workspace of this run only (the server is shared by every test), and a key of it.
	ws := "it-list-" + message.NewDispatchID()[:8]
	key, keysFile := workspaceKey(t, ws)
	s := setup(t, func(c *config.Config) { c.APIKeysFile = keysFile })
	s.key = key
	ext := "list-" + message.NewDispatchID()[:8]
	delivered := s.send(message.SendRequest{To: "ok@example.com", Subject: "s", Text: "t", Workspace: ws, ExternalSendID: ext, PostbackURL: s.postback.URL})
	bounced := s.send(message.SendRequest{To: "bounce@example.com", Subject: "s", Text: "t", Workspace: ws, PostbackURL: s.postback.URL})
	s.postback.waitFor(t, delivered, 3)
	s.postback.waitFor(t, bounced, 3)

	var page listPage
	eventually(t, "the bounced message listed as bounced", func() bool {
		_, page = s.list(url.Values{"status": {"bounced"}, "workspace": {ws}})
		return len(page.Messages) > 0
	})
	if got := page.ids(); !slices.Equal(got, []string{bounced}) {
		t.Errorf("status=bounced lists %v, want only %s", got, bounced)
	}
	if m := page.Messages[0]; m.Status != "bounced" || m.Workspace != ws || m.ESP != "sandbox" {
		t.Errorf("listed %+v, want bounced in %s through the sandbox", m, ws)
	}
	eventually(t, "the delivered message listed as delivered", func() bool {
		_, page = s.list(url.Values{"status": {"delivered"}, "workspace": {ws}})
		return len(page.Messages) > 0
	})
	if got := page.ids(); !slices.Equal(got, []string{delivered}) {
		t.Errorf("status=delivered lists %v, want only %s", got, delivered)
	}

	code, page := s.list(url.Values{"external_send_id": {ext}})
	if code != http.StatusOK || !slices.Equal(page.ids(), []string{delivered}) || page.Messages[0].ExternalSendID != ext {
		t.Errorf("external_send_id=%s: %d %+v, want only %s", ext, code, page, delivered)
	}

	// Two pages of one.
	code, first := s.list(url.Values{"workspace": {ws}, "page_size": {"1"}})
	if code != http.StatusOK || len(first.Messages) != 1 || first.NextPageToken == "" {
		t.Fatalf("page_size=1: %d %+v, want one message and a next_page_token", code, first)
	}
	code, second := s.list(url.Values{"workspace": {ws}, "page_size": {"1"}, "page_token": {first.NextPageToken}})
	if code != http.StatusOK || len(second.Messages) != 1 {
		t.Fatalf("second page: %d %+v, want one message", code, second)
	}
	both := []string{first.Messages[0].DispatchID, second.Messages[0].DispatchID}
	slices.Sort(both)
	want := []string{delivered, bounced}
	slices.Sort(want)
	if !slices.Equal(both, want) {
		t.Errorf("the two pages hold %v, want %v", both, want)
	}
	if second.NextPageToken != "" {
		if _, third := s.list(url.Values{"workspace": {ws}, "page_size": {"1"}, "page_token": {second.NextPageToken}}); len(third.Messages) != 0 {
			t.Errorf("third page %+v, want none", third)
		}
	}

	for _, tt := range []struct {
		q        url.Values
		errorHas string
	}{
		{url.Values{"status": {"exploded"}}, `"exploded"`},
		{url.Values{"status": {"processed"}}, "status=sent"}, // visibility keeps sent until the outcome
		{url.Values{"page_size": {"0"}}, "page_size"},
		{url.Values{"external_send_id": {`x' OR 1=1`}}, "external_send_id"},
		{url.Values{"page_token": {"%%%"}}, "page_token"},
	} {
		if code, page := s.list(tt.q); code != http.StatusBadRequest || !strings.Contains(page.Error, tt.errorHas) {
			t.Errorf("%s: %d %q, want 400 naming %s", tt.q.Encode(), code, page.Error, tt.errorHas)
		}
	}

	// The search attributes, as the Temporal UI shows them.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct{ id, status string }{{delivered, "delivered"}, {bounced, "bounced"}} {
		var attrs map[string]string
		eventually(t, "search attributes of "+tt.status, func() bool {
			desc, err := s.client.DescribeWorkflowExecution(ctx, tt.id, "")
			if err != nil {
				t.Fatal(err)
			}
			attrs = map[string]string{}
			for k, p := range desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
				attrs[k] = string(p.GetData())
			}
			return attrs[workflows.SearchDispatchStatus.GetName()] == `"`+tt.status+`"`
		})
		for name, want := range map[string]string{
			workflows.SearchWorkspace.GetName():   ws,
			workflows.SearchEspProvider.GetName(): "sandbox",
		} {
			if attrs[name] != `"`+want+`"` {
				t.Errorf("%s: search attribute %s = %s, want %q", tt.status, name, attrs[name], want)
			}
		}
		for name, v := range attrs {
			if strings.Contains(v, "@") {
				t.Errorf("%s: search attribute %s = %s holds an address", tt.status, name, v)
			}
		}
		t.Logf("%s message's search attributes: %v", tt.status, attrs)
	}
}

// workspaceKey writes a keys file with one key of every scope for workspace ws
// and returns the key and the file.
func workspaceKey(t *testing.T, ws string) (key, path string) {
	t.Helper()
	key, k, err := auth.NewKey("ws-admin", ws, []auth.Scope{auth.ScopeAll})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"workspaces": []auth.Workspace{{Name: ws, SigningSecrets: []string{auth.NewSigningSecret()}, IntakeSecrets: []string{auth.NewSigningSecret()}}},
		"keys":       []auth.Key{k},
	})
	path = filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}
