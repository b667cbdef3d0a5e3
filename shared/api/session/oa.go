package session

import (
	"context"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Subjects of the in-WeChat browser login (official-account web
// authorization, issue 11).
const (
	SubjectOAStart    = "wxlogin.session.oa.start"
	SubjectOATake     = "wxlogin.session.oa.take"
	SubjectOACode     = "wxlogin.session.oa.code"
	SubjectOAExchange = "wxlogin.session.oa.exchange"
)

// BucketOA holds the in-WeChat login's states ("state.<state>") and
// one-time login codes ("code.<code>"). Private to the session service.
const BucketOA = "wxlogin_oa"

// Lifetimes of the in-WeChat login: the state covers the person reading
// WeChat's authorization page (WeChat's own code lives 5 minutes); the
// wxlogin_code only the redirect back to the site and its exchange.
const (
	OAStateTTL = 10 * time.Minute
	OACodeTTL  = 60 * time.Second
)

// The official account's web-authorization scopes.
const (
	ScopeUserInfo = "snsapi_userinfo" // a confirm page; profile and unionid
	ScopeBase     = "snsapi_base"     // silent; openid only
)

// OAStartRequest starts an in-WeChat login. The gateway has checked
// RedirectURI against WXLOGIN_REDIRECT_URIS; SiteState is the site's own
// state, echoed back to it.
type OAStartRequest struct {
	App         string `json:"app,omitempty"`
	Scope       string `json:"scope"`
	RedirectURI string `json:"redirect_uri"`
	SiteState   string `json:"site_state,omitempty"`
}

// OAStart is a new state: State is WeChat's state parameter (letters and
// digits, visible in URLs), BrowserToken the secret of the cookie that
// binds the callback to the browser that started.
type OAStart struct {
	State        string `json:"state"`
	BrowserToken string `json:"browser_token"`
	AppID        string `json:"appid"`
	ExpiresIn    int64  `json:"expires_in"`
}

// OAStateRecord is the value under "state.<state>" in BucketOA.
type OAStateRecord struct {
	App              string    `json:"app"`
	AppID            string    `json:"appid"`
	Scope            string    `json:"scope"`
	RedirectURI      string    `json:"redirect_uri"`
	SiteState        string    `json:"site_state,omitempty"`
	BrowserTokenHash string    `json:"browser_token_hash"` // hex SHA-256
	CreatedAt        time.Time `json:"created_at"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// OATakeRequest spends a state at the callback, once, and only with the
// browser token of its cookie. Unknown, spent or expired ->
// api.CodeNotFound; another browser -> api.CodeForbidden (the state stays
// for the right browser).
type OATakeRequest struct {
	State        string `json:"state"`
	BrowserToken string `json:"browser_token"`
}

// OATaken is what the callback needs of a spent state.
type OATaken struct {
	App         string `json:"app"`
	AppID       string `json:"appid"`
	Scope       string `json:"scope"`
	RedirectURI string `json:"redirect_uri"`
	SiteState   string `json:"site_state,omitempty"`
}

// OACodeRequest records a resolved in-WeChat login under a new one-time
// code: a user, or (auto-register off) a bind token with whose WeChat it is.
type OACodeRequest struct {
	AppID     string    `json:"appid"`
	User      *api.User `json:"user,omitempty"`
	IsNewUser bool      `json:"is_new_user,omitempty"`
	BindToken string    `json:"bind_token,omitempty"`
	Nickname  string    `json:"nickname,omitempty"`
	AvatarURL string    `json:"avatar_url,omitempty"`
}

// OACode is the one-time wxlogin_code the site gets in its redirect.
type OACode struct {
	Code      string `json:"code"`
	ExpiresIn int64  `json:"expires_in"`
}

// OACodeRecord is the value under "code.<code>" in BucketOA. Tokens are
// never stored: the exchange issues them.
type OACodeRecord struct {
	AppID     string    `json:"appid"`
	User      *api.User `json:"user,omitempty"`
	IsNewUser bool      `json:"is_new_user,omitempty"`
	BindToken string    `json:"bind_token,omitempty"`
	Nickname  string    `json:"nickname,omitempty"`
	AvatarURL string    `json:"avatar_url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// OAExchangeRequest spends a wxlogin_code: tokens once (kind
// officialaccount), api.CodeLoginCodeInvalid after; a not-bound code
// answers api.CodeWechatNotBound with its bind token (once too).
type OAExchangeRequest struct {
	Code string `json:"code"`
}

// OAStart starts an in-WeChat login.
func (c *Client) OAStart(ctx context.Context, req OAStartRequest) (OAStart, error) {
	return natsrpc.Do[OAStart](ctx, c.rpc, SubjectOAStart, req)
}

// OATake spends a state at the callback.
func (c *Client) OATake(ctx context.Context, req OATakeRequest) (OATaken, error) {
	return natsrpc.Do[OATaken](ctx, c.rpc, SubjectOATake, req)
}

// OACode records a resolved login under a new wxlogin_code.
func (c *Client) OACode(ctx context.Context, req OACodeRequest) (OACode, error) {
	return natsrpc.Do[OACode](ctx, c.rpc, SubjectOACode, req)
}

// OAExchange spends a wxlogin_code for tokens (the answer of a QR poll's
// confirmation, without its status).
func (c *Client) OAExchange(ctx context.Context, req OAExchangeRequest) (QRConsumeResult, error) {
	return natsrpc.Do[QRConsumeResult](ctx, c.rpc, SubjectOAExchange, req)
}
