package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// scenario is one line of the table.
type scenario struct {
	key, name string
	bare      bool // runs against the bare chain
	// setup prepares the clients (logins for tokens, returning users); it
	// is not measured.
	setup func(ctx context.Context) error
	op    op
	// pg: the scenario writes, so the table shows Postgres per operation.
	pg bool
	// notes adds the scenario's own figures to its row.
	notes func(r *row)
}

// run is the state of one bench run the scenarios share.
type run struct {
	base    string // the stack's front
	hc      *http.Client
	clients int
	// pool is how many returning users each client cycles through (a
	// quarter of it on the website).
	pool int
	id   string // makes openids unique to the run
	// Events the stream must end up with: every successful login adds
	// one user.logged_in, and one user.created when it made a user.
	wantCreated, wantLoggedIn atomic.Int64
}

const (
	loginPath   = "/api/v1/auth/miniprogram/login"
	refreshPath = "/api/v1/auth/refresh"
	qrPath      = "/api/v1/auth/web/qr"
)

// tokenAnswer is the part of a token response the bench reads.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IsNewUser    bool   `json:"is_new_user"`
	Status       string `json:"status"` // QR polls
}

var newUserMark = []byte(`"is_new_user":true`)

// counted notes the events a successful wxlogin login of body leads to.
func (r *run) counted(body []byte) {
	r.wantLoggedIn.Add(1)
	if bytes.Contains(body, newUserMark) {
		r.wantCreated.Add(1)
	}
}

// login is a mini-program login with a load-mode code of openid.
func (r *run) login(ctx context.Context, path, openid string) (answer, string) {
	body := []byte(`{"code":"load:` + openid + `"}`)
	a, err := send(ctx, r.hc, http.MethodPost, r.base+path, body)
	if e := expect(a, err, http.StatusOK); e != "" {
		return a, e
	}
	if path == loginPath {
		r.counted(a.body)
	}
	return a, ""
}

func (r *run) returningUser(i int) string { return fmt.Sprintf("obench_%s_r%d", r.id, i) }

// scenarios are the table's lines, in the order they run.
func (r *run) scenarios() []scenario {
	pool := r.clients * r.pool // returning users, each logged in once first
	tokens := make([]tokenAnswer, r.clients)
	webPool := r.clients * max(1, r.pool/4)
	qr := &qrFigures{}
	return []scenario{
		{
			key: "login-returning", name: "mini-program login, returning users", pg: true,
			setup: func(ctx context.Context) error {
				return runEach(ctx, r.clients, pool, func(ctx context.Context, i int) string {
					_, e := r.login(ctx, loginPath, r.returningUser(i))
					return e
				})
			},
			op: func(ctx context.Context, w, k int) string {
				_, e := r.login(ctx, loginPath, r.returningUser((w+k*r.clients)%pool))
				return e
			},
		},
		{
			key: "login-new", name: "mini-program login, new users", pg: true,
			op: func(ctx context.Context, w, k int) string {
				a, e := r.login(ctx, loginPath, fmt.Sprintf("obench_%s_n%d_%d", r.id, w, k))
				if e == "" && !bytes.Contains(a.body, newUserMark) {
					return "not a new user"
				}
				return e
			},
		},
		{
			key: "me", name: "GET /api/v1/me",
			setup: r.loginEach(tokens),
			op: func(ctx context.Context, w, k int) string {
				a, err := send(ctx, r.hc, http.MethodGet, r.base+"/api/v1/me", nil, "Authorization", "Bearer "+tokens[w].AccessToken)
				return expect(a, err, http.StatusOK)
			},
		},
		{
			// Each client refreshes its own family, one refresh at a time:
			// a refresh token works once.
			key: "refresh", name: "refresh rotation",
			setup: r.loginEach(tokens),
			op: func(ctx context.Context, w, k int) string {
				if tokens[w].RefreshToken == "" { // the family of a failed refresh may be gone
					a, e := r.login(ctx, loginPath, r.returningUser(w))
					if e != "" {
						return e
					}
					_ = json.Unmarshal(a.body, &tokens[w])
				}
				body, _ := json.Marshal(map[string]string{"refresh_token": tokens[w].RefreshToken})
				a, err := send(ctx, r.hc, http.MethodPost, r.base+refreshPath, body)
				tokens[w] = tokenAnswer{}
				if e := expect(a, err, http.StatusOK); e != "" {
					return e
				}
				if json.Unmarshal(a.body, &tokens[w]) != nil || tokens[w].RefreshToken == "" {
					return "refresh answer without refresh_token"
				}
				return ""
			},
		},
		{
			key: "qr", name: "web QR: create → callback → waiting poll", pg: true,
			setup: func(ctx context.Context) error {
				return runEach(ctx, r.clients, webPool, func(ctx context.Context, i int) string {
					return r.qrLogin(ctx, fmt.Sprintf("obench_%s_w%d", r.id, i), nil)
				})
			},
			op: func(ctx context.Context, w, k int) string {
				return r.qrLogin(ctx, fmt.Sprintf("obench_%s_w%d", r.id, (w+k*r.clients)%webPool), qr)
			},
			notes: qr.note,
		},
		{
			key: "bare-returning", name: "bare chain: login, returning users", bare: true, pg: true,
			setup: func(ctx context.Context) error {
				return runEach(ctx, r.clients, pool, func(ctx context.Context, i int) string {
					_, e := r.login(ctx, "/login", r.returningUser(i))
					return e
				})
			},
			op: func(ctx context.Context, w, k int) string {
				_, e := r.login(ctx, "/login", r.returningUser((w+k*r.clients)%pool))
				return e
			},
		},
		{
			key: "bare-new", name: "bare chain: login, new users", bare: true, pg: true,
			op: func(ctx context.Context, w, k int) string {
				_, e := r.login(ctx, "/login", fmt.Sprintf("obench_%s_n%d_%d", r.id, w, k))
				return e
			},
		},
	}
}

