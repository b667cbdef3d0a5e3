// Command fakewechat serves the fake WeChat (shared/wechat/fakewechat) over
// HTTP for development, demos and tests in other languages. Point
// WXLOGIN_WECHAT_API_BASE (and WXLOGIN_WECHAT_OPEN_BASE) at it; mint codes
// with POST /fake/codes (see GET /fake/), or log in through the QR pages
// (/connect/qrconnect and the phone page it links to).
//
// Environment:
//
//	FAKEWECHAT_ADDR    listen address, default 127.0.0.1:9090
//	FAKEWECHAT_APPS    optional "appid:secret:kind,..." (kind miniprogram, web,
//	                   officialaccount or app); default the devstack apps
//	FAKEWECHAT_OA_DOMAIN optional web-authorization domain (host or host:port)
//	                   of every official account: its authorization page
//	                   refuses a redirect_uri elsewhere; default any
//	FAKEWECHAT_PUBLIC_URL optional address a phone reaches the fake at (e.g.
//	                   http://192.168.1.20:9090), put in the QR code; default
//	                   derived from each request's Host
//	FAKEWECHAT_LOAD_CODES true: accept "load:<openid>[:<unionid>]" codes any
//	                   number of times, for benchmarks (default false)
//	FAKEWECHAT_OA_SERVER_URL optional server URL of the official account
//	                   FAKEWECHAT_OA_APPID (default the devstack's, or the
//	                   first officialaccount app), where its follow and scan
//	                   pushes go, signed with FAKEWECHAT_OA_TOKEN and, when
//	                   FAKEWECHAT_OA_AES_KEY is set, in safe mode
//	WXLOGIN_LOG_LEVEL  debug, info (default), warn or error
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fakewechat:", err)
		os.Exit(1)
	}
}

type config struct {
	Addr      string `env:"FAKEWECHAT_ADDR" envDefault:"127.0.0.1:9090"`
	Apps      string `env:"FAKEWECHAT_APPS"`
	PublicURL string `env:"FAKEWECHAT_PUBLIC_URL"`
	LoadCodes bool   `env:"FAKEWECHAT_LOAD_CODES"`
	OADomain  string `env:"FAKEWECHAT_OA_DOMAIN"`
	LogLevel  string `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`
	// The official account's console: its server configuration.
	OAAppID     string `env:"FAKEWECHAT_OA_APPID"`
	OAServerURL string `env:"FAKEWECHAT_OA_SERVER_URL"`
	OAToken     string `env:"FAKEWECHAT_OA_TOKEN"`
	OAAESKey    string `env:"FAKEWECHAT_OA_AES_KEY"`

	level slog.Level
	apps  []fakewechat.App
}

// loadConfig reads the configuration from environ (os.Environ as a map); a bad
// value is one error naming its variable.
func loadConfig(environ map[string]string) (config, error) {
	var cfg config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return config{}, err
	}
	if err := cfg.level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return config{}, fmt.Errorf("WXLOGIN_LOG_LEVEL: %q is not debug, info, warn or error", cfg.LogLevel)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return config{}, fmt.Errorf("FAKEWECHAT_ADDR: %q is not host:port: %w", cfg.Addr, err)
	}
	if err := fakewechat.ValidatePublicURL(cfg.PublicURL); err != nil {
		return config{}, fmt.Errorf("FAKEWECHAT_PUBLIC_URL: %w", err)
	}
	cfg.apps = fakewechat.DefaultApps()
	if strings.TrimSpace(cfg.Apps) != "" {
		apps, err := fakewechat.ParseApps(cfg.Apps)
		if err != nil {
			return config{}, fmt.Errorf("FAKEWECHAT_APPS: %w", err)
		}
		cfg.apps = apps
	}
	if cfg.OAAppID == "" {
		for _, a := range cfg.apps {
			if a.Kind == api.KindOfficialAccount && (cfg.OAAppID == "" || a.AppID == fakewechat.DevOAAppID) {
				cfg.OAAppID = a.AppID
			}
		}
	}
	if cfg.OAServerURL != "" && cfg.OAToken == "" {
		return config{}, errors.New("FAKEWECHAT_OA_TOKEN: must be set with FAKEWECHAT_OA_SERVER_URL")
	}
	for i, a := range cfg.apps {
		if a.Kind == "officialaccount" && a.Domain == "" {
			cfg.apps[i].Domain = strings.TrimSpace(cfg.OADomain)
			if err := cfg.apps[i].Validate(); err != nil {
				return config{}, fmt.Errorf("FAKEWECHAT_OA_DOMAIN: %w", err)
			}
		}
	}
	return cfg, nil
}

func run(ctx context.Context) error {
	cfg, err := loadConfig(env.ToMap(os.Environ()))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.level})).With("svc", "fakewechat")
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on FAKEWECHAT_ADDR %s: %w", cfg.Addr, err)
	}
	return serve(ctx, cfg, log, ln)
}

// serve answers on ln until ctx is cancelled, then shuts down gracefully.
func serve(ctx context.Context, cfg config, log *slog.Logger, ln net.Listener) error {
	fake := fakewechat.New(fakewechat.Options{Apps: cfg.apps, Logger: log, PublicURL: cfg.PublicURL, LoadCodes: cfg.LoadCodes})
	if cfg.OAServerURL != "" {
		srv := fakewechat.OAServer{URL: cfg.OAServerURL, Token: cfg.OAToken, EncodingAESKey: cfg.OAAESKey}
		if err := fake.SetOAServer(cfg.OAAppID, srv); err != nil {
			return fmt.Errorf("FAKEWECHAT_OA_SERVER_URL (official account %q): %w", cfg.OAAppID, err)
		}
		log.Info("fakewechat: official account server URL", "appid", cfg.OAAppID, "url", cfg.OAServerURL, "safe_mode", cfg.OAAESKey != "")
	}
	srv := &http.Server{
		Handler:           fake,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Requests end with ctx: the QR page's long-polls do not hold up
		// the shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	for _, a := range cfg.apps {
		log.Info("fakewechat: app", "appid", a.AppID, "kind", a.Kind) // never the secret
	}
	if cfg.LoadCodes {
		log.Warn("fakewechat: load mode on: load:<openid> codes log anyone in, any number of times")
	}
	log.Info("fakewechat: listening", "addr", ln.Addr().String(), "control", "http://"+ln.Addr().String()+"/fake/")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("fakewechat: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
