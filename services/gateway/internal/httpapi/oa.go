package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// The in-WeChat browser login (official-account web authorization,
// docs/api.md): authorize sends the browser to WeChat with a fresh state
// bound to it by a cookie; WeChat sends it back to the callback, which
// spends the state (once, and only in that browser), resolves the user and
// sends the browser on to the site with a one-time wxlogin_code; the site
// exchanges that for the tokens. Tokens never travel in a URL.
const (
	oaPath         = "/api/v1/auth/oa" // the state cookie's path: authorize and callback
	oaCallbackPath = oaPath + "/callback"
	// oaCookiePrefix + state names a state's cookie, which holds the
	// browser token: two tabs of one browser each finish their own login.
	oaCookiePrefix = "wxlogin_oa_"
	// maxSiteStateBytes bounds the site's state, which we store and echo.
	maxSiteStateBytes = 128
	// The state is 16 random bytes in hex; the browser token and the
	// wxlogin_code base64url of 32.
	oaStateLen        = 32
	maxOABrowserToken = 64
	maxLoginCodeBytes = 64
)

// Errors the callback reports to the site as ?error=.
const (
	oaErrDenied   = "access_denied"
	oaErrSnapshot = "snapshot_user"
)

func (s *server) registerOA(r *gin.Engine, v1 *gin.RouterGroup) {
	v1.GET("/auth/oa/authorize", s.ipLimit, s.oaAuthorize)
	v1.POST("/auth/oa/exchange", s.ipLimit, s.oaExchange)
	// The callback is a navigation a person sees: it answers redirects or
	// HTML even when the backend is down, so it is outside the API group.
	r.GET(oaCallbackPath, s.oaCallback)
}

// oaAuthorize starts an in-WeChat login: the site's redirect_uri must lie
// under WXLOGIN_REDIRECT_URIS; session makes the state, this browser gets
// its cookie, and WeChat's authorization page gets the browser.
func (s *server) oaAuthorize(c *gin.Context) {
	q := c.Request.URL.Query()
	redirect, scope, siteState, app := q.Get("redirect_uri"), q.Get("scope"), q.Get("state"), q.Get("app")
	if redirect == "" {
		s.fail(c, api.Errorf(api.CodeInvalidRedirectURI, "redirect_uri is required"))
		return
	}
	if _, err := s.web.redirects.Check(redirect); err != nil {
		s.fail(c, api.Errorf(api.CodeInvalidRedirectURI, "redirect_uri is not allowed: %v", err))
		return
	}
	switch scope {
	case "":
		scope = session.ScopeUserInfo
	case session.ScopeUserInfo, session.ScopeBase:
	default:
		s.fail(c, invalidField("scope", "must be snsapi_userinfo or snsapi_base"))
		return
	}
	if err := opaque("state", siteState, maxSiteStateBytes); err != nil {
		s.fail(c, err)
		return
	}
	if err := appName(app); err != nil {
		s.fail(c, err)
		return
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	st, err := s.session.OAStart(ctx, session.OAStartRequest{App: app, Scope: scope, RedirectURI: redirect, SiteState: siteState})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	if !validOAState(st.State) || st.BrowserToken == "" || st.AppID == "" || st.ExpiresIn <= 0 {
		s.fail(c, errMalformedStart)
		return
	}
	// The cookie binds the callback to this browser, as the website QR
	// login's does (createQR): WeChat's redirect back is a top-level
	// navigation, which carries a SameSite=Lax cookie; a request another
	// site makes does not.
	s.web.bindingCookie(c, oaCookiePrefix+st.State, st.BrowserToken, s.web.oaCookiePath, int(st.ExpiresIn))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.web.wechat.OAuth2AuthorizeURL(st.AppID, s.web.oaCallbackURI, scope, st.State))
}

var errMalformedStart = &api.Error{Code: api.CodeInternal, Message: "session answered a malformed in-WeChat login state"}

