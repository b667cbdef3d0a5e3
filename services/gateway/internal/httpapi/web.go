package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/services/gateway/internal/problem"
	"github.com/wxlogin/wxlogin/services/gateway/internal/qrwatch"
	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/services/gateway/internal/redirecturi"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/clientip"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/wechat"
)

// Website QR login (docs/api.md, "Website QR login").
const (
	webPath         = "/api/v1/auth/web" // the ticket cookie's path: the polls and the callback
	qrPath          = webPath + "/qr"
	callbackPath    = webPath + "/callback"
	pollTokenHeader = "X-Poll-Token"
	// ticketCookiePrefix + ticket names a ticket's cookie, which holds its
	// poll token. One cookie per ticket: two tabs of one browser showing
	// two QR codes each finish their own.
	ticketCookiePrefix = "wxlogin_qr_"

	// maxWait bounds a long-poll (the HTTP server's write timeout is 35 s).
	maxWait = 30 * time.Second
	// Ticket and poll token sizes: session makes 128-bit base64url values
	// (22 characters); anything far off is not ours.
	minTicketLen    = 16
	maxTicketLen    = 128
	maxPollTokenLen = 256
	maxQRBodyBytes  = 1 << 10
)

// Per-ticket poll limit, keyed by ticket and client address and applied
// only to polls with the right poll token: a browser polls at most a few
// times a second (a long-poll, then the next one), so this only stops a
// runaway loop. Anyone who saw the QR code knows the ticket (it is WeChat's
// state), so polls without the token must not spend this budget: they are
// charged to the client address's general limit instead (pollNotFound).
var qrPollLimit = ratelimit.Spec{Rate: 2, Burst: 5}

// maxLimitedTickets bounds the per-ticket limiter's memory.
const maxLimitedTickets = 50_000

// WebOptions configure the website QR login and the demo page.
type WebOptions struct {
	// PublicURL is the gateway's external base URL (http(s)://host[/prefix],
	// no trailing slash): WeChat redirects to PublicURL + the callback path.
	PublicURL string
	// WechatOpenBase is WeChat's Open Platform base, where the QR page lives.
	WechatOpenBase string
	// Tickets reads the tickets in KV wxlogin_qr. Without it the QR routes
	// answer service_unavailable.
	Tickets *qrwatch.Tickets
	// RedirectURIs are where the in-WeChat login may send a browser back
	// (WXLOGIN_REDIRECT_URIS, oa.go); nil allows none.
	RedirectURIs *redirecturi.Allowlist
}

// webState is what the QR routes need, built once in New.
type webState struct {
	tickets          *qrwatch.Tickets
	wechat           *wechat.Client // only builds the qrconnect URL: no secret
	redirectURI      string
	cookiePath       string
	followCookiePath string // the follow-to-log-in polls' (oafollow.go)
	secureCookie     bool
	pollLimit        *ratelimit.Limiter
	demoCSP          string
	// The in-WeChat login (oa.go): allowed redirects, our callback, and
	// the path of its state cookies.
	redirects     *redirecturi.Allowlist
	oaCallbackURI string
	oaCookiePath  string
}

func newWebState(o WebOptions) *webState {
	w := &webState{
		tickets:     o.Tickets,
		wechat:      wechat.New(wechat.Options{OpenBase: o.WechatOpenBase}),
		redirectURI: strings.TrimSuffix(o.PublicURL, "/") + callbackPath,
		cookiePath:  webPath,
		pollLimit:   ratelimit.New(qrPollLimit, ratelimit.Options{MaxKeys: maxLimitedTickets}),
		redirects:   o.RedirectURIs,
		// WeChat redirects to PublicURL + the callback path.
		oaCallbackURI:    strings.TrimSuffix(o.PublicURL, "/") + oaCallbackPath,
		oaCookiePath:     oaPath,
		followCookiePath: oaQRPath,
	}
	if u, err := url.Parse(o.PublicURL); err == nil {
		w.secureCookie = u.Scheme == "https"
		// Behind a proxy that serves the gateway under a path prefix, the
		// browser sees the prefix.
		w.cookiePath = strings.TrimSuffix(u.Path, "/") + webPath
		w.oaCookiePath = strings.TrimSuffix(u.Path, "/") + oaPath
		w.followCookiePath = strings.TrimSuffix(u.Path, "/") + oaQRPath
	}
	w.demoCSP = demoCSP(o.WechatOpenBase)
	return w
}

