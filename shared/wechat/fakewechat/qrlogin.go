package fakewechat

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"

	"github.com/wxlogin/wxlogin/shared/api"
)

// The website QR login, as a person sees it:
//
//  1. The website shows open.weixin.qq.com/connect/qrconnect (often in an
//     iframe, through wxLogin.js). Here: GET PathQRConnect renders a QR code
//     and opens a scan session for (appid, redirect_uri, state).
//  2. The phone scans it and shows "log in to this website?". Here: GET
//     PathQRConfirm?uuid= is that phone page; a person picks a test user and
//     allows or denies (POST PathQRConfirm). The phone only answers: it never
//     goes to the website.
//  3. The QR page long-polls WeChat (GET PathQRWait?uuid=) and, once the
//     phone answered, navigates to redirect_uri?code=CODE&state=STATE (allow)
//     or redirect_uri?state=STATE (deny): itself, when it is the top page or
//     an iframe with self_redirect=true; the top window, when it is the
//     WxLogin iframe (login_type=jssdk) without self_redirect. So the
//     callback arrives in the browser that showed the QR code, as on WeChat.

// Bounds of the QR pages' input.
const (
	maxFormBytes      = 16 << 10 // POST PathQRConfirm body
	maxRedirectURILen = 2048
	maxStateLen       = 128              // WeChat documents state as at most 128 bytes
	qrWaitMax         = 25 * time.Second // one long-poll of the QR page (real time)
	defaultNickname   = "微信用户"
	qrImageSize       = 240 // pixels of the QR PNG
	scanIDLen         = 22  // alphanumerics: about 131 random bits
	contentTypeHTML   = "text/html; charset=utf-8"
)

// pageSecurityPolicy allows the pages' styles, the QR image, and the QR
// page's one script (by hash) polling this origin.
var pageSecurityPolicy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src " + scriptHash(qrScript) +
	"; connect-src 'self'; base-uri 'none'"

// scanSession is one QR code shown: who asked, and where to send the answer.
// Once the phone answered, answer is where the QR page goes and answered is
// closed; the session ends when the QR page has fetched it (or expires).
type scanSession struct {
	appid    string
	redirect *url.URL
	state    string
	exp      time.Time
	top      bool // the QR page redirects the top window (WxLogin iframe without self_redirect)
	answer   string
	allowed  bool
	answered chan struct{}
}

// qrRequest is a valid /connect/qrconnect query.
type qrRequest struct {
	appid    string
	redirect *url.URL
	state    string
	white    bool // style=white: white text, for a dark page behind the iframe
	top      bool // login_type=jssdk without self_redirect=true: redirect the top window
}

// pageError is a failure the QR pages show as WeChat does: a short Chinese
// title and a detail, with the English alongside. kind is the sentinel Go
// callers (ScanAndConfirm) match with errors.Is.
type pageError struct {
	titleZh, titleEn string
	detail           string
	kind             error
}

func (e *pageError) Error() string { return e.kind.Error() + ": " + e.detail }
func (e *pageError) Unwrap() error { return e.kind }

// errScanGone: the scan session is unknown, expired or already used.
var errScanGone = errors.New("fakewechat: QR code expired or already used")

