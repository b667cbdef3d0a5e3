package fakewechat

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// The official account's web authorization, as the WeChat browser on a
// phone shows it:
//
//  1. An H5 page opened inside WeChat navigates to
//     open.weixin.qq.com/connect/oauth2/authorize?appid&redirect_uri&
//     response_type=code&scope&state#wechat_redirect. Here: GET
//     PathOAuth2Authorize checks the query as WeChat does (the appid is an
//     official account's, redirect_uri lies on its web-authorization
//     domain, the scope, state of at most 128 letters and digits) and shows
//     the "phone": who is using WeChat (a test user), and for
//     snsapi_userinfo the "allow this page your nickname and avatar?"
//     confirm (snsapi_base is silent on WeChat: here it is one button, so a
//     person can still pick the user). A third choice opens the page as a
//     snapshot page, as WeChat does for a link from a Moments share.
//  2. The answer (POST PathOAuth2Confirm) sends the browser on at once:
//     302 to redirect_uri?code=CODE&state=STATE, or without code when the
//     person refuses.

// Paths of the official account's web-authorization pages.
const (
	PathOAuth2Authorize = "/connect/oauth2/authorize"
	PathOAuth2Confirm   = "/connect/oauth2/confirm"
)

// The sns/oauth2 scopes.
const (
	scopeLogin    = "snsapi_login"    // website QR login
	scopeUserInfo = "snsapi_userinfo" // official account: confirm page; mobile apps
	scopeBase     = "snsapi_base"     // official account: silent, openid only
)

// oauth2Request is a valid /connect/oauth2/authorize query.
type oauth2Request struct {
	appid    string
	redirect *url.URL
	scope    string
	state    string
}

// parseOAuth2 checks a /connect/oauth2/authorize query as WeChat does. It
// reads only s.apps, which nothing changes after New: no lock needed.
func (s *Server) parseOAuth2(q url.Values) (oauth2Request, *pageError) {
	bad := func(kind error, titleZh, titleEn, detail string) (oauth2Request, *pageError) {
		return oauth2Request{}, &pageError{titleZh: titleZh, titleEn: titleEn, detail: detail, kind: kind}
	}
	appid := q.Get("appid")
	app := s.apps[appid]
	switch {
	case appid == "" || app == nil:
		return bad(ErrUnknownApp, "appid 参数错误", "Invalid appid", "10016: unknown appid")
	case app.Kind != api.KindOfficialAccount:
		return bad(ErrWrongKind, "appid 参数错误", "Invalid appid", "10016: the appid is not an official account's")
	}
	raw := q.Get("redirect_uri")
	redirect, err := url.Parse(raw)
	if raw == "" || err != nil || len(raw) > maxRedirectURILen || (redirect.Scheme != "http" && redirect.Scheme != "https") ||
		redirect.Host == "" || redirect.User != nil {
		return bad(ErrBadInput, "redirect_uri 参数错误", "Invalid redirect_uri",
			fmt.Sprintf("10003: redirect_uri must be an absolute http(s) URL of at most %d bytes", maxRedirectURILen))
	}
	if !onDomain(redirect, app.Domain) {
		return bad(ErrBadInput, "redirect_uri 域名与后台配置不一致", "redirect_uri is not on the configured domain",
			"10003: the official account's web-authorization domain is "+app.Domain+", not "+redirect.Host)
	}
	if q.Get("response_type") != "code" {
		return bad(ErrBadInput, "参数错误", "Invalid parameter", "response_type must be code")
	}
	scope := q.Get("scope")
	if scope != scopeUserInfo && scope != scopeBase {
		return bad(ErrBadInput, "scope 参数错误或没有 scope 权限", "Invalid scope or no permission for it",
			"10005: scope must be snsapi_userinfo or snsapi_base")
	}
	state := q.Get("state")
	if len(state) > maxStateLen || strings.Trim(state, alnum) != "" {
		return bad(ErrBadInput, "state 参数错误", "Invalid state", fmt.Sprintf("state is at most %d letters and digits", maxStateLen))
	}
	return oauth2Request{appid: appid, redirect: redirect, scope: scope, state: state}, nil
}

