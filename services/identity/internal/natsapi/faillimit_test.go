package natsapi

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the Postgres driver
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/password"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
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

// A burst of wrong passwords for one username from one IP, spread over two
// identity replicas, gets at most the limit (5) checked: the rest are
// rate_limited before any hashing.
func TestPasswordBurstIsLimitedAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
		replicas = append(replicas, New(Deps{Store: st, Passwords: passwords, Failures: faillimit.New(js, 1, 5), Events: noEvents{}}, log))
	}
	if _, err := replicas[0].Register(ctx, identity.RegisterRequest{Username: "alice", Password: "alice's password"}); err != nil {
		t.Fatal(err)
	}
	passwords.verified.Store(0)

	const burst = 20
	codes := make(chan api.Code, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			_, err := replicas[i%2].PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "alice", Password: "a wrong guess", ClientIP: "203.0.113.7"})
			codes <- api.CodeOf(err)
		})
	}
	wg.Wait()
	close(codes)
	got := map[api.Code]int{}
	for c := range codes {
		got[c]++
	}
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
	down := New(Deps{Store: st, Passwords: passwords, Failures: faillimit.New(js, 1, 5), Events: noEvents{}}, log)
	before := passwords.verified.Load()
	_, err = down.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "alice", Password: "alice's password", ClientIP: "198.51.100.9"})
	if api.CodeOf(err) != api.CodeServiceUnavailable || passwords.verified.Load() != before {
		t.Errorf("KV down: %v, %d verifications; want service_unavailable and none", err, passwords.verified.Load()-before)
	}
}