// parseQRConnect checks a /connect/qrconnect query as WeChat does. It reads
// only s.apps, which New fills and nothing changes, so it needs no lock.
func (s *Server) parseQRConnect(q url.Values) (qrRequest, *pageError) {
	bad := func(kind error, titleZh, titleEn, detail string) (qrRequest, *pageError) {
		return qrRequest{}, &pageError{titleZh: titleZh, titleEn: titleEn, detail: detail, kind: kind}
	}
	appid := q.Get("appid")
	app := s.apps[appid]
	switch {
	case appid == "":
		return bad(ErrBadInput, "参数错误", "Invalid parameter", "appid is missing")
	case app == nil:
		return bad(ErrUnknownApp, "参数错误", "Invalid parameter", "AppID 参数错误 / unknown appid")
	case app.Kind != api.KindWeb:
		return bad(ErrWrongKind, "参数错误", "Invalid parameter",
			"AppID 参数错误: 该 AppID 不是网站应用 / the appid is not a website (Open Platform) app")
	}
	raw := q.Get("redirect_uri")
	if raw == "" {
		return bad(ErrBadInput, "redirect_uri 参数错误", "Invalid redirect_uri", "redirect_uri is missing")
	}
	redirect, err := url.Parse(raw)
	if err != nil || len(raw) > maxRedirectURILen || (redirect.Scheme != "http" && redirect.Scheme != "https") ||
		redirect.Host == "" || redirect.User != nil {
		return bad(ErrBadInput, "redirect_uri 参数错误", "Invalid redirect_uri",
			fmt.Sprintf("redirect_uri must be an absolute http(s) URL of at most %d bytes", maxRedirectURILen))
	}
	if rt := q.Get("response_type"); rt != "code" {
		return bad(ErrBadInput, "参数错误", "Invalid parameter", "response_type must be code")
	}
	if q.Get("scope") != "snsapi_login" {
		return bad(ErrBadInput, "Scope 参数错误或没有 Scope 权限", "Invalid scope or no permission for it",
			"a website app logs in with scope=snsapi_login")
	}
	state := q.Get("state")
	if len(state) > maxStateLen {
		return bad(ErrBadInput, "参数错误", "Invalid parameter", fmt.Sprintf("state is longer than %d bytes", maxStateLen))
	}
	// login_type=jssdk is wxLogin.js's iframe: it sends the top window to the
	// callback unless self_redirect=true. href, stylelite and fast_login only
	// change how real WeChat draws the page; the fake ignores them (href
	// would load an external stylesheet).
	top := q.Get("login_type") == "jssdk" && q.Get("self_redirect") != "true"
	return qrRequest{appid: appid, redirect: redirect, state: state, white: q.Get("style") == "white", top: top}, nil
}

// newScanLocked opens a scan session for req.
func (s *Server) newScanLocked(now time.Time, req qrRequest) (string, error) {
	if len(s.scans) >= s.maxScans {
		return "", ErrFull
	}
	id := randomString(scanIDLen, alnum)
	exp := now.Add(scanTTL)
	s.scans[id] = &scanSession{appid: req.appid, redirect: req.redirect, state: req.state, exp: exp, top: req.top,
		answered: make(chan struct{})}
	s.queues[queueScans].push(id, exp)
	return id, nil
}

// liveScanLocked returns the scan session id names, or nil if it is unknown,
// expired or already answered on the phone.
func (s *Server) liveScanLocked(now time.Time, id string) *scanSession {
	sc := s.scans[id]
	if sc == nil || !now.Before(sc.exp) || sc.answer != "" {
		return nil
	}
	return sc
}

// confirmLocked answers scan session id as the person on the phone did and
// returns where WeChat redirects; the QR page's long-poll learns it. The
// session is answered only on success, so a typo in the form does not burn
// the QR code.
func (s *Server) confirmLocked(now time.Time, id string, allow bool, u User) (redirect, appid string, err error) {
	sc := s.liveScanLocked(now, id)
	if sc == nil {
		return "", "", errScanGone
	}
	add := url.Values{"state": {sc.state}}
	if allow {
		// Real WeChat users always have a nickname; give a new one the
		// nickname WeChat itself shows for an anonymous user.
		if u.Nickname == "" && s.knownUserLocked(sc.appid, u) == nil {
			u.Nickname = defaultNickname
		}
		code, _, err := s.mintCodeLocked(now, sc.appid, u)
		if err != nil {
			return "", sc.appid, err
		}
		add.Set("code", code)
	}
	sc.answer, sc.allowed = withQuery(sc.redirect, add), allow
	close(sc.answered)
	return sc.answer, sc.appid, nil
}

// knownUserLocked returns the stored user u names in appid's directory, or nil.
func (s *Server) knownUserLocked(appid string, u User) *User {
	openid := u.OpenID
	if openid == "" && u.UnionID != "" {
		openid = s.unions[appid][u.UnionID]
	}
	if openid == "" {
		return nil
	}
	return s.users[appid][openid]
}

