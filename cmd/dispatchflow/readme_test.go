package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/dispatchflow/dispatchflow/config"
)

// configVariables lists every environment variable of the configuration, read by
// envconfig itself from config.Config's and config.Temporal's tags — the same
// source as `dispatchflow help` (app.PrintConfigUsage).
func configVariables(t *testing.T) []string {
	t.Helper()
	var b bytes.Buffer
	const keys = "{{range .}}{{usage_key .}}\n{{end}}"
	if err := envconfig.Usagef(config.Prefix, &config.Config{}, &b, keys); err != nil {
		t.Fatal(err)
	}
	if err := envconfig.Usagef("TEMPORAL", &config.Temporal{}, &b, keys); err != nil {
		t.Fatal(err)
	}
	return strings.Fields(b.String())
}

// mentions reports whether text names variable as a whole word: a longer
// variable that merely starts with it does not count.
func mentions(text, variable string) bool {
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(variable) + `\b`).MatchString(text)
}

// Every configuration variable is documented: named in README.md or in one of
// docs/*.md. A new variable without a word of documentation fails here.
func TestConfigVariablesDocumented(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	var docs strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
		docs.WriteByte('\n')
	}

	vars := configVariables(t)
	for _, want := range []string{"DISPATCHFLOW_HTTP_ADDR", "DISPATCHFLOW_ESP", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"} {
		if !slices.Contains(vars, want) {
			t.Fatalf("configuration variables %v lack %s: the list is not read right", vars, want)
		}
	}
	var missing []string
	for _, v := range vars {
		if !mentions(docs.String(), v) {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		t.Errorf("configuration variables mentioned neither in README.md nor in docs/*.md: %s",
			strings.Join(missing, ", "))
	}
}

func TestMentions(t *testing.T) {
	tests := []struct {
		text, variable string
		want           bool
	}{
		{"set `DISPATCHFLOW_ESP` to smtp", "DISPATCHFLOW_ESP", true},
		{"DISPATCHFLOW_ESP=smtp", "DISPATCHFLOW_ESP", true},
		{"only DISPATCHFLOW_ESP_KEY here", "DISPATCHFLOW_ESP", false},
		{"only MY_DISPATCHFLOW_ESP here", "DISPATCHFLOW_ESP", false},
		{"`DISPATCHFLOW_TWILIO_*` variables", "DISPATCHFLOW_TWILIO_FROM", false},
		{"nothing", "TEMPORAL_ADDRESS", false},
	}
	for _, tt := range tests {
		if got := mentions(tt.text, tt.variable); got != tt.want {
			t.Errorf("mentions(%q, %q) = %v, want %v", tt.text, tt.variable, got, tt.want)
		}
	}
}