// onDomain reports whether u lies on the web-authorization domain d: the
// same host (and port, when d names one). Subdomains are other domains.
func onDomain(u *url.URL, d string) bool {
	if d == "" {
		return true
	}
	if strings.Contains(d, ":") {
		return strings.EqualFold(u.Host, d)
	}
	return strings.EqualFold(u.Hostname(), d)
}

// OAuth2 answers: what the person on the phone chooses.
const (
	OAuth2Allow    = "allow"    // snsapi_userinfo: allow; snsapi_base: carry on
	OAuth2Deny     = "deny"     // refuse: back to the page without a code
	OAuth2Snapshot = "snapshot" // the page was opened as a snapshot page
)

// answerOAuth2Locked mints the code of an answer and returns where the
// WeChat browser goes.
func (s *Server) answerOAuth2Locked(now time.Time, req oauth2Request, action string, u User) (string, error) {
	add := url.Values{"state": {req.state}}
	switch action {
	case OAuth2Allow, OAuth2Snapshot:
		if u.Nickname == "" && s.knownUserLocked(req.appid, u) == nil {
			u.Nickname = defaultNickname
		}
		code, _, err := s.mintOAuthCodeLocked(now, req.appid, u, req.scope, action == OAuth2Snapshot)
		if err != nil {
			return "", err
		}
		add.Set("code", code)
	case OAuth2Deny:
	default:
		return "", fmt.Errorf("%w: action must be allow, deny or snapshot", ErrBadInput)
	}
	return withQuery(req.redirect, add), nil
}

// AuthorizeInWeChat does what a person does with the authorization page at
// authorizeURL (as built by wechat.Client.OAuth2AuthorizeURL; the
// #wechat_redirect fragment is ignored) inside WeChat: answer as user u
// with action (OAuth2Allow, OAuth2Deny, OAuth2Snapshot). It returns where
// WeChat sends the browser. The query is checked as the page checks it
// (ErrUnknownApp, ErrWrongKind, ErrBadInput).
func (s *Server) AuthorizeInWeChat(authorizeURL string, u User, action string) (redirectURL string, err error) {
	parsed, err := url.Parse(authorizeURL)
	if err != nil || !strings.HasSuffix(parsed.Path, PathOAuth2Authorize) {
		return "", fmt.Errorf("%w: %q is not a %s URL", ErrBadInput, authorizeURL, PathOAuth2Authorize)
	}
	req, pe := s.parseOAuth2(parsed.Query())
	if pe != nil {
		return "", pe
	}
	if err := validateUser(u); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.purgeLocked(now)
	redirect, err := s.answerOAuth2Locked(now, req, action, u)
	if err != nil {
		return "", err
	}
	s.log.Info("fakewechat: oa authorization answered", "appid", req.appid, "scope", req.scope, "action", action)
	return redirect, nil
}

// oauth2Page is the authorization page: the query travels on in the form
// (it holds nothing secret), so the answer needs no server-side session.
func (s *Server) oauth2Page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		pageMethodNotAllowed(w, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	req, pe := s.parseOAuth2(q)
	if pe != nil {
		s.log.Info("fakewechat: oauth2 authorize refused", "appid", q.Get("appid"), "reason", pe.detail)
		renderMessage(w, http.StatusOK, messagePage{ID: "error", TitleZh: pe.titleZh, TitleEn: pe.titleEn, Detail: pe.detail})
		return
	}
	page := oauth2PageData{AppID: req.appid, Site: req.redirect.Host, UserInfo: req.scope == scopeUserInfo,
		Query: q.Encode()}
	s.mu.Lock()
	for _, openid := range s.apps[req.appid].recent {
		if u := s.users[req.appid][openid]; u != nil {
			page.Known = append(page.Known, knownUser{Label: cmpOr(u.Nickname, u.OpenID), OpenID: u.OpenID,
				Href: "authorize?" + withOpenID(q, u.OpenID)})
		}
	}
	if openid := q.Get("openid"); openid != "" {
		if u := s.users[req.appid][openid]; u != nil {
			page.Form = formValues{Nickname: u.Nickname, OpenID: u.OpenID, UnionID: u.UnionID, HeadImgURL: u.HeadImgURL}
		}
	}
	s.mu.Unlock()
	render(w, http.StatusOK, oauth2Template, page)
}

