package metrics

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/opshttp"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func TestMiddlewareLabels(t *testing.T) {
	m := New()
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/users/:id", func(c *gin.Context) { c.Status(http.StatusTeapot) })
	for _, target := range []string{"/users/1", "/users/2", "/elsewhere/3"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/users/1", nil))

	cases := []struct {
		labels []string
		want   float64
	}{
		{[]string{"/users/:id", "GET", "418"}, 2},
		{[]string{RouteUnmatched, "GET", "404"}, 1},
		{[]string{RouteUnmatched, "OTHER", "404"}, 1},
	}
	for _, c := range cases {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("http_requests_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("%d series; raw paths or methods made their own", n)
	}
}

func TestLogin(t *testing.T) {
	m := New()
	m.Login(api.KindPassword, nil)
	m.Login(api.KindPassword, api.Errorf(api.CodeInvalidCredentials, "no"))
	m.Login(api.KindWeb, api.Errorf("made_up_by_a_service", "?"))
	m.Login(api.KindMiniProgram, errors.New("plain"))
	m.Login("weird kind", nil)
	for labels, want := range map[[2]string]float64{
		{"password", "success"}:             1,
		{"password", "invalid_credentials"}: 1,
		{"web", "internal_error"}:           1,
		{"miniprogram", "internal_error"}:   1,
		{"other", "success"}:                1,
	} {
		if got := testutil.ToFloat64(m.logins.WithLabelValues(labels[0], labels[1])); got != want {
			t.Errorf("wxlogin_logins_total%v = %v, want %v", labels, got, want)
		}
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Login(api.KindWeb, nil)
	m.ObserveNATS("x", time.Second, nil)
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/", func(c *gin.Context) { c.String(200, "ok") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Body.String() != "ok" {
		t.Errorf("body %q", w.Body.String())
	}
}

func TestExposition(t *testing.T) {
	m := New()
	m.ObserveNATS("wxlogin.session.issue", 2*time.Millisecond, nil)
	w := httptest.NewRecorder()
	opshttp.Handler(m.Registry(), nil, slog.New(slog.DiscardHandler)).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{`nats_request_duration_seconds_bucket{subject="wxlogin.session.issue",le="0.0025"} 1`, "go_gc_duration_seconds", "process_cpu_seconds_total"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}
