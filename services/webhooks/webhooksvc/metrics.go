package webhooksvc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names (docs/webhooks.md). Every one has the label endpoint, the
// endpoint's name.
const (
	NameDeliveries        = "wxlogin_webhooks_deliveries_total"
	NameFailures          = "wxlogin_webhooks_failures_total"
	NameParked            = "wxlogin_webhooks_parked_total"
	NameRequestDuration   = "wxlogin_webhooks_request_duration_seconds"
	NameOldestUndelivered = "wxlogin_webhooks_oldest_undelivered_seconds"
	NameDeadLetters       = "wxlogin_webhooks_dead_letters"
)

// Failure reasons, the label reason of NameFailures.
const (
	reasonStatus  = "status"  // an answer other than 2xx
	reasonTimeout = "timeout" // no answer within the endpoint's timeout
	reasonNetwork = "network" // no connection, reset, TLS, ...
)

type metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	failures   *prometheus.CounterVec
	parked     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	oldest     *prometheus.GaugeVec
	dead       *prometheus.GaugeVec
}

func newMetrics(eps []*Endpoint) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDeliveries,
			Help: "Events delivered (answered 2xx), by endpoint.",
		}, []string{"endpoint"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameFailures,
			Help: "Delivery attempts that failed, by endpoint and reason (status, timeout, network).",
		}, []string{"endpoint", "reason"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameParked,
			Help: "Events given up on and parked in the dead-letter stream, by endpoint.",
		}, []string{"endpoint"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameRequestDuration,
			Help:    "Time from sending a delivery to its answer (or failure), by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"endpoint"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameOldestUndelivered,
			Help: "Age of the oldest event the endpoint has not taken yet (0: none waiting), as NATS counts it; every copy reports the same.",
		}, []string{"endpoint"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameDeadLetters,
			Help: "Dead letters waiting for `webhooks replay`, by endpoint.",
		}, []string{"endpoint"}),
	}
	m.reg.MustRegister(m.deliveries, m.failures, m.parked, m.duration, m.oldest, m.dead,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series exists from the start, so a rate() or an alert sees 0,
	// not nothing.
	for _, ep := range eps {
		m.deliveries.WithLabelValues(ep.Name)
		m.parked.WithLabelValues(ep.Name)
		for _, r := range []string{reasonStatus, reasonTimeout, reasonNetwork} {
			m.failures.WithLabelValues(ep.Name, r)
		}
		m.oldest.WithLabelValues(ep.Name)
		m.dead.WithLabelValues(ep.Name)
	}
	return m
}

func (m *metrics) attempt(ep string, took time.Duration, failure string) {
	m.duration.WithLabelValues(ep).Observe(took.Seconds())
	if failure == "" {
		m.deliveries.WithLabelValues(ep).Inc()
		return
	}
	m.failures.WithLabelValues(ep, failure).Inc()
}
