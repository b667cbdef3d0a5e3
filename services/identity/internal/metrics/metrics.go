// Package metrics is identity's Prometheus instrumentation: requests by
// subject and result code, their latency, the event outbox, and the Go
// runtime and process. It has its own registry, so several services in one
// process (devstack, tests) do not collide.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Metric names.
const (
	NameRequests        = "wxlogin_identity_requests_total"
	NameRequestDuration = "wxlogin_identity_request_duration_seconds"
	NameEventsPublished = "wxlogin_identity_outbox_published_total"
	NameOutboxPending   = "wxlogin_identity_outbox_pending"
	NameEventsLost      = "wxlogin_identity_events_lost_total"
)

// Metrics are safe for concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published prometheus.Counter
	lost      prometheus.Counter
}

// New returns the metrics on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRequests,
			Help: "Requests served, by NATS subject and result code (ok or the error code).",
		}, []string{"subject", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: NameRequestDuration,
			Help: "Time to handle a request, by NATS subject.",
			// From a returning login (a few ms) to a slow WeChat (seconds).
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"subject"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameEventsPublished,
			Help: "Events the outbox relay published to JetStream.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameEventsLost,
			Help: "Events published without the outbox (a returning login's user.logged_in) that JetStream did not store.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.published, m.lost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest records one handled request.
func (m *Metrics) ObserveRequest(subject string, d time.Duration, err error) {
	if m == nil {
		return
	}
	code := "ok"
	if err != nil {
		code = string(api.CodeOf(err))
	}
	m.requests.WithLabelValues(subject, code).Inc()
	m.duration.WithLabelValues(subject).Observe(d.Seconds())
}

// EventsPublished counts n events published.
func (m *Metrics) EventsPublished(n int) {
	if m == nil {
		return
	}
	m.published.Add(float64(n))
}

// EventLost counts an event published without the outbox that was lost.
func (m *Metrics) EventLost() {
	if m == nil {
		return
	}
	m.lost.Inc()
}

// pendingTimeout bounds the query behind the pending gauge at each scrape.
const pendingTimeout = 2 * time.Second

// WatchOutbox exports the number of events not yet published, asked of
// pending at each scrape (a scrape where it fails omits the gauge).
func (m *Metrics) WatchOutbox(pending func(context.Context) (int, error)) {
	m.reg.MustRegister(&pendingCollector{
		desc:    prometheus.NewDesc(NameOutboxPending, "Events in the outbox waiting to be published.", nil, nil),
		pending: pending,
	})
}

// Registry is where the metrics are registered, for the ops server
// (shared/opshttp) to serve.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

type pendingCollector struct {
	desc    *prometheus.Desc
	pending func(context.Context) (int, error)
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
	defer cancel()
	n, err := c.pending(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, errors.Join(errors.New("outbox pending"), err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}
