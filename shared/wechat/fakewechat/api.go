package fakewechat

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// API paths the fake serves; FailNext and POST /fake/errors take these.
const (
	PathCode2Session      = "/sns/jscode2session"
	PathOAuthAccessToken  = "/sns/oauth2/access_token"
	PathUserInfo          = "/sns/userinfo"
	PathToken             = "/cgi-bin/token"
	PathStableToken       = "/cgi-bin/stable_token"
	PathGetUserPhone      = "/wxa/business/getuserphonenumber"
	PathQRConnect         = "/connect/qrconnect"   // the QR page (open.weixin.qq.com)
	PathQRConfirm         = "/connect/confirm"     // the page a phone opens on scanning the QR code
	PathQRWait            = "/connect/l/qrconnect" // the QR page's long-poll for the phone's answer
	controlPrefix         = "/fake/"
	contentTypeWeChatJSON = "text/plain" // the real quirk: JSON labelled text/plain
)

// apiPaths are the paths FailNext rules may name.
var apiPaths = []string{PathCode2Session, PathOAuthAccessToken, PathUserInfo, PathToken, PathStableToken, PathGetUserPhone,
	PathQRCodeCreate, PathOAUserInfo}

// errmsgs are the real messages of the errcodes the fake answers; a rid is
// appended to each, as WeChat does.
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40003: "invalid openid",
	40013: "invalid appid",
	40029: "invalid code",
	40125: "invalid appsecret",
	40163: "code been used",
	40164: "invalid ip, not in whitelist",
	40226: "invalid login, high risk user",
	41001: "access_token missing",
	41002: "appid missing",
	41004: "appsecret missing",
	41008: "missing code",
	41009: "missing openid",
	42001: "access_token expired",
	43001: "require GET method",
	43002: "require POST method",
	44002: "empty post data",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	47001: "data format error",
	48001: "api unauthorized",
	40243: "AppSecret has been frozen",
}

// call is one WeChat API request, handled under s.mu.
type call struct {
	q     url.Values
	body  []byte
	now   time.Time
	appid string // for the log line, set by the handler when known
	base  string // the fake's own URL as the caller reached it
}

// handlerFunc answers a call with a JSON body or a non-zero errcode.
type handlerFunc func(s *Server, c *call) (resp any, errcode int)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(PathCode2Session, s.api(http.MethodGet, (*Server).code2Session))
	mux.Handle(PathOAuthAccessToken, s.api(http.MethodGet, (*Server).oauthAccessToken))
	mux.Handle(PathUserInfo, s.api(http.MethodGet, (*Server).userInfo))
	mux.Handle(PathToken, s.api(http.MethodGet, (*Server).plainToken))
	mux.Handle(PathStableToken, s.api(http.MethodPost, (*Server).stableToken))
	mux.Handle(PathGetUserPhone, s.api(http.MethodPost, (*Server).phoneNumber))

	// The user-facing pages of the website QR login (qrlogin.go).
	mux.HandleFunc(PathQRConnect, s.qrConnectPage)
	mux.HandleFunc(PathQRConfirm, s.confirmPage)
	mux.HandleFunc(PathQRWait, s.qrWait)
	// The official account's web authorization in the WeChat browser (oauth2.go).
	mux.HandleFunc(PathOAuth2Authorize, s.oauth2Page)
	mux.HandleFunc(PathOAuth2Confirm, s.oauth2Confirm)

	// The official account's parametric QR codes (oafollow.go).
	mux.Handle(PathQRCodeCreate, s.api(http.MethodPost, (*Server).qrCodeCreate))
	mux.Handle(PathOAUserInfo, s.api(http.MethodGet, (*Server).oaUserInfo))
	mux.HandleFunc(PathShowQRCode, s.showQRCode)
	mux.HandleFunc(PathOAScan, s.oaScanPage)

	s.controlRoutes(mux)
	return mux
}

