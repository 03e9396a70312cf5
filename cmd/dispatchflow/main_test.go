package main

import (
	"bytes"
	"strings"
	"testing"
)

// Exit codes: 0 help, 2 usage, 1 error (a bad variable, named).
func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{name: "help", args: []string{"help"}, code: 0, stdout: "DISPATCHFLOW_TRACKING_WINDOW"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "TEMPORAL_ADDRESS"},
		{name: "no command", args: nil, code: 2, stderr: "Usage:"},
		{name: "unknown command", args: []string{"srve"}, code: 2, stderr: `unknown command "srve"`},
		{name: "bad variable", args: []string{"serve"}, env: map[string]string{"DISPATCHFLOW_ESP": "sendmail"}, code: 1, stderr: "DISPATCHFLOW_ESP"},
		{name: "no Temporal", args: []string{"worker"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DISPATCHFLOW_METRICS_ADDR": ""}, code: 1, stderr: "TEMPORAL_ADDRESS"},
		// The API without keys or without the id secret refuses to start, before dialing Temporal.
		{name: "api without keys", args: []string{"api"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"}, code: 1, stderr: "DISPATCHFLOW_API_KEYS_FILE: required"},
		{name: "serve without id secret", args: []string{"serve"}, env: map[string]string{"DISPATCHFLOW_AUTH": "off", "TEMPORAL_ADDRESS": "127.0.0.1:1"}, code: 1, stderr: "DISPATCHFLOW_ID_SECRET: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tt.args, stdio{strings.NewReader(""), &stdout, &stderr})
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d with stdout containing %q and stderr %q",
					tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
