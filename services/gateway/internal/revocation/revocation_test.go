package revocation

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const ttl = 2 * time.Hour

// entry is a KV entry as a watch delivers it.
type kvEntry struct {
	key     string
	value   []byte
	rev     uint64
	created time.Time
	op      jetstream.KeyValueOp
}

func (e kvEntry) Bucket() string                  { return session.BucketRevoked }
func (e kvEntry) Key() string                     { return e.key }
func (e kvEntry) Value() []byte                   { return e.value }
func (e kvEntry) Revision() uint64                { return e.rev }
func (e kvEntry) Created() time.Time              { return e.created }
func (e kvEntry) Delta() uint64                   { return 0 }
func (e kvEntry) Operation() jetstream.KeyValueOp { return e.op }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSet(t *testing.T) (*Set, *clock, *handler) {
	t.Helper()
	c := &clock{t: time.Unix(1_750_000_000, 0)}
	s := New(ttl, 0, slog.New(slog.NewTextHandler(t.Output(), nil)))
	s.now = c.now
	// These tests feed the handler directly: no watch, no health to track
	// (TestStaleView has both).
	s.health = nil
	return s, c, (*handler)(s)
}

func put(c *clock, key string, v session.Revocation) kvEntry {
	b, _ := json.Marshal(v)
	return kvEntry{key: key, value: b, created: c.now(), op: jetstream.KeyValuePut}
}

func claims(jti, sid, sub string, iat time.Time) *jwtverify.Claims {
	return &jwtverify.Claims{ID: jti, SessionID: sid, Subject: sub, IssuedAt: iat, ExpiresAt: iat.Add(ttl)}
}

func TestCheck(t *testing.T) {
	s, c, h := newSet(t)
	now := c.now()
	tok := claims("j1", "s1", "u1", now.Add(-time.Minute))

	if err := s.Check(tok); api.CodeOf(err) != api.CodeServiceUnavailable {
		t.Fatalf("before loading: %v, want service_unavailable", err)
	}
	h.Begin()
	h.Loaded()
	if err := s.Check(tok); err != nil {
		t.Fatalf("empty list: %v", err)
	}

	at := now.Unix()
	h.Entry(put(c, "jti.j2", session.Revocation{At: at}))
	h.Entry(put(c, "sid.s2", session.Revocation{At: at}))
	h.Entry(put(c, "user.u2", session.Revocation{At: at}))
	h.Entry(put(c, "other.thing", session.Revocation{At: at}))

	cases := []struct {
		name    string
		claims  *jwtverify.Claims
		revoked bool
	}{
		{"unrelated", tok, false},
		{"jti", claims("j2", "s9", "u9", now.Add(-time.Minute)), true},
		{"sid", claims("j9", "s2", "u9", now.Add(-time.Minute)), true},
		{"sid issued later too", claims("j9", "s2", "u9", now.Add(time.Minute)), true},
		{"user, issued before", claims("j9", "s9", "u2", now.Add(-time.Minute)), true},
		{"user, issued the same second", claims("j9", "s9", "u2", now), true},
		{"user, issued after", claims("j9", "s9", "u2", now.Add(time.Second)), false},
		{"empty claims match no empty key", claims("", "", "", now), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Revoked(tc.claims); got != tc.revoked {
				t.Errorf("Revoked = %v, want %v", got, tc.revoked)
			}
			err := s.Check(tc.claims)
			if tc.revoked && api.CodeOf(err) != api.CodeTokenRevoked || !tc.revoked && err != nil {
				t.Errorf("Check = %v", err)
			}
		})
	}
	if s.Len() != 3 {
		t.Errorf("Len %d, want 3 (the unknown key ignored)", s.Len())
	}

	t.Run("delete and purge forget", func(t *testing.T) {
		h.Entry(kvEntry{key: "jti.j2", op: jetstream.KeyValueDelete})
		h.Entry(kvEntry{key: "sid.s2", op: jetstream.KeyValuePurge})
		if s.Revoked(claims("j2", "", "", now)) || s.Revoked(claims("", "s2", "", now)) {
			t.Error("still revoked after delete/purge")
		}
	})
}