func (s *server) registerWeb(r *gin.Engine, v1 *gin.RouterGroup) {
	v1.POST("/auth/web/qr", s.ipLimit, s.createQR)
	v1.GET("/auth/web/qr/:ticket", s.pollQR)
	// The callback is a page a person sees: it answers HTML even when the
	// backend is down, so it is outside the API group.
	r.GET(callbackPath, s.qrCallback)
	s.registerDemo(r)   // demo.go: /demo, its script, and the browser client
	s.registerOA(r, v1) // oa.go: the in-WeChat browser login
}

// qrResponse is the answer to POST /api/v1/auth/web/qr.
type qrResponse struct {
	Ticket       string        `json:"ticket"`
	PollToken    string        `json:"poll_token"`
	ExpiresIn    int64         `json:"expires_in"`
	QRConnectURL string        `json:"qrconnect_url"`
	WxLogin      wxLoginParams `json:"wxlogin"`
}

// wxLoginParams are the arguments of WeChat's wxLogin.js, for sites that
// embed the QR code themselves.
type wxLoginParams struct {
	AppID       string `json:"appid"`
	Scope       string `json:"scope"`
	RedirectURI string `json:"redirect_uri"`
	State       string `json:"state"`
}

// createQR starts a website login: session makes the ticket; the answer
// carries WeChat's QR page URL and sets the poll cookie.
func (s *server) createQR(c *gin.Context) {
	t, ok := s.newTicket(c, api.KindWeb)
	if !ok {
		return
	}
	s.setTicketCookie(c, t, s.web.cookiePath)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, qrResponse{
		Ticket:       t.Ticket,
		PollToken:    t.PollToken,
		ExpiresIn:    t.ExpiresIn,
		QRConnectURL: s.web.wechat.QRConnectURL(t.AppID, s.web.redirectURI, t.Ticket),
		WxLogin:      wxLoginParams{AppID: t.AppID, Scope: "snsapi_login", RedirectURI: s.web.redirectURI, State: t.Ticket},
	})
}

// newTicket reads the optional app of a QR creation and has session make
// a ticket of kind; false when it has answered the error.
func (s *server) newTicket(c *gin.Context, kind string) (session.QRTicket, bool) {
	body, err := readBodyMax(c, maxQRBodyBytes)
	if err != nil {
		s.fail(c, err)
		return session.QRTicket{}, false
	}
	app := ""
	if len(body) > 0 {
		f, err := parseFields(c.GetHeader("Content-Type"), body, "app")
		if err != nil {
			s.fail(c, err)
			return session.QRTicket{}, false
		}
		if app, err = appField(f["app"]); err != nil {
			s.fail(c, err)
			return session.QRTicket{}, false
		}
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	t, err := s.session.QRCreate(ctx, session.QRCreateRequest{App: app, Kind: kind})
	cancel()
	if err != nil {
		s.fail(c, err)
		return session.QRTicket{}, false
	}
	if !validTicket(t.Ticket) || t.PollToken == "" || t.AppID == "" || t.ExpiresIn <= 0 {
		s.fail(c, fmt.Errorf("session answered a malformed QR ticket (ticket length %d, appid %q, expires_in %d)", len(t.Ticket), t.AppID, t.ExpiresIn))
		return session.QRTicket{}, false
	}
	return t, true
}

// setTicketCookie sets the ticket's cookie, which holds its poll token,
// on path (the polls', and for a website ticket the callback's).
func (s *server) setTicketCookie(c *gin.Context, t session.QRTicket, path string) {
	// The ticket's cookie binds the callback to this browser: only a
	// callback that carries it completes the ticket (qrCallback).
	//
	// SameSite=Lax. WeChat reaches the callback by a navigation that starts
	// on its own site, in three ways:
	//   - the top page redirected from open.weixin.qq.com, or the WxLogin
	//     iframe sending the top window (self_redirect:false): a cross-site
	//     top-level GET navigation, which carries Lax cookies (not Strict);
	//   - the WxLogin iframe navigating itself (self_redirect:true): a frame
	//     navigation started by a cross-site document, which carries no Lax
	//     cookie. The refusal page then navigates its frame to the callback
	//     once more (wrongBrowserPage): started by our own page in a frame
	//     whose top window is this site, that request is same-site and has
	//     the cookie; in a frame on another site it still has none.
	// Strict would need that second try in every mode, and gain nothing: the
	// second try is same-site wherever Lax's first one is allowed. None would
	// make the first try work in the iframe too, but it would
	// also hand the cookie to any cross-site request (an attacker's page
	// loading the callback with their code in an <img> or iframe while the
	// victim's QR code is live). What Lax still lets through is a top-level
	// link the victim clicks to a callback URL with someone else's code: the
	// victim's own click while their QR code is live, and a not_bound answer
	// shows whose WeChat it is before anything is bound.
	s.web.bindingCookie(c, ticketCookiePrefix+t.Ticket, t.PollToken, path, int(t.ExpiresIn))
}

// bindingCookie sets (maxAge > 0) or clears (maxAge < 0) a cookie that binds
// a login to this browser: HttpOnly, SameSite=Lax (see createQR), Secure
// under https.
func (w *webState) bindingCookie(c *gin.Context, name, value, path string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: w.secureCookie, SameSite: http.SameSiteLaxMode})
}

