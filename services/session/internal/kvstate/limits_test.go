package kvstate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

// TestBucketLimits: every bucket JetStream holds has a byte cap and a value
// cap; the QR and sessions caps follow their TTLs unless configured.
func TestBucketLimits(t *testing.T) {
	_, js := open(t)
	for _, name := range []string{session.BucketSessions, session.BucketRevoked, session.BucketQR, session.BucketKeys, session.BucketOA} {
		cfg := natstest.KVStreamConfig(t, js, name)
		if cfg.MaxBytes <= 0 || cfg.MaxMsgSize <= 0 || cfg.Discard != jetstream.DiscardNew {
			t.Errorf("%s: max bytes %d, max value %d, discard %v; want both capped, DiscardNew", name, cfg.MaxBytes, cfg.MaxMsgSize, cfg.Discard)
		}
	}

	if got, want := ttls.qrCap(), int64(300*100*1024); got != want {
		t.Errorf("default QR cap %d, want %d (5m × 100/s × 1 KiB)", got, want)
	}
	if got, want := ttls.sessionsCap(), int64(720*3600/10*4096); got != want {
		t.Errorf("default sessions cap %d, want %d (720h × 0.1/s × 4 KiB)", got, want)
	}
	short := TTLs{Access: time.Second, Refresh: time.Minute, QR: 10 * time.Second}
	if short.qrCap() != minBucketBytes || short.sessionsCap() != minBucketBytes || short.revokedCap() != minBucketBytes {
		t.Errorf("short TTLs: caps %d %d %d, want at least %d", short.qrCap(), short.sessionsCap(), short.revokedCap(), minBucketBytes)
	}
	set := ttls
	set.QRMaxBytes, set.SessionsMaxBytes = 1<<20+1, 1<<30+1
	for _, cfg := range bucketConfigs(set, 1) {
		switch cfg.Bucket {
		case session.BucketQR:
			if cfg.MaxBytes != set.QRMaxBytes {
				t.Errorf("QR cap %d, want the configured %d", cfg.MaxBytes, set.QRMaxBytes)
			}
		case session.BucketSessions:
			if cfg.MaxBytes != set.SessionsMaxBytes {
				t.Errorf("sessions cap %d, want the configured %d", cfg.MaxBytes, set.SessionsMaxBytes)
			}
		}
	}
}

// TestQRBucketFull: a small QR bucket fills up to qrCreateFill; then Room
// refuses a new ticket, while every ticket already in it can still be read,
// completed with a user and consumed. Past Room, the bucket's own cap
// refuses a new key with JetStream's store error (503 in shared/natsrpc).
func TestQRBucketFull(t *testing.T) {
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	small := ttls
	small.QRMaxBytes = 16 << 10
	b, err := Open(ctx, js, small, 1)
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTickets(b.QR)
	now := time.Now().UTC()
	pending := session.QRRecord{Status: session.QRPending, AppID: "wx2222222222222222", PollTokenHash: strings.Repeat("0", 64),
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)}

	var created []string
	var full error
	for i := range 1000 {
		if full = tk.Room(ctx); full != nil {
			break
		}
		ticket := fmt.Sprintf("ticket%016d", i)
		if err := tk.Create(ctx, ticket, pending); err != nil {
			t.Fatalf("Create with room: %v", err)
		}
		created = append(created, ticket)
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("after %d tickets: %v, want ErrFull", len(created), full)
	}
	if len(created) < 10 {
		t.Fatalf("only %d tickets fit in 16 KiB", len(created))
	}

	first := created[0]
	rec, rev, err := tk.Get(ctx, first)
	if err != nil || rec.Status != session.QRPending {
		t.Fatalf("existing ticket when full: %+v %v", rec, err)
	}
	_ = rev
	user := &api.User{ID: "0b0e5a64-3c1f-4a7e-9d0f-6c1f2b9b7e11", Nickname: strings.Repeat("n", 64), AvatarURL: "https://example.test/" + strings.Repeat("a", 200),
		Identities: []api.Identity{{ID: "i1", Provider: "wechat", Kind: api.KindWeb, AppID: "wx2222222222222222", CreatedAt: now}}}
	// Every ticket in the full bucket can still be completed with a user.
	for _, ticket := range created {
		rec, rev, err := tk.Get(ctx, ticket)
		if err != nil {
			t.Fatal(err)
		}
		rec.Status, rec.User = session.QRConfirmed, user
		if err := tk.Update(ctx, ticket, rec, rev); err != nil {
			t.Fatalf("completing ticket %s of %d when full: %v", ticket, len(created), err)
		}
	}
	_, rev, err = tk.Get(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Consume(ctx, first, rev); err != nil {
		t.Fatalf("consuming an existing ticket when full: %v", err)
	}

	// Past Room (another replica's creates), the cap itself refuses.
	var hard error
	for i := range 1000 {
		if hard = tk.Create(ctx, fmt.Sprintf("extra%017d", i), pending); hard != nil {
			break
		}
	}
	var ae *jetstream.APIError
	if !errors.As(hard, &ae) || ae.ErrorCode != 10077 {
		t.Fatalf("creating past the cap: %v, want JetStream's store error 10077", hard)
	}
}
