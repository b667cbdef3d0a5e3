// Package httpapi is the gateway's HTTP API: routes, input validation, and
// the calls to the identity and session services behind each route.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/metrics"
	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

func init() {
	// gin's debug mode prints every route and a warning banner to stdout;
	// the mode is process-wide, so set it once here.
	gin.SetMode(gin.ReleaseMode)
}

// Deadlines of the NATS calls: a dead or stuck service turns into
// service_unavailable within these. A login waits longer because identity
// calls WeChat.
const (
	wechatCallTimeout = 3 * time.Second
	callTimeout       = 2 * time.Second
)

// Identity is the identity service as the API uses it (*identity.Client).
type Identity interface {
	MiniProgramLogin(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error)
	GetUser(ctx context.Context, userID string) (api.User, error)
	WebResolve(ctx context.Context, req identity.WebResolveRequest) (identity.LoginResult, error)
	OAResolve(ctx context.Context, req identity.OAResolveRequest) (identity.LoginResult, error)
	AppLogin(ctx context.Context, req identity.AppLoginRequest) (identity.LoginResult, error)
	PasswordLogin(ctx context.Context, req identity.PasswordLoginRequest) (identity.LoginResult, error)
	Register(ctx context.Context, req identity.RegisterRequest) (identity.LoginResult, error)
	Bind(ctx context.Context, req identity.BindRequest) (identity.LoginResult, error)
	UpdateUser(ctx context.Context, req identity.UserUpdateRequest) (api.User, error)
	SetPhone(ctx context.Context, req identity.UserPhoneRequest) (api.User, error)
	DeleteIdentity(ctx context.Context, req identity.IdentityDeleteRequest) error
	AdminSearch(ctx context.Context, req identity.AdminSearchRequest) (identity.AdminSearchResult, error)
	AdminGetUser(ctx context.Context, req identity.AdminUserRequest) (api.User, error)
	AdminSetDisabled(ctx context.Context, req identity.AdminDisableRequest) (api.User, error)
	AdminSetAdmin(ctx context.Context, req identity.AdminSetAdminRequest) (api.User, error)
	AdminStats(ctx context.Context, req identity.AdminStatsRequest) (identity.AdminStats, error)
	AdminAuditRecord(ctx context.Context, req identity.AdminAuditRecordRequest) (identity.AdminAuditRecordResult, error)
	AdminAuditList(ctx context.Context, req identity.AdminAuditListRequest) (identity.AdminAuditPage, error)
	OAQRCreate(ctx context.Context, req identity.OAQRCreateRequest) (identity.OAQRCode, error)
	OAVerify(ctx context.Context, req identity.OAVerifyRequest) (identity.OAVerifyResult, error)
	OAPush(ctx context.Context, req identity.OAPushRequest) (identity.OAPushResult, error)
}

// Session is the session service as the API uses it (*session.Client).
type Session interface {
	Issue(ctx context.Context, req session.IssueRequest) (session.Tokens, error)
	Refresh(ctx context.Context, refreshToken string) (session.Tokens, error)
	Revoke(ctx context.Context, req session.RevokeRequest) error
	List(ctx context.Context, req session.ListRequest) (session.List, error)
	QRCreate(ctx context.Context, req session.QRCreateRequest) (session.QRTicket, error)
	QRComplete(ctx context.Context, req session.QRCompleteRequest) (session.QRStatus, error)
	QRConsume(ctx context.Context, req session.QRConsumeRequest) (session.QRConsumeResult, error)
	OAStart(ctx context.Context, req session.OAStartRequest) (session.OAStart, error)
	OATake(ctx context.Context, req session.OATakeRequest) (session.OATaken, error)
	OACode(ctx context.Context, req session.OACodeRequest) (session.OACode, error)
	OAExchange(ctx context.Context, req session.OAExchangeRequest) (session.QRConsumeResult, error)
}

// Keys verifies access tokens and provides the JWK set to publish.
type Keys interface {
	middleware.Verifier
	JWKS() ([]byte, error)
}

// ReadyFunc lists what keeps the gateway from serving (empty when ready).
type ReadyFunc func(ctx context.Context) []string

// Options are the API's dependencies.
type Options struct {
	Log      *slog.Logger
	Identity Identity
	Session  Session
	Keys     Keys
	Ready    ReadyFunc
	// Connected reports whether NATS is connected. While it is not, API
	// calls fail fast with service_unavailable rather than waiting out their
	// deadline in the reconnect buffer.
	Connected   func() bool
	CORSOrigins []string
	// Metrics records request and login metrics (a fresh set when nil);
	// they are served on the ops listener (WXLOGIN_METRICS_ADDR), never here.
	Metrics *metrics.Metrics
	// IPLimit limits the login-like routes per client address (nil: no limit).
	IPLimit *ratelimit.Limiter
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// gives the client address; none by default, so it is the peer's.
	TrustedProxies []string
	// Revocations is the local view of revoked tokens: live-token routes
	// refuse them, logout adds to it (tokens.go). Nil: live-token routes
	// answer 503 (fail closed).
	Revocations Revocations
	// Web configures the website QR login and the demo page (web.go).
	Web WebOptions
	// Introspection configures token introspection and the metadata (introspect.go).
	Introspection IntrospectOptions
}