// appField validates the optional app name.
func appField(v string) (string, error) {
	if len(v) > maxAppBytes {
		return "", invalidField("app", fmt.Sprintf("must be at most %d bytes", maxAppBytes))
	}
	if _, err := text("app", v, maxAppBytes); err != nil {
		return "", err
	}
	return v, nil
}

// validTicket reports whether t looks like a session ticket: base64url of
// a sensible length. Anything else is not looked up (nor used as a KV key).
func validTicket(t string) bool {
	if len(t) < minTicketLen || len(t) > maxTicketLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch b := t[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}

// callbackQuery reads the query WeChat's redirect carries: state, which
// must look like a ticket (else the page is 404, as for an unknown one), and
// code, absent when the person refused (a malformed one is 400). bad is the
// page to answer instead, nil when both are usable.
func callbackQuery(q url.Values) (state, code string, status int, bad *callbackContent) {
	state, code = q.Get("state"), q.Get("code")
	if !validTicket(state) {
		page := pageNotFound
		return "", "", http.StatusNotFound, &page
	}
	if len(code) > maxCodeBytes || !isVisibleASCII(code) {
		page := pageBadRequest
		return "", "", http.StatusBadRequest, &page
	}
	return state, code, http.StatusOK, nil
}

var (
	errTicketNotFound = &api.Error{Code: api.CodeQRTicketNotFound, Message: "no such QR login ticket, or it has been used"}
	errTicketExpired  = &api.Error{Code: api.CodeQRTicketExpired, Message: "the QR login ticket has expired; start again"}
	errTicketsDown    = &api.Error{Code: api.CodeServiceUnavailable, Message: "QR login is not available right now; try again shortly"}
)

// pollAnswer is a poll's answer before the tokens.
type pollAnswer struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// pollQR answers a browser waiting for its QR login: pending, denied,
// not_bound (403 wechat_not_bound with the bind token), or (once) confirmed
// with the tokens. ?wait= long-polls until the ticket changes.
func (s *server) pollQR(c *gin.Context) {
	ticket := c.Param("ticket")
	if !validTicket(ticket) {
		s.pollNotFound(c)
		return
	}
	token := pollToken(c, ticket)
	if token == "" {
		// Whether the ticket exists is none of the caller's business.
		s.pollNotFound(c)
		return
	}
	wait, err := parseWait(c.Query("wait"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.web.tickets == nil {
		s.fail(c, errTicketsDown)
		return
	}

	ctx := c.Request.Context()
	var w *qrwatch.Waiter
	if wait > 0 {
		// Watch before reading: a change between the read and the wait
		// then still arrives.
		w = s.web.tickets.Watch(ticket)
		defer w.Stop()
	}
	rec, err := s.readTicket(ctx, ticket)
	if err == nil {
		err = checkPollToken(rec, token)
	}
	if errors.Is(err, errTicketNotFound) {
		s.pollNotFound(c)
		return
	}
	if err == nil {
		// Only the poll token's holder gets here.
		if ok, retry := s.web.pollLimit.Allow(ticket + " " + clientip.Key(c.ClientIP())); !ok {
			s.fail(c, &api.Error{Code: api.CodeRateLimited, Message: "this ticket is polled too often; retry after the number of seconds in Retry-After",
				Data: map[string]string{"retry_after": strconv.Itoa(ratelimit.RetryAfterSeconds(retry))}})
			return
		}
	}
	if err == nil && rec.Status == session.QRPending && wait > 0 {
		s.log.LogAttrs(ctx, slog.LevelDebug, "QR poll waiting for the ticket to change",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.Duration("wait", wait))
		rec, err = s.waitTicket(ctx, w, ticket, rec, wait)
	}
	if err != nil {
		s.fail(c, err) // quietly nothing if the browser went away
		return
	}

	c.Header("Cache-Control", "no-store")
	switch rec.Status {
	case session.QRPending:
		c.JSON(http.StatusOK, pollAnswer{Status: session.QRPending})
	case session.QRDenied:
		c.JSON(http.StatusOK, pollAnswer{Status: session.QRDenied, Reason: rec.Reason})
	case session.QRConfirmed:
		kind := api.KindWeb
		if rec.Kind != "" {
			kind = rec.Kind
		}
		s.consumeQR(c, ticket, token, kind)
	case session.QRNotBound:
		// Auto-register is off and the WeChat user has no account: the
		// browser registers or binds one with the bind token.
		// The nickname and avatar say whose WeChat it is, so that the
		// person does not bind someone else's to their account.
		data := map[string]string{identity.DataBindToken: rec.BindToken}
		if rec.Nickname != "" {
			data[identity.DataNickname] = rec.Nickname
		}
		if rec.AvatarURL != "" {
			data[identity.DataAvatarURL] = rec.AvatarURL
		}
		s.fail(c, &api.Error{Code: api.CodeWechatNotBound,
			Message: "this WeChat account is not linked to an account yet: register (/auth/register) or bind (/auth/bind) one with bind_token",
			Data:    data})
	default:
		s.fail(c, fmt.Errorf("QR ticket in unknown status %q", rec.Status))
	}
}

// pollNotFound answers a poll that names no ticket or does not prove its
// poll token: 404, like a missing ticket, charged to the client address's
// general limit (429 once it is spent), so a guesser or an onlooker who saw
// the QR code is limited without touching the token holder's budget.
func (s *server) pollNotFound(c *gin.Context) {
	if !s.chargeIP(c) {
		return
	}
	s.fail(c, errTicketNotFound)
}

// pollToken is the X-Poll-Token header, else the ticket's cookie.
func pollToken(c *gin.Context, ticket string) string {
	t := c.GetHeader(pollTokenHeader)
	if t == "" {
		t = ticketCookie(c, ticket)
	}
	if len(t) > maxPollTokenLen || !isVisibleASCII(t) {
		return ""
	}
	return t
}

// ticketCookie is the poll token in the ticket's cookie, "" without one.
func ticketCookie(c *gin.Context, ticket string) string {
	ck, err := c.Request.Cookie(ticketCookiePrefix + ticket)
	if err != nil || len(ck.Value) > maxPollTokenLen || !isVisibleASCII(ck.Value) {
		return ""
	}
	return ck.Value
}

// parseWait reads ?wait=: a Go duration ("25s") or whole seconds ("25"),
// capped at maxWait; none means answer at once.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, invalidField("wait", `must be a duration such as "25s" or a number of seconds`)
		}
		// Bounded before multiplying: a huge n would wrap around, to a
		// short wait or a negative one.
		switch {
		case n < 0:
			d = -1
		case n > int(maxWait/time.Second):
			d = maxWait
		default:
			d = time.Duration(n) * time.Second
		}
	}
	if d < 0 {
		return 0, invalidField("wait", "must not be negative")
	}
	return min(d, maxWait), nil
}