// api wraps a handler with what every WeChat endpoint shares: the method
// check, FailNext, the lock, and the answer as HTTP 200 text/plain JSON.
func (s *Server) api(method string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		q := r.URL.Query()
		c := &call{q: q, appid: q.Get("appid"), base: s.baseURL(r)}
		if r.Method != method {
			code := 43001
			if method == http.MethodPost {
				code = 43002
			}
			s.answer(w, path, c, nil, code)
			return
		}
		if method == http.MethodPost {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
			if err != nil || len(b) > maxBodyBytes {
				s.answer(w, path, c, nil, 47001)
				return
			}
			c.body = b
		}
		s.mu.Lock()
		c.now = s.nowLocked()
		s.purgeLocked(c.now)
		var resp any
		code := s.takeFailureLocked(path)
		if code == 0 {
			resp, code = h(s, c)
		}
		s.mu.Unlock()
		s.answer(w, path, c, resp, code)
	})
}

type errorBody struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (s *Server) answer(w http.ResponseWriter, path string, c *call, resp any, code int) {
	if code != 0 {
		msg, ok := errmsgs[code]
		if !ok {
			msg = "fake error"
		}
		resp = errorBody{ErrCode: code, ErrMsg: msg + ", rid: " + newRID()}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		// Only our own response types reach here; a failure is a bug in the fake.
		s.log.Error("fakewechat: encode response", "path", path, "err", err)
		http.Error(w, "fakewechat: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentTypeWeChatJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	s.log.Debug("fakewechat: api call", "path", path, "appid", c.appid, "errcode", code)
}

// checkAppLocked checks appid and secret as WeChat does: presence first, the
// appid before the secret.
func (s *Server) checkAppLocked(appid, secret string) (*appState, int) {
	switch {
	case appid == "":
		return nil, 41002
	case s.apps[appid] == nil:
		return nil, 40013
	case secret == "":
		return nil, 41004
	case s.apps[appid].Secret != secret:
		return nil, 40125
	}
	return s.apps[appid], 0
}

// oauthKinds are the kinds of app whose codes sns/oauth2/access_token takes.
var oauthKinds = []string{api.KindWeb, api.KindOfficialAccount, api.KindApp}

// exchangeCodeLocked spends a login code for appid: a mini-program's
// (kind miniprogram, /sns/jscode2session) or an sns/oauth2 one (any kind of
// oauthKinds).
func (s *Server) exchangeCodeLocked(c *call, kind string) (*loginCode, int) {
	code := c.q.Get("js_code")
	kinds := []string{api.KindMiniProgram}
	if kind != api.KindMiniProgram {
		code, kinds = c.q.Get("code"), oauthKinds
	}
	if _, e := s.checkAppLocked(c.q.Get("appid"), c.q.Get("secret")); e != 0 {
		return nil, e
	}
	if c.q.Get("grant_type") != "authorization_code" {
		return nil, 40002
	}
	if code == "" {
		return nil, 41008
	}
	if lc, ok := s.loadCodeLocked(c, code, kind); ok {
		return lc, 0
	}
	lc := s.codes[code]
	switch {
	case lc == nil || !c.now.Before(lc.exp) || lc.appid != c.q.Get("appid") || !slices.Contains(kinds, lc.kind):
		return nil, 40029
	case lc.used:
		return nil, 40163
	}
	lc.used = true
	return lc, 0
}

// LoadCodePrefix starts the codes of the load mode (Options.LoadCodes).
const LoadCodePrefix = "load:"

// loadCodeLocked resolves a load-mode code ("load:<openid>[:<unionid>]")
// when the mode is on. It is never spent and needs no minting; the user is
// kept in the app's directory only for the website flow (sns/userinfo reads
// it there), so a mini-program load of new users costs the fake no memory.
func (s *Server) loadCodeLocked(c *call, code, kind string) (*loginCode, bool) {
	rest, ok := strings.CutPrefix(code, LoadCodePrefix)
	if !s.load || !ok {
		return nil, false
	}
	openid, unionid, _ := strings.Cut(rest, ":")
	u := User{OpenID: openid, UnionID: unionid}
	if openid == "" || validateUser(u) != nil {
		return nil, false // answered as any unknown code
	}
	appid := c.q.Get("appid")
	if s.apps[appid].Kind != kind {
		return nil, false // another kind's app: as a minted code of it would be
	}
	if kind == api.KindWeb {
		if _, err := s.upsertUserLocked(appid, u); err != nil {
			return nil, false
		}
	}
	return &loginCode{appid: appid, kind: kind, openid: openid, unionid: unionid, exp: c.now.Add(miniCodeTTL)}, true
}

type code2SessionResponse struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid,omitempty"`
}

func (s *Server) code2Session(c *call) (any, int) {
	lc, e := s.exchangeCodeLocked(c, api.KindMiniProgram)
	if e != 0 {
		return nil, e
	}
	if u := s.users[lc.appid][lc.openid]; u != nil {
		return code2SessionResponse{OpenID: u.OpenID, SessionKey: newSessionKey(), UnionID: u.UnionID}, 0
	}
	// A load-mode code of a user the directory does not keep.
	return code2SessionResponse{OpenID: lc.openid, SessionKey: newSessionKey(), UnionID: lc.unionid}, 0
}

type oauthTokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	Scope        string `json:"scope"`
	UnionID      string `json:"unionid,omitempty"`
	// IsSnapshotUser is 1 for an official account's snapshot page (only
	// in this answer, never in userinfo).
	IsSnapshotUser int `json:"is_snapshotuser,omitempty"`
}

