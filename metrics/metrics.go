// Package metrics holds dispatchflow's own Prometheus metrics (the Temporal SDK's
// are exported beside them, see Handler). Every metric is registered on Registry;
// /metrics on the API and the worker serves it.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Registry is the registry /metrics serves: dispatchflow's metrics, the Temporal
// SDK's, and the Go runtime's.
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
	postbackLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dispatchflow_postback_latency_seconds",
		Help:    "From the ESP event's receipt (or the send's acceptance) to the postback's acknowledgement by the endpoint.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000},
	}, []string{"endpoint"})
	escalations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dispatchflow_fallback_escalations_total",
		Help: "Fallback steps started, per escalation reason.",
	}, []string{"reason"})
)

func init() {
	Registry.MustRegister(eventsIngested, eventsUnmatched, eventsDuplicate,
		postbackAttempts, postbackLatency, escalations)
}

// EventIngested counts one event accepted from provider.
func EventIngested(provider, eventType string) { eventsIngested.WithLabelValues(provider, eventType).Inc() }

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

// PostbackLatency observes one acknowledged postback, d after its event was received.
func PostbackLatency(endpoint string, d time.Duration) {
	postbackLatency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Escalation counts one fallback escalation for reason ("bounced", "not delivered within 30m", …).
func Escalation(reason string) { escalations.WithLabelValues(reason).Inc() }
