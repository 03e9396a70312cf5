// Package metrics holds dispatchflow's Prometheus metrics: ours, the Temporal SDK's
// (through TemporalHandler), and the Go runtime's and process's, all on Registry,
// which Handler serves as /metrics on the API and on a worker-only process.
//
// Metrics of the processes' own code (intake, postbacks) are client_golang
// metrics updated by the functions below; metrics of workflow code go through the
// workflow's metrics handler (StatusTransition, WorkflowEscalation), which the SDK
// silences during replay.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the registry /metrics serves: dispatchflow's metrics, the Temporal
// SDK's, and the Go runtime's and process's.
var Registry = prometheus.NewRegistry()

var (
	eventsIngested = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_events_ingested_total",
		Help: "ESP webhook events accepted by intake, per provider and normalised event type.",
	}, []string{"provider", "type"})
	eventsUnmatched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_events_unmatched_total",
		Help: "ESP events for no known message, per provider.",
	}, []string{"provider"})
	eventsDuplicate = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_events_duplicate_total",
		Help: "ESP events recognised as repeats at intake, per provider.",
	}, []string{"provider"})
	postbackAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_postback_attempts_total",
		Help: "Postback HTTP attempts per endpoint and outcome (success, failure).",
	}, []string{"endpoint", "outcome"})
	sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_sends_total",
		Help: "Send activity attempts, per provider and outcome: sent, refused (the ESP refused for good), suppressed (the address is on its workspace's suppression list: no ESP called), skipped (the provider's circuit is open), failed (transient: retried, or failed over).",
	}, []string{"provider", "outcome"})
	postbackLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dispatchflow_postback_latency_seconds",
		Help:    "From the ESP event's receipt (or the send's acceptance) to the postback's acknowledgement by the endpoint.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000},
	}, []string{"endpoint"})
)

func init() {
	Registry.MustRegister(eventsIngested, eventsUnmatched, eventsDuplicate,
		postbackAttempts, postbackLatency, sends, sdk,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves Registry in the Prometheus text format. A metric that fails to
// gather is left out and the rest still served.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// EventIngested counts one event accepted from provider.
func EventIngested(provider, eventType string) {
	eventsIngested.WithLabelValues(provider, eventType).Inc()
}

// EventUnmatched counts one event for an unknown message.
func EventUnmatched(provider string) { eventsUnmatched.WithLabelValues(provider).Inc() }

// EventDuplicate counts one repeated event.
func EventDuplicate(provider string) { eventsDuplicate.WithLabelValues(provider).Inc() }

// PostbackAttempt counts one HTTP attempt to endpoint (an endpoint id, or the host
// of a per-message postback_url); ok tells whether it was acknowledged (2xx).
func PostbackAttempt(endpoint string, ok bool) {
	outcome := "failure"
	if ok {
		outcome = "success"
	}
	postbackAttempts.WithLabelValues(endpoint, outcome).Inc()
}

// Send outcomes: the values of dispatchflow_sends_total's outcome label.
const (
	SendSent       = "sent"
	SendRefused    = "refused"
	SendSuppressed = "suppressed"
	SendSkipped    = "skipped"
	SendFailed     = "failed"
)

// Send counts one Send activity attempt through provider (an ESP's name: a
// small, fixed set) with outcome, one of the Send* values.
func Send(provider, outcome string) { sends.WithLabelValues(provider, outcome).Inc() }

// PostbackLatency observes one acknowledged postback, d after its event was received.
func PostbackLatency(endpoint string, d time.Duration) {
	postbackLatency.WithLabelValues(endpoint).Observe(d.Seconds())
}
