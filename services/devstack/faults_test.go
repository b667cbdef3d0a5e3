package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// The fault tests below run the services as separate processes and break
// one dependency under load. -long runs them bigger and longer.
var long = flag.Bool("long", false, "run the long variants of the fault tests")

// Deadlines the gateway promises (its NATS call timeouts), with room for
// the scheduling of a loaded 2-core machine: under make test's parallel
// packages a 3 s deadline was seen answered at 5.3 s from the client's side.
// A hang (no deadline at all) still fails: it waits out the 10 s client.
const (
	unavailableWithin = 2 * time.Second // a login that finds identity gone
	loginWithin       = 7 * time.Second // any login: 3 s for identity and WeChat
)

// attempt is one login as a fault test saw it.
type attempt struct {
	start, end time.Time
	status     int
	code       string // the problem's code; "" on success
	userID     string
	token      string
	raw        string
	err        error
}

func (a attempt) took() time.Duration { return a.end.Sub(a.start) }

func (a attempt) String() string {
	if a.err != nil {
		return fmt.Sprintf("error after %s: %v", a.took().Round(time.Millisecond), a.err)
	}
	return fmt.Sprintf("%d %s after %s", a.status, a.code, a.took().Round(time.Millisecond))
}

// tryLogin makes one mini-program login; it is safe in any goroutine.
func tryLogin(p *procStack, code string) attempt {
	a := attempt{start: time.Now()}
	r, err := send(http.DefaultClient, http.MethodPost, p.url("/api/v1/auth/miniprogram/login"), "application/json", `{"code":"`+code+`"}`, nil)
	a.end = time.Now()
	a.status, a.code, a.token, a.raw, a.err = r.status, str(r, "code"), str(r, "access_token"), r.raw, err
	if u, ok := r.body["user"].(map[string]any); ok {
		a.userID, _ = u["id"].(string)
	}
	return a
}

// load is logins of new users from a few workers until stopped.
type load struct {
	mu       sync.Mutex
	attempts []attempt
	ok       atomic.Int32
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startLoad starts workers that each log in fresh users, one after another.
func startLoad(p *procStack, workers int, prefix string) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				code := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				p.wx.mint(code, standInUser{OpenID: "o_" + code})
				a := tryLogin(p, code)
				l.mu.Lock()
				l.attempts = append(l.attempts, a)
				l.mu.Unlock()
				if a.status == http.StatusOK {
					l.ok.Add(1)
				} else {
					time.Sleep(25 * time.Millisecond) // pacing: an outage is not a busy loop
				}
			}
		})
	}
	return l
}

// since counts the logins that began after t and have ended.
func (l *load) since(t time.Time) int { return l.count(t, false) }

// okSince counts the successful logins that began after t.
func (l *load) okSince(t time.Time) int { return l.count(t, true) }

func (l *load) count(t time.Time, onlyOK bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.attempts {
		if a.start.After(t) && (!onlyOK || a.status == http.StatusOK) {
			n++
		}
	}
	return n
}

// finish stops the workers and returns every attempt.
func (l *load) finish() []attempt {
	close(l.stop)
	l.wg.Wait()
	return l.attempts
}

// tally counts attempts by outcome, for the log and the report.
func tally(as []attempt) string {
	by := map[string]int{}
	for _, a := range as {
		k := fmt.Sprintf("%d %s", a.status, a.code)
		if a.err != nil {
			k = "transport error"
		}
		by[k]++
	}
	return fmt.Sprint(by)
}

// slowest is the longest attempt among as.
func slowest(as []attempt) time.Duration {
	var d time.Duration
	for _, a := range as {
		d = max(d, a.took())
	}
	return d
}

