package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/services/session/sessionsvc"
	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// The devstack's apps; the fake WeChat knows them.
const (
	devMiniProgramAppID  = "wx1111111111111111"
	devMiniProgramSecret = "devstack-miniprogram-secret"
	devWebAppID          = "wx2222222222222222"
	devWebSecret         = "devstack-web-secret"
)

// Options configure the devstack. The services' own variables (docs/configuration.md)
// are read by each service as usual; these are the devstack's extras.
type Options struct {
	DatabaseURL string     `env:"WXLOGIN_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/wxlogin?sslmode=disable"`
	HTTPAddr    string     `env:"WXLOGIN_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	DataDir     string     `env:"WXLOGIN_DEVSTACK_DIR" envDefault:".devstack"`
	NATSPort    int        `env:"WXLOGIN_DEVSTACK_NATS_PORT" envDefault:"4223"`
	FakeAddr    string     `env:"WXLOGIN_DEVSTACK_FAKE_ADDR" envDefault:"127.0.0.1:8081"`
	LogLevel    slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`
}

func optionsFromEnv() (Options, error) {
	var o Options
	if err := env.Parse(&o); err != nil {
		return o, fmt.Errorf("config: %w", err)
	}
	return o, nil
}

// Stack is a running devstack.
type Stack struct {
	GatewayURL string
	FakeURL    string
	NATSURL    string
	Fake       *fakewechat.Server
	// WebhooksURL is the webhooks service's ops server (/metrics, /readyz);
	// "" when WXLOGIN_WEBHOOKS_FILE is not set and the service does not run.
	WebhooksURL string

	group *errgroup.Group
	// natsDown is closed once the embedded NATS server has shut down (after
	// every service): its store is then no longer written to.
	natsDown chan struct{}
}

