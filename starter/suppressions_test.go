package starter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/suppression"
)

// The documented suppression bodies have the fields of the Go types the API
// encodes and decodes (see TestOpenAPISchemasMatchTypes).
func TestOpenAPISuppressionSchemas(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for schema, value := range map[string]any{
		"Suppression":              suppressionView{},
		"SuppressionEntry":         suppression.Entry{},
		"SuppressionLift":          suppression.Lift{},
		"SuppressionList":          suppressionList{},
		"SuppressionRemoveRequest": suppressionRemoveBody{},
	} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Errorf("no schema %s", schema)
			continue
		}
		var documented []string
		for name := range s.Properties {
			documented = append(documented, name)
		}
		sort.Strings(documented)
		if want := jsonFields(reflect.TypeOf(value)); !slices.Equal(documented, want) {
			t.Errorf("schema %s has properties %v, want the fields of %T: %v", schema, documented, value, want)
		}
	}
}

// unavailable is a Temporal that cannot be reached.
type unavailable struct{ client.Client }

func (unavailable) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	return nil, serviceerror.NewUnavailable("connection refused")
}

func (unavailable) UpdateWorkflow(context.Context, client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	return nil, serviceerror.NewUnavailable("connection refused")
}

// suppressionAPI is an API without keys (DISPATCHFLOW_AUTH=off) over
// temporal, its suppression list keyed with key ("": none), logging to logs.
func suppressionAPI(t *testing.T, key string, logs io.Writer) *httptest.Server {
	t.Helper()
	cfg := config.Config{Auth: "off", IDSecret: strings.Repeat("s", config.MinIDSecretLength), SuppressionKey: key}
	srv := httptest.NewServer(New(unavailable{}, cfg, slog.New(slog.NewTextHandler(logs, nil))).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, body.Error
}

const testSuppressionKey = "starter-test-suppression-key-0123456789"

// Without DISPATCHFLOW_SUPPRESSION_KEY every suppression route answers 503
// naming the variable.
func TestSuppressionsOff(t *testing.T) {
	t.Parallel()
	srv := suppressionAPI(t, "", io.Discard)
	for _, r := range [][2]string{{"GET", "/v1/suppressions"}, {"GET", "/v1/suppressions/ann@example.com"}, {"DELETE", "/v1/suppressions/ann@example.com"}} {
		code, msg := call(t, r[0], srv.URL+r[1])
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "DISPATCHFLOW_SUPPRESSION_KEY") {
			t.Errorf("%s %s: %d %q, want 503 naming DISPATCHFLOW_SUPPRESSION_KEY", r[0], r[1], code, msg)
		}
	}
}

// Bad input is a 400 naming the field, never quoting what was sent.
func TestSuppressionsBadInput(t *testing.T) {
	t.Parallel()
	srv := suppressionAPI(t, testSuppressionKey, io.Discard)
	long := strings.Repeat("a", 250) + "@example.com"
	tests := []struct {
		method, path, field, secret string
	}{
		{"GET", "/v1/suppressions/not-an-address", "address", "not-an-address"},
		{"GET", "/v1/suppressions/" + long, "address", long},
		{"DELETE", "/v1/suppressions/ann@", "address", "ann@"},
		{"GET", "/v1/suppressions/ann@example.com?workspace=no%20way", "workspace", "no way"},
		{"GET", "/v1/suppressions?workspace=a'b", "workspace", "a'b"},
		{"GET", "/v1/suppressions?page_size=1001", "page_size", "1001"},
		{"GET", "/v1/suppressions?page_token=%25%25", "page_token", "%%"},
	}
	for _, tt := range tests {
		code, msg := call(t, tt.method, srv.URL+tt.path)
		if code != http.StatusBadRequest || !strings.HasPrefix(msg, tt.field+":") {
			t.Errorf("%s %.60s: %d %q, want 400 naming %s", tt.method, tt.path, code, msg, tt.field)
		}
		if strings.Contains(msg, tt.secret) {
			t.Errorf("%s %.60s: error %q quotes the input", tt.method, tt.path, msg)
		}
	}
}

// A failed read or removal is logged without the address of the path.
func TestSuppressionsDoNotLogAddresses(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	srv := suppressionAPI(t, testSuppressionKey, &logs)
	for _, method := range []string{"GET", "DELETE"} {
		if code, _ := call(t, method, srv.URL+"/v1/suppressions/Ann.Lee@example.com"); code != http.StatusServiceUnavailable {
			t.Errorf("%s with Temporal down: %d, want 503", method, code)
		}
	}
	if !strings.Contains(logs.String(), "request failed") {
		t.Fatalf("no failure logged: %q", logs.String())
	}
	if l := strings.ToLower(logs.String()); strings.Contains(l, "ann.lee") || strings.Contains(l, "example.com") {
		t.Errorf("the log holds the address: %s", logs.String())
	}
}

// A key shorter than 32 characters stops the process at start, naming the variable.
func TestSuppressionKeyConfig(t *testing.T) {
	t.Setenv("DISPATCHFLOW_SUPPRESSION_KEY", "too-short")
	if _, err := config.Load(); err == nil || !strings.HasPrefix(err.Error(), "DISPATCHFLOW_SUPPRESSION_KEY:") ||
		strings.Contains(err.Error(), "too-short") {
		t.Errorf("config.Load = %v, want an error naming DISPATCHFLOW_SUPPRESSION_KEY, without the key", err)
	}
	t.Setenv("DISPATCHFLOW_SUPPRESSION_KEY", testSuppressionKey)
	if cfg, err := config.Load(); err != nil || cfg.SuppressionKey != testSuppressionKey {
		t.Errorf("config.Load = %v, key %q; want the key", err, cfg.SuppressionKey)
	}
}
