// Package metrics owns the Prometheus metrics of a cloudhsm-local server:
// requests by operation and outcome, their latency, the resources the server
// holds by type and state, injected faults, and the Go runtime and process
// collectors. Each Metrics has its own registry, so many servers can run in
// one process (a test binary) without sharing or clashing.
package metrics

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// Namespace prefixes every metric of the server.
const Namespace = "cloudhsm_local"

// CodeOK is the code label of a successful request.
const CodeOK = "OK"

// UnknownOperation is the operation label of requests refused before their
// operation was known (no or unknown X-Amz-Target, wrong method or path).
const UnknownOperation = "unknown"

// DurationBuckets are the request duration histogram's buckets, in seconds:
// most calls take well under a millisecond, injected latency takes seconds.
var DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// hsmStates lists the HSM states reported even when no HSM is in them.
var hsmStates = []string{cloudhsm.HsmCreateInProgress, cloudhsm.HsmActive, cloudhsm.HsmDegraded, cloudhsm.HsmDeleteInProgress}

// Metrics is one server's metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	faults   *prometheus.CounterVec
	handler  http.Handler
	// byOp caches, per operation label, the series a successful request
	// updates (*opSeries): resolving them from label values hashes the
	// labels and takes the vectors' locks on every request. Operation
	// labels are bounded: the operation table's names and "unknown".
	byOp sync.Map
}

// opSeries is the series of one operation's successful requests.
type opSeries struct {
	ok       prometheus.Counter
	duration prometheus.Observer
}

// New returns metrics registered in a new registry. stats, when not nil, is
// called at every scrape for the resources gauge.
func New(stats func() cloudhsm.Stats) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "requests_total",
			Help:      "CloudHSM v2 API requests by operation and outcome (the AWS error code, or OK).",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "request_duration_seconds",
			Help:      "Time to answer CloudHSM v2 API requests, by operation.",
			Buckets:   DurationBuckets,
		}, []string{"operation"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "injected_faults_total",
			Help:      "Faults injected by the admin API's rules, by operation and error code (latency for delay-only rules).",
		}, []string{"operation", "error"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.faults)
	if stats != nil {
		m.reg.MustRegister(&resourceCollector{stats: stats})
	}
	// The Go and process collectors are registered at the first scrape:
	// building them is most of what a new in-process server costs, and
	// most test servers are never scraped.
	var once sync.Once
	exposition := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	m.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		})
		exposition.ServeHTTP(w, r)
	})
	return m
}

// Registry returns the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Observe records one finished request; it fits awsjson.Hooks.Observe.
func (m *Metrics) Observe(op string, status int, code string, d time.Duration) {
	if op == "" {
		op = UnknownOperation
	}
	if code == "" {
		code = CodeOK
	}
	if code != CodeOK {
		m.requests.WithLabelValues(op, code).Inc()
		m.duration.WithLabelValues(op).Observe(d.Seconds())
		return
	}
	v, ok := m.byOp.Load(op)
	if !ok {
		v, _ = m.byOp.LoadOrStore(op, &opSeries{
			ok:       m.requests.WithLabelValues(op, CodeOK),
			duration: m.duration.WithLabelValues(op),
		})
	}
	series := v.(*opSeries)
	series.ok.Inc()
	series.duration.Observe(d.Seconds())
}

// InjectedFault counts one injected fault; it fits faults.Options.OnInject.
func (m *Metrics) InjectedFault(op, errorCode string) {
	m.faults.WithLabelValues(op, errorCode).Inc()
}

var resourcesDesc = prometheus.NewDesc(
	prometheus.BuildFQName(Namespace, "", "resources"),
	"Resources the server holds, by type (cluster, hsm, backup) and state, across every account and region.",
	[]string{"type", "state"}, nil,
)

// resourceCollector reads the domain's counts at scrape time.
type resourceCollector struct {
	stats func() cloudhsm.Stats
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- resourcesDesc }

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	emit := func(typ string, known []string, counts map[string]int) {
		states := slices.Clone(known)
		for s := range counts {
			if !slices.Contains(states, s) {
				states = append(states, s)
			}
		}
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(counts[s]), typ, s)
		}
	}
	emit("cluster", cloudhsm.ClusterStates, st.Clusters)
	emit("hsm", hsmStates, st.Hsms)
	emit("backup", cloudhsm.BackupStates, st.Backups)
}
