package starter

import (
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// The documented provider and hand-over objects have the fields the API
// encodes, no more, no fewer.
func TestOpenAPIProviderSchemas(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for schema, value := range map[string]any{
		"Provider": providerView{},
		"Handover": workflows.Handover{},
	} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Fatalf("no schema %s", schema)
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
	if _, ok := doc.operations()["GET /v1/providers"]; !ok {
		t.Error("GET /v1/providers is not documented")
	}
}

// A new message carries the failover list only when DISPATCHFLOW_ESP names
// several providers; smtp's events come from DISPATCHFLOW_SMTP_PROVIDER.
func TestWithFailover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		esp, smtpProvider string
		want              []workflows.ESPRoute
	}{
		{"sendgrid", "", nil},
		{"smtp", "sarbacane", nil},
		{"sendgrid,postmark", "", []workflows.ESPRoute{{Name: "sendgrid"}, {Name: "postmark"}}},
		{"smtp,resend", "sarbacane", []workflows.ESPRoute{{Name: "smtp", Intake: "sarbacane"}, {Name: "resend"}}},
	}
	for _, tt := range tests {
		a := &API{cfg: config.Config{ESP: tt.esp, SMTPProvider: tt.smtpProvider, ESPFailoverAfter: 3 * time.Minute}}
		var in workflows.MessageInput
		a.withFailover(&in)
		if !slices.Equal(in.Providers, tt.want) {
			t.Errorf("ESP=%s: providers %+v, want %+v", tt.esp, in.Providers, tt.want)
		}
		wantBudget := time.Duration(0)
		if tt.want != nil {
			wantBudget = 3 * time.Minute
		}
		if in.Policy.FailoverAfter != wantBudget {
			t.Errorf("ESP=%s: failover_after %s, want %s", tt.esp, in.Policy.FailoverAfter, wantBudget)
		}
	}
}