// validOAState reports whether v looks like our state: lowercase hex.
func validOAState(v string) bool {
	if len(v) != oaStateLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Pages of a callback that cannot go back to the site: no such state (or
// spent), another browser, the backend down.
var (
	pageOANotFound = callbackContent{Status: "error",
		TitleZh: "登录链接无效", TitleEn: "Unknown login",
		DetailZh: "本次登录不存在、已过期或已完成，请回到网页重新登录。", DetailEn: "This login does not exist, has expired or is done. Go back to the page and log in again."}
	pageOAWrongBrowser = callbackContent{Status: "error",
		TitleZh: "请在发起登录的页面中完成登录", TitleEn: "Finish the login where you started it",
		DetailZh: "本次登录是在另一个浏览器中发起的，此页面无法完成它。",
		DetailEn: "This login was started in another browser, and this page cannot complete it.",
		Code:     string(api.CodeForbidden)}
)

// oaCallback is where WeChat sends the browser back after its authorization
// page. Only the browser that started may spend the state, once; a denial,
// a snapshot-page user or a failed exchange go back to the site with
// ?error= and no code.
func (s *server) oaCallback(c *gin.Context) {
	q := c.Request.URL.Query()
	state, code := q.Get("state"), q.Get("code")
	if !validOAState(state) {
		s.callbackPage(c, http.StatusNotFound, pageOANotFound)
		return
	}
	if len(code) > maxCodeBytes || !isVisibleASCII(code) {
		s.callbackPage(c, http.StatusBadRequest, pageBadRequest)
		return
	}
	if s.connected != nil && !s.connected() {
		s.callbackPage(c, http.StatusServiceUnavailable, pageUnavailable)
		return
	}
	token := ""
	if ck, err := c.Request.Cookie(oaCookiePrefix + state); err == nil && len(ck.Value) <= maxOABrowserToken && isVisibleASCII(ck.Value) {
		token = ck.Value
	}
	rid := middleware.RequestIDOf(c)
	// The code is spent once the state is: finish even if the person leaves.
	ctx := context.WithoutCancel(c.Request.Context())
	tctx, cancel := context.WithTimeout(ctx, callTimeout)
	taken, err := s.session.OATake(tctx, session.OATakeRequest{State: state, BrowserToken: token})
	cancel()
	if err != nil {
		p, unexpected := problem.For(err, rid)
		switch {
		case p.Code == api.CodeNotFound:
			s.callbackPage(c, http.StatusNotFound, pageOANotFound)
		case p.Code == api.CodeForbidden:
			s.callbackPage(c, http.StatusForbidden, pageOAWrongBrowser)
		default:
			if unexpected {
				s.log.LogAttrs(ctx, slog.LevelError, "cannot spend an in-WeChat login state", slog.String("request_id", rid), slog.Any("error", err))
			}
			s.callbackPage(c, http.StatusServiceUnavailable, pageUnavailable)
		}
		return
	}
	// The state is spent: its cookie is of no more use.
	s.web.bindingCookie(c, oaCookiePrefix+state, "", s.web.oaCookiePath, -1)
	back, err := url.Parse(taken.RedirectURI)
	if err != nil {
		// Checked at authorize; only a corrupted record gets here.
		s.log.LogAttrs(ctx, slog.LevelError, "stored redirect_uri unparsable", slog.String("request_id", rid))
		s.callbackPage(c, http.StatusInternalServerError, pageUnavailable)
		return
	}
	if code == "" {
		// WeChat sends no code when the person refuses.
		s.backToSite(c, back, taken.SiteState, "", oaErrDenied)
		return
	}

	rctx, cancel := context.WithTimeout(ctx, wechatCallTimeout)
	res, err := s.identity.OAResolve(rctx, identity.OAResolveRequest{App: taken.App, Code: code, Scope: taken.Scope})
	cancel()
	rec := session.OACodeRequest{AppID: taken.AppID}
	if err != nil {
		s.metrics.Login(api.KindOfficialAccount, err)
		p, unexpected := problem.For(err, rid)
		switch {
		case p.Code == api.CodeSnapshotUser:
			s.backToSite(c, back, taken.SiteState, "", oaErrSnapshot)
			return
		case p.Code == api.CodeWechatNotBound && p.BindToken != "":
			// Auto-register off: the bind token goes through the exchange.
			rec.BindToken, rec.Nickname, rec.AvatarURL = p.BindToken, p.Nickname, p.AvatarURL
		default:
			if unexpected {
				s.log.LogAttrs(ctx, slog.LevelError, "in-WeChat login failed", slog.String("request_id", rid), slog.Any("error", err))
			}
			s.backToSite(c, back, taken.SiteState, "", string(p.Code))
			return
		}
	} else {
		middleware.SetUserID(c, res.User.ID)
		user := res.User
		rec.User, rec.IsNewUser = &user, res.IsNewUser
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	lc, err := s.session.OACode(cctx, rec)
	cancel()
	if err != nil {
		p, unexpected := problem.For(err, rid)
		if unexpected {
			s.log.LogAttrs(ctx, slog.LevelError, "cannot record an in-WeChat login", slog.String("request_id", rid), slog.Any("error", err))
		}
		s.backToSite(c, back, taken.SiteState, "", string(p.Code))
		return
	}
	s.backToSite(c, back, taken.SiteState, lc.Code, "")
}

// backToSite redirects to the site's redirect_uri (its own query kept) with
// the wxlogin_code or the error, and the site's state. Nothing of the page
// travels on (Referrer-Policy): the callback's URL holds WeChat's code.
func (s *server) backToSite(c *gin.Context, back *url.URL, siteState, code, errCode string) {
	q := back.Query()
	if code != "" {
		q.Set("wxlogin_code", code)
	}
	if errCode != "" {
		q.Set("error", errCode)
	}
	if siteState != "" {
		q.Set("state", siteState)
	}
	u := *back
	u.RawQuery = q.Encode()
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	c.Redirect(http.StatusFound, u.String())
	c.Abort()
}

// oaExchange spends a wxlogin_code for the tokens, once.
func (s *server) oaExchange(c *gin.Context) {
	f, err := bodyFields(c, "code")
	if err != nil {
		s.fail(c, err)
		return
	}
	if f["code"] == "" {
		s.fail(c, api.Errorf(api.CodeCodeMissing, "code is required: send the wxlogin_code of the redirect"))
		return
	}
	if err := opaque("code", f["code"], maxLoginCodeBytes); err != nil {
		s.fail(c, api.Errorf(api.CodeLoginCodeInvalid, "the wxlogin_code is invalid, expired or already used"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	res, err := s.session.OAExchange(ctx, session.OAExchangeRequest{Code: f["code"]})
	cancel()
	s.metrics.Login(api.KindOfficialAccount, err) // the login succeeds when its tokens go out
	if err != nil {
		s.fail(c, err)
		return
	}
	middleware.SetUserID(c, res.User.ID)
	writeTokens(c, http.StatusOK, res.Tokens, res.User, res.IsNewUser)
}

// appLogin exchanges a native mobile app's WeChat SDK code for tokens,
// exactly like the mini-program login.
func (s *server) appLogin(c *gin.Context) {
	code, app, err := codeAndApp(c, "the WeChat SDK's SendAuth")
	if err != nil {
		s.fail(c, err)
		return
	}
	req := identity.AppLoginRequest{App: app, Code: code}
	s.login(c, api.KindApp, http.StatusOK, func(ctx context.Context) (identity.LoginResult, error) {
		return s.identity.AppLogin(ctx, req)
	})
}