// withQuery appends add to u's query, keeping the query u already has as it
// is (re-encoding it could change what the website signed or expects).
func withQuery(u *url.URL, add url.Values) string {
	out := *u
	if out.RawQuery == "" {
		out.RawQuery = add.Encode()
	} else {
		out.RawQuery += "&" + add.Encode()
	}
	return out.String()
}

// ScanAndConfirm does what a person does with the QR page at qrconnectURL
// (as built by wechat.Client.QRConnectURL; a #wechat_redirect fragment is
// ignored): scan it, pick user u on the phone page, and allow or deny. It
// returns where WeChat redirects: redirect_uri with code and state on allow,
// with state only on deny.
//
// u names the user as on the phone page and as MintCode takes it: empty
// OpenID finds the user by UnionID or makes a new one; a new user without a
// Nickname is called "微信用户". The query is checked as GET
// /connect/qrconnect checks it: errors match ErrUnknownApp (unknown appid),
// ErrWrongKind (a mini-program appid) or ErrBadInput (anything else, or a bad
// u); ErrFull when the fake is full.
func (s *Server) ScanAndConfirm(qrconnectURL string, u User, allow bool) (redirectURL string, err error) {
	parsed, err := url.Parse(qrconnectURL)
	if err != nil {
		return "", fmt.Errorf("%w: qrconnect URL does not parse", ErrBadInput)
	}
	if !strings.HasSuffix(parsed.Path, PathQRConnect) {
		return "", fmt.Errorf("%w: %q is not a %s URL", ErrBadInput, parsed.Path, PathQRConnect)
	}
	req, pe := s.parseQRConnect(parsed.Query())
	if pe != nil {
		return "", pe
	}
	if allow {
		if err := validateUser(u); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.purgeLocked(now)
	id, err := s.newScanLocked(now, req)
	if err != nil {
		return "", err
	}
	redirect, _, err := s.confirmLocked(now, id, allow, u)
	delete(s.scans, id) // no QR page waits for it
	if err != nil {
		return "", err
	}
	s.log.Info("fakewechat: qr login answered", "appid", req.appid, "allowed", allow)
	return redirect, nil
}

// baseURL is the fake's address as the phone reaches it.
func (s *Server) baseURL(r *http.Request) string {
	if s.public != "" {
		return s.public
	}
	scheme := "http"
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if r.TLS != nil || strings.EqualFold(strings.TrimSpace(proto), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ValidatePublicURL reports whether s is usable as Options.PublicURL: empty,
// or an absolute http(s) URL without query or fragment.
func ValidatePublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("public URL %q is not an absolute http(s) URL without query or fragment", s)
	}
	return nil
}

func (s *Server) qrConnectPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		pageMethodNotAllowed(w, "GET, HEAD")
		return
	}
	req, pe := s.parseQRConnect(r.URL.Query())
	if pe != nil {
		// WeChat shows its error pages with HTTP 200.
		s.log.Info("fakewechat: qrconnect refused", "appid", r.URL.Query().Get("appid"), "reason", pe.detail)
		renderMessage(w, http.StatusOK, messagePage{ID: "error", TitleZh: pe.titleZh, TitleEn: pe.titleEn, Detail: pe.detail})
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	s.purgeLocked(now)
	id, err := s.newScanLocked(now, req)
	s.mu.Unlock()
	if err != nil {
		renderBusy(w)
		return
	}
	phoneURL := s.baseURL(r) + PathQRConfirm + "?" + url.Values{"uuid": {id}}.Encode()
	png, err := qrcode.Encode(phoneURL, qrcode.Medium, qrImageSize)
	if err != nil {
		// Only an absurdly long PublicURL or Host gets here.
		s.log.Error("fakewechat: encode QR code", "err", err)
		renderMessage(w, http.StatusInternalServerError, messagePage{ID: "error", TitleZh: "系统错误", TitleEn: "System error",
			Detail: "the QR code could not be drawn"})
		return
	}
	s.log.Debug("fakewechat: qr page shown", "appid", req.appid)
	render(w, http.StatusOK, qrTemplate, qrPage{
		AppID:    req.appid,
		UUID:     id,
		QR:       template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
		PhoneURL: phoneURL,
		White:    req.white,
		Top:      req.top,
		Script:   template.JS(qrScript),
	})
}

