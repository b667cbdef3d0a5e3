package kvstate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

var ttls = TTLs{Access: 2 * time.Hour, Refresh: 720 * time.Hour, QR: 5 * time.Minute}

func open(t *testing.T) (*Buckets, jetstream.JetStream) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), js, ttls)
	if err != nil {
		t.Fatal(err)
	}
	return b, js
}

func TestOpenBuckets(t *testing.T) {
	_, js := open(t)
	ctx := context.Background()
	// A second replica opening the same buckets is fine.
	if _, err := Open(ctx, js, ttls); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	tests := []struct {
		bucket string
		ttl    time.Duration
	}{
		{session.BucketSessions, ttls.Refresh},
		{session.BucketRevoked, ttls.Access + time.Minute},
		{session.BucketQR, ttls.QR},
		{session.BucketBind, BindTTL},
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
		})
	}
}

func TestFamilies(t *testing.T) {
	b, _ := open(t)
	f := NewFamilies(b.Sessions)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	fam := Family{UserID: "u", Kind: "web", TokenHash: "h0", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}

	if _, _, err := f.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := f.Create(ctx, "fam", fam); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx, "fam", fam); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Create: %v, want ErrConflict", err)
	}
	got, rev, err := f.Get(ctx, "fam")
	if err != nil || got.TokenHash != "h0" {
		t.Fatalf("Get: %+v %v", got, err)
	}
	got.TokenHash = "h1"
	if err := f.Update(ctx, "fam", got, rev); err != nil {
		t.Fatal(err)
	}
	got.TokenHash = "h2"
	if err := f.Update(ctx, "fam", got, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update: %v, want ErrConflict", err)
	}
	for i := range 2 {
		if err := f.Revoke(ctx, "fam", now.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	got, _, _ = f.Get(ctx, "fam")
	if got.RevokedAt == nil || !got.RevokedAt.Equal(now) || got.TokenHash != "h1" {
		t.Fatalf("after revoke %+v (the first revocation time must stay)", got)
	}
	if err := f.Revoke(ctx, "missing", now); err != nil {
		t.Fatalf("Revoke missing: %v", err)
	}
}
