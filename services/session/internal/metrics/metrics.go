// Package metrics is the session service's Prometheus instrumentation:
// requests by subject and result code, their latency, token pairs issued,
// refresh token reuse, and the Go runtime and process. It has its own
// registry, so several services in one process (devstack, tests) do not
// collide.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Metric names.
const (
	NameRequests        = "wxlogin_session_requests_total"
	NameRequestDuration = "wxlogin_session_request_duration_seconds"
	NameTokensIssued    = "wxlogin_session_tokens_issued_total"
	NameRefreshReuse    = "wxlogin_session_refresh_reuse_detected_total"
)

// codeOK is the code label of a request that succeeded.
const codeOK = "ok"

// Metrics are safe for concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	issued   *prometheus.CounterVec
	reuse    prometheus.Counter
}

// New returns the metrics on a fresh registry. The token kinds are known up
// front, so their series exist (at 0) from the start and rate() works from
// the first issued pair.
func New(kinds ...string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRequests,
			Help: "Requests handled, by NATS subject and result code (ok or the error code).",
		}, []string{"subject", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: NameRequestDuration,
			Help: "Time to handle a request, by NATS subject.",
			// A KV round trip or two: sub-millisecond to the 2 s handler timeout.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"subject"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTokensIssued,
			Help: "Access and refresh token pairs issued (logins, QR logins and refreshes), by login kind.",
		}, []string{"kind"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameRefreshReuse,
			Help: "Spent refresh tokens presented again (possible token theft).",
		}),
	}
	for _, k := range kinds {
		m.issued.WithLabelValues(k)
	}
	m.reg.MustRegister(m.requests, m.duration, m.issued, m.reuse,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry to serve.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Instrument wraps an endpoint function to count and time its requests
// under subject. The series that every request touches are resolved here,
// once, so a request costs no label lookup unless it fails.
func Instrument[Req, Resp any](m *Metrics, subject string, fn func(context.Context, Req) (Resp, error)) func(context.Context, Req) (Resp, error) {
	if m == nil {
		return fn
	}
	ok := m.requests.WithLabelValues(subject, codeOK)
	duration := m.duration.WithLabelValues(subject)
	return func(ctx context.Context, req Req) (Resp, error) {
		start := time.Now()
		resp, err := fn(ctx, req)
		duration.Observe(time.Since(start).Seconds())
		if err != nil {
			m.requests.WithLabelValues(subject, string(api.CodeOf(err))).Inc()
		} else {
			ok.Inc()
		}
		return resp, err
	}
}

// TokensIssued counts one token pair of a login kind.
func (m *Metrics) TokensIssued(kind string) {
	if m == nil {
		return
	}
	m.issued.WithLabelValues(kind).Inc()
}

// RefreshReuse counts one spent refresh token presented again.
func (m *Metrics) RefreshReuse() {
	if m == nil {
		return
	}
	m.reuse.Inc()
}