// qrWait is the QR page's long-poll (WeChat's lp.open.weixin.qq.com
// /connect/l/qrconnect): it answers once the phone has, or after qrWaitMax.
// JSON with WeChat's wx_errcode: 408 still waiting, 405 allowed and 403
// denied (both with redirect_uri, where the page goes), 402 expired or
// unknown. The answer is handed out once: the session then ends.
func (s *Server) qrWait(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		pageMethodNotAllowed(w, "GET")
		return
	}
	id := r.URL.Query().Get("uuid")
	timer := time.NewTimer(qrWaitMax)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.nowLocked()
		s.purgeLocked(now)
		sc := s.scans[id]
		if sc == nil || !now.Before(sc.exp) {
			s.mu.Unlock()
			waitAnswer(w, map[string]any{"wx_errcode": 402})
			return
		}
		if sc.answer != "" {
			delete(s.scans, id)
			s.mu.Unlock()
			code := 405
			if !sc.allowed {
				code = 403
			}
			waitAnswer(w, map[string]any{"wx_errcode": code, "redirect_uri": sc.answer})
			return
		}
		answered := sc.answered
		s.mu.Unlock()
		select {
		case <-answered:
		case <-timer.C:
			waitAnswer(w, map[string]any{"wx_errcode": 408})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func waitAnswer(w http.ResponseWriter, v map[string]any) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// qrScript is the QR page's script: wait for the phone, then go where WeChat
// sends the browser (see the top of this file).
const qrScript = `(function () {
  'use strict';
  var qr = document.getElementById('qr'), status = document.getElementById('qr-status');
  var wait = 'l/qrconnect?uuid=' + encodeURIComponent(qr.dataset.uuid);
  var failures = 0;
  function poll() {
    fetch(wait, { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (b) {
      failures = 0;
      if (b.wx_errcode === 408) { poll(); return; }
      if (b.redirect_uri) {
        status.textContent = b.wx_errcode === 405 ? '已确认，正在登录… / Allowed: logging in…' : '已取消 / Cancelled';
        if (qr.dataset.top === 'true') { window.top.location.href = b.redirect_uri; } else { window.location.href = b.redirect_uri; }
        return;
      }
      status.textContent = '二维码已失效，请刷新页面 / The QR code expired: reload the page';
    }, function () {
      if (++failures < 10) { setTimeout(poll, 1000); }
    });
  }
  poll();
})();`

// scriptHash is the CSP source of an inline script.
func scriptHash(js string) string {
	sum := sha256.Sum256([]byte(js))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.phonePage(w, r)
	case http.MethodPost:
		s.postConfirm(w, r)
	default:
		pageMethodNotAllowed(w, "GET, HEAD, POST")
	}
}

// phonePage is what the phone shows after scanning: who asks, which test
// user to log in as, allow or deny. ?openid= fills the form with that known
// user (the shortcuts link there, so the page needs no script).
func (s *Server) phonePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("uuid")
	s.mu.Lock()
	now := s.nowLocked()
	s.purgeLocked(now)
	sc := s.liveScanLocked(now, id)
	var page phonePage
	if sc != nil {
		page = phonePage{UUID: id, AppID: sc.appid, Site: sc.redirect.Host}
		for _, openid := range s.apps[sc.appid].recent {
			u := s.users[sc.appid][openid]
			if u == nil {
				continue
			}
			page.Known = append(page.Known, knownUser{
				Label: cmpOr(u.Nickname, u.OpenID), OpenID: u.OpenID,
				Href: "confirm?" + url.Values{"uuid": {id}, "openid": {u.OpenID}}.Encode(),
			})
		}
		if openid := q.Get("openid"); openid != "" {
			if u := s.users[sc.appid][openid]; u != nil {
				page.Form = formValues{Nickname: u.Nickname, OpenID: u.OpenID, UnionID: u.UnionID, HeadImgURL: u.HeadImgURL}
			}
		}
	}
	s.mu.Unlock()
	if sc == nil {
		renderExpired(w)
		return
	}
	render(w, http.StatusOK, phoneTemplate, page)
}

