package identitysvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/accounts"
	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/metrics"
	"github.com/wxlogin/wxlogin/services/identity/internal/oapushes"
	"github.com/wxlogin/wxlogin/services/identity/internal/outbox"
	"github.com/wxlogin/wxlogin/services/identity/internal/password"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/envconfig"
	"github.com/wxlogin/wxlogin/shared/jssetup"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/opshttp"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

const (
	// Handlers wait on WeChat: many run at once (Config.Workers), each
	// within requestTimeout. Password hashing (CPU and 19 MiB each) is
	// bounded separately, to the CPUs: see password.Hasher.
	requestTimeout = 5 * time.Second
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
		return envconfig.RedactError(fmt.Errorf("database: %w", err), dsn)
	}
	defer db.Close()
	return envconfig.RedactError(store.Migrate(ctx, db.DB, log), dsn)
}

// Run serves identity until ctx is cancelled, then stops in order (micro
// service, in-flight handlers, outbox relay, NATS drain, database) and
// returns nil. It returns an error if it cannot start; while NATS is not
// reachable yet it keeps retrying.
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

	m := metrics.New()
	// ready is set while the endpoints are registered; /healthz is 503
	// before (starting) and after (stopping).
	var ready atomic.Pointer[readiness]
	// The ops server listens before the (possibly slow) database and
	// JetStream setup, so a taken port fails the start at once; it stays up
	// until Run returns.
	ops, err := opshttp.Listen(cfg.MetricsAddr, m.Registry(), func(ctx context.Context) error { return ready.Load().check(ctx) }, log, opshttp.WithPprof(cfg.Pprof))
	if err != nil {
		return fmt.Errorf("WXLOGIN_METRICS_ADDR: %w", err)
	}
	stopOps := ops.Start()
	defer stopOps()

	db, err := openDB(ctx, cfg.DatabaseURL, cfg.dbConns(), log)
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

	nc, err := natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Credentials: cfg.NATSAuth, Name: "wxlogin-identity", Role: natsconn.Identity,
		Retry: true, Log: log,
	})
	if err != nil {
		return err
	}
	defer nc.Close() // after a drain, a no-op

	relay, err := outbox.New(db, nc, log.With("component", "outbox"), outbox.Options{Published: m.EventsPublished, Replicas: cfg.NATSReplicas})
	if err != nil {
		return err
	}
	m.WatchOutbox(relay.Pending)
	direct, err := outbox.NewDirect(nc, log.With("component", "events"), requestTimeout, m.EventLost)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// The stream and buckets are created here, not only on first use, so a
	// replica count JetStream cannot place fails the start, naming the variable.
	err = jssetup.Retry(ctx, nc, log, func(ctx context.Context) error {
		return createAssets(ctx, js, cfg.NATSReplicas)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while still starting
		}
		return err
	}
	// The relay outlives ctx a little: it stops after the handlers are done.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		_ = relay.Run(relayCtx)
	}()
	defer func() { stopRelay(); <-relayDone }()

	logins := store.NewLoginCounter(st, 0, log.With("component", "login-counts"))
	countsCtx, stopCounts := context.WithCancel(context.WithoutCancel(ctx))
	countsDone := make(chan struct{})
	go func() {
		defer close(countsDone)
		_ = logins.Run(countsCtx) // flushes once more when stopped, after the handlers
	}()
	defer func() { stopCounts(); <-countsDone }()

	wc := wechat.New(wechat.Options{APIBase: cfg.WechatAPIBase})
	a := accounts.New(accounts.Deps{
		Store:        st,
		Apps:         apps,
		WeChat:       wxauth.NewExchanger(wc, wxauth.NewTokenCache(wc, js, cfg.NATSReplicas, log), log),
		BindTokens:   bindtoken.New(js, cfg.NATSReplicas),
		Passwords:    password.NewHasher(runtime.GOMAXPROCS(0)),
		Failures:     faillimit.New(js, cfg.NATSReplicas, faillimit.DefaultLimits, nil),
		Events:       relay,
		Direct:       direct,
		Logins:       logins,
		Metrics:      m,
		AutoRegister: cfg.AutoRegister,
		Pushes:       oapushes.New(js, cfg.NATSReplicas),
		WechatMPBase: strings.TrimRight(cfg.WechatMPBase, "/"),
		OALoginReply: cfg.OALoginReply,
	}, log)
	pool := natsrpc.NewPool(natsrpc.Workers(cfg.Workers), requestTimeout, log)
	svc, err := a.AddService(nc, pool)
	if err != nil {
		return err
	}
	ready.Store(&readiness{nc: nc, db: db})
	log.Info("identity ready", "service", svc.Info().Name, "id", svc.Info().ID)

	<-ctx.Done()
	ready.Store(nil)
	log.Info("identity stopping")
	if err := svc.Stop(); err != nil {
		log.Warn("micro service stop", "error", err)
	}
	pool.Close() // requests micro still delivers after Stop get service_unavailable
	pool.Wait()
	stopRelay()
	<-relayDone
	natsconn.Drain(nc, drainTimeout, log)
	log.Info("identity stopped")
	return nil
}

// readiness is what /healthz checks while identity serves: every request
// arrives over NATS and needs Postgres.
type readiness struct {
	nc *nats.Conn
	db *sqlx.DB
}

// check is nil when ready; a nil *readiness is not serving.
func (r *readiness) check(ctx context.Context) error {
	switch {
	case r == nil:
		return errors.New("not serving (starting or stopping)")
	case !r.nc.IsConnected():
		return errors.New("NATS not connected")
	}
	if err := r.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// createAssets creates, or updates to this configuration, every JetStream
// asset identity writes to: the event stream and the KV buckets. Each
// replica runs it at start; with the same configuration that is a no-op.
func createAssets(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := js.CreateOrUpdateStream(ctx, outbox.StreamConfig(replicas)); err != nil {
		return jssetup.ReplicasError(fmt.Errorf("stream %s: %w", identity.EventStream, err), replicas)
	}
	for _, kv := range []jetstream.KeyValueConfig{bindtoken.BucketConfig(replicas), wxauth.BucketConfig(replicas), faillimit.BucketConfig(replicas), oapushes.BucketConfig(replicas)} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return jssetup.ReplicasError(fmt.Errorf("kv bucket %s: %w", kv.Bucket, err), replicas)
		}
	}
	return nil
}

// openDB opens the pool and waits (bounded) for Postgres to answer, so a
// service started together with its database does not fail for nothing.
func openDB(ctx context.Context, dsn string, conns int, log *slog.Logger) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, envconfig.RedactError(fmt.Errorf("WXLOGIN_DATABASE_URL: %w", err), dsn)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// lib/pq parses the DSN on connecting, and its errors quote it.
		return struct{}{}, envconfig.RedactError(db.PingContext(pctx), dsn)
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 200 * time.Millisecond, Multiplier: 2, MaxInterval: 2 * time.Second}),
		backoff.WithMaxElapsedTime(dbStartupWait),
		backoff.WithNotify(func(err error, wait time.Duration) {
			log.Warn("database not reachable yet; retrying", "retry_in", wait, "error", err)
		}))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("database not reachable: %w", err)
	}
	return db, nil
}
