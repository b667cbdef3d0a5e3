// Package opshttp is the operations HTTP server of the services (identity and
// session; the gateway uses it for /metrics): GET /metrics for Prometheus, GET /livez
// (liveness: the process serves) and GET /readyz (readiness: its
// dependencies) for health checks and Kubernetes probes, and, only when asked for
// (WXLOGIN_PPROF=true), net/http/pprof's profiles. It is meant for a
// private port (":9100" in the containers), never for the public.
package opshttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the server. A scrape gathers in-process collectors only, so
// generous bounds still cut off a stuck or slow client quickly.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// readyTimeout bounds one readiness check, so a hung dependency answers
	// 503 before the health checker gives up on us.
	readyTimeout = 2 * time.Second
	// shutdownTimeout is how long in-flight scrapes get after ctx ends.
	shutdownTimeout = 5 * time.Second
	// maxScrapes limits concurrent scrapes; more get 503 instead of piling
	// up gathers.
	maxScrapes = 4
)

// Option changes what the ops server serves.
type Option func(*options)

type options struct{ pprof bool }

// WithPprof serves net/http/pprof under /debug/pprof/ when on (the
// services' WXLOGIN_PPROF): CPU, heap and allocation profiles for
// benchmarking. Off by default: a profile shows what the process is doing.
func WithPprof(on bool) Option { return func(o *options) { o.pprof = on } }

// ErrPprofWithoutAddr: pprof was asked for without an ops listener, and it
// is never served on the public port.
var ErrPprofWithoutAddr = errors.New("WXLOGIN_PPROF=true needs WXLOGIN_METRICS_ADDR: profiles are served only on the ops listener")

// Server is an ops server bound to its listener, or a disabled one.
type Server struct {
	ln  net.Listener // nil: disabled
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr and returns a server for it, so that a port in use fails
// a service's start rather than surfacing later. addr "" returns a disabled
// server whose Run only waits for its context. See Handler for reg and ready.
func Listen(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger, opts ...Option) (*Server, error) {
	if addr == "" {
		if collect(opts).pprof {
			return nil, ErrPprofWithoutAddr
		}
		return &Server{log: log}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops listener: %w", err)
	}
	return New(ln, reg, ready, log, opts...), nil
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// New returns a server on ln (which Run closes).
func New(ln net.Listener, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger, opts ...Option) *Server {
	return &Server{
		ln:  ln,
		log: log,
		srv: &http.Server{
			Handler:           Handler(reg, ready, log, opts...),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Addr is the address the server listens on; nil when disabled.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run serves until ctx ends, then shuts down gracefully and returns nil. It
// returns an error if serving fails. A disabled server just waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		<-ctx.Done()
		return nil
	}
	s.log.Info("ops server listening", "addr", s.ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("ops server: %w", err) // Serve never returns nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("ops server shutdown", "error", err)
		_ = s.srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ops server: %w", err)
	}
	return nil
}

// Start runs the server in the background until the returned stop is
// called; stop waits for it to end. A failure is logged, not returned: the
// service itself still works, and its failing health check shows it.
func (s *Server) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			s.log.Error("ops server stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// Serve is Listen followed by Run.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger, opts ...Option) error {
	s, err := Listen(addr, reg, ready, log, opts...)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Handler serves:
//
//	GET /metrics  reg in the Prometheus exposition format (404 when reg is nil)
//	GET /livez    200 {"status":"ok"} while the process serves HTTP: a
//	              liveness probe must not fail because a dependency is down,
//	              or a database outage would restart every pod
//	GET /healthz  the same as /livez (kept for the probes that use it)
//	GET /readyz   200 {"status":"ok"}; 503 {"status":"unavailable","error":...}
//	              when ready fails (404 when ready is nil)
//	GET /debug/pprof/...  net/http/pprof, with WithPprof(true) only
//
// ready should be cheap: a health checker calls it every few seconds.
func Handler(reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger, opts ...Option) http.Handler {
	mux := http.NewServeMux()
	if collect(opts).pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // the named profiles: heap, allocs, goroutine, ...
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			// One failing collector must not hide the others.
			ErrorHandling:       promhttp.ContinueOnError,
			ErrorLog:            promLogger{log},
			Registry:            reg, // counts promhttp's own errors
			MaxRequestsInFlight: maxScrapes,
		}))
	}
	live := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, health{Status: "ok"}) }
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /healthz", live)
	if ready != nil {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			if err := checkReady(r.Context(), ready); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, health{Status: "unavailable", Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, health{Status: "ok"})
		})
	}
	return mux
}

// checkReady runs ready within readyTimeout, also when ready does not honour
// its context: lib/pq blocks on a connection where no byte flows (a hung
// Postgres or a lost network) until bytes flow again, and the health
// checker must hear 503, not nothing.
func checkReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1) // a check that returns late does not block
	go func() { done <- ready(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("readiness check did not finish: %w", ctx.Err())
	}
}

type health struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// promLogger sends promhttp's gather and write errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics scrape", "error", fmt.Sprint(v...)) }