// phoneForm reads the form of a phone page (at most maxFormBytes, every
// field at most once: key, action and the user's), answering the error page
// itself when it cannot.
func phoneForm(w http.ResponseWriter, r *http.Request, key string) (url.Values, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			renderMessage(w, http.StatusRequestEntityTooLarge, messagePage{ID: "error", TitleZh: "参数错误",
				TitleEn: "Invalid request", Detail: fmt.Sprintf("the form is larger than %d bytes", maxFormBytes)})
			return nil, false
		}
		renderBadRequest(w, "the form does not parse")
		return nil, false
	}
	f := r.PostForm
	for _, name := range []string{key, "action", "nickname", "openid", "unionid", "headimgurl"} {
		if len(f[name]) > 1 {
			renderBadRequest(w, name+" is given more than once")
			return nil, false
		}
	}
	return f, true
}

// formUser is the test user typed on a phone page.
func formUser(f url.Values) User {
	return User{
		Nickname:   strings.TrimSpace(f.Get("nickname")),
		OpenID:     strings.TrimSpace(f.Get("openid")),
		UnionID:    strings.TrimSpace(f.Get("unionid")),
		HeadImgURL: strings.TrimSpace(f.Get("headimgurl")),
	}
}

func (s *Server) postConfirm(w http.ResponseWriter, r *http.Request) {
	f, ok := phoneForm(w, r, "uuid")
	if !ok {
		return
	}
	id, action := f.Get("uuid"), f.Get("action")
	if id == "" {
		renderBadRequest(w, "uuid is missing")
		return
	}
	if action != "allow" && action != "deny" {
		renderBadRequest(w, "action must be allow or deny")
		return
	}
	allow := action == "allow"
	u := formUser(f)
	if allow {
		if err := validateForm(u); err != nil {
			renderBadRequest(w, strings.TrimPrefix(err.Error(), ErrBadInput.Error()+": "))
			return
		}
	}

	s.mu.Lock()
	now := s.nowLocked()
	s.purgeLocked(now)
	_, appid, err := s.confirmLocked(now, id, allow, u) // the QR page's long-poll takes the redirect
	s.mu.Unlock()
	switch {
	case errors.Is(err, errScanGone):
		renderExpired(w)
		return
	case errors.Is(err, ErrBadInput):
		renderBadRequest(w, strings.TrimPrefix(err.Error(), ErrBadInput.Error()+": "))
		return
	case errors.Is(err, ErrFull):
		renderBusy(w)
		return
	case err != nil:
		s.log.Error("fakewechat: qr confirm", "appid", appid, "err", err)
		renderMessage(w, http.StatusInternalServerError, messagePage{ID: "error", TitleZh: "系统错误", TitleEn: "System error"})
		return
	}
	s.log.Info("fakewechat: qr login answered", "appid", appid, "allowed", allow)
	if allow {
		renderMessage(w, http.StatusOK, messagePage{ID: "done", Icon: "✓", TitleZh: "已确认登录", TitleEn: "Login allowed",
			Detail: "请在电脑上继续 / Carry on on your computer: the website logs you in."})
		return
	}
	renderMessage(w, http.StatusOK, messagePage{ID: "done", Icon: "–", TitleZh: "已取消登录", TitleEn: "Login cancelled",
		Detail: "你已拒绝本次登录 / You did not allow the login."})
}

