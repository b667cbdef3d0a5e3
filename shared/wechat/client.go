// Package wechat is a client for the WeChat server APIs wxlogin uses. It
// follows docs/wechat.md: errors arrive as HTTP 200 with an errcode,
// JSON may be served as text/plain, some numbers arrive as strings. Errors
// never carry the request URL, which holds the app secret and the code.
package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Default bases of the real WeChat.
const (
	DefaultAPIBase  = "https://api.weixin.qq.com"
	DefaultOpenBase = "https://open.weixin.qq.com"
)

// WeChat errcodes wxlogin branches on.
const (
	ErrCodeBusy              = -1
	ErrCodeInvalidCredential = 40001 // bad secret, or access token invalid / not latest
	ErrCodeInvalidAppID      = 40013
	ErrCodeInvalidCode       = 40029
	ErrCodeInvalidAppSecret  = 40125
	ErrCodeCodeUsed          = 40163
	ErrCodeUserBlocked       = 40226
	ErrCodeAccessTokenExpiry = 42001
	ErrCodeMinuteQuota       = 45011
)

// Error is an errcode answer from WeChat.
type Error struct {
	Path string
	Code int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("wechat %s: errcode %d: %s", e.Path, e.Code, e.Msg)
}

// ErrUnavailable wraps transport failures: WeChat unreachable, a non-200
// status, or a body that is not JSON.
var ErrUnavailable = errors.New("wechat unavailable")

// ErrCode returns the WeChat errcode in err, or 0 when it carries none.
func ErrCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// DefaultTimeout bounds each WeChat call unless Options.Timeout says
// otherwise. It is below the gateway's 3s deadline for calls that reach
// WeChat, so a slow WeChat answers wechat_unavailable (the code may be
// retried) instead of the gateway giving up with service_unavailable after
// the code was spent.
const DefaultTimeout = 2500 * time.Millisecond

// Options configure a Client.
type Options struct {
	APIBase    string        // default DefaultAPIBase
	OpenBase   string        // default DefaultOpenBase
	HTTPClient *http.Client  // default: a client with Timeout
	Timeout    time.Duration // default DefaultTimeout
}

// Client calls WeChat. It is safe for concurrent use.
type Client struct {
	http     *http.Client
	apiBase  string
	openBase string
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.APIBase == "" {
		opts.APIBase = DefaultAPIBase
	}
	if opts.OpenBase == "" {
		opts.OpenBase = DefaultOpenBase
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		hc = &http.Client{Timeout: opts.Timeout, Transport: tr}
	}
	return &Client{http: hc, apiBase: strings.TrimRight(opts.APIBase, "/"), openBase: strings.TrimRight(opts.OpenBase, "/")}
}

// Session is the answer of jscode2session. SessionKey is a secret.
type Session struct {
	OpenID     string
	UnionID    string
	SessionKey string
}

// Code2Session exchanges a mini-program wx.login code (jscode2session).
func (c *Client) Code2Session(ctx context.Context, appid, secret, code string) (Session, error) {
	var r struct {
		OpenID     string `json:"openid"`
		UnionID    string `json:"unionid"`
		SessionKey string `json:"session_key"`
	}
	q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	if err := c.get(ctx, "/sns/jscode2session", q, &r); err != nil {
		return Session{}, err
	}
	if r.OpenID == "" {
		return Session{}, fmt.Errorf("%w: jscode2session answered no openid", ErrUnavailable)
	}
	return Session{OpenID: r.OpenID, UnionID: r.UnionID, SessionKey: r.SessionKey}, nil
}

// OAuthToken is the answer of sns/oauth2/access_token (website, official
// account and mobile app logins).
type OAuthToken struct {
	AccessToken  string
	ExpiresIn    int
	RefreshToken string
	OpenID       string
	Scope        string
	UnionID      string
	// SnapshotUser: an official account's page opened from a Moments share
	// as a snapshot page; OpenID is then a virtual one, never a person.
	SnapshotUser bool
}