func TestAgeing(t *testing.T) {
	s, c, h := newSet(t)
	h.Begin()
	h.Loaded()
	start := c.now()
	tok := claims("j1", "s1", "u1", start.Add(-time.Minute))
	h.Entry(put(c, "sid.s1", session.Revocation{At: start.Unix()}))
	// A jti entry that knows the token's expiry goes with it.
	h.Entry(put(c, "jti.j2", session.Revocation{At: start.Unix(), Exp: start.Add(10 * time.Minute).Unix()}))

	c.add(10*time.Minute + slack + time.Second)
	if s.Revoked(claims("j2", "", "", start)) {
		t.Error("jti entry kept past the token's exp")
	}
	if !s.Revoked(tok) {
		t.Error("sid entry dropped early")
	}
	c.add(ttl)
	if s.Revoked(tok) {
		t.Error("sid entry kept past every token it matches")
	}
	s.prune()
	if s.Len() != 0 {
		t.Errorf("Len %d after prune, want 0", s.Len())
	}
}

// sid and user entries are aged by the exp the session service wrote (its
// own access TTL), not by this gateway's WXLOGIN_ACCESS_TTL: a gateway with
// a shorter (or default) setting must not resurrect revoked tokens.
func TestAgeingByExp(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		claims   func(iat time.Time) *jwtverify.Claims
		lifetime time.Duration // the session service's access TTL
	}{
		{"sid, longer than the gateway's ttl", "sid.s1", func(iat time.Time) *jwtverify.Claims { return claims("j9", "s1", "u9", iat) }, 3 * ttl},
		{"user, longer than the gateway's ttl", "user.u1", func(iat time.Time) *jwtverify.Claims { return claims("j9", "s9", "u1", iat) }, 3 * ttl},
		{"sid, shorter than the gateway's ttl", "sid.s1", func(iat time.Time) *jwtverify.Claims { return claims("j9", "s1", "u9", iat) }, 10 * time.Minute},
		{"user, shorter than the gateway's ttl", "user.u1", func(iat time.Time) *jwtverify.Claims { return claims("j9", "s9", "u1", iat) }, 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c, h := newSet(t)
			h.Begin()
			h.Loaded()
			at := c.now()
			tok := tc.claims(at.Add(-time.Second))
			h.Entry(put(c, tc.key, session.Revocation{At: at.Unix(), Exp: at.Add(tc.lifetime).Unix()}))

			c.add(tc.lifetime + slack - time.Second)
			s.prune()
			if !s.Revoked(tok) {
				t.Fatal("entry forgotten before its exp")
			}
			c.add(2 * time.Second)
			if s.Revoked(tok) {
				t.Error("entry kept past its exp")
			}
			s.prune()
			if s.Len() != 0 {
				t.Errorf("Len %d after prune, want 0", s.Len())
			}
		})
	}
}

func TestReload(t *testing.T) {
	s, c, h := newSet(t)
	now := c.now()
	h.Begin()
	h.Entry(put(c, "sid.kept", session.Revocation{At: now.Unix()}))
	h.Entry(put(c, "sid.gone", session.Revocation{At: now.Unix()}))
	h.Loaded()

	// The watch is re-created; "sid.gone" was deleted meanwhile.
	h.Begin()
	h.Entry(put(c, "sid.kept", session.Revocation{At: now.Unix()}))
	if !s.Revoked(claims("", "gone", "", now)) {
		t.Error("old entries dropped before the reload completed")
	}
	h.Loaded()
	if s.Revoked(claims("", "gone", "", now)) {
		t.Error("an entry deleted while no watch ran survived the reload")
	}
	if !s.Revoked(claims("", "kept", "", now)) {
		t.Error("reloaded entry lost")
	}
}

