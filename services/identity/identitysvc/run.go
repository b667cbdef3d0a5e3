package identitysvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/metrics"
	"github.com/wxlogin/wxlogin/services/identity/internal/natsapi"
	"github.com/wxlogin/wxlogin/services/identity/internal/outbox"
	"github.com/wxlogin/wxlogin/services/identity/internal/password"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

const (
	// Handlers wait on WeChat: many run at once, each within requestTimeout.
	// Password hashing (CPU and 19 MiB each) is bounded separately, to the
	// CPUs: see password.Hasher.
	poolSize       = 64
	requestTimeout = 5 * time.Second
	// Failed passwords: per (username, client IP), this many per window,
	// for at most failureKeys pairs at once (~100 bytes each).
	failureLimit  = 5
	failureWindow = 15 * time.Minute
	failureKeys   = 65536
	// Connections to Postgres: about the handlers that can be in a
	// transaction at once on a small server, plus the relay.
	maxDBConns = 20
	// How long a starting service waits for Postgres to accept connections.
	dbStartupWait = 30 * time.Second
	drainTimeout  = 10 * time.Second
)

// Migrate applies the identity schema's pending migrations to the database at dsn.
func Migrate(ctx context.Context, dsn string) error {
	return migrate(ctx, dsn, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func migrate(ctx context.Context, dsn string, log *slog.Logger) error {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	return store.Migrate(ctx, db.DB, log)
}

// Run serves identity until ctx is cancelled, then stops in order (micro
// service, in-flight handlers, outbox relay, NATS drain, database) and
// returns nil. It returns an error if it cannot start.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	apps, err := cfg.apps()
	if err != nil {
		return err
	}
	log.Info("identity starting", "config", cfg)
	if len(apps.All()) == 0 {
		log.Warn("no WeChat app configured: WeChat logins will be refused; set WXLOGIN_MINIPROGRAM_APPID/_SECRET, WXLOGIN_WEB_APPID/_SECRET or WXLOGIN_APPS_FILE")
	}
	for _, app := range apps.All() {
		log.Info("wechat app", "app", app)
	}

	db, err := openDB(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := store.Migrate(ctx, db.DB, log); err != nil {
		return err
	}
	st, err := store.New(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()

	nc, closed, err := connectNATS(cfg.NATSURL, log)
	if err != nil {
		return err
	}
	defer nc.Close() // after a drain, a no-op

	m := metrics.New()
	relay, err := outbox.New(db, nc, log.With("component", "outbox"), outbox.Options{Published: m.EventsPublished})
	if err != nil {
		return err
	}
	m.WatchOutbox(relay.Pending)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, m, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	// The relay outlives ctx a little: it stops after the handlers are done.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		_ = relay.Run(relayCtx)
	}()
	defer func() { stopRelay(); <-relayDone }()

	wc := wechat.New(wechat.Options{APIBase: cfg.WechatAPIBase})
	a := natsapi.New(natsapi.Deps{
		Store:        st,
		Apps:         apps,
		WeChat:       wxauth.NewExchanger(wc, wxauth.NewTokenCache(wc, js, log), log),
		BindTokens:   bindtoken.New(js),
		Passwords:    password.NewHasher(runtime.GOMAXPROCS(0)),
		Failures:     faillimit.New(failureLimit, failureWindow, failureKeys, nil),
		Events:       relay,
		Metrics:      m,
		AutoRegister: cfg.AutoRegister,
	}, log)
	pool := natsrpc.NewPool(poolSize, requestTimeout, log)
	svc, err := a.AddService(nc, pool)
	if err != nil {
		return err
	}
	log.Info("identity ready", "service", svc.Info().Name, "id", svc.Info().ID)

	<-ctx.Done()
	log.Info("identity stopping")
	stopMetrics()
	if err := svc.Stop(); err != nil {
		log.Warn("micro service stop", "error", err)
	}
	pool.Wait()
	stopRelay()
	<-relayDone
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "error", err)
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout):
		log.Warn("nats drain timed out")
	}
	log.Info("identity stopped")
	return nil
}

// serveMetrics serves GET /metrics and GET /healthz on addr ("" = not at
// all) until the returned stop is called (more than once is fine). A port
// that cannot be bound fails the start.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("WXLOGIN_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	// Liveness: the process serves. NATS and Postgres outages are retried
	// inside, and restarting the service would not end them.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "error", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn("metrics server shutdown", "error", err)
			}
			<-done
		})
	}, nil
}

// openDB opens the pool and waits (bounded) for Postgres to answer, so a
// service started together with its database does not fail for nothing.
func openDB(ctx context.Context, dsn string, log *slog.Logger) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("WXLOGIN_DATABASE_URL: %w", err)
	}
	db.SetMaxOpenConns(maxDBConns)
	db.SetMaxIdleConns(maxDBConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	deadline := time.Now().Add(dbStartupWait)
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			return db, nil
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			db.Close()
			return nil, fmt.Errorf("database not reachable: %w", errors.Join(err, ctx.Err()))
		}
		log.Warn("database not reachable yet; retrying", "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// connectNATS connects with unlimited reconnects; closed is closed when the
// connection is (after a drain).
func connectNATS(url string, log *slog.Logger) (*nats.Conn, <-chan struct{}, error) {
	closed := make(chan struct{})
	nc, err := nats.Connect(url,
		nats.Name("wxlogin-identity"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("WXLOGIN_NATS_URL: %w", err)
	}
	return nc, closed, nil
}
