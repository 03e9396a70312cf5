package metrics

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// timerBuckets are the histogram buckets, in seconds, of the Temporal SDK's timers
// (request, task, activity and end-to-end latencies): 1 ms to 1 h.
var timerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

// sdk holds every metric emitted through TemporalHandler.
var sdk = newSDKCollector()

// TemporalHandler is the Temporal SDK's metrics handler (client.Options.MetricsHandler):
// the SDK's metrics, and ours emitted from workflow code, land in Registry under the
// names the Go SDK has with a Prometheus reporter: counters get "_total"
// (temporal_request_total), timers become histograms in seconds under their own
// name (temporal_request_latency_bucket), gauges keep theirs. Tags become labels.
//
// It is one handler per process: every client dialled in the process shares it.
func TemporalHandler() client.MetricsHandler { return sdkHandler{c: sdk} }

// sdkHandler implements client.MetricsHandler onto sdkCollector. The contrib/tally
// handler the SDK suggests is not used: its module is only on the proxy in a 2022
// version, and tally flushes on an interval and drops a metric whose label set
// varies, where the SDK varies them (temporal_request_failure adds status_code).
type sdkHandler struct {
	c    *sdkCollector
	tags map[string]string
}

var _ client.MetricsHandler = sdkHandler{}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = make(map[string]string, len(tags))
	}
	maps.Copy(merged, tags) // new tags override old ones, as the interface says
	return sdkHandler{c: h.c, tags: merged}
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	s := h.c.series(counterName(name), kindCounter, h.tags)
	if s == nil {
		return nopMetric{}
	}
	return sdkCounter{s}
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	s := h.c.series(sanitizeName(name), kindGauge, h.tags)
	if s == nil {
		return nopMetric{}
	}
	return sdkGauge{s}
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	s := h.c.series(sanitizeName(name), kindHistogram, h.tags)
	if s == nil {
		return nopMetric{}
	}
	return sdkTimer{s}
}

type (
	sdkCounter struct{ s *series }
	sdkGauge   struct{ s *series }
	sdkTimer   struct{ s *series }
	nopMetric  struct{}
)

func (c sdkCounter) Inc(d int64) {
	if d > 0 { // a counter only goes up
		c.s.count.Add(uint64(d))
	}
}

func (g sdkGauge) Update(v float64)       { g.s.gauge.Store(math.Float64bits(v)) }
func (t sdkTimer) Record(d time.Duration) { t.s.observe(d.Seconds()) }

func (nopMetric) Inc(int64)            {}
func (nopMetric) Update(float64)       {}
func (nopMetric) Record(time.Duration) {}

type kind int

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

// sdkCollector is an unchecked prometheus.Collector (it describes nothing): the
// SDK creates metrics as it goes, and one name may carry different label sets.
type sdkCollector struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	kind   kind
	desc   map[string]*prometheus.Desc // by label names joined with ","
	series map[string]*series          // by label names and values
}

type series struct {
	desc   *prometheus.Desc
	values []string
	count  atomic.Uint64 // counter
	gauge  atomic.Uint64 // gauge: math.Float64bits

	mu      sync.Mutex // histogram
	sum     float64
	n       uint64
	buckets []uint64 // per timerBuckets bound, not cumulative
}

func newSDKCollector() *sdkCollector { return &sdkCollector{families: map[string]*family{}} }

// series returns the series of name with tags, creating it; nil when name is
// already a metric of another kind (the first kind wins).
func (c *sdkCollector) series(name string, k kind, tags map[string]string) *series {
	var labels, values []string
	for _, n := range slices.Sorted(maps.Keys(tags)) {
		l := sanitizeLabel(n)
		// le is a histogram's own label; two tags may sanitize to one name.
		if l == "le" || slices.Contains(labels, l) {
			continue
		}
		labels = append(labels, l)
		values = append(values, strings.ToValidUTF8(tags[n], "?"))
	}
	labelNames := strings.Join(labels, ",")
	key := labelNames + "\xff" + strings.Join(values, "\xff")

	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.families[name]
	if f == nil {
		f = &family{kind: k, desc: map[string]*prometheus.Desc{}, series: map[string]*series{}}
		c.families[name] = f
	}
	if f.kind != k {
		return nil
	}
	if s := f.series[key]; s != nil {
		return s
	}
	d := f.desc[labelNames]
	if d == nil {
		d = prometheus.NewDesc(name, help(name), labels, nil)
		f.desc[labelNames] = d
	}
	s := &series{desc: d, values: values}
	if k == kindHistogram {
		s.buckets = make([]uint64, len(timerBuckets))
	}
	f.series[key] = s
	return s
}

func (s *series) observe(v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.sum += v
	if i, _ := slices.BinarySearch(timerBuckets, v); i < len(s.buckets) {
		s.buckets[i]++ // le is inclusive: v == bound lands in bound's bucket
	}
}

// Describe sends nothing: the collector is unchecked.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	var all []*series
	var kinds []kind
	for _, f := range c.families {
		for _, s := range f.series {
			all = append(all, s)
			kinds = append(kinds, f.kind)
		}
	}
	c.mu.Unlock()
	for i, s := range all {
		var m prometheus.Metric
		var err error
		switch kinds[i] {
		case kindCounter:
			m, err = prometheus.NewConstMetric(s.desc, prometheus.CounterValue, float64(s.count.Load()), s.values...)
		case kindGauge:
			m, err = prometheus.NewConstMetric(s.desc, prometheus.GaugeValue, math.Float64frombits(s.gauge.Load()), s.values...)
		case kindHistogram:
			s.mu.Lock()
			cum := make(map[float64]uint64, len(timerBuckets))
			var acc uint64
			for j, b := range timerBuckets {
				acc += s.buckets[j]
				cum[b] = acc
			}
			n, sum := s.n, s.sum
			s.mu.Unlock()
			m, err = prometheus.NewConstHistogram(s.desc, n, sum, cum, s.values...)
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(s.desc, err) // reported by Gather; the scrape goes on
		}
		ch <- m
	}
}

// help is the HELP line of an SDK-emitted metric: ours say what they count.
func help(name string) string {
	if h, ok := workflowHelp[name]; ok {
		return h
	}
	return "Temporal Go SDK metric " + name + " (see docs.temporal.io/references/sdk-metrics)."
}

// counterName is a counter's exposed name: Prometheus counters end in _total.
func counterName(name string) string {
	name = sanitizeName(name)
	if strings.HasSuffix(name, "_total") {
		return name
	}
	return name + "_total"
}

// sanitizeName maps name onto Prometheus's metric name characters [a-zA-Z0-9_:].
func sanitizeName(name string) string { return sanitize(name, true) }

// sanitizeLabel maps name onto Prometheus's label name characters [a-zA-Z0-9_].
func sanitizeLabel(name string) string { return sanitize(name, false) }

func sanitize(name string, colon bool) string {
	if name == "" {
		return "_"
	}
	var b strings.Builder
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9') || (colon && r == ':')
		if !ok {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