// withOpenID is q with openid set: the test-user shortcut links.
func withOpenID(q url.Values, openid string) string {
	c := url.Values{}
	for k, v := range q {
		c[k] = v
	}
	c.Set("openid", openid)
	return c.Encode()
}

// oauth2Confirm takes the person's answer and sends the browser on.
func (s *Server) oauth2Confirm(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		pageMethodNotAllowed(w, "POST")
		return
	}
	f, ok := phoneForm(w, r, "query")
	if !ok {
		return
	}
	q, err := url.ParseQuery(f.Get("query"))
	if err != nil {
		renderBadRequest(w, "query does not parse")
		return
	}
	req, pe := s.parseOAuth2(q)
	if pe != nil {
		renderMessage(w, http.StatusOK, messagePage{ID: "error", TitleZh: pe.titleZh, TitleEn: pe.titleEn, Detail: pe.detail})
		return
	}
	action, u := f.Get("action"), formUser(f)
	if err := validateForm(u); err != nil {
		renderBadRequest(w, strings.TrimPrefix(err.Error(), ErrBadInput.Error()+": "))
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	s.purgeLocked(now)
	redirect, err := s.answerOAuth2Locked(now, req, action, u)
	s.mu.Unlock()
	switch {
	case errors.Is(err, ErrBadInput):
		renderBadRequest(w, strings.TrimPrefix(err.Error(), ErrBadInput.Error()+": "))
		return
	case errors.Is(err, ErrFull):
		renderBusy(w)
		return
	case err != nil:
		s.log.Error("fakewechat: oauth2 confirm", "appid", req.appid, "err", err)
		renderMessage(w, http.StatusInternalServerError, messagePage{ID: "error", TitleZh: "系统错误", TitleEn: "System error"})
		return
	}
	s.log.Info("fakewechat: oa authorization answered", "appid", req.appid, "scope", req.scope, "action", action)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, redirect, http.StatusFound)
}

type oauth2PageData struct {
	AppID, Site string
	UserInfo    bool   // snsapi_userinfo: the confirm; snsapi_base: silent
	Query       string // the authorize query, carried by the form
	Known       []knownUser
	Form        formValues
}

var oauth2Template = template.Must(template.New("oauth2").Parse(pageHead + `<title>微信授权 / WeChat authorization</title>
` + pageStyle + `
</head>
<body>
<main>
<p class="muted">模拟微信内置浏览器 / the WeChat browser on a phone (fake)</p>
{{- if .UserInfo}}
<h1>{{.Site}} 申请获取<br><small>This page asks for</small></h1>
<p>你的昵称、头像 <span class="muted">/ your nickname and avatar</span></p>
{{- else}}
<h1>{{.Site}}<br><small>静默授权 (snsapi_base) / silent authorization</small></h1>
<p class="muted">微信不显示此页，直接带 openid 返回网页；在这里选择是谁在用微信。<br>
WeChat shows nothing here and returns to the page with the openid; pick who is using WeChat.</p>
{{- end}}
<p class="muted">AppID <code id="appid">{{.AppID}}</code></p>
` + knownUsersHTML + `<form method="post" action="confirm">
<input type="hidden" name="query" value="{{.Query}}">
` + userFieldsHTML + `<div class="buttons">
<button id="allow" type="submit" name="action" value="allow">{{if .UserInfo}}允许 / Allow{{else}}继续 / Continue{{end}}</button>
{{- if .UserInfo}}
<button id="deny" type="submit" name="action" value="deny" formnovalidate>拒绝 / Deny</button>
{{- end}}
<button id="snapshot" type="submit" name="action" value="snapshot" formnovalidate>以朋友圈快照页打开 / Open as a Moments snapshot page</button>
</div>
</form>
<p class="muted">模拟微信，仅供测试 / fake WeChat, for tests only</p>
</main>
</body>
</html>
`))
