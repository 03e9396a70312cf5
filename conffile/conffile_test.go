package conffile_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/conffile"
)

func TestToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, ext, want, wantErr string
	}{
		{name: "yaml", raw: "a: 1\nb: [x, y]\n", ext: ".yaml", want: `{"a":1,"b":["x","y"]}`},
		{name: "yml upper case", raw: "a: true", ext: ".YML", want: `{"a":true}`},
		{name: "empty yaml is the empty object", raw: "", ext: ".yaml", want: `{}`},
		{name: "json as is", raw: `{"a": 1}`, ext: ".json", want: `{"a": 1}`},
		{name: "bad yaml", raw: "a: [", ext: ".yaml", wantErr: "yaml:"},
		{name: "yaml not representable", raw: "{1: x}", ext: ".yaml", wantErr: "not representable as JSON"},
		{name: "unknown extension", raw: "a = 1", ext: ".toml", wantErr: `unknown extension ".toml" (want .yaml, .yml or .json)`},
		{name: "no extension", raw: "{}", ext: "", wantErr: "unknown extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := conffile.ToJSON([]byte(tt.raw), tt.ext)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// positive refuses zero with a *FieldError of its own, as a field's type may.
type positive int

func (p *positive) UnmarshalJSON(b []byte) error {
	if string(b) == "0" {
		return conffile.Errorf("limit", "must be positive")
	}
	*p = positive(len(b))
	return nil
}

type entry struct {
	Name  string   `json:"name"`
	Tags  []string `json:"tags"`
	Inner struct {
		Port int `json:"port"`
	} `json:"inner"`
	Limit positive `json:"limit"`
}

func TestStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in  string
		wantField string // "" when the error is not a *FieldError
		wantErr   string
	}{
		{name: "unknown field", in: `{"nmae": "x"}`, wantField: "nmae", wantErr: "nmae: unknown field"},
		{name: "type error", in: `{"name": 3}`, wantField: "name", wantErr: "name: must be string, not number"},
		{name: "nested type error", in: `{"inner": {"port": "80"}}`, wantField: "inner.port", wantErr: "inner.port: must be int, not string"},
		{name: "element type error", in: `{"tags": [1]}`, wantField: "tags", wantErr: "tags: must be string, not number"},
		{name: "field error passes through", in: `{"limit": 0}`, wantField: "limit", wantErr: "limit: must be positive"},
		{name: "syntax error", in: `{"name": `, wantErr: "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var e entry
			err := conffile.Strict([]byte(tt.in), &e)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			var fe *conffile.FieldError
			if errors.As(err, &fe) != (tt.wantField != "") || fe != nil && fe.Field != tt.wantField {
				t.Errorf("got field error %#v, want field %q", fe, tt.wantField)
			}
		})
	}
}

func TestStrictOK(t *testing.T) {
	t.Parallel()
	var e entry
	if err := conffile.Strict([]byte(`{"name": "crm", "tags": ["a"], "inner": {"port": 80}, "limit": 12}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.Name != "crm" || e.Inner.Port != 80 || e.Limit != 2 {
		t.Errorf("got %+v, want name crm, port 80, limit 2", e)
	}
}