// readTicket reads a ticket and checks its expiry.
func (s *server) readTicket(ctx context.Context, ticket string) (qrwatch.Record, error) {
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rec, err := s.web.tickets.Get(rctx, ticket)
	switch {
	case errors.Is(err, qrwatch.ErrNotFound):
		return rec, errTicketNotFound
	case err != nil:
		if ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "cannot read a QR ticket",
				slog.String("request_id", natsrpc.RequestID(ctx)), slog.Any("error", err))
		}
		return rec, errTicketsDown
	}
	if !time.Now().Before(rec.ExpiresAt) {
		return rec, errTicketExpired
	}
	return rec, nil
}

// checkPollToken compares the poll token with the ticket's hash in
// constant time. A mismatch looks like a missing ticket.
func checkPollToken(rec qrwatch.Record, token string) error {
	sum := sha256.Sum256([]byte(token))
	want, err := hex.DecodeString(rec.PollTokenHash)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return errTicketNotFound
	}
	return nil
}

// waitTicket waits until a pending ticket changes, the wait ends, it
// expires, the client leaves or the gateway stops; it returns the ticket as
// it then is (still pending when nothing happened).
func (s *server) waitTicket(ctx context.Context, w *qrwatch.Waiter, ticket string, rec qrwatch.Record, wait time.Duration) (qrwatch.Record, error) {
	deadline := time.Now().Add(wait)
	expires := !rec.ExpiresAt.After(deadline)
	if expires {
		deadline = rec.ExpiresAt
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-w.Done():
			return rec, nil
		case <-timer.C:
			if expires {
				return rec, errTicketExpired
			}
			return rec, nil
		case ch := <-w.C():
			switch {
			case ch.Deleted:
				// Consumed by another poll (or removed): gone for us too.
				return rec, errTicketNotFound
			case ch.Recheck:
				next, err := s.readTicket(ctx, ticket)
				if err != nil {
					return rec, err
				}
				if next.Revision > rec.Revision {
					rec = next
				}
			case ch.Record.Revision > rec.Revision:
				rec = *ch.Record
			}
			if rec.Status != session.QRPending {
				if !time.Now().Before(rec.ExpiresAt) {
					return rec, errTicketExpired
				}
				return rec, nil
			}
		}
	}
}