// oauthAccessToken exchanges a website, mobile app or official-account code.
// An official account's snsapi_base code gives the openid only (no unionid);
// a snapshot page's gives a virtual openid with is_snapshotuser 1.
func (s *Server) oauthAccessToken(c *call) (any, int) {
	lc, e := s.exchangeCodeLocked(c, api.KindWeb)
	if e != 0 {
		return nil, e
	}
	scope := scopeLogin
	switch lc.kind {
	case api.KindOfficialAccount:
		scope = lc.scope
	case api.KindApp:
		scope = scopeUserInfo
	}
	resp := oauthTokenResponse{
		ExpiresIn: int(tokenTTL / time.Second),
		// The fake has no sns/oauth2/refresh_token endpoint: the refresh token
		// is shaped like a real one and otherwise unused.
		RefreshToken: newAccessToken(),
		OpenID:       lc.openid, Scope: scope,
	}
	if lc.snapshot {
		resp.Scope, resp.IsSnapshotUser = scopeBase, 1
	} else if scope != scopeBase {
		resp.UnionID = s.users[lc.appid][lc.openid].UnionID
	}
	tok := newAccessToken()
	exp := c.now.Add(tokenTTL)
	s.oauth[tok] = &oauthToken{appid: lc.appid, openid: lc.openid, scope: resp.Scope, exp: exp}
	s.queues[queueOAuth].push(tok, exp.Add(expiredTokenKeep))
	resp.AccessToken = tok
	return resp, 0
}

type userInfoResponse struct {
	OpenID     string   `json:"openid"`
	Nickname   string   `json:"nickname"`
	Sex        int      `json:"sex"`
	Province   string   `json:"province"`
	City       string   `json:"city"`
	Country    string   `json:"country"`
	HeadImgURL string   `json:"headimgurl"`
	Privilege  []string `json:"privilege"`
	UnionID    string   `json:"unionid,omitempty"`
}

func (s *Server) userInfo(c *call) (any, int) {
	token, openid := c.q.Get("access_token"), c.q.Get("openid")
	if token == "" {
		return nil, 41001
	}
	if openid == "" {
		return nil, 41009
	}
	t := s.oauth[token]
	switch {
	case t == nil:
		return nil, 40001
	case !c.now.Before(t.exp):
		return nil, 42001
	case t.openid != openid:
		return nil, 40003
	case t.scope == scopeBase:
		return nil, 48001 // snsapi_base allows no profile
	}
	c.appid = t.appid
	u := s.users[t.appid][t.openid]
	return userInfoResponse{OpenID: u.OpenID, Nickname: u.Nickname, Sex: u.Sex, Province: u.Province,
		City: u.City, Country: u.Country, HeadImgURL: u.HeadImgURL, Privilege: []string{}, UnionID: u.UnionID}, 0
}

type serverTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func (s *Server) plainToken(c *call) (any, int) {
	app, e := s.checkAppLocked(c.q.Get("appid"), c.q.Get("secret"))
	if e != 0 {
		return nil, e
	}
	if c.q.Get("grant_type") != "client_credential" {
		return nil, 40002
	}
	// Every call issues a new token; the previous one lives 5 more minutes.
	if n := len(app.plain); n > 0 {
		if prev := s.tokens[app.plain[n-1]]; prev != nil {
			prev.dead = c.now.Add(tokenGrace)
		}
	}
	tok := s.issueServerTokenLocked(app, &app.plain, c.now)
	return serverTokenResponse{AccessToken: tok, ExpiresIn: int(tokenTTL / time.Second)}, 0
}

func (s *Server) stableToken(c *call) (any, int) {
	if len(c.body) == 0 {
		return nil, 44002
	}
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		return nil, 47001
	}
	c.appid = req.AppID
	app, e := s.checkAppLocked(req.AppID, req.Secret)
	if e != 0 {
		return nil, e
	}
	if req.GrantType != "client_credential" {
		return nil, 40002
	}
	if n := len(app.stable); n > 0 {
		cur := s.tokens[app.stable[n-1]]
		if req.ForceRefresh {
			// force_refresh invalidates the current token at once.
			cur.dead = c.now
		} else if left := cur.exp.Sub(c.now); left > tokenGrace {
			return serverTokenResponse{AccessToken: app.stable[n-1], ExpiresIn: int(left / time.Second)}, 0
		}
		// Otherwise the token is in its last 5 minutes: WeChat has already
		// refreshed it; the old one keeps working until it expires.
	}
	tok := s.issueServerTokenLocked(app, &app.stable, c.now)
	return serverTokenResponse{AccessToken: tok, ExpiresIn: int(tokenTTL / time.Second)}, 0
}

// issueServerTokenLocked adds a new token to a family, forgetting all but the
// previous one.
func (s *Server) issueServerTokenLocked(app *appState, family *[]string, now time.Time) string {
	for len(*family) >= 2 {
		delete(s.tokens, (*family)[0])
		*family = (*family)[1:]
	}
	tok := newAccessToken()
	s.tokens[tok] = &serverToken{appid: app.AppID, exp: now.Add(tokenTTL)}
	*family = append(*family, tok)
	return tok
}

type phoneResponse struct {
	ErrCode   int       `json:"errcode"`
	ErrMsg    string    `json:"errmsg"`
	PhoneInfo phoneInfo `json:"phone_info"`
}

type phoneInfo struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     string    `json:"countryCode"` // a string, as real WeChat sends it
	Watermark       watermark `json:"watermark"`
}

type watermark struct {
	Timestamp int64  `json:"timestamp"`
	AppID     string `json:"appid"`
}

func (s *Server) phoneNumber(c *call) (any, int) {
	t, e := s.serverTokenLocked(c)
	if e != 0 {
		return nil, e
	}
	if s.apps[t.appid].Kind != api.KindMiniProgram {
		return nil, 48001
	}
	if len(c.body) == 0 {
		return nil, 44002
	}
	var req struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		return nil, 47001
	}
	if req.Code == "" {
		return nil, 41008
	}
	pc := s.phones[req.Code]
	if pc == nil || !c.now.Before(pc.exp) || pc.appid != t.appid {
		return nil, 40029
	}
	// Single use: a second exchange finds nothing and answers 40029.
	delete(s.phones, req.Code)
	return phoneResponse{ErrMsg: "ok", PhoneInfo: phoneInfo{
		PhoneNumber: pc.phone, PurePhoneNumber: pc.pure, CountryCode: pc.countryCode,
		Watermark: watermark{Timestamp: c.now.Unix(), AppID: pc.appid},
	}}, 0
}
