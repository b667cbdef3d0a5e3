package bindtoken

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

func TestIssueLookupSpend(t *testing.T) {
	js := natstest.JetStream(t)
	s := New(js, 1)
	ctx := context.Background()
	nick := "小红"
	want := Identity{Kind: "miniprogram", AppID: "wx1", OpenID: "o1", UnionID: "u1", SessionKey: "c2VjcmV0a2V5MTIzNDU2Nw==",
		Profile: &identity.Profile{Nickname: &nick}}
	token, err := s.Issue(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of base64url", token)
	}

	// The bucket holds the hash of the token, never the token.
	kv, err := js.KeyValue(ctx, "wxlogin_bind")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	var all []string
	for k := range keys.Keys() {
		all = append(all, k)
	}
	if len(all) != 1 || all[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("keys = %v, want the hex sha256 of the token", all)
	}
	if st, err := kv.Status(ctx); err != nil || st.TTL() != TTL || st.History() != 1 {
		t.Errorf("bucket status %v, %v; want TTL %v, history 1", st, err, TTL)
	}

	got, rev, err := s.Lookup(ctx, token)
	if err != nil || got.OpenID != want.OpenID || got.SessionKey != want.SessionKey || *got.Profile.Nickname != nick {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "nope", strings.Repeat("a", 200), token + "x"} {
		if _, _, err := s.Lookup(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%.10q) = %v, want ErrNotFound", bad, err)
		}
	}

	// Two concurrent spenders: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Spend(ctx, token, rev) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrNotFound):
			t.Errorf("Spend: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d spends succeeded, want 1", wins)
	}
	if _, _, err := s.Lookup(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after Spend = %v, want ErrNotFound", err)
	}
}

// Identity and session create the bucket with the same configuration
// (session's kvstate, given the same WXLOGIN_NATS_REPLICAS): whoever comes
// second changes nothing.
func TestBucketConfigMatchesSession(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprint(replicas), func(t *testing.T) {
			want := jetstream.KeyValueConfig{Bucket: "wxlogin_bind", Description: "wxlogin bind tokens", TTL: TTL, History: 1, Replicas: replicas,
				MaxBytes: session.BindMaxBytes, MaxValueSize: session.BindMaxValueSize}
			if got := BucketConfig(replicas); !reflect.DeepEqual(got, want) {
				t.Errorf("config = %+v, want %+v", got, want)
			}
		})
	}
}
