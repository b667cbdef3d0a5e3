package kvstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

var ttls = TTLs{Access: 2 * time.Hour, Refresh: 720 * time.Hour, QR: 5 * time.Minute}

func open(t *testing.T) (*Buckets, jetstream.JetStream) {
	t.Helper()
	js := natstest.JetStream(t)
	b, err := Open(context.Background(), js, ttls, 1)
	if err != nil {
		t.Fatal(err)
	}
	return b, js
}

func TestOpenBuckets(t *testing.T) {
	_, js := open(t)
	ctx := context.Background()
	// A second replica opening the same buckets is fine.
	if _, err := Open(ctx, js, ttls, 1); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	tests := []struct {
		bucket string
		ttl    time.Duration
	}{
		{session.BucketSessions, ttls.Refresh},
		{session.BucketRevoked, ttls.Access + time.Minute},
		{session.BucketQR, ttls.QR},
		{session.BucketKeys, 0},
	}
	for _, tc := range tests {
		t.Run(tc.bucket, func(t *testing.T) {
			kv, err := js.KeyValue(ctx, tc.bucket)
			if err != nil {
				t.Fatal(err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.TTL() != tc.ttl || st.History() != 1 {
				t.Errorf("ttl %s history %d, want ttl %s history 1", st.TTL(), st.History(), tc.ttl)
			}
			if r := replicas(t, st); r != 1 {
				t.Errorf("%d replicas, want 1", r)
			}
		})
	}
}

func replicas(t *testing.T, st jetstream.KeyValueStatus) int {
	t.Helper()
	js, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		t.Fatalf("bucket status is a %T", st)
	}
	return js.StreamInfo().Config.Replicas
}

// Every bucket carries the replica count (JetStream itself is checked below).
func TestBucketConfigsReplicas(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			seen := map[string]bool{}
			for _, cfg := range bucketConfigs(ttls, n) {
				seen[cfg.Bucket] = true
				if cfg.Replicas != n {
					t.Errorf("%s: %d replicas, want %d", cfg.Bucket, cfg.Replicas, n)
				}
			}
			for _, b := range []string{session.BucketSessions, session.BucketRevoked, session.BucketQR, session.BucketKeys} {
				if !seen[b] {
					t.Errorf("no configuration for %s", b)
				}
			}
		})
	}
}

// A single server refuses replicated buckets; a cluster cannot be started
// in a unit test, so this shows the count reaches JetStream.
func TestOpenReplicasReachJetStream(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	var apiErr *jetstream.APIError
	if _, err := Open(ctx, js, ttls, 3); !errors.As(err, &apiErr) || apiErr.ErrorCode != 10074 {
		t.Fatalf("Open with 3 replicas on a single server: %v, want JetStream error 10074", err)
	}
	if _, err := OpenKeys(ctx, js, 3); !errors.As(err, &apiErr) || apiErr.ErrorCode != 10074 {
		t.Fatalf("OpenKeys creating an R3 bucket on a single server: %v, want JetStream error 10074", err)
	}
}

