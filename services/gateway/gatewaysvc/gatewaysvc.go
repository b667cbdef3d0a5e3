// Package gatewaysvc runs the gateway: the HTTP API in front of the identity
// and session services. main and the devstack both start it from here.
package gatewaysvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/services/gateway/internal/httpapi"
	"github.com/wxlogin/wxlogin/services/gateway/internal/keys"
	"github.com/wxlogin/wxlogin/services/gateway/internal/metrics"
	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/opshttp"
)

// HTTP server limits. Read and write timeouts leave room for the 25 s QR
// long-poll: net/http keeps the read deadline while a handler runs and
// cancels the request context when it passes. Slow clients are bounded by
// ReadHeaderTimeout and the body limits.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 35 * time.Second
	writeTimeout      = 35 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 10 * time.Second
	drainTimeout      = 5 * time.Second
	pingTimeout       = time.Second
)

// Run listens on cfg.HTTPAddr and serves until ctx is cancelled (see Serve).
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on WXLOGIN_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	return Serve(ctx, cfg, log, ln)
}

// Serve runs the gateway on ln, which it closes (and cfg.MetricsListener). It blocks until ctx is
// cancelled, then shuts down gracefully (in-flight requests finish, the NATS
// connection drains) and returns nil; it returns an error if startup or the
// listener fails.
func Serve(ctx context.Context, cfg Config, log *slog.Logger, ln net.Listener) error {
	if err := cfg.Validate(); err != nil {
		ln.Close()
		if cfg.MetricsListener != nil {
			cfg.MetricsListener.Close()
		}
		return err
	}
	opts := jwtverify.Options{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}

	// /metrics (and a liveness /healthz) on their own listener, never the
	// public one; it listens first so a taken port fails the start at once.
	m := metrics.New()
	ops, err := opsServer(cfg, m, log)
	if err != nil {
		ln.Close()
		return err
	}
	stopOps := ops.Start()
	defer stopOps()

	// The gateway starts anyway when NATS is not up yet and reports not
	// ready until it connects.
	nc, err := natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Credentials: cfg.NATSAuth, Name: "wxlogin-gateway", Role: natsconn.Gateway,
		Retry: true, DrainTimeout: drainTimeout, Log: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer natsconn.Drain(nc, drainTimeout+time.Second, log)

	identityClient := identity.NewObservedClient(nc, m.ObserveNATS)
	sessionClient := session.NewObservedClient(nc, m.ObserveNATS)
	var k *keys.Keys
	if cfg.JWTAlg == jwtverify.AlgHS256 {
		if k, err = keys.NewHS256([]byte(cfg.JWTSecret), opts); err != nil {
			ln.Close()
			return fmt.Errorf("config: WXLOGIN_JWT_SECRET: %w", err)
		}
	} else {
		fetch := func(ctx context.Context) ([]byte, error) { return sessionClient.JWKS(ctx) }
		k = keys.NewEdDSA(fetch, opts, cfg.JWKSRefresh, log)
	}
	views, err := newKVViews(nc, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	keysCtx, stopKeys := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { k.Run(keysCtx) })
	wg.Go(func() { views.run(keysCtx) })
	defer wg.Wait()
	defer stopKeys()

	// Validate has checked the specs and the clients.
	limit, _ := ratelimit.ParseSpec(cfg.RateLimit)
	introspectLimit, _ := ratelimit.ParseSpec(cfg.IntrospectRateLimit)
	introspectClients, _ := cfg.introspectClients()
	srv := &http.Server{
		Handler: httpapi.New(httpapi.Options{
			Log:            log,
			Identity:       identityClient,
			Session:        sessionClient,
			Metrics:        m,
			IPLimit:        ratelimit.New(limit, ratelimit.Options{}),
			TrustedProxies: cfg.TrustedProxies,
			Keys:           k,
			Ready:          views.ready(readiness(nc, k)),
			Revocations:    views.revocations,
			Web:            views.web(cfg),
			Connected:      nc.IsConnected,
			CORSOrigins:    cfg.CORSOrigins,
			Introspection: httpapi.IntrospectOptions{
				Clients: introspectClients, Limit: ratelimit.New(introspectLimit, ratelimit.Options{}),
				Issuer: cfg.JWTIssuer, PublicURL: cfg.PublicURL, JWKS: cfg.JWTAlg == jwtverify.AlgEdDSA,
			},
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "config", cfg)

	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown incomplete; closing the remaining connections", "error", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("HTTP server stopped with an error", "error", err)
	}
	log.Info("gateway stopped")
	return nil
}

// opsServer is the ops server of cfg.MetricsListener or cfg.MetricsAddr
// (disabled when both are empty). Its /healthz is liveness only, like the
// public one: readiness is /readyz.
func opsServer(cfg Config, m *metrics.Metrics, log *slog.Logger) (*opshttp.Server, error) {
	if cfg.MetricsListener != nil {
		return opshttp.New(cfg.MetricsListener, m.Registry(), nil, log, opshttp.WithPprof(cfg.Pprof)), nil
	}
	ops, err := opshttp.Listen(cfg.MetricsAddr, m.Registry(), nil, log, opshttp.WithPprof(cfg.Pprof))
	if err != nil {
		return nil, fmt.Errorf("WXLOGIN_METRICS_ADDR: %w", err)
	}
	return ops, nil
}

// readiness checks what the gateway needs to serve: NATS, a live identity
// and session (a micro PING answers when at least one instance is up) and
// loaded keys.
func readiness(nc *nats.Conn, k *keys.Keys) httpapi.ReadyFunc {
	return func(ctx context.Context) []string {
		var down []string
		if !nc.IsConnected() {
			down = append(down, "nats")
		} else {
			services := []string{identity.Service, session.Service}
			alive := make([]bool, len(services))
			var wg sync.WaitGroup
			for i, svc := range services {
				wg.Go(func() {
					pctx, cancel := context.WithTimeout(ctx, pingTimeout)
					defer cancel()
					_, err := nc.RequestWithContext(pctx, "$SRV.PING."+svc, nil)
					alive[i] = err == nil
				})
			}
			wg.Wait()
			for i, svc := range services {
				if !alive[i] {
					down = append(down, svc)
				}
			}
		}
		if !k.Loaded() {
			down = append(down, "keys")
		}
		return down
	}
}
