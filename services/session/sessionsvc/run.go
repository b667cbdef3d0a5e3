package sessionsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jssetup"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/opshttp"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/metrics"
	"github.com/wxlogin/wxlogin/services/session/internal/sessions"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// Version is reported to `nats micro ls`.
const Version = "0.1.0"

const (
	requestTimeout = 2 * time.Second
	drainTimeout   = 5 * time.Second
)

// Run serves the session endpoints until ctx is cancelled, then stops
// gracefully and returns nil. It returns an error if startup fails; while
// NATS is not reachable yet it keeps retrying.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	// A static key is checked before anything connects, so a bad file fails fast.
	static, err := staticKeyring(cfg)
	if err != nil {
		return err
	}
	registry, err := cfg.Apps()
	if err != nil {
		return err
	}
	log.Info("session service starting", "config", cfg, "apps", registry)

	// Connecting does not wait for the server (it retries in the background).
	nc, err := connect(cfg, "wxlogin-session", true, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	m := metrics.New(api.KindMiniProgram, api.KindWeb, api.KindOfficialAccount, api.KindApp, api.KindPassword)
	// serving is true while the endpoints are registered; with a NATS
	// connection that makes the replica healthy.
	var serving atomic.Bool
	ready := func(context.Context) error {
		switch {
		case !serving.Load():
			return errors.New("not serving (starting or stopping)")
		case !nc.IsConnected():
			return errors.New("NATS not connected")
		}
		return nil
	}
	// The ops server listens before the (possibly slow) JetStream setup, so a
	// taken port fails the start at once; it stays up until Run returns.
	ops, err := opshttp.Listen(cfg.MetricsAddr, m.Registry(), ready, log, opshttp.WithPprof(cfg.Pprof))
	if err != nil {
		return fmt.Errorf("WXLOGIN_METRICS_ADDR: %w", err)
	}
	stopOps := ops.Start()
	defer stopOps()

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	var (
		buckets *kvstate.Buckets
		users   *kvstate.UserRevocations
		keys    = static
		ttls    = kvstate.TTLs{Access: cfg.AccessTTL, Refresh: cfg.RefreshTTL, QR: cfg.QRTTL,
			QRMaxBytes: cfg.QRMaxBytes, SessionsMaxBytes: cfg.SessionsMaxBytes}
	)
	err = jssetup.Retry(ctx, nc, log, func(ctx context.Context) error {
		b, err := kvstate.Open(ctx, js, ttls, cfg.NATSReplicas)
		if err != nil {
			return jssetup.ReplicasError(err, cfg.NATSReplicas)
		}
		buckets = b
		if keys == nil {
			if keys, err = tokens.OpenKVKeyring(ctx, js, b.Keys, keyRetention(cfg), log); err != nil {
				return err
			}
		}
		users, err = kvstate.WatchUserRevocations(ctx, js, b.Sessions, ttls.Refresh, log)
		return err
	})
	if keys != nil {
		defer keys.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while still starting
		}
		return err
	}
	defer users.Stop()

	svc := sessions.New(sessions.Deps{
		Keys:            keys,
		Minter:          tokens.NewMinter(keys, cfg.JWTIssuer, cfg.JWTAudience, cfg.AccessTTL),
		Families:        kvstate.NewFamilies(buckets.Sessions),
		Revocations:     kvstate.NewRevocations(buckets.Revoked, cfg.AccessTTL),
		UserRevocations: users,
		Tickets:         kvstate.NewTickets(buckets.QR),
		OAStates:        kvstate.NewOAStates(buckets.OA),
		OACodes:         kvstate.NewOACodes(buckets.OA),
		Apps:            registry,
		RefreshTTL:      cfg.RefreshTTL,
		QRTTL:           cfg.QRTTL,
		Log:             log,
		Metrics:         m,
		MaxFamilies:     cfg.MaxSessionsPerUser,
	})
	pool := natsrpc.NewPool(natsrpc.Workers(cfg.Workers), requestTimeout, log)
	ms, err := micro.AddService(nc, micro.Config{
		Name:        session.Service,
		Version:     Version,
		Description: "wxlogin tokens, refresh families, QR tickets and signing keys",
		QueueGroup:  session.Service,
	})
	if err != nil {
		return fmt.Errorf("micro service: %w", err)
	}
	if err := svc.AddEndpoints(ms, pool); err != nil {
		_ = ms.Stop()
		return err
	}
	serving.Store(true)
	log.Info("session service ready", "kid", keys.SigningKeyID(time.Now()))

	<-ctx.Done()
	serving.Store(false)
	log.Info("session service stopping")
	if err := ms.Stop(); err != nil {
		log.Warn("stop micro service", "error", err)
	}
	pool.Close() // requests micro still delivers after Stop get service_unavailable
	pool.Wait()
	users.Stop()
	keys.Close()
	natsconn.Drain(nc, drainTimeout, log)
	return nil
}

// keyRetention is how long a retired key stays published: its tokens live
// at most one access TTL after it stops signing; twice that covers skew and
// verifiers that refresh their key set late.
func keyRetention(cfg Config) time.Duration { return 2 * cfg.AccessTTL }

// staticKeyring returns the keyring of an HS256 secret or a key file, or nil
// when keys are generated and shared through KV.
func staticKeyring(cfg Config) (*tokens.Keyring, error) {
	switch {
	case cfg.JWTAlg == jwtverify.AlgHS256:
		k, err := tokens.NewSecretKeyring([]byte(cfg.JWTSecret))
		if err != nil {
			return nil, fmt.Errorf("WXLOGIN_JWT_SECRET: %w", err)
		}
		return k, nil
	case cfg.JWTKeyFile != "":
		data, err := os.ReadFile(cfg.JWTKeyFile)
		if err != nil {
			return nil, fmt.Errorf("WXLOGIN_JWT_KEY_FILE: %w", err)
		}
		k, err := tokens.NewPEMKeyring(data)
		if err != nil {
			return nil, fmt.Errorf("WXLOGIN_JWT_KEY_FILE: %s: %w", cfg.JWTKeyFile, err)
		}
		return k, nil
	}
	return nil, nil
}

// connect connects as the session user. With retry, a server that is not
// up yet is retried in the background instead of failing the start.
func connect(cfg Config, name string, retry bool, log *slog.Logger) (*nats.Conn, error) {
	return natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Credentials: cfg.NATSAuth, Name: name, Role: natsconn.Session, Retry: retry, Log: log,
	})
}