// OAuthAccessToken exchanges a website (Open Platform), official-account
// web-authorization or mobile app login code.
func (c *Client) OAuthAccessToken(ctx context.Context, appid, secret, code string) (OAuthToken, error) {
	var r struct {
		AccessToken  string  `json:"access_token"`
		ExpiresIn    flexInt `json:"expires_in"`
		RefreshToken string  `json:"refresh_token"`
		OpenID       string  `json:"openid"`
		Scope        string  `json:"scope"`
		UnionID      string  `json:"unionid"`
		Snapshot     flexInt `json:"is_snapshotuser"`
	}
	q := url.Values{"appid": {appid}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}
	if err := c.get(ctx, "/sns/oauth2/access_token", q, &r); err != nil {
		return OAuthToken{}, err
	}
	if r.OpenID == "" {
		return OAuthToken{}, fmt.Errorf("%w: oauth2/access_token answered no openid", ErrUnavailable)
	}
	return OAuthToken{AccessToken: r.AccessToken, ExpiresIn: int(r.ExpiresIn), RefreshToken: r.RefreshToken,
		OpenID: r.OpenID, Scope: r.Scope, UnionID: r.UnionID, SnapshotUser: r.Snapshot == 1}, nil
}

// UserInfo is the answer of sns/userinfo. Sex is 0 unknown, 1 male, 2 female.
type UserInfo struct {
	OpenID     string
	UnionID    string
	Nickname   string
	Sex        int
	Province   string
	City       string
	Country    string
	HeadImgURL string
}

// UserInfo fetches the profile behind a website login's access token.
func (c *Client) UserInfo(ctx context.Context, accessToken, openid string) (UserInfo, error) {
	var r struct {
		OpenID     string  `json:"openid"`
		UnionID    string  `json:"unionid"`
		Nickname   string  `json:"nickname"`
		Sex        flexInt `json:"sex"`
		Province   string  `json:"province"`
		City       string  `json:"city"`
		Country    string  `json:"country"`
		HeadImgURL string  `json:"headimgurl"`
	}
	q := url.Values{"access_token": {accessToken}, "openid": {openid}, "lang": {"zh_CN"}}
	if err := c.get(ctx, "/sns/userinfo", q, &r); err != nil {
		return UserInfo{}, err
	}
	return UserInfo{OpenID: r.OpenID, UnionID: r.UnionID, Nickname: r.Nickname, Sex: int(r.Sex),
		Province: r.Province, City: r.City, Country: r.Country, HeadImgURL: r.HeadImgURL}, nil
}

// AccessToken is a server (client_credential) access token.
type AccessToken struct {
	AccessToken string
	ExpiresIn   int
}

// StableToken fetches the server access token with cgi-bin/stable_token,
// which returns the same token while it is valid, so replicas do not
// invalidate each other's tokens as cgi-bin/token does.
func (c *Client) StableToken(ctx context.Context, appid, secret string, forceRefresh bool) (AccessToken, error) {
	var r struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   flexInt `json:"expires_in"`
	}
	body := map[string]any{"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": forceRefresh}
	if err := c.post(ctx, "/cgi-bin/stable_token", nil, body, &r); err != nil {
		return AccessToken{}, err
	}
	if r.AccessToken == "" {
		return AccessToken{}, fmt.Errorf("%w: stable_token answered no access_token", ErrUnavailable)
	}
	return AccessToken{AccessToken: r.AccessToken, ExpiresIn: int(r.ExpiresIn)}, nil
}

// PhoneInfo is the phone number behind a getPhoneNumber code.
type PhoneInfo struct {
	PhoneNumber     string
	PurePhoneNumber string
	CountryCode     string
	WatermarkAppID  string
}