func TestAddLocal(t *testing.T) {
	s, c, h := newSet(t)
	h.Begin()
	h.Loaded()
	now := c.now()
	tok := &jwtverify.Claims{ID: "j1", SessionID: "s1", Subject: "u1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	s.Add(tok)
	if !s.Revoked(tok) {
		t.Fatal("not revoked after Add")
	}
	if !s.Revoked(claims("j2", "s1", "u1", now.Add(time.Minute))) {
		t.Error("a later token of the family is not revoked")
	}
	// A reload (no such keys yet in KV) does not forget it.
	h.Begin()
	h.Loaded()
	if !s.Revoked(tok) {
		t.Error("local revocation lost on reload")
	}
	c.add(time.Hour + slack + time.Second)
	if s.Revoked(&jwtverify.Claims{ID: "j1"}) {
		t.Error("jti kept past the token's expiry")
	}
}

func TestUnreadableValueStillRevokes(t *testing.T) {
	var logs bytes.Buffer
	s, c, h := newSet(t)
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	h.Begin()
	h.Loaded()
	now := c.now()
	h.Entry(kvEntry{key: "user.u1", value: []byte("garbage"), created: now, op: jetstream.KeyValuePut})
	if !s.Revoked(claims("", "", "u1", now.Add(-time.Second))) {
		t.Error("an unreadable user revocation let a token through")
	}
	if s.Revoked(claims("", "", "u1", now.Add(time.Second))) {
		t.Error("an unreadable user revocation revokes tokens issued after it was written")
	}
	if !bytes.Contains(logs.Bytes(), []byte("user.u1")) {
		t.Errorf("no warning about the entry: %s", logs.String())
	}
}

// TestRun runs against a real JetStream: waits for the bucket, loads it,
// follows changes, and survives the bucket being deleted and re-created.
func TestRun(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := New(ttl, 0, slog.New(slog.NewTextHandler(t.Output(), nil)))
	run(t, s, js)

	now := time.Now()
	create := func() jetstream.KeyValue {
		return natstest.CreateKeyValue(t, js, jetstream.KeyValueConfig{Bucket: session.BucketRevoked, TTL: ttl + time.Minute})
	}
	putKV := func(kv jetstream.KeyValue, key string) {
		b, _ := json.Marshal(session.Revocation{At: now.Unix()})
		if _, err := kv.Put(context.Background(), key, b); err != nil {
			t.Fatal(err)
		}
	}

	if s.Loaded() {
		t.Fatal("loaded without a bucket")
	}
	kv := create()
	putKV(kv, session.RevokedSIDKey("before"))
	poll.Until(t, 15*time.Second, "the initial load", func() bool { return s.Loaded() && s.Revoked(claims("", "before", "", now)) })

	putKV(kv, session.RevokedJTIKey("after"))
	poll.Until(t, 15*time.Second, "a later write", func() bool { return s.Revoked(claims("after", "", "", now)) })

	if err := js.DeleteKeyValue(context.Background(), session.BucketRevoked); err != nil {
		t.Fatal(err)
	}
	kv = create()
	putKV(kv, session.RevokedUserKey("u1"))
	poll.Until(t, 15*time.Second, "the watch on the re-created bucket", func() bool {
		return s.Revoked(claims("", "", "u1", now.Add(-time.Second))) && !s.Revoked(claims("", "before", "", now))
	})
}

// run runs s on js, checking the bucket every 50 ms, until the test ends.
func run(t *testing.T, s *Set, js jetstream.JetStream) {
	t.Helper()
	s.checkEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, js) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestAddUserLocal(t *testing.T) {
	s, c, h := newSet(t)
	h.Begin()
	h.Loaded()
	now := c.now()
	before := claims("j1", "s1", "u1", now.Add(-time.Minute))
	s.AddUser("u1", now)
	s.AddUser("u1", now.Add(-time.Hour)) // a call that began earlier narrows nothing
	for _, tc := range []struct {
		name string
		c    *jwtverify.Claims
		want bool
	}{
		{"issued before", before, true},
		{"issued the same second", claims("j2", "s2", "u1", now), true},
		{"issued after", claims("j3", "s3", "u1", now.Add(time.Second)), false},
		{"another user", claims("j4", "s4", "u2", now.Add(-time.Minute)), false},
	} {
		if got := s.Revoked(tc.c); got != tc.want {
			t.Errorf("%s: revoked %v, want %v", tc.name, got, tc.want)
		}
	}
	h.Begin()
	h.Loaded()
	if !s.Revoked(before) {
		t.Error("local user revocation lost on reload")
	}
	c.add(ttl + slack + time.Second)
	if s.Revoked(before) {
		t.Error("kept past every access token's lifetime")
	}
}