// Start brings every part up and returns once the gateway is ready. The
// stack stops when ctx is cancelled; Wait returns when it has.
func Start(ctx context.Context, o Options, log *slog.Logger) (*Stack, error) {
	if err := ensureDatabase(ctx, o.DatabaseURL); err != nil {
		return nil, err
	}
	passwords := natsPasswords()
	ns, err := startNATS(o, passwords)
	if err != nil {
		return nil, err
	}
	// Each service connects as its own NATS user, as in production.
	creds := func(user string) natsconn.Credentials {
		return natsconn.Credentials{User: user, Password: passwords[user]}
	}

	fakeLn, err := net.Listen("tcp", o.FakeAddr)
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("fake WeChat listener on %s: %w (set WXLOGIN_DEVSTACK_FAKE_ADDR)", o.FakeAddr, err)
	}
	gwLn, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		ns.Shutdown()
		fakeLn.Close()
		return nil, fmt.Errorf("gateway listener on %s: %w (set WXLOGIN_HTTP_ADDR)", o.HTTPAddr, err)
	}
	// The official account's web-authorization domain is where WeChat
	// sends the browser back: the gateway's public host.
	oaDomain := gwLn.Addr().String()
	if u, err := url.Parse(os.Getenv("WXLOGIN_PUBLIC_URL")); err == nil && u.Host != "" {
		oaDomain = u.Host
	}
	fake := fakewechat.New(fakewechat.Options{
		Apps: []fakewechat.App{
			{AppID: devMiniProgramAppID, Secret: devMiniProgramSecret, Kind: "miniprogram"},
			{AppID: devWebAppID, Secret: devWebSecret, Kind: "web"},
			{AppID: fakewechat.DevOAAppID, Secret: fakewechat.DevOASecret, Kind: "officialaccount", Domain: oaDomain},
			{AppID: fakewechat.DevAppAppID, Secret: fakewechat.DevAppSecret, Kind: "app"},
		},
		Logger: log.With("svc", "fakewechat"),
	})
	st := &Stack{
		GatewayURL: "http://" + gwLn.Addr().String(),
		FakeURL:    "http://" + fakeLn.Addr().String(),
		NATSURL:    ns.ClientURL(),
		Fake:       fake,
	}

	// Each service reads its own variables; the devstack only points them at
	// its NATS, its database and its fake WeChat.
	idCfg, err := identitysvc.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	idCfg.NATSURL, idCfg.NATSAuth = st.NATSURL, creds(natsauth.Identity)
	// One embedded server, one process: no replicas, no per-service ports.
	idCfg.NATSReplicas, idCfg.MetricsAddr = 1, ""
	idCfg.DatabaseURL = o.DatabaseURL
	if os.Getenv("WXLOGIN_WECHAT_API_BASE") == "" {
		idCfg.WechatAPIBase = st.FakeURL
	}
	if idCfg.MiniProgramAppID == "" {
		idCfg.MiniProgramAppID, idCfg.MiniProgramSecret = devMiniProgramAppID, devMiniProgramSecret
	}
	if idCfg.WebAppID == "" {
		idCfg.WebAppID, idCfg.WebSecret = devWebAppID, devWebSecret
	}
	if idCfg.OAAppID == "" {
		idCfg.OAAppID, idCfg.OASecret, idCfg.OAToken = fakewechat.DevOAAppID, fakewechat.DevOASecret, fakewechat.DevOAToken
	}
	if idCfg.AppAppID == "" {
		idCfg.AppAppID, idCfg.AppSecret = fakewechat.DevAppAppID, fakewechat.DevAppSecret
	}
	seCfg, err := sessionsvc.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	seCfg.NATSURL, seCfg.NATSAuth = st.NATSURL, creds(natsauth.Session)
	// One embedded server, one process: no replicas, no per-service ports.
	seCfg.NATSReplicas, seCfg.MetricsAddr = 1, ""
	if seCfg.WebAppID == "" && idCfg.WebAppID == devWebAppID {
		seCfg.WebAppID = devWebAppID // session names QR tickets' app; it never sees the secret
	}
	if seCfg.MiniProgramAppID == "" && idCfg.MiniProgramAppID == devMiniProgramAppID {
		seCfg.MiniProgramAppID = devMiniProgramAppID
	}
	if seCfg.OAAppID == "" && idCfg.OAAppID == fakewechat.DevOAAppID {
		seCfg.OAAppID = fakewechat.DevOAAppID
	}
	if seCfg.AppAppID == "" && idCfg.AppAppID == fakewechat.DevAppAppID {
		seCfg.AppAppID = fakewechat.DevAppAppID
	}
	gwCfg, err := gatewaysvc.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	gwCfg.NATSURL, gwCfg.NATSAuth = st.NATSURL, creds(natsauth.Gateway)
	// gwCfg.MetricsAddr stays as WXLOGIN_METRICS_ADDR sets it (off by
	// default): the gateway alone may serve its /metrics there, identity's
	// and session's would take the same address.
	if os.Getenv("WXLOGIN_PUBLIC_URL") == "" {
		gwCfg.PublicURL = st.GatewayURL
	}
	if os.Getenv("WXLOGIN_WECHAT_OPEN_BASE") == "" {
		gwCfg.WechatOpenBase = st.FakeURL // the fake's QR page and "phone"
	}
	if os.Getenv("WXLOGIN_WECHAT_MP_BASE") == "" {
		idCfg.WechatMPBase = st.FakeURL // the follow QR codes' images
	}
	if idCfg.OAAppID == fakewechat.DevOAAppID {
		// The fake official account's console: its server URL is ours.
		err := fake.SetOAServer(idCfg.OAAppID, fakewechat.OAServer{
			URL:   strings.TrimSuffix(gwCfg.PublicURL, "/") + "/api/v1/wechat/oa/" + idCfg.OAAppID + "/events",
			Token: idCfg.OAToken, EncodingAESKey: idCfg.OAAESKey,
		})
		if err != nil {
			return nil, fmt.Errorf("fake WeChat official account: %w", err)
		}
	}
	if len(gwCfg.RedirectURIs) == 0 {
		gwCfg.RedirectURIs = []string{gwCfg.PublicURL + "/demo"} // the demo's in-WeChat tab
	}
	// The webhooks service runs when there are endpoints to deliver to.
	var whCfg webhooksvc.Config
	webhooks := os.Getenv("WXLOGIN_WEBHOOKS_FILE") != "" || os.Getenv("WXLOGIN_WEBHOOKS_FILE_FILE") != ""
	if webhooks {
		if whCfg, err = webhooksvc.ConfigFromEnv(); err != nil {
			return nil, err
		}
		whCfg.NATSURL, whCfg.NATSAuth = st.NATSURL, creds(natsauth.Events)
		whCfg.NATSReplicas = 1
		if _, err := whCfg.Endpoints(); err != nil {
			return nil, err // a bad file stops the devstack now, not its webhooks later
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	st.group = g
	// Requests end with the stack: the QR page's long-polls do not hold up
	// the shutdown.
	fakeSrv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return gctx }}
	g.Go(func() error {
		if err := fakeSrv.Serve(fakeLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("fake WeChat: %w", err)
		}
		return nil
	})
	g.Go(func() error { return identitysvc.Run(gctx, idCfg, log.With("svc", "identity")) })
	g.Go(func() error { return sessionsvc.Run(gctx, seCfg, log.With("svc", "session")) })
	g.Go(func() error { return gatewaysvc.Serve(gctx, gwCfg, log.With("svc", "gateway"), gwLn) })
	if webhooks {
		// Its ops server on a port of its own, so that Start returns once
		// its consumers are in place (and a bad endpoint fails the start).
		whLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(err, g.Wait())
		}
		st.WebhooksURL = "http://" + whLn.Addr().String()
		g.Go(func() error { return webhooksvc.Serve(gctx, whCfg, log.With("svc", "webhooks"), whLn) })
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fakeSrv.Shutdown(sctx)
		// NATS goes last: the services drain their connections first.
		return nil
	})
	st.natsDown = make(chan struct{})
	go func() {
		defer close(st.natsDown)
		_ = g.Wait()
		ns.Shutdown()
		ns.WaitForShutdown()
	}()

	if err := waitReady(gctx, st.GatewayURL+"/readyz", 30*time.Second); err != nil {
		return nil, errors.Join(err, g.Wait())
	}
	if webhooks {
		if err := waitReady(gctx, st.WebhooksURL+"/readyz", 30*time.Second); err != nil {
			return nil, errors.Join(fmt.Errorf("webhooks service: %w", err), g.Wait())
		}
	}
	return st, nil
}

