package opshttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxlogin/wxlogin/shared/opshttp"
	"github.com/wxlogin/wxlogin/shared/poll"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run serves s until the test ends and checks that Run then returns nil.
func run(t *testing.T, s *opshttp.Server) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return "http://" + s.Addr().String(), stop
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	hits := prometheus.NewCounter(prometheus.CounterOpts{Name: "wxlogin_test_hits_total", Help: "Test counter."})
	reg.MustRegister(hits)
	hits.Add(3)
	var readyErr error
	ready := func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("ready called without a deadline")
		}
		return readyErr
	}
	base, _ := run(t, opshttp.New(listen(t), reg, ready, testLog(t)))

	tests := []struct {
		name, method, path string
		notReady           bool
		wantStatus         int
		wantBody           string // substring
	}{
		{"metrics", "GET", "/metrics", false, 200, "wxlogin_test_hits_total 3"},
		{"metrics HEAD", "HEAD", "/metrics", false, 200, ""},
		{"readyz", "GET", "/readyz", false, 200, `{"status":"ok"}`},
		{"readyz not ready", "GET", "/readyz", true, 503, `{"status":"unavailable","error":"nats: not connected"}`},
		// Liveness is the process only: a dependency down (the database,
		// NATS) must not make Kubernetes restart the pod.
		{"livez", "GET", "/livez", false, 200, `{"status":"ok"}`},
		{"livez not ready", "GET", "/livez", true, 200, `{"status":"ok"}`},
		{"healthz is livez", "GET", "/healthz", true, 200, `{"status":"ok"}`},
		{"metrics while not ready", "GET", "/metrics", true, 200, "wxlogin_test_hits_total 3"},
		{"POST readyz", "POST", "/readyz", false, 405, ""},
		{"POST livez", "POST", "/livez", false, 405, ""},
		{"unknown path", "GET", "/debug/pprof/", false, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			readyErr = nil // requests run one at a time: no race
			if tc.notReady {
				readyErr = errors.New("nats: not connected")
			}
			status, hdr, body := get(t, tc.method, base+tc.path)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, status, body, tc.wantStatus, tc.wantBody)
			}
			if tc.path != "/metrics" && status != 405 && status != 404 && hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
		})
	}
}

func TestNilRegistryAndReady(t *testing.T) {
	base, _ := run(t, opshttp.New(listen(t), nil, nil, testLog(t)))
	if status, _, _ := get(t, "GET", base+"/metrics"); status != 404 {
		t.Errorf("/metrics without a registry: %d, want 404", status)
	}
	status, _, body := get(t, "GET", base+"/livez")
	var h struct{ Status string }
	if status != 200 || json.Unmarshal([]byte(body), &h) != nil || h.Status != "ok" {
		t.Errorf("/livez = %d %q", status, body)
	}
	// Without a readiness check there is no /readyz to mislead a probe.
	if status, _, _ := get(t, "GET", base+"/readyz"); status != 404 {
		t.Errorf("/readyz without a check: %d, want 404", status)
	}
}

func TestDisabled(t *testing.T) {
	s, err := opshttp.Listen("", prometheus.NewRegistry(), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Fatalf("disabled server listens on %v", s.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("disabled Run returned %v before ctx ended", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("disabled Run did not return after cancel")
	}
}

func TestServeAndListenErrors(t *testing.T) {
	busy := listen(t)
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct{ name, addr string }{
		{"port in use", busy.Addr().String()},
		{"not an address", "localhost:notaport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := opshttp.Serve(ctx, tc.addr, nil, nil, testLog(t)); err == nil {
				t.Fatalf("Serve(%q) = nil, want a listen error", tc.addr)
			}
		})
	}
	t.Run("Serve on a free port until cancelled", func(t *testing.T) {
		addr := listen(t)
		free := addr.Addr().String()
		addr.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- opshttp.Serve(ctx, free, nil, nil, testLog(t)) }()
		// Wait until it answers, then stop it.
		poll.UntilNil(t, 5*time.Second, "Serve to answer", func() error {
			resp, err := http.Get("http://" + free + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve = %v after cancel, want nil", err)
		}
	})
}

// A request in flight when ctx ends is answered before Run returns; the
// listener closes at once.
func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	ready := func(context.Context) error {
		close(entered)
		<-release
		return nil
	}
	s := opshttp.New(listen(t), nil, ready, testLog(t))
	base, stop := run(t, s)

	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			res <- result{err: err}
			return
		}
		resp.Body.Close()
		res <- result{status: resp.StatusCode}
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Shutdown closes the listener first: wait for that, then let the
	// request finish.
	poll.Until(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case <-stopped:
		t.Fatal("Run returned with a request in flight")
	default:
	}
	close(release)
	r := <-res
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: %d, %v; want 200", r.status, r.err)
	}
	<-stopped
}

// TestReadyThatHangs: a readiness check that ignores its context (lib/pq on
// a stalled connection) still answers 503 in time.
func TestReadyThatHangs(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ready := func(context.Context) error { <-release; return nil }
	base, _ := run(t, opshttp.New(listen(t), nil, ready, testLog(t)))
	began := time.Now()
	status, _, body := get(t, "GET", base+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "did not finish") {
		t.Fatalf("readyz with a hung check = %d %q, want 503", status, body)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("readyz took %s with a hung check", took)
	}
}

// pprof is served only when asked for, and only on the ops listener: asking
// for it without one fails the start (TestServer shows it is off by default).
func TestPprof(t *testing.T) {
	base, _ := run(t, opshttp.New(listen(t), nil, nil, testLog(t), opshttp.WithPprof(true)))
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
		if status, _, body := get(t, "GET", base+path); status != 200 || body == "" {
			t.Errorf("GET %s with pprof on: %d", path, status)
		}
	}
	if status, _, body := get(t, "GET", base+"/debug/pprof/profile?seconds=1"); status != 200 || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", status, len(body))
	}
	if _, err := opshttp.Listen("", nil, nil, testLog(t), opshttp.WithPprof(true)); !errors.Is(err, opshttp.ErrPprofWithoutAddr) {
		t.Errorf("pprof without an ops address: %v, want ErrPprofWithoutAddr", err)
	}
	if s, err := opshttp.Listen("", nil, nil, testLog(t), opshttp.WithPprof(false)); err != nil || s.Addr() != nil {
		t.Errorf("pprof off without an address: %v", err)
	}
}
