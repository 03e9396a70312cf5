// Package metricstest reads /metrics for tests: the Prometheus text format, one
// sample per line.
package metricstest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Sample is one line of the text format: name{labels} value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Scrape GETs a /metrics URL, checks it answers 200 text/plain, and parses it.
func Scrape(t testing.TB, url string) []Sample {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: got %d %s, want 200 text/plain", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return Parse(t, string(body))
}

// Parse reads the samples of a text-format body (comments skipped).
func Parse(t testing.TB, body string) []Sample {
	t.Helper()
	var out []Sample
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		s := Sample{Labels: map[string]string{}, Value: v}
		name, ls, ok := strings.Cut(line[:i], "{")
		s.Name = name
		if ok {
			for _, pair := range strings.Split(strings.TrimSuffix(ls, "}"), `",`) {
				k, v, _ := strings.Cut(pair, "=")
				s.Labels[k] = strings.Trim(v, `"`)
			}
		}
		out = append(out, s)
	}
	return out
}

// Value is the sum of the samples of name carrying labels (they may carry others,
// such as the SDK's status_code on a retried request), and whether there is one.
func Value(samples []Sample, name string, labels map[string]string) (float64, bool) {
	sum, found := 0.0, false
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		match := true
		for k, v := range labels {
			if s.Labels[k] != v {
				match = false
			}
		}
		if match {
			sum, found = sum+s.Value, true
		}
	}
	return sum, found
}