type server struct {
	log       *slog.Logger
	identity  Identity
	session   Session
	keys      Keys
	ready     ReadyFunc
	connected func() bool
	metrics   *metrics.Metrics
	// ipLimit limits login-like routes per client address (limits.go).
	// liveToken requires an access token that is not revoked, signedToken
	// one that may be (middleware.RequireLiveToken, RequireSignedToken);
	// every Bearer route names one of them (TestBearerRoutesCheckRevocations).
	ipLimit     gin.HandlerFunc
	liveToken   gin.HandlerFunc
	signedToken gin.HandlerFunc
	// ipLimiter is the limiter behind ipLimit, for routes that charge it
	// only for some answers (a poll without the right poll token, web.go).
	ipLimiter *ratelimit.Limiter
	// revocations and web serve the token and QR routes (tokens.go, web.go).
	revocations   Revocations
	web           *webState
	introspection *introspection
}

// New returns the API as an http.Handler.
func New(o Options) http.Handler {
	s := &server{log: o.Log, identity: o.Identity, session: o.Session, keys: o.Keys, ready: o.Ready, connected: o.Connected}
	s.revocations, s.web = o.Revocations, newWebState(o.Web)
	s.introspection = newIntrospection(o.Introspection)

	r := gin.New()
	// Redirects would be answered before any middleware runs (no request id,
	// no CORS); an unknown path is simply a 404 problem.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	// No proxy is trusted until one is configured: ClientIP is the peer.
	_ = r.SetTrustedProxies(o.TrustedProxies)

	// Metrics come first so every answer counts, 404s and panics included.
	s.metrics, s.ipLimit = o.Metrics, newIPLimit(o.IPLimit)
	s.liveToken = middleware.RequireLiveToken(o.Keys, o.Revocations, o.Log)
	s.signedToken = middleware.RequireSignedToken(o.Keys, o.Log)
	if o.IPLimit != nil && !o.IPLimit.Spec().Off() {
		s.ipLimiter = o.IPLimit
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	r.Use(s.metrics.Middleware())

	// Order matters: the request id first so everything after can use it, the
	// access log outside recovery so a panic is logged as the 500 it became.
	r.Use(middleware.RequestID(), middleware.AccessLog(o.Log), middleware.Recovery(o.Log), middleware.CORS(o.CORSOrigins))
	r.NoRoute(func(c *gin.Context) {
		problem.Write(c, problem.New(api.CodeNotFound, "no such endpoint", middleware.RequestIDOf(c)))
	})
	r.NoMethod(func(c *gin.Context) {
		// gin has set the Allow header.
		p := problem.New(api.CodeInvalidRequest, "method not allowed on this endpoint", middleware.RequestIDOf(c))
		p.Status, p.Title = http.StatusMethodNotAllowed, "Method not allowed"
		problem.Write(c, p)
	})

	// HEAD too: some load balancers probe with it. /healthz is /livez under
	// its older name.
	r.Match([]string{http.MethodGet, http.MethodHead}, "/livez", s.livez)
	r.Match([]string{http.MethodGet, http.MethodHead}, "/healthz", s.livez)
	r.Match([]string{http.MethodGet, http.MethodHead}, "/readyz", s.readyz)
	r.GET("/.well-known/jwks.json", s.jwks)

	v1 := r.Group("/api/v1", s.requireNATS)
	v1.POST("/auth/miniprogram/login", s.ipLimit, s.miniProgramLogin)
	v1.POST("/auth/app/login", s.ipLimit, s.appLogin)
	v1.GET("/me", s.liveToken, s.me)
	// Each route family registers itself from its own file.
	s.registerWeb(r, v1)           // web.go, demo.go: QR login, callback page, polls, /demo
	s.registerTokens(v1)           // tokens.go: refresh, logout
	s.registerAccounts(v1)         // accounts.go: register, password, bind, profile, phone, identities
	s.registerAdmin(v1)            // admin.go
	s.registerIntrospection(r, v1) // introspect.go: RFC 7662 introspection, RFC 8414 metadata
	s.registerOAFollow(v1)         // oafollow.go: follow-to-log-in QR codes, the official account's server URL
	s.registerDocs(r)              // docs.go: /openapi.json, /docs
	// adminui.go: the admin console at /admin.
	s.registerAdminConsole(r, o.Web.WechatOpenBase)
	return r
}

// requireNATS answers 503 at once while NATS is down.
func (s *server) requireNATS(c *gin.Context) {
	if s.connected != nil && !s.connected() {
		problem.Write(c, problem.New(api.CodeServiceUnavailable, "the backend is not reachable; try again shortly", middleware.RequestIDOf(c)))
		return
	}
	c.Next()
}

// fail answers with the problem for err, unless the client has gone away.
func (s *server) fail(c *gin.Context, err error) {
	if s.clientGone(c) {
		return
	}
	problem.Fail(c, s.log, err)
}

// clientGone reports whether the client has gone away (its request context
// is done), and if so ends the request quietly: nobody reads an answer, and
// the backend call it cut short is no failure of ours, so it must not log an
// error nor count as a 5xx. The contract has no status for it, so none is
// set (the access log and metrics then show gin's default, 200).
func (s *server) clientGone(c *gin.Context) bool {
	ctx := c.Request.Context()
	if ctx.Err() == nil {
		return false
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "client went away before the answer",
		slog.String("request_id", middleware.RequestIDOf(c)), slog.String("route", c.FullPath()))
	c.Abort()
	return true
}