// consumeQR hands out a confirmed ticket's tokens: session deletes the
// ticket compare-and-set, so of two polls exactly one gets them.
func (s *server) consumeQR(c *gin.Context, ticket, token, kind string) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), callTimeout)
	res, err := s.session.QRConsume(ctx, session.QRConsumeRequest{Ticket: ticket, PollToken: token})
	cancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	s.metrics.Login(kind, nil) // a QR login succeeds when its tokens go out
	middleware.SetUserID(c, res.User.ID)
	if res.TokenType == "" {
		res.TokenType = "Bearer"
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.JSON(http.StatusOK, confirmedAnswer{Status: session.QRConfirmed, QRConsumeResult: res})
}

// confirmedAnswer is the token response with "status":"confirmed".
type confirmedAnswer struct {
	Status string `json:"status"`
	session.QRConsumeResult
}

// qrCallback is where WeChat sends the browser that showed the QR code
// after the scan: it resolves the code and records the outcome under the
// ticket, which wakes the waiting poll. It answers a small HTML page.
//
// Only that browser may complete the ticket: the state is no secret (it is
// in the QR code and the page's URLs), so a callback without the ticket's
// cookie changes nothing. Otherwise anyone could finish a victim's pending
// login with their own code (the victim is logged in as them, or binds
// their WeChat) or deny it.
func (s *server) qrCallback(c *gin.Context) {
	state, code, status, bad := callbackQuery(c.Request.URL.Query())
	if bad != nil {
		s.callbackPage(c, status, *bad)
		return
	}
	if s.web.tickets == nil || (s.connected != nil && !s.connected()) {
		s.callbackPage(c, http.StatusServiceUnavailable, pageUnavailable)
		return
	}
	// The outcome is for the browser waiting on the ticket, not for whoever
	// opened this page: it is recorded even if they leave (the calls keep
	// their own deadlines), since the code may be spent by then.
	ctx := context.WithoutCancel(c.Request.Context())
	rec, err := s.readTicket(ctx, state)
	switch {
	case errors.Is(err, errTicketNotFound):
		s.callbackPage(c, http.StatusNotFound, pageNotFound)
		return
	case errors.Is(err, errTicketExpired):
		s.callbackPage(c, http.StatusGone, pageExpired)
		return
	case err != nil:
		s.callbackPage(c, http.StatusServiceUnavailable, pageUnavailable)
		return
	}
	if checkPollToken(rec, ticketCookie(c, state)) != nil {
		// Not the creating browser (or its cookie is gone): the code is not
		// exchanged, the ticket stays as it is. A first try is routine (the
		// WxLogin iframe's, see createQR); a refused retry is worth a line.
		page := wrongBrowserPage(c)
		level := slog.LevelInfo
		if page.Retry != "" {
			level = slog.LevelDebug
		}
		s.log.LogAttrs(ctx, level, "QR callback without the ticket's cookie ignored",
			slog.String("request_id", middleware.RequestIDOf(c)), slog.Bool("retry", page.Retry == ""))
		s.callbackPage(c, http.StatusForbidden, page)
		return
	}
	if rec.Status != session.QRPending {
		// WeChat may call twice with the same code: the first outcome
		// stands and the code is not exchanged again.
		s.callbackPage(c, http.StatusOK, pageForStatus(rec.Status))
		return
	}

	if code == "" {
		s.completeQR(ctx, c, session.QRCompleteRequest{Ticket: state, Denied: true, Reason: "denied"}, http.StatusOK, pageDenied)
		return
	}

	rctx, cancel := context.WithTimeout(ctx, wechatCallTimeout)
	res, err := s.identity.WebResolve(rctx, identity.WebResolveRequest{App: rec.App, Code: code})
	cancel()
	if err != nil {
		s.metrics.Login(api.KindWeb, err)
		p, unexpected := problem.For(err, middleware.RequestIDOf(c))
		if unexpected {
			s.log.LogAttrs(ctx, slog.LevelError, "website login failed",
				slog.String("request_id", middleware.RequestIDOf(c)), slog.Any("error", err))
		}
		if p.Code == api.CodeWechatNotBound && p.BindToken != "" {
			// Auto-register is off: the ticket carries the bind token to
			// the waiting browser (only it has the poll token), which
			// registers or binds an account with it.
			s.completeQR(ctx, c, session.QRCompleteRequest{Ticket: state, BindToken: p.BindToken,
				Nickname: p.Nickname, AvatarURL: p.AvatarURL}, http.StatusOK, pageNotBound)
			return
		}
		if p.Code == api.CodeWechatCodeUsed {
			// Most likely WeChat called twice at once and the other call
			// exchanged the code: leave the outcome to it.
			s.callbackPage(c, p.Status, pageFailed(p))
			return
		}
		// The waiting browser learns it too, and the ticket is done.
		s.completeQR(ctx, c, session.QRCompleteRequest{Ticket: state, Denied: true, Reason: string(p.Code)}, p.Status, pageFailed(p))
		return
	}
	middleware.SetUserID(c, res.User.ID)
	user := res.User
	s.completeQR(ctx, c, session.QRCompleteRequest{Ticket: state, User: &user, IsNewUser: res.IsNewUser}, http.StatusOK, pageConfirmed)
}