// checkOutcomes fails the test for any answer but a token or a 503 with one
// of the codes allowed, for a token without its user committed in the
// database, and for answers slower than within.
func checkOutcomes(t *testing.T, db *sqlx.DB, as []attempt, within time.Duration, allowed ...string) {
	t.Helper()
	var ids []string
	if err := db.Select(&ids, `SELECT id::text FROM users`); err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, id := range ids {
		users[id] = true
	}
	bad := 0
	for _, a := range as {
		var problem string
		switch {
		case a.err != nil:
			problem = "no answer"
		case a.took() > within:
			problem = fmt.Sprintf("slower than %s", within)
		case a.status == http.StatusOK:
			if a.token == "" || !users[a.userID] || tokenSubject(a.token) != a.userID {
				problem = fmt.Sprintf("token for user %q, which is not a committed user", a.userID)
			}
		case a.status != http.StatusServiceUnavailable && a.status != http.StatusBadGateway:
			problem = "unexpected status"
		case !slices.Contains(allowed, a.code):
			problem = fmt.Sprintf("code not in %v", allowed)
		case a.token != "":
			problem = "a token with an error"
		}
		if problem != "" {
			if bad++; bad <= 10 {
				t.Errorf("login %s: %s; body %.200s", a, problem, a.raw)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad logins in all", bad)
	}
}

// tokenSubject is the sub claim of a JWT, unverified: the gateway tests
// verify tokens; here it ties a token to the user it was issued for.
func tokenSubject(token string) string { return tokenClaim(token, "sub") }

// tokenClaim reads a string claim of a JWT without verifying it.
func tokenClaim(token, name string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	v, _ := c[name].(string)
	return v
}

// openDB opens the stack's database for the test's own queries.
func (p *procStack) openDB() *sqlx.DB {
	db := sqlx.MustOpen("postgres", p.dsn)
	p.t.Cleanup(func() { _ = db.Close() })
	return db
}

// jetStream connects to the stack's NATS server (again after a restart).
func (p *procStack) jetStream() (*nats.Conn, jetstream.JetStream) {
	nc := p.connectAs(natsauth.Events) // as the stream's readers do
	js, err := jetstream.New(nc)
	if err != nil {
		p.t.Fatal(err)
	}
	return nc, js
}

// loginWorks is a condition for until: a fresh user can log in.
func loginWorks(p *procStack, prefix string) func() bool {
	var n atomic.Int32
	return func() bool {
		code := fmt.Sprintf("%s-%d", prefix, n.Add(1))
		p.wx.mint(code, standInUser{OpenID: "o_" + code})
		return tryLogin(p, code).status == http.StatusOK
	}
}

// statusOf is the HTTP status of GET url, 0 when there is no answer.
func statusOf(url string) int {
	r, err := send(http.DefaultClient, http.MethodGet, url, "", "", nil)
	if err != nil {
		return 0
	}
	return r.status
}

// TestFaultIdentityKilled: identity dies (SIGKILL) in the middle of a burst
// of first logins. What it had not answered times out as 503
// service_unavailable within the gateway's deadline, what comes after finds
// no responder at once, and no token names a user that was not committed.
func TestFaultIdentityKilled(t *testing.T) {
	p := startProcs(t, "WXLOGIN_METRICS_ADDR=")
	db := p.openDB()
	workers, after := 8, 20
	if *long {
		workers, after = 32, 300
	}
	// WeChat takes a moment, so logins are inside identity when it dies.
	p.wx.setDelay(150 * time.Millisecond)
	l := startLoad(p, workers, "kill")
	until(t, 20*time.Second, "logins before the kill", func() bool { return l.ok.Load() >= int32(2*workers) })
	p.kill("identity")
	// From the moment NATS has dropped identity's subscriptions a login
	// finds no responder; before it (a few ms after the process died) a
	// request can still be routed to the dead connection and is in flight.
	ping := p.connectAs(natsauth.Gateway)
	until(t, 10*time.Second, "NATS to drop identity", func() bool {
		_, err := ping.Request("$SRV.PING.identity", nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
	killed := time.Now()
	// Keep the load on until enough logins have found identity gone.
	until(t, 20*time.Second, "logins after the kill", func() bool { return l.since(killed) >= after })
	as := l.finish()

	var inFlight, later []attempt
	for _, a := range as {
		switch {
		case a.start.After(killed):
			later = append(later, a)
		case a.end.After(killed):
			inFlight = append(inFlight, a)
		}
	}
	t.Logf("%d logins: %s", len(as), tally(as))
	t.Logf("in flight at the kill: %d, %s, slowest %s", len(inFlight), tally(inFlight), slowest(inFlight))
	t.Logf("after the kill: %d, %s, slowest %s", len(later), tally(later), slowest(later))
	checkOutcomes(t, db, as, loginWithin, "service_unavailable")
	checkOutcomes(t, db, later, unavailableWithin, "service_unavailable")
	for _, a := range later {
		if a.status == http.StatusOK {
			t.Fatalf("a login after identity died got a token: %s", a)
		}
	}

	// Back without restarting anything else.
	p.wx.setDelay(0)
	restarted := time.Now()
	p.start("identity")
	until(t, 30*time.Second, "logins after identity restarts", loginWorks(p, "kill-back"))
	t.Logf("logins work %s after identity restarts", time.Since(restarted).Round(time.Millisecond))
}

// TestFaultNATSRestarted: the NATS server restarts under load (same port,
// same store). The services reconnect by themselves, logins work again
// without restarting any of them, and the outbox catches up: every user has
// exactly one user.created.
func TestFaultNATSRestarted(t *testing.T) {
	p := startProcs(t, "WXLOGIN_METRICS_ADDR=")
	db := p.openDB()
	_, js := p.jetStream()
	rounds := 1
	if *long {
		rounds = 5
	}
	// WeChat takes a moment, so logins are inside identity when NATS goes:
	// their users are committed while identity cannot publish.
	p.wx.setDelay(150 * time.Millisecond)
	began := time.Now()
	var all []attempt
	for round := range rounds {
		l := startLoad(p, 6, fmt.Sprintf("nats-%d", round))
		until(t, 20*time.Second, "logins before the restart", func() bool { return l.ok.Load() >= 12 })
		down := time.Now()
		if *long {
			// A longer outage, held until the gateway has noticed it and
			// logins have run into it.
			p.stopNATS()
			until(t, 30*time.Second, "readyz to report the outage", func() bool {
				return statusOf(p.url("/readyz")) == http.StatusServiceUnavailable && time.Since(down) >= 10*time.Second
			})
			p.startNATS()
		} else {
			p.restartNATS()
		}
		up := time.Now()
		until(t, 30*time.Second, "readyz back to 200", func() bool { return statusOf(p.url("/readyz")) == http.StatusOK })
		ready := time.Since(up)
		until(t, 30*time.Second, "logins after the restart", func() bool { return l.okSince(up) > 0 })
		works := time.Since(up)
		as := l.finish()
		all = append(all, as...)
		t.Logf("round %d: NATS down %s; readyz 200 %s and logins %s after it came back; %d logins: %s, slowest %s",
			round, up.Sub(down).Round(time.Millisecond), ready.Round(time.Millisecond), works.Round(time.Millisecond), len(as), tally(as), slowest(as))
	}
	checkOutcomes(t, db, all, loginWithin, "service_unavailable")
	loaded := time.Now()
	until(t, 60*time.Second, "the outbox to catch up", outboxDrained(db))
	n := checkOneCreatedEach(t, db, js)
	// Events the outage held back: the test saw the outbox catch up only if
	// there were some.
	var held struct {
		N       int
		Longest float64
	}
	for _, m := range streamEvents(t, js, "wxlogin.events.user.created") {
		var e eventBody
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		stored, err := time.Parse(time.RFC3339Nano, m.Header.Get(storedHeader))
		if err != nil {
			t.Fatalf("stored time: %v", err)
		}
		// The relay deletes what it published: the stream's own clock says
		// how long after its commit (occurred_at) an event got there.
		if e.OccurredAt.Before(began) {
			continue
		}
		if late := stored.Sub(e.OccurredAt); late > 200*time.Millisecond {
			held.N++
			held.Longest = max(held.Longest, late.Seconds())
		}
	}
	t.Logf("outbox drained %s after the load; %d users, each with one user.created; %d events were held back by the outage, the longest %.2fs",
		time.Since(loaded).Round(time.Millisecond), n, held.N, held.Longest)
	if held.N == 0 {
		t.Error("no event was held back by the outage: the test did not exercise the outbox catching up")
	}
}

// TestFaultPostgres: identity's connection to Postgres is cut (refused and
// reset) or stalled (no byte goes through), through a proxy. Logins answer
// 503 service_unavailable within the gateway's deadline and never a token,
// not even for a known user; identity's readiness says so; when Postgres is
// back, logins work without restarting anything and the outbox catches up.
func TestFaultPostgres(t *testing.T) {
	p := startProcs(t, "WXLOGIN_METRICS_ADDR=")
	db := p.openDB()
	_, js := p.jetStream()
	// Identity alone reaches Postgres, now through the proxy, with its
	// readiness on its own address.
	proxy := pgtest.NewProxy(t)
	identityOps := freeaddr.Addr(t)
	p.env = append(p.env, "WXLOGIN_DATABASE_URL="+proxy.URL(p.dsn), "WXLOGIN_METRICS_ADDR="+identityOps)
	p.terminate("identity")
	p.start("identity")
	identityReady := "http://" + identityOps + "/readyz" // its readiness
	until(t, 30*time.Second, "identity through the proxy", loginWorks(p, "pg-first"))
	p.wx.mint("pg-known-1", standInUser{OpenID: "o_pg_known"})
	if a := tryLogin(p, "pg-known-1"); a.status != http.StatusOK {
		t.Fatalf("login before the outage: %s %s", a, a.raw)
	}

	type outage struct {
		name  string
		start func()
		hold  time.Duration // at least this long
	}
	outages := []outage{{"cut", proxy.Cut, 0}, {"stall", proxy.Stall, 0}}
	if *long {
		outages = append(outages, outage{"cut", proxy.Cut, 20 * time.Second}, outage{"stall", proxy.Stall, 20 * time.Second})
	}
	const workers = 4
	var all []attempt
	for round, o := range outages {
		l := startLoad(p, workers, fmt.Sprintf("pg-%d", round))
		until(t, 20*time.Second, "logins before the outage", func() bool { return l.ok.Load() >= 2*workers })
		began := time.Now()
		o.start()
		broken := time.Now() // what starts from here finds Postgres out
		// Known users too: nothing is answered from memory.
		p.wx.mint(fmt.Sprintf("pg-known-%d", round), standInUser{OpenID: "o_pg_known"})
		knownDone := make(chan attempt, 1)
		go func() { knownDone <- tryLogin(p, fmt.Sprintf("pg-known-%d", round)) }()
		until(t, 10*time.Second, "identity's readyz to report the outage", func() bool { return statusOf(identityReady) == http.StatusServiceUnavailable })
		readyDown := time.Since(began)
		gatewayReady := statusOf(p.url("/readyz"))
		until(t, 30*time.Second+o.hold, "logins during the outage", func() bool {
			return l.since(broken) >= workers && time.Since(began) >= o.hold
		})
		known := <-knownDone
		restored := time.Now()
		proxy.Restore()
		until(t, 30*time.Second, "logins after the restore", func() bool { return l.okSince(restored) > 0 })
		works := time.Since(restored)
		until(t, 10*time.Second, "identity's readyz back to 200", func() bool { return statusOf(identityReady) == http.StatusOK })
		as := l.finish()
		all = append(all, as...)
		var during []attempt
		for _, a := range as {
			if a.start.After(broken) && a.end.Before(restored) {
				during = append(during, a)
			}
		}
		t.Logf("round %d, %s for %s: known user's login %s; identity readyz 503 after %s (gateway readyz %d); during it %d logins: %s, slowest %s; logins work %s after the restore",
			round, o.name, restored.Sub(began).Round(time.Millisecond), known, readyDown.Round(time.Millisecond), gatewayReady,
			len(during), tally(during), slowest(during), works.Round(time.Millisecond))
		if known.status != http.StatusServiceUnavailable || known.code != "service_unavailable" || known.token != "" {
			t.Errorf("a known user's login while Postgres is out (%s): %s %.200s", o.name, known, known.raw)
		}
		if len(during) == 0 {
			t.Errorf("no login ran during the %s", o.name)
		}
		for _, a := range during {
			if a.status == http.StatusOK {
				t.Errorf("a login while Postgres is out (%s) got a token: %s", o.name, a)
			}
		}
		checkOutcomes(t, db, during, loginWithin, "service_unavailable")
	}
	checkOutcomes(t, db, all, loginWithin, "service_unavailable")
	until(t, 30*time.Second, "the outbox to catch up", outboxDrained(db))
	checkOneCreatedEach(t, db, js)
}

// TestFaultWeChat: WeChat too slow, or answering what is not its JSON. Each
// login ends within the gateway's deadline as 503 wechat_unavailable (may
// be retried) or, for an errcode we do not know, 502 wechat_error; never a
// token, never the gateway's own service_unavailable.
func TestFaultWeChat(t *testing.T) {
	p := startProcs(t, "WXLOGIN_METRICS_ADDR=")
	db := p.openDB()
	for _, tc := range []struct {
		fault  wxFault
		status int
		code   string
	}{
		{wxSlow, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxHTML, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxProxyPage, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxGarbage, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxTruncated, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxEmpty, http.StatusServiceUnavailable, "wechat_unavailable"},
		{wxErrcode, http.StatusBadGateway, "wechat_error"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			p.wx.setFault(tc.fault)
			defer p.wx.setFault("")
			n := 1
			if *long {
				n = 20
			}
			as := make([]attempt, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { as[i] = tryLogin(p, fmt.Sprintf("wx-%s-%d", tc.fault, i)) })
			}
			wg.Wait()
			t.Logf("WeChat %s: %s, slowest %s", tc.fault, tally(as), slowest(as))
			checkOutcomes(t, db, as, loginWithin, tc.code)
			for _, a := range as {
				if a.status != tc.status || a.code != tc.code {
					t.Errorf("WeChat %s: login %s, want %d %s", tc.fault, a, tc.status, tc.code)
				}
			}
		})
	}
	p.wx.mint("wx-after", standInUser{OpenID: "o_wx_after"})
	if a := tryLogin(p, "wx-after"); a.status != http.StatusOK {
		t.Fatalf("login once WeChat behaves: %s %s", a, a.raw)
	}
}
