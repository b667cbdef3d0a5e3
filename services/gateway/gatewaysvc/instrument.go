package gatewaysvc

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxlogin/wxlogin/services/gateway/internal/httpapi"
	"github.com/wxlogin/wxlogin/services/gateway/internal/metrics"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// The clients are wrapped to time every NATS request by subject and to count
// logins: a login fails where identity (or session) refuses it and succeeds
// when session issues its tokens. The observers are resolved once, so a
// request costs no label lookup. A method added to the interfaces later
// passes through the embedded client untimed until it is added here.

type timedIdentity struct {
	httpapi.Identity
	m                                                              *metrics.Metrics
	mpLogin, userGet, webResolve, pwLogin, register, bind, update  prometheus.Observer
	phone, identityDelete, adminSearch, adminGet, adminSetDisabled prometheus.Observer
}

func instrumentIdentity(c httpapi.Identity, m *metrics.Metrics) httpapi.Identity {
	return &timedIdentity{
		Identity: c, m: m,
		mpLogin:          m.NATS(identity.SubjectMiniProgramLogin),
		userGet:          m.NATS(identity.SubjectUserGet),
		webResolve:       m.NATS(identity.SubjectWebResolve),
		pwLogin:          m.NATS(identity.SubjectPasswordLogin),
		register:         m.NATS(identity.SubjectRegister),
		bind:             m.NATS(identity.SubjectBind),
		update:           m.NATS(identity.SubjectUserUpdate),
		phone:            m.NATS(identity.SubjectUserPhone),
		identityDelete:   m.NATS(identity.SubjectIdentityDelete),
		adminSearch:      m.NATS(identity.SubjectAdminUsersSearch),
		adminGet:         m.NATS(identity.SubjectAdminUserGet),
		adminSetDisabled: m.NATS(identity.SubjectAdminUserDisabled),
	}
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

// loginFailed counts a login refused before tokens were issued.
func (t *timedIdentity) loginFailed(kind string, err error) {
	if err != nil {
		t.m.Login(kind, err)
	}
}

func (t *timedIdentity) MiniProgramLogin(ctx context.Context, req identity.MiniProgramLoginRequest) (identity.LoginResult, error) {
	start := time.Now()
	res, err := t.Identity.MiniProgramLogin(ctx, req)
	since(t.mpLogin, start)
	t.loginFailed(api.KindMiniProgram, err)
	return res, err
}

func (t *timedIdentity) GetUser(ctx context.Context, userID string) (api.User, error) {
	start := time.Now()
	u, err := t.Identity.GetUser(ctx, userID)
	since(t.userGet, start)
	return u, err
}

func (t *timedIdentity) WebResolve(ctx context.Context, req identity.WebResolveRequest) (identity.LoginResult, error) {
	start := time.Now()
	res, err := t.Identity.WebResolve(ctx, req)
	since(t.webResolve, start)
	t.loginFailed(api.KindWeb, err)
	return res, err
}

func (t *timedIdentity) PasswordLogin(ctx context.Context, req identity.PasswordLoginRequest) (identity.LoginResult, error) {
	start := time.Now()
	res, err := t.Identity.PasswordLogin(ctx, req)
	since(t.pwLogin, start)
	t.loginFailed(api.KindPassword, err)
	return res, err
}

func (t *timedIdentity) Register(ctx context.Context, req identity.RegisterRequest) (identity.LoginResult, error) {
	start := time.Now()
	res, err := t.Identity.Register(ctx, req)
	since(t.register, start)
	t.loginFailed(api.KindPassword, err)
	return res, err
}

func (t *timedIdentity) Bind(ctx context.Context, req identity.BindRequest) (identity.LoginResult, error) {
	start := time.Now()
	res, err := t.Identity.Bind(ctx, req)
	since(t.bind, start)
	t.loginFailed(api.KindPassword, err)
	return res, err
}

func (t *timedIdentity) UpdateUser(ctx context.Context, req identity.UserUpdateRequest) (api.User, error) {
	start := time.Now()
	u, err := t.Identity.UpdateUser(ctx, req)
	since(t.update, start)
	return u, err
}

func (t *timedIdentity) SetPhone(ctx context.Context, req identity.UserPhoneRequest) (api.User, error) {
	start := time.Now()
	u, err := t.Identity.SetPhone(ctx, req)
	since(t.phone, start)
	return u, err
}

func (t *timedIdentity) DeleteIdentity(ctx context.Context, req identity.IdentityDeleteRequest) error {
	start := time.Now()
	err := t.Identity.DeleteIdentity(ctx, req)
	since(t.identityDelete, start)
	return err
}

func (t *timedIdentity) AdminSearch(ctx context.Context, req identity.AdminSearchRequest) (identity.AdminSearchResult, error) {
	start := time.Now()
	res, err := t.Identity.AdminSearch(ctx, req)
	since(t.adminSearch, start)
	return res, err
}

func (t *timedIdentity) AdminGetUser(ctx context.Context, req identity.AdminUserRequest) (api.User, error) {
	start := time.Now()
	u, err := t.Identity.AdminGetUser(ctx, req)
	since(t.adminGet, start)
	return u, err
}

func (t *timedIdentity) AdminSetDisabled(ctx context.Context, req identity.AdminDisableRequest) (api.User, error) {
	start := time.Now()
	u, err := t.Identity.AdminSetDisabled(ctx, req)
	since(t.adminSetDisabled, start)
	return u, err
}

type timedSession struct {
	httpapi.Session
	m                                                       *metrics.Metrics
	issue, refresh, revoke, qrCreate, qrComplete, qrConsume prometheus.Observer
}

func instrumentSession(c httpapi.Session, m *metrics.Metrics) httpapi.Session {
	return &timedSession{
		Session: c, m: m,
		issue:      m.NATS(session.SubjectIssue),
		refresh:    m.NATS(session.SubjectRefresh),
		revoke:     m.NATS(session.SubjectRevoke),
		qrCreate:   m.NATS(session.SubjectQRCreate),
		qrComplete: m.NATS(session.SubjectQRComplete),
		qrConsume:  m.NATS(session.SubjectQRConsume),
	}
}

// Issue ends every login but the website's: its outcome is the login's.
func (t *timedSession) Issue(ctx context.Context, req session.IssueRequest) (session.Tokens, error) {
	start := time.Now()
	tok, err := t.Session.Issue(ctx, req)
	since(t.issue, start)
	t.m.Login(req.Kind, err)
	return tok, err
}

func (t *timedSession) Refresh(ctx context.Context, refreshToken string) (session.Tokens, error) {
	start := time.Now()
	tok, err := t.Session.Refresh(ctx, refreshToken)
	since(t.refresh, start)
	return tok, err
}

func (t *timedSession) Revoke(ctx context.Context, req session.RevokeRequest) error {
	start := time.Now()
	err := t.Session.Revoke(ctx, req)
	since(t.revoke, start)
	return err
}

func (t *timedSession) QRCreate(ctx context.Context, req session.QRCreateRequest) (session.QRTicket, error) {
	start := time.Now()
	res, err := t.Session.QRCreate(ctx, req)
	since(t.qrCreate, start)
	return res, err
}

func (t *timedSession) QRComplete(ctx context.Context, req session.QRCompleteRequest) (session.QRStatus, error) {
	start := time.Now()
	res, err := t.Session.QRComplete(ctx, req)
	since(t.qrComplete, start)
	return res, err
}

// QRConsume hands a website login its tokens: a success is the login's
// success. Its failures are polls that lost or came too late, not logins.
func (t *timedSession) QRConsume(ctx context.Context, req session.QRConsumeRequest) (session.QRConsumeResult, error) {
	start := time.Now()
	res, err := t.Session.QRConsume(ctx, req)
	since(t.qrConsume, start)
	if err == nil {
		t.m.Login(api.KindWeb, nil)
	}
	return res, err
}