// PhoneNumber exchanges a getPhoneNumber code (wxa/business/getuserphonenumber).
func (c *Client) PhoneNumber(ctx context.Context, accessToken, code string) (PhoneInfo, error) {
	var r struct {
		PhoneInfo struct {
			PhoneNumber     string     `json:"phoneNumber"`
			PurePhoneNumber string     `json:"purePhoneNumber"`
			CountryCode     flexString `json:"countryCode"`
			Watermark       struct {
				AppID string `json:"appid"`
			} `json:"watermark"`
		} `json:"phone_info"`
	}
	q := url.Values{"access_token": {accessToken}}
	if err := c.post(ctx, "/wxa/business/getuserphonenumber", q, map[string]string{"code": code}, &r); err != nil {
		return PhoneInfo{}, err
	}
	p := r.PhoneInfo
	if p.PhoneNumber == "" && p.PurePhoneNumber == "" {
		return PhoneInfo{}, fmt.Errorf("%w: getuserphonenumber answered no phone_info", ErrUnavailable)
	}
	return PhoneInfo{PhoneNumber: p.PhoneNumber, PurePhoneNumber: p.PurePhoneNumber,
		CountryCode: string(p.CountryCode), WatermarkAppID: p.Watermark.AppID}, nil
}

// QRConnectURL is the Open Platform page that shows the login QR code.
func (c *Client) QRConnectURL(appid, redirectURI, state string) string {
	q := url.Values{"appid": {appid}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"snsapi_login"}, "state": {state}}
	return c.openBase + "/connect/qrconnect?" + q.Encode() + "#wechat_redirect"
}

// OAuth2AuthorizeURL is the official account's web-authorization page, which
// the WeChat browser shows (snsapi_userinfo) or skips (snsapi_base) before
// sending the browser to redirectURI with a code. WeChat wants the
// parameters in this order (url.Values encodes sorted: the same) and the
// #wechat_redirect fragment.
func (c *Client) OAuth2AuthorizeURL(appid, redirectURI, scope, state string) string {
	q := url.Values{"appid": {appid}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {scope}, "state": {state}}
	return c.openBase + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect"
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.apiBase+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("wechat %s: build request: %w", path, withoutURL(err))
	}
	return c.do(req, path, out)
}

func (c *Client) post(ctx context.Context, path string, q url.Values, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("wechat %s: encode request: %w", path, err)
	}
	u := c.apiBase + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("wechat %s: build request: %w", path, withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, path, out)
}

// maxBody bounds what we read from WeChat; its answers are a few hundred bytes.
const maxBody = 1 << 20

func (c *Client) do(req *http.Request, path string, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		// The cause stays in the chain so callers can tell a cancelled or
		// timed-out context (errors.Is context.DeadlineExceeded) from an outage.
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, path, withoutURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%w: %s: read: %v", ErrUnavailable, path, err)
	}
	return decode(path, resp.StatusCode, body, out)
}

// maxErrMsg bounds the errmsg kept from an errcode answer: it ends up in
// logs, and WeChat's are a sentence and a request id.
const maxErrMsg = 256

// decode reads an answer of WeChat: nil with out filled, an *Error for an
// errcode answer, or ErrUnavailable for anything else.
func decode(path string, status int, body []byte, out any) error {
	if status != http.StatusOK {
		return fmt.Errorf("%w: %s: HTTP %d", ErrUnavailable, path, status)
	}
	// Content-Type is not trusted (WeChat serves JSON as text/plain): always decode.
	var e struct {
		ErrCode flexInt `json:"errcode"`
		ErrMsg  string  `json:"errmsg"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("%w: %s: body is not JSON", ErrUnavailable, path)
	}
	if e.ErrCode != 0 {
		return &Error{Path: path, Code: int(e.ErrCode), Msg: truncate(e.ErrMsg, maxErrMsg)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s: unexpected body: %v", ErrUnavailable, path, err)
	}
	return nil
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// withoutURL drops the URL from a *url.Error: it holds the secret and the code.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// flexInt decodes an integer sent as a JSON number or a numeric string
// ("1"); "" and null are 0. Anything else is an error, never a guess: a
// fractional errcode such as 0.5 must not truncate to 0, success.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return errors.New("not an integer")
	}
	*f = flexInt(n)
	return nil
}

// flexString decodes a JSON string or number (countryCode: 86 or "86").
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("not a string or number")
	}
	*f = flexString(b)
	return nil
}