// validateForm checks what a person typed on the phone page, beyond what
// validateUser checks for every minted user.
func validateForm(u User) error {
	for name, v := range map[string]string{"nickname": u.Nickname, "openid": u.OpenID, "unionid": u.UnionID,
		"headimgurl": u.HeadImgURL} {
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return fmt.Errorf("%w: %s holds invalid UTF-8 or control characters", ErrBadInput, name)
		}
	}
	if u.HeadImgURL != "" {
		h, err := url.Parse(u.HeadImgURL)
		if err != nil || (h.Scheme != "http" && h.Scheme != "https") || h.Host == "" {
			return fmt.Errorf("%w: headimgurl must be empty or an absolute http(s) URL", ErrBadInput)
		}
	}
	return validateUser(u)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Pages.

type qrPage struct {
	AppID, UUID string
	QR          template.URL // a data: URI we built ourselves
	PhoneURL    string
	White, Top  bool
	Script      template.JS // qrScript, allowed by its hash
}

type phonePage struct {
	UUID, AppID, Site string
	Known             []knownUser
	Form              formValues
}

type knownUser struct {
	Label, OpenID, Href string
}

type formValues struct {
	Nickname, OpenID, UnionID, HeadImgURL string
}

type messagePage struct {
	ID               string // element id tests and scripts look for: "error", "expired" or "done"
	Icon             string // default "!"
	TitleZh, TitleEn string
	Detail           string
}

// setPageHeaders: no caching (each QR page is a new scan session), and
// nothing that forbids framing: websites show the QR page in an iframe.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the phone URL holds the scan id
	h.Set("Content-Security-Policy", pageSecurityPolicy)
}

func render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		// The templates are ours and their data is plain strings: a bug.
		http.Error(w, "fakewechat: render page", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w)
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func renderMessage(w http.ResponseWriter, status int, p messagePage) {
	render(w, status, messageTemplate, p)
}

func renderExpired(w http.ResponseWriter) {
	// 200, as WeChat shows it.
	renderMessage(w, http.StatusOK, messagePage{ID: "expired", TitleZh: "二维码已失效", TitleEn: "This QR code has expired",
		Detail: "请在网页上刷新二维码后重新扫描 / Reload the QR code on the website and scan it again."})
}

func renderBadRequest(w http.ResponseWriter, detail string) {
	renderMessage(w, http.StatusBadRequest, messagePage{ID: "error", TitleZh: "参数错误", TitleEn: "Invalid request", Detail: detail})
}

func renderBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	renderMessage(w, http.StatusServiceUnavailable, messagePage{ID: "error", TitleZh: "系统繁忙，请稍后再试",
		TitleEn: "System busy, try again later", Detail: "the fake holds too many QR codes or users"})
}

func pageMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	renderMessage(w, http.StatusMethodNotAllowed, messagePage{ID: "error", TitleZh: "请求方法错误", TitleEn: "Method not allowed",
		Detail: "use " + allow})
}

const pageStyle = `<style>
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"PingFang SC","Microsoft YaHei","Helvetica Neue",Arial,sans-serif;color:#1f1f1f;background:#fff}
main{max-width:420px;margin:0 auto;padding:16px;text-align:center}
h1{font-size:18px;font-weight:600;margin:8px 0 12px}
h2{font-size:14px;font-weight:600;margin:16px 0 6px;text-align:left}
p{margin:6px 0}
small,.muted{color:#888;font-size:12px}
code{font-family:Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
a{color:#576b95}
.white{color:#fff;background:transparent}
.white .muted,.white small{color:#ddd}
.white a{color:#fff}
#qr{display:block;margin:0 auto;width:200px;height:200px;image-rendering:pixelated;border:1px solid #e5e5e5}
form{text-align:left}
label{display:block;margin:10px 0 4px;font-size:13px;color:#555}
input{width:100%;padding:10px;font-size:16px;border:1px solid #d9d9d9;border-radius:6px}
ul{list-style:none;margin:0;padding:0;text-align:left}
li a{display:block;padding:8px 10px;margin:4px 0;border:1px solid #e5e5e5;border-radius:6px;text-decoration:none;color:#1f1f1f}
li a small{display:block}
.buttons{display:flex;flex-direction:column;gap:10px;margin-top:20px}
button{width:100%;padding:12px;font-size:16px;border:0;border-radius:6px;cursor:pointer}
#allow{background:#07c160;color:#fff}
#deny{background:#f2f2f2;color:#1f1f1f}
.icon{font-size:48px;line-height:1;margin:24px 0 8px}
</style>`