// loginEach logs every client in once as its own returning user, keeping
// its tokens.
func (r *run) loginEach(tokens []tokenAnswer) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return runEach(ctx, r.clients, r.clients, func(ctx context.Context, w int) string {
			a, e := r.login(ctx, loginPath, r.returningUser(w))
			if e == "" && json.Unmarshal(a.body, &tokens[w]) != nil {
				return "login answer is not JSON"
			}
			return e
		})
	}
}

// qrFigures are the QR scenario's own latencies.
type qrFigures struct {
	mu       sync.Mutex
	answered latencies // callback sent → waiting poll answered
	callback latencies // the callback request alone
	// callback answered → waiting poll answered: the callback answers once
	// session has written the result to KV, so this is the gateway's watch
	// and the poll's answer alone (0 when the poll answered first).
	fanout latencies
}

func (q *qrFigures) note(r *row) {
	q.mu.Lock()
	defer q.mu.Unlock()
	a, c, f := summarize(q.answered), summarize(q.callback), summarize(q.fanout)
	r.notes = append(r.notes, fmt.Sprintf("callback sent → waiting poll answered: p50 %s, p99 %s, max %s (callback alone: p50 %s, p99 %s; "+
		"callback answered, the result in KV → waiting poll answered: p50 %s, p99 %s, max %s)",
		ms(a.p50), ms(a.p99), ms(a.max), ms(c.p50), ms(c.p99), ms(f.p50), ms(f.p99), ms(f.max)))
	q.answered, q.callback, q.fanout = nil, nil, nil
}

// qrLogin is one website QR login as a browser and WeChat do it: create a
// ticket, long-poll it, and once the poll is sent, WeChat sends the same
// browser (its ticket cookie) to the callback with a code for openid. The
// poll must answer confirmed, with the tokens.
func (r *run) qrLogin(ctx context.Context, openid string, fig *qrFigures) string {
	a, err := send(ctx, r.hc, http.MethodPost, r.base+qrPath, []byte(`{}`))
	if e := expect(a, err, http.StatusCreated); e != "" {
		return "create: " + e
	}
	var t struct {
		Ticket    string `json:"ticket"`
		PollToken string `json:"poll_token"`
	}
	if json.Unmarshal(a.body, &t) != nil || t.Ticket == "" {
		return "create: no ticket"
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "wxlogin_qr_"+t.Ticket {
			cookie = c
		}
	}
	if cookie == nil {
		return "create: no ticket cookie"
	}

	type pollResult struct {
		a   answer
		err error
		at  time.Time
	}
	polled := make(chan pollResult, 1)
	written := make(chan struct{})
	pctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	pctx = httptrace.WithClientTrace(pctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(written) }})
	go func() {
		a, err := send(pctx, r.hc, http.MethodGet, r.base+qrPath+"/"+t.Ticket+"?wait=25s", nil, "X-Poll-Token", t.PollToken)
		polled <- pollResult{a, err, time.Now()}
	}()
	select {
	case <-written:
	case p := <-polled:
		return "poll: " + failure(p.a, p.err)
	case <-ctx.Done():
		return "poll: not sent"
	}

	sent := time.Now()
	q := url.Values{"code": {"load:" + openid}, "state": {t.Ticket}}
	cb, err := send(ctx, r.hc, http.MethodGet, r.base+"/api/v1/auth/web/callback?"+q.Encode(), nil, "Cookie", cookie.Name+"="+cookie.Value)
	cbDone := time.Now()
	cbTook := cbDone.Sub(sent)
	if e := expect(cb, err, http.StatusOK); e != "" {
		return "callback: " + e
	}
	var p pollResult
	select {
	case p = <-polled:
	case <-ctx.Done():
		return "poll: no answer"
	}
	if e := expect(p.a, p.err, http.StatusOK); e != "" {
		return "poll: " + e
	}
	var tok tokenAnswer
	if json.Unmarshal(p.a.body, &tok) != nil || tok.Status != "confirmed" || tok.AccessToken == "" {
		return "poll: not confirmed: " + strings.TrimSpace(string(p.a.body[:min(len(p.a.body), 60)]))
	}
	r.counted(p.a.body)
	if fig != nil {
		fig.mu.Lock()
		fig.answered = append(fig.answered, p.at.Sub(sent))
		fig.callback = append(fig.callback, cbTook)
		fig.fanout = append(fig.fanout, max(0, p.at.Sub(cbDone)))
		fig.mu.Unlock()
	}
	return ""
}

// drained reports whether the event stream holds every event the logins
// so far must have produced; an extra user.created is a failure (exactly
// one per user).
func (r *run) drained(counts map[string]uint64) (bool, error) {
	created, loggedIn := int64(counts[identity.SubjectUserCreated]), int64(counts[identity.SubjectUserLoggedIn])
	if created > r.wantCreated.Load() {
		return false, fmt.Errorf("%d user.created events for %d new users", created, r.wantCreated.Load())
	}
	return created == r.wantCreated.Load() && loggedIn >= r.wantLoggedIn.Load(), nil
}
