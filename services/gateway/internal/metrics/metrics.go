// Package metrics is the gateway's Prometheus instrumentation, on its own
// registry: HTTP requests by route template, logins by kind and result, NATS
// request latency by subject, and the Go and process collectors.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
)

// Label values that are not taken from the request.
const (
	// RouteUnmatched labels requests that matched no route: raw paths would
	// let any client create series at will.
	RouteUnmatched = "(unmatched)"
	// ResultSuccess is the result label of a login that produced tokens;
	// failures carry their contract error code.
	ResultSuccess = "success"
	methodOther   = "OTHER"
	kindOther     = "other"
)

// Latency buckets. The targets are a p99 of 25 ms for a login, so the low
// end is finer than Prometheus' defaults; the top covers the 30 s long-poll.
var (
	httpBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	natsBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Metrics holds the gateway's collectors. A nil *Metrics records nothing.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	nats     *prometheus.HistogramVec
}

// New returns the metrics on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template and method.",
			Buckets: httpBuckets,
		}, []string{"route", "method"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxlogin_logins_total",
			Help: "Login attempts by kind (miniprogram, web, password) and result (success or the error code).",
		}, []string{"kind", "result"}),
		nats: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nats_request_duration_seconds",
			Help:    "Round trip of NATS requests to the identity and session services, by subject.",
			Buckets: natsBuckets,
		}, []string{"subject"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.logins, m.nats,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics live on; shared/opshttp serves it on
// the ops listener (WXLOGIN_METRICS_ADDR).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Middleware counts and times every request under its route template.
// Register it before anything that can answer, so every answer counts.
func (m *Metrics) Middleware() gin.HandlerFunc {
	if m == nil {
		return func(c *gin.Context) { c.Next() }
	}
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = RouteUnmatched
		}
		method := methodLabel(c.Request.Method)
		m.requests.WithLabelValues(route, method, statusLabel(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// Login counts a login attempt of kind (api.KindMiniProgram, api.KindWeb,
// api.KindOfficialAccount, api.KindApp, api.KindPassword): err nil is a
// success, else the result is its code.
func (m *Metrics) Login(kind string, err error) {
	if m == nil {
		return
	}
	switch kind {
	case api.KindMiniProgram, api.KindWeb, api.KindOfficialAccount, api.KindApp, api.KindPassword:
	default:
		kind = kindOther
	}
	result := ResultSuccess
	if err != nil {
		result = resultLabel(err)
	}
	m.logins.WithLabelValues(kind, result).Inc()
}

// ObserveNATS records one NATS request's latency by subject; it is the
// natsrpc.Observer of the gateway's identity and session clients.
func (m *Metrics) ObserveNATS(subject string, took time.Duration, _ error) {
	if m == nil {
		return
	}
	m.nats.WithLabelValues(subject).Observe(took.Seconds())
}

// resultLabel is err's contract code; anything outside the contract (which
// a remote service could otherwise invent) is internal_error.
func resultLabel(err error) string {
	code := api.CodeOf(err)
	if code != api.CodeInternal && problem.Status(code) == http.StatusInternalServerError {
		return string(api.CodeInternal)
	}
	return string(code)
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return methodOther
}

// statusLabels holds the text of every status code, so labelling a request
// does not format one.
var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