// Wait blocks until every part has stopped and returns the first failure.
func (s *Stack) Wait() error {
	err := s.group.Wait()
	<-s.natsDown
	return err
}

// Banner is the copy-paste quick start printed once the stack is up.
func (s *Stack) Banner() string {
	return fmt.Sprintf(`
wxlogin devstack is up.
  API and demo   %[1]s/demo
  fake WeChat    %[2]s/fake/
  NATS           %[3]s   (users as in deploy/nats/auth.conf; passwords generated,
                 or set WXLOGIN_NATS_EVENTS_PASSWORD to read events as user events)

Try a mini-program login:
  CODE=$(curl -s -X POST %[2]s/fake/codes -d '{"appid":"%[4]s","nickname":"Alice"}' | sed 's/.*"code":"\([^"]*\)".*/\1/')
  curl -s -X POST %[1]s/api/v1/auth/miniprogram/login -H 'Content-Type: application/json' -d "{\"code\":\"$CODE\"}"

The same with a mobile app's code: appid %[5]s and POST %[1]s/api/v1/auth/app/login.
The in-WeChat browser login (official account): %[1]s/demo?mode=oa
%[6]s
`, s.GatewayURL, s.FakeURL, s.NATSURL, devMiniProgramAppID, fakewechat.DevAppAppID, s.webhooksLine())
}

// webhooksLine says where the events go as webhooks, or how to send them.
func (s *Stack) webhooksLine() string {
	if s.WebhooksURL == "" {
		return "Webhooks are off: set WXLOGIN_WEBHOOKS_FILE to your endpoints (README, \"Webhooks\").\n"
	}
	return "Webhooks: the events go to the endpoints of WXLOGIN_WEBHOOKS_FILE (metrics " + s.WebhooksURL + "/metrics).\n"
}

// natsPasswords are the NATS users' passwords: from the variables the
// production server reads (WXLOGIN_NATS_EVENTS_PASSWORD, ...) where set,
// else random for this run.
func natsPasswords() map[string]string {
	passwords := natsauth.RandomPasswords()
	for _, u := range natsauth.Users() {
		if v := os.Getenv(natsauth.PasswordVar(u)); v != "" {
			passwords[u] = v
		}
	}
	return passwords
}

// startNATS runs the embedded server with the production users and
// permissions (shared/natsauth): no anonymous access.
func startNATS(o Options, passwords map[string]string) (*server.Server, error) {
	dir, err := filepath.Abs(filepath.Join(o.DataDir, "nats"))
	if err != nil {
		return nil, err
	}
	users, err := natsauth.ServerUsers(passwords)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "wxlogin-devstack",
		Host:       "127.0.0.1",
		Port:       o.NATSPort,
		JetStream:  true,
		StoreDir:   dir,
		Users:      users,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on port %d (in use? set WXLOGIN_DEVSTACK_NATS_PORT)", o.NATSPort)
	}
	return ns, nil
}

// ensureDatabase creates the database named in dsn when it is missing, so a
// fresh Postgres is all the devstack needs. Migrations are identity's job.
func ensureDatabase(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("WXLOGIN_DATABASE_URL is not a postgres:// URL")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return fmt.Errorf("WXLOGIN_DATABASE_URL names no database")
	}
	admin := *u
	admin.Path = "/postgres"
	db, err := sqlx.Open("postgres", admin.String())
	if err != nil {
		return err
	}
	defer db.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		return fmt.Errorf("PostgreSQL is not reachable at %s (%v). Start one, e.g. `sudo apt-get install postgresql` or "+
			"`docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:17`, or point WXLOGIN_DATABASE_URL at yours",
			u.Redacted(), err)
	}
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = db.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(name))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // created meanwhile by someone else
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

func waitReady(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s", url, limit)
		case <-t.C:
		}
	}
}