// rotate-key opens the keys bucket as the service made it: run with another
// replica count, it neither fails nor rescales the bucket.
func TestOpenKeysKeepsExistingBucket(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	created, err := OpenKeys(ctx, js, 1) // no bucket yet: created
	if err != nil {
		t.Fatal(err)
	}
	if _, err := created.Put(ctx, "current", []byte("x")); err != nil {
		t.Fatal(err)
	}
	kv, err := OpenKeys(ctx, js, 3) // would fail if it tried to create or update
	if err != nil {
		t.Fatalf("OpenKeys on an existing bucket with another replica count: %v", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := replicas(t, st); r != 1 || st.Values() != 1 {
		t.Fatalf("bucket has %d replicas and %d values, want 1 and 1", r, st.Values())
	}
	if _, err := Open(ctx, js, ttls, 1); err != nil {
		t.Fatalf("Open after OpenKeys: %v", err)
	}
}

func TestFamilies(t *testing.T) {
	b, _ := open(t)
	f := NewFamilies(b.Sessions)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	fam := Family{UserID: "u", Kind: "web", TokenHash: "h0", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	const famID = "5b0c8f7e-2a4d-4c31-9e8b-7f6a5d4c3b2a"

	if _, _, err := f.Get(ctx, "u", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := f.Create(ctx, "u", famID, fam); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx, "u", famID, fam); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Create: %v, want ErrConflict", err)
	}
	if _, err := b.Sessions.Get(ctx, "u."+famID); err != nil {
		t.Fatalf("family not under <user>.<family>: %v", err)
	}
	got, rev, err := f.Get(ctx, "u", famID)
	if err != nil || got.TokenHash != "h0" {
		t.Fatalf("Get: %+v %v", got, err)
	}
	got.TokenHash = "h1"
	if err := f.Update(ctx, "u", famID, got, rev); err != nil {
		t.Fatal(err)
	}
	got.TokenHash = "h2"
	if err := f.Update(ctx, "u", famID, got, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update: %v, want ErrConflict", err)
	}
	if owner, err := f.OwnerOf(ctx, famID); err != nil || owner != "u" {
		t.Fatalf("OwnerOf = %q, %v", owner, err)
	}
	if _, err := f.OwnerOf(ctx, "6b0c8f7e-2a4d-4c31-9e8b-7f6a5d4c3b2a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OwnerOf unknown: %v", err)
	}
	for i, want := range []bool{true, false} {
		revoked, err := f.Revoke(ctx, "u", famID, now.Add(time.Duration(i)*time.Minute))
		if err != nil || revoked != want {
			t.Fatalf("Revoke #%d = %v, %v; want %v", i+1, revoked, err, want)
		}
	}
	got, _, _ = f.Get(ctx, "u", famID)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(now) || got.TokenHash != "h1" {
		t.Fatalf("after revoke %+v (the first revocation time must stay)", got)
	}
	if revoked, err := f.Revoke(ctx, "u", "missing", now); !errors.Is(err, ErrNotFound) || revoked {
		t.Fatalf("Revoke missing: %v %v", revoked, err)
	}
}

func TestRevokeUserFamilies(t *testing.T) {
	b, _ := open(t)
	f := NewFamilies(b.Sessions)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	fam := Family{Kind: "web", TokenHash: "h", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	ids := map[string][]string{"alice": {"a1", "a2", "a3"}, "bob": {"b1"}, "alice2": {"c1"}}
	for user, fams := range ids {
		for _, id := range fams {
			if err := f.Create(ctx, user, id, fam); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := f.Revoke(ctx, "alice", "a2", now); err != nil { // already revoked: not counted
		t.Fatal(err)
	}
	n, err := f.RevokeUser(ctx, "alice", now)
	if err != nil || n != 2 {
		t.Fatalf("RevokeUser = %d, %v; want 2", n, err)
	}
	for user, fams := range ids {
		for _, id := range fams {
			got, _, err := f.Get(ctx, user, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := user == "alice"; (got.RevokedAt != nil) != want {
				t.Errorf("%s.%s revoked = %v, want %v", user, id, got.RevokedAt != nil, want)
			}
		}
	}
	if n, err := f.RevokeUser(ctx, "nobody", now); err != nil || n != 0 {
		t.Fatalf("RevokeUser of a user without families = %d, %v", n, err)
	}
}

func TestRevocationKeys(t *testing.T) {
	b, _ := open(t)
	r := NewRevocations(b.Revoked, 2*time.Hour)
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Hour)
	if err := r.RevokeJTI(ctx, "j1", exp, now); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeSID(ctx, "s1", now); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUser(ctx, "u1", now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want string
	}{
		{"jti.j1", `{"at":1700000000,"exp":1700003600}`},
		// sid and user entries carry when every token they match is dead
		// (write time + access TTL), so a verifier need not know the TTL.
		{"sid.s1", `{"at":1700000000,"exp":1700007200}`},
		{"user.u1", `{"at":1700000000,"exp":1700007200}`},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			e, err := b.Revoked.Get(ctx, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Value()) != tc.want {
				t.Fatalf("value %s, want %s", e.Value(), tc.want)
			}
		})
	}
}

func TestTickets(t *testing.T) {
	b, _ := open(t)
	tk := NewTickets(b.QR)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	rec := session.QRRecord{Status: session.QRPending, AppID: "wx2", PollTokenHash: "h", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}

	if _, _, err := tk.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := tk.Create(ctx, "t1", rec); err != nil {
		t.Fatal(err)
	}
	if err := tk.Create(ctx, "t1", rec); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Create: %v", err)
	}
	got, rev, err := tk.Get(ctx, "t1")
	if err != nil || got.Status != session.QRPending || !got.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Fatalf("Get: %+v %v", got, err)
	}
	got.Status = session.QRConfirmed
	if err := tk.Update(ctx, "t1", got, rev); err != nil {
		t.Fatal(err)
	}
	if err := tk.Update(ctx, "t1", got, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}
	if err := tk.Consume(ctx, "t1", rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("Consume at a stale revision: %v", err)
	}
	_, rev, _ = tk.Get(ctx, "t1")
	if err := tk.Consume(ctx, "t1", rev); err != nil {
		t.Fatal(err)
	}
	if err := tk.Consume(ctx, "t1", rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Consume: %v", err)
	}
	if _, _, err := tk.Get(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get consumed: %v", err)
	}
}