const pageHead = `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
`

var qrTemplate = template.Must(template.New("qr").Parse(pageHead + `<title>微信登录 / WeChat login</title>
` + pageStyle + `
</head>
<body{{if .White}} class="white"{{end}}>
<main>
<h1>微信登录</h1>
<img id="qr" alt="WeChat QR code" width="200" height="200" src="{{.QR}}" data-uuid="{{.UUID}}" data-top="{{.Top}}">
<p id="qr-status">使用微信扫一扫登录<br>Scan with WeChat</p>
<p class="muted"><code>{{.AppID}}</code></p>
<p><small><a id="phone-link" href="{{.PhoneURL}}" target="_blank" rel="noopener">open the phone page</a> · 模拟微信 / fake WeChat</small></p>
</main>
<script>{{.Script}}</script>
</body>
</html>
`))

// knownUsersHTML and userFieldsHTML are the parts of the phone pages (the QR
// confirm and the official account's authorization) that pick the test user.
const (
	knownUsersHTML = `{{- if .Known}}
<h2>测试用户 / Test users</h2>
<ul id="known-users">
{{- range .Known}}
<li><a class="known-user" href="{{.Href}}">{{.Label}}<small><code>{{.OpenID}}</code></small></a></li>
{{- end}}
</ul>
{{- end}}
`
	userFieldsHTML = `<label for="nickname">昵称 / Nickname</label>
<input id="nickname" name="nickname" value="{{.Form.Nickname}}" placeholder="微信用户" maxlength="1024" autocomplete="off">
<label for="openid">openid <small>(可选，留空即新用户 / optional, empty = a new user)</small></label>
<input id="openid" name="openid" value="{{.Form.OpenID}}" maxlength="1024" autocomplete="off" autocapitalize="off" spellcheck="false">
<label for="unionid">unionid <small>(可选 / optional)</small></label>
<input id="unionid" name="unionid" value="{{.Form.UnionID}}" maxlength="1024" autocomplete="off" autocapitalize="off" spellcheck="false">
<label for="headimgurl">头像 URL / Avatar URL <small>(可选 / optional)</small></label>
<input id="headimgurl" name="headimgurl" type="url" value="{{.Form.HeadImgURL}}" maxlength="1024" autocomplete="off">
`
)

var phoneTemplate = template.Must(template.New("phone").Parse(pageHead + `<title>微信登录确认 / Confirm login</title>
` + pageStyle + `
</head>
<body>
<main>
<h1>微信登录确认<br><small>Confirm login</small></h1>
<p>网站 <strong>{{.Site}}</strong> 申请使用你的微信帐号登录<br>
<span class="muted">The website asks to log you in with WeChat</span></p>
<p class="muted">AppID <code id="appid">{{.AppID}}</code></p>
` + knownUsersHTML + `<form method="post" action="confirm">
<input type="hidden" name="uuid" value="{{.UUID}}">
` + userFieldsHTML + `<div class="buttons">
<button id="allow" type="submit" name="action" value="allow">允许 / Allow</button>
<button id="deny" type="submit" name="action" value="deny" formnovalidate>拒绝 / Deny</button>
</div>
</form>
<p class="muted">模拟微信，仅供测试 / fake WeChat, for tests only</p>
</main>
</body>
</html>
`))

var messageTemplate = template.Must(template.New("message").Parse(pageHead + `<title>{{.TitleZh}} / {{.TitleEn}}</title>
` + pageStyle + `
</head>
<body>
<main>
<div class="icon" aria-hidden="true">{{if .Icon}}{{.Icon}}{{else}}!{{end}}</div>
<div id="{{.ID}}">
<h1>{{.TitleZh}}<br><small>{{.TitleEn}}</small></h1>
{{- if .Detail}}
<p class="muted">{{.Detail}}</p>
{{- end}}
</div>
</main>
</body>
</html>
`))
