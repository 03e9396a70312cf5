package starter

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/channel"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// openAPIDoc is the part of an OpenAPI document the tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Parameters  []openAPIParameter         `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type openAPIParameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// operations lists the document's operations as "METHOD /path".
func (d openAPIDoc) operations() map[string]openAPIOperation {
	ops := map[string]openAPIOperation{}
	for path, item := range d.Paths {
		for key, raw := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			var op openAPIOperation
			_ = json.Unmarshal(raw, &op)
			ops[strings.ToUpper(key)+" "+path] = op
		}
	}
	return ops
}

func testAPI() *API {
	return New(nil, config.Config{Auth: "off", IDSecret: strings.Repeat("s", config.MinIDSecretLength)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// Every route is documented and every documented operation is a route: a route
// added without its documentation fails here, named.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops := loadOpenAPI(t).operations()
	routes := map[string]bool{}
	for _, r := range testAPI().Routes() {
		// ServeMux patterns and OpenAPI paths write parameters alike: {dispatch_id}.
		key := r.Method + " " + r.Pattern
		routes[key] = true
		if _, ok := ops[key]; !ok {
			t.Errorf("route %s is not in starter/openapi.json: document it", key)
		}
	}
	var undocumented []string
	for key := range ops {
		if !routes[key] {
			undocumented = append(undocumented, key)
		}
	}
	sort.Strings(undocumented)
	for _, key := range undocumented {
		t.Errorf("starter/openapi.json documents %s, which is not in (*API).Routes()", key)
	}
}

// The document holds together: OpenAPI 3.1, every $ref resolves, operation ids are
// unique, path parameters are declared, each operation has a 2xx answer and errors
// answer the Error schema.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	var whole any
	if err := json.Unmarshal(openAPIDocument, &whole); err != nil {
		t.Fatal(err)
	}
	walkRefs(whole, func(ref string) {
		if resolve(whole, ref) == nil {
			t.Errorf("$ref %q resolves to nothing", ref)
		}
	})
	for name, s := range doc.Components.Schemas {
		for _, r := range s.Required {
			if _, ok := s.Properties[r]; !ok && s.Properties != nil {
				t.Errorf("schema %s requires %q, which is not among its properties", name, r)
			}
		}
	}
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for key, op := range doc.operations() {
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %q", key, other, op.OperationID)
		}
		ids[op.OperationID] = key

		path := strings.SplitN(key, " ", 2)[1]
		var itemParams []openAPIParameter
		_ = json.Unmarshal(doc.Paths[path]["parameters"], &itemParams)
		declared := map[string]bool{}
		for _, p := range append(itemParams, op.Parameters...) {
			if p.Ref != "" {
				b, _ := json.Marshal(resolve(whole, p.Ref))
				_ = json.Unmarshal(b, &p)
			}
			if p.In == "path" {
				declared[p.Name] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared", key, m[1])
			}
		}

		has2xx := false
		for code, raw := range op.Responses {
			has2xx = has2xx || code[0] == '2'
			if code[0] != '4' && code[0] != '5' || key == "GET /healthz" {
				continue
			}
			var r struct {
				Ref     string `json:"$ref"`
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			}
			_ = json.Unmarshal(raw, &r)
			if r.Ref != "" {
				b, _ := json.Marshal(resolve(whole, r.Ref))
				_ = json.Unmarshal(b, &r)
			}
			if got := r.Content["application/json"].Schema.Ref; got != "#/components/schemas/Error" {
				t.Errorf("%s answers %s with schema %q, want the Error schema", key, code, got)
			}
		}
		if !has2xx {
			t.Errorf("%s documents no 2xx answer", key)
		}
	}
}

// The documented bodies have the fields of the Go types the API encodes and
// decodes, no more, no fewer: since unknown fields are refused, a documented field
// the API does not know would be a 400.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	tests := []struct {
		schema string
		value  any
	}{
		{"SendRequest", sendBody{}},
		{"SendResponse", sendResponse{}},
		{"MessageState", workflows.State{}},
		{"SendTimes", message.SendTimes{}},
		{"Receipt", esp.Receipt{}},
		{"EventRecord", workflows.EventRecord{}},
		{"PostbackRecord", workflows.PostbackRecord{}},
		{"Postback", message.Postback{}},
		{"PostbackMetadata", message.Metadata{}},
		{"FallbackPolicy", fallback.Policy{}},
		{"FallbackStep", fallback.Step{}},
		{"FallbackPatch", fallback.Patch{}},
		{"CancelFallbackRequest", workflows.CancelFallbackInput{}},
		{"FallbackState", workflows.FallbackState{}},
		{"FallbackDeadline", workflows.DeadlineRecord{}},
		{"FallbackStepRecord", workflows.StepRecord{}},
		{"ChannelResult", channel.Result{}},
		{"EventsResponse", eventsResponse{}},
		{"Endpoint", endpointView{}},
		{"EndpointEnableRequest", switchRequest{}},
		{"EndpointReplayRequest", replayEndpointRequest{}},
		{"RecoveryResponse", recoveryResponse{}},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := doc.Components.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no schema %s", tt.schema)
			}
			var documented []string
			for name := range s.Properties {
				documented = append(documented, name)
			}
			sort.Strings(documented)
			want := jsonFields(reflect.TypeOf(tt.value))
			if !slices.Equal(documented, want) {
				t.Errorf("schema %s has properties %v, want the fields of %T: %v", tt.schema, documented, tt.value, want)
			}
		})
	}
}

// GET /openapi.json serves the document.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(testAPI().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, openAPIDocument) {
		t.Errorf("GET /openapi.json: %d %q, %d bytes; want 200 application/json and the %d bytes of openapi.json",
			resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(openAPIDocument))
	}
}

// jsonFields lists the JSON names of t's fields, embedded structs' included, sorted.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-" || !f.IsExported() && !f.Anonymous:
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			names = append(names, jsonFields(f.Type)...)
			continue
		case name == "":
			name = f.Name
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			f(ref)
		}
		for _, x := range v {
			walkRefs(x, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, f)
		}
	}
}

// resolve follows a local JSON pointer ("#/components/schemas/Error").
func resolve(doc any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	v := doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	return v
}

// Every operation declares the scope its route checks (security), and the
// routes without a key say so with an empty requirement.
func TestOpenAPISecurityMatchesScopes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for _, r := range testAPI().Routes() {
		raw, ok := doc.Paths[r.Pattern][strings.ToLower(r.Method)]
		var op struct {
			Security *[]map[string][]string `json:"security"`
		}
		if !ok || json.Unmarshal(raw, &op) != nil || op.Security == nil {
			t.Errorf("%s %s: no security requirement in openapi.json", r.Method, r.Pattern)
			continue
		}
		want := []map[string][]string{}
		if r.Scope != "" {
			want = []map[string][]string{{"apiKey": {string(r.Scope)}}}
		}
		if got := *op.Security; !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: security %v, want %v (the route's scope)", r.Method, r.Pattern, got, want)
		}
	}
}