func TestUserRevocations(t *testing.T) {
	b, js := open(t)
	ctx := context.Background()
	f := NewFamilies(b.Sessions)
	now := time.Now()
	// One written before the watch starts, one after.
	if err := f.SetUserCutoff(ctx, "before", now); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx, "s1", "f1", Family{}); err != nil { // a family, not a cut-off: ignored
		t.Fatal(err)
	}
	if err := NewRevocations(b.Revoked, time.Hour).RevokeUser(ctx, "gateway-only", now); err != nil { // the gateway's key: not read
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u, err := WatchUserRevocations(wctx, js, b.Sessions, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	if at, ok := u.Cutoff("before", now); !ok || at != now.Unix() {
		t.Fatalf("initial value: %d %v", at, ok)
	}
	for _, user := range []string{"s1", "gateway-only"} {
		if _, ok := u.Cutoff(user, now); ok {
			t.Fatalf("%s counted as a cut-off", user)
		}
	}
	if err := f.SetUserCutoff(ctx, "after", now); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the cut-off written", func() bool { _, ok := u.Cutoff("after", now); return ok })
	if err := b.Sessions.Delete(ctx, UserCutoffKey("after")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the cut-off deleted", func() bool { _, ok := u.Cutoff("after", now); return !ok })

	u.Record("local", now.Unix())
	tests := []struct {
		name string
		user string
		now  time.Time
		ok   bool
	}{
		{"recorded locally", "local", now, true},
		{"unknown user", "nobody", now, false},
		{"aged past retention", "before", now.Add(time.Hour + 2*time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := u.Cutoff(tc.user, tc.now); ok != tc.ok {
				t.Fatalf("Cutoff(%q) ok = %v, want %v", tc.user, ok, tc.ok)
			}
		})
	}
}

// TestUserRevocationsOutliveBucketAndServer: the watch goes on when the
// sessions bucket is deleted and re-created (forgetting the cut-offs that
// went with it) and across a NATS restart.
func TestUserRevocationsOutliveBucketAndServer(t *testing.T) {
	watchCheckEvery = 50 * time.Millisecond
	t.Cleanup(func() { watchCheckEvery = 0 })
	ns := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := Open(ctx, js, ttls, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := NewFamilies(b.Sessions).SetUserCutoff(ctx, "old", now); err != nil {
		t.Fatal(err)
	}
	u, err := WatchUserRevocations(ctx, js, b.Sessions, time.Hour, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	has := func(user string) bool { _, ok := u.Cutoff(user, now); return ok }
	if !has("old") {
		t.Fatal("initial value not loaded")
	}

	if err := js.DeleteKeyValue(ctx, session.BucketSessions); err != nil {
		t.Fatal(err)
	}
	// Right after the delete JetStream may refuse the create for a moment
	// (natstest.CreateKeyValue); session's start retries Open the same way.
	poll.UntilNil(t, 10*time.Second, "the buckets re-created", func() (err error) {
		b, err = Open(ctx, js, ttls, 1)
		return err
	})
	if err := NewFamilies(b.Sessions).SetUserCutoff(ctx, "new", now); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "the cut-offs of the re-created bucket", func() bool { return has("new") && !has("old") })

	natstest.Stop(t, ns)()
	// Written while the connection may still be reconnecting: retried, as
	// a writer would.
	poll.UntilNil(t, 15*time.Second, "a cut-off written after the NATS restart", func() error {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return NewFamilies(b.Sessions).SetUserCutoff(wctx, "after-restart", now)
	})
	poll.Until(t, 15*time.Second, "a cut-off written after the NATS restart", func() bool { return has("after-restart") && has("new") })
}

// Cut-offs share the sessions bucket with families but are never taken for
// one, even for a user or family id equal to the key's own words.
func TestUserCutoffKeysAreNoFamilies(t *testing.T) {
	b, _ := open(t)
	f := NewFamilies(b.Sessions)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	fam := Family{Kind: "web", TokenHash: "h", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, user := range []string{"cutoff", "user", "u1"} {
		if err := f.SetUserCutoff(ctx, user, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Create(ctx, "cutoff", "fam1", fam); err != nil {
		t.Fatal(err)
	}
	if n, err := f.RevokeUser(ctx, "cutoff", now); err != nil || n != 1 {
		t.Fatalf("RevokeUser(cutoff) = %d, %v; want 1 (its family, no cut-off key)", n, err)
	}
	for _, sid := range []string{"user", "u1"} {
		if owner, err := f.OwnerOf(ctx, sid); !errors.Is(err, ErrNotFound) {
			t.Errorf("OwnerOf(%q) = %q, %v; want not found", sid, owner, err)
		}
	}
}