// retryParam marks the callback's second try from its own refusal page.
const retryParam = "retry"

// wrongBrowserPage is the refusal of a callback without the ticket's
// cookie. The first time, the page navigates to the same callback again
// (meta refresh, query retry=1): WeChat's WxLogin iframe with self_redirect
// navigates itself here from WeChat's site, which sends no SameSite=Lax
// cookie, and the second try, started by this page inside the site's own
// page, does send it. From any other browser or site it stays refused.
func wrongBrowserPage(c *gin.Context) callbackContent {
	page := pageWrongBrowser
	if q := c.Request.URL.Query(); q.Get(retryParam) == "" {
		q.Set(retryParam, "1")
		page.Retry = "?" + q.Encode()
	}
	return page
}

// completeQR records the outcome and answers the page; when another
// callback got there first, the page tells the outcome that stands.
func (s *server) completeQR(ctx context.Context, c *gin.Context, req session.QRCompleteRequest, status int, page callbackContent) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	st, err := s.session.QRComplete(cctx, req)
	cancel()
	if err != nil {
		p, unexpected := problem.For(err, middleware.RequestIDOf(c))
		if unexpected {
			s.log.LogAttrs(ctx, slog.LevelError, "cannot record the QR login outcome",
				slog.String("request_id", middleware.RequestIDOf(c)), slog.Any("error", err))
		}
		switch p.Code {
		case api.CodeQRTicketNotFound:
			s.callbackPage(c, http.StatusNotFound, pageNotFound)
		case api.CodeQRTicketExpired:
			s.callbackPage(c, http.StatusGone, pageExpired)
		default:
			s.callbackPage(c, http.StatusServiceUnavailable, pageUnavailable)
		}
		return
	}
	want := session.QRConfirmed
	switch {
	case req.Denied:
		want = session.QRDenied
	case req.BindToken != "":
		want = session.QRNotBound
	}
	if st.Status != want {
		s.callbackPage(c, http.StatusOK, pageForStatus(st.Status))
		return
	}
	s.callbackPage(c, status, page)
}
