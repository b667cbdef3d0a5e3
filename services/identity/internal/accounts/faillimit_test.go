package accounts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/password"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/clientip"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// countingPasswords counts the verifications that reach argon2.
type countingPasswords struct {
	*password.Hasher
	verified atomic.Int32
}

func (c *countingPasswords) Verify(ctx context.Context, phc, pw string) (bool, error) {
	c.verified.Add(1)
	return c.Hasher.Verify(ctx, phc, pw)
}

type noEvents struct{}

func (noEvents) Notify() {}

// passwordAPIs are two identity replicas over one database and one NATS
// server, their verifications counted, their per-username waits on clock now
// (time.Now when nil), with the user alice registered.
func passwordAPIs(t *testing.T, ctx context.Context, now func() time.Time) ([]*API, *countingPasswords, *server.Server, *store.Store) {
	t.Helper()
	dsn := pgtest.NewDatabase(t, func(dsn string) error {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		return store.Migrate(ctx, db.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	ns := natstest.Start(t)
	passwords := &countingPasswords{Hasher: password.NewHasher(4)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var replicas []*API
	for range 2 {
		js, err := jetstream.New(natstest.Connect(t, ns))
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, New(Deps{Store: st, Passwords: passwords,
			Failures: faillimit.New(js, 1, faillimit.DefaultLimits, now), Events: noEvents{}}, log))
	}
	if _, err := replicas[0].Register(ctx, identity.RegisterRequest{Username: "alice", Password: "alice's password"}); err != nil {
		t.Fatal(err)
	}
	passwords.verified.Store(0)
	return replicas, passwords, ns, st
}

// A burst of wrong passwords for one username from one IP, spread over two
// identity replicas, gets at most the limit (5) checked: the rest are
// rate_limited before any hashing.
func TestPasswordBurstIsLimitedAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replicas, passwords, ns, st := passwordAPIs(t, ctx, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	const burst = 20
	got := guessBurst(ctx, replicas, slices.Repeat([]string{"203.0.113.7"}, burst))
	if n := passwords.verified.Load(); n > 5 {
		t.Errorf("%d verifications, want at most 5", n)
	}
	if got[api.CodeInvalidCredentials]+got[api.CodeRateLimited] != burst || got[api.CodeRateLimited] < burst-5 {
		t.Errorf("answers %v, want at most 5 invalid_credentials and the rest rate_limited", got)
	}

	// Now even the right password is refused from that IP, on either replica.
	for i, a := range replicas {
		_, err := a.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "alice", Password: "alice's password", ClientIP: "203.0.113.7"})
		if api.CodeOf(err) != api.CodeRateLimited {
			t.Errorf("replica %d: right password after the burst: %v", i, err)
		}
	}

	// Without the counts there is no limit: fail closed.
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	down := New(Deps{Store: st, Passwords: passwords, Failures: faillimit.New(js, 1, faillimit.DefaultLimits, nil), Events: noEvents{}}, log)
	before := passwords.verified.Load()
	_, err = down.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "alice", Password: "alice's password", ClientIP: "198.51.100.9"})
	if api.CodeOf(err) != api.CodeServiceUnavailable || passwords.verified.Load() != before {
		t.Errorf("KV down: %v, %d verifications; want service_unavailable and none", err, passwords.verified.Load()-before)
	}
}

// guessBurst sends wrong passwords for alice from each of addrs at once,
// spread over the replicas, and counts the answers' codes.
func guessBurst(ctx context.Context, replicas []*API, addrs []string) map[api.Code]int {
	codes := make(chan api.Code, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			_, err := replicas[i%len(replicas)].PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "alice",
				Password: fmt.Sprint("guess ", i), ClientIP: addr})
			codes <- api.CodeOf(err)
		})
	}
	wg.Wait()
	close(codes)
	got := map[api.Code]int{}
	for c := range codes {
		got[c]++
	}
	return got
}

// 40 wrong passwords from 40 addresses of one IPv6 /64, concurrently over
// two replicas: the /64 is one address, so at most its 5 are checked.
func TestPasswordGuessingFromOneIPv6Slash64(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replicas, passwords, _, _ := passwordAPIs(t, ctx, nil)
	const guesses = 40
	addrs := make([]string, guesses)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("2001:db8:77:1:%x::%x", i, (i*7919)%0x10000)
		if a, err := netip.ParseAddr(addrs[i]); err != nil || clientip.Key(a.String()) != "2001:db8:77:1::/64" {
			t.Fatalf("address %q (%v) is not of 2001:db8:77:1::/64", addrs[i], err)
		}
	}
	got := guessBurst(ctx, replicas, addrs)
	limit := faillimit.DefaultLimits.PerAddress
	if n := int(passwords.verified.Load()); n > limit || n != got[api.CodeInvalidCredentials] {
		t.Errorf("%d verifications, %d invalid_credentials; want at most %d", n, got[api.CodeInvalidCredentials], limit)
	}
	if got[api.CodeRateLimited] != guesses-got[api.CodeInvalidCredentials] {
		t.Errorf("answers %v, want the rest rate_limited", got)
	}
}

// Many addresses against one username meet the per-username ceiling: 10
// checks, then rate_limited with the wait in retry_after. Once the wait has
// passed (a fake clock) the right password from a fresh address logs in. A
// username nobody holds gets exactly the same answers.
func TestPasswordGuessingPerUsername(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	replicas, passwords, _, _ := passwordAPIs(t, ctx, now)

	addr := 0
	login := func(username, pw string) error {
		addr++
		_, err := replicas[addr%2].PasswordLogin(ctx, identity.PasswordLoginRequest{Username: username, Password: pw,
			ClientIP: fmt.Sprintf("198.18.%d.%d", addr/256, addr%256)})
		return err
	}
	// answer is what a client sees of err: the code and the wait.
	answer := func(err error) string {
		var ae *api.Error
		if errors.As(err, &ae) {
			return string(ae.Code) + " " + ae.Data[identity.DataRetryAfter]
		}
		return fmt.Sprint(err)
	}
	guess := func(username string) []string {
		var answers []string
		for i := range 30 {
			answers = append(answers, answer(login(username, fmt.Sprint("guess ", i))))
		}
		return answers
	}

	before := passwords.verified.Load()
	alice := guess("alice")
	if n := passwords.verified.Load() - before; n != 10 {
		t.Errorf("alice: %d verifications from 30 addresses, want 10", n)
	}
	for i, a := range alice {
		want := "invalid_credentials "
		if i >= 10 {
			want = "rate_limited 1"
		}
		if a != want {
			t.Errorf("alice, guess %d: %q, want %q", i+1, a, want)
		}
	}
	before = passwords.verified.Load()
	if nobody := guess("nobody"); !slices.Equal(nobody, alice) {
		t.Errorf("an unknown username answers\n%q\nbut alice\n%q", nobody, alice)
	}
	if n := passwords.verified.Load() - before; n != 10 {
		t.Errorf("nobody: %d verifications, want 10 as for alice", n)
	}

	// Even the owner waits...
	if err := login("alice", "alice's password"); api.CodeOf(err) != api.CodeRateLimited {
		t.Errorf("right password before the wait: %v", err)
	}
	// ...but only until the wait has passed, from any address.
	clock.Add(int64(time.Second))
	if err := login("alice", "alice's password"); err != nil {
		t.Errorf("right password from a fresh address after the wait: %v", err)
	}
	if err := login("nobody", "whatever"); api.CodeOf(err) != api.CodeInvalidCredentials {
		t.Errorf("unknown username after the wait: %v, want invalid_credentials", err)
	}
}
