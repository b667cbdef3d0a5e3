package oapushes

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

func TestClaimFinishRelease(t *testing.T) {
	js := natstest.JetStream(t)
	s := New(js, 1)
	ctx := context.Background()
	key := Key("wx1", "o1", 1700000000)
	if key == Key("wx1", "o1", 1700000001) || key == Key("wx2", "o1", 1700000000) || key == Key("wx1", "o2", 1700000000) {
		t.Fatal("keys of different pushes collide")
	}

	// Of concurrent deliveries of one push exactly one handles it.
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first Claim
	firsts := 0
	for range 8 {
		wg.Go(func() {
			c, err := s.Claim(ctx, key)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if c.First {
				firsts++
				first = c
			} else if c.Earlier != nil {
				t.Error("an earlier result before it was recorded")
			}
		})
	}
	wg.Wait()
	if firsts != 1 {
		t.Fatalf("%d first claims, want 1", firsts)
	}
	res := identity.OAPushResult{Reply: "success", Scene: "wxl.t.s"}
	if err := s.Finish(ctx, key, first, res); err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(ctx, key)
	if err != nil || c.First || c.Earlier == nil || *c.Earlier != res {
		t.Fatalf("retry after finish: %+v, %v", c, err)
	}

	// A released claim is handled afresh by the retry.
	other := Key("wx1", "o1", 1700000002)
	c, err = s.Claim(ctx, other)
	if err != nil || !c.First {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	if err := s.Release(ctx, other, c); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Claim(ctx, other); err != nil || !c.First {
		t.Fatalf("claim after release: %+v, %v", c, err)
	}

	kv, _ := js.KeyValue(ctx, Bucket)
	st, err := kv.Status(ctx)
	if err != nil || st.TTL() != TTL || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxBytes != MaxBytes {
		t.Fatalf("bucket status %+v, %v: want a TTL and a byte limit", st, err)
	}
}

// TestBindSignature: a signature serves one message; its retries repeat
// both.
func TestBindSignature(t *testing.T) {
	js := natstest.JetStream(t)
	s := New(js, 1)
	ctx := context.Background()
	sig := SignatureKey("wx1", "ABCDEF0123")
	if SignatureKey("wx1", "abcdef0123") != sig {
		t.Error("the signature's hex case makes another key")
	}
	push, another := Key("wx1", "o1", 1700000000), Key("wx1", "o1", 1700000001)
	for _, other := range []string{SignatureKey("wx2", "abcdef0123"), SignatureKey("wx1", "abcdef0124"), push} {
		if other == sig {
			t.Fatalf("signature key %s collides", sig)
		}
	}
	if BodyKey(push, []byte("<xml>a</xml>")) == BodyKey(push, []byte("<xml>b</xml>")) || BodyKey(push, nil) == push {
		t.Error("body keys do not tell bodies apart")
	}
	if err := s.BindSignature(ctx, sig, push); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.BindSignature(ctx, sig, push); err != nil {
		t.Fatalf("the retry of the same push: %v", err)
	}
	for _, use := range []string{another, BodyKey(push, []byte("<xml>other</xml>")), "verify"} {
		if err := s.BindSignature(ctx, sig, use); !errors.Is(err, ErrSignatureUsed) {
			t.Fatalf("the signature on %s: %v, want ErrSignatureUsed", use, err)
		}
	}
	if err := s.BindSignature(ctx, SignatureKey("wx1", "99"), another); err != nil {
		t.Fatalf("another push with its own signature: %v", err)
	}
}
