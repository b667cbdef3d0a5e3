package tokens

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// bucket is the keys bucket on an embedded NATS server.
type bucket struct {
	jetstream.KeyValue
	js jetstream.JetStream
	ns *server.Server
}

func keysBucket(t *testing.T) *bucket {
	t.Helper()
	ns := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	b := &bucket{js: js, ns: ns}
	b.create(t)
	return b
}

func (b *bucket) create(t *testing.T) {
	t.Helper()
	b.KeyValue = natstest.CreateKeyValue(t, b.js, jetstream.KeyValueConfig{Bucket: "wxlogin_keys", History: 1})
}

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func openRing(t *testing.T, kv *bucket, retention time.Duration) *Keyring {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := OpenKVKeyring(ctx, kv.js, kv, retention, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func TestKVKeyringReplicasAgree(t *testing.T) {
	kv := keysBucket(t)
	const replicas = 6
	rings := make([]*Keyring, replicas)
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k, err := OpenKVKeyring(ctx, kv.js, kv, time.Hour, testLog(t))
			if err != nil {
				t.Error(err)
				return
			}
			rings[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	now := time.Now()
	want := rings[0].SigningKeyID(now)
	for i, k := range rings {
		t.Cleanup(k.Close)
		if got := k.SigningKeyID(now); got != want {
			t.Errorf("replica %d signs with %s, replica 0 with %s", i, got, want)
		}
	}
	// Losers delete their keys; a replica may briefly publish one until the
	// deletion reaches its watch.
	poll.Until(t, 10*time.Second, "every replica publishes only the winning key", func() bool {
		for _, k := range rings {
			b, _ := k.JWKS(now)
			if !slices.Equal(jwksKids(t, b), []string{want}) {
				return false
			}
		}
		return true
	})
	// A restarted replica finds the same key.
	if got := openRing(t, kv, time.Hour).SigningKeyID(now); got != want {
		t.Errorf("restarted replica signs with %s, want %s", got, want)
	}
}

func TestRotateKV(t *testing.T) {
	kv := keysBucket(t)
	const retention = time.Hour
	ring := openRing(t, kv, retention)
	ctx := context.Background()
	t0 := time.Now()
	k1 := ring.SigningKeyID(t0)

	// An immediate rotation: replicas switch without a restart.
	k2, err := RotateKV(ctx, kv, retention, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if k2 == k1 {
		t.Fatal("rotation kept the kid")
	}
	poll.Until(t, 10*time.Second, "replica signs with the rotated key", func() bool { return ring.SigningKeyID(time.Now()) == k2 })

	// A delayed rotation: the new key is published at once, signs later.
	t1 := time.Now()
	const delay = 10 * time.Minute
	k3, err := RotateKV(ctx, kv, retention, delay, t1)
	if err != nil {
		t.Fatal(err)
	}
	// The rotation writes the new key, then "current", then the old keys'
	// retirement; wait until the replica has seen all of it.
	poll.Until(t, 10*time.Second, "new key published and old ones retired", func() bool {
		b, _ := ring.JWKS(t1)
		late, _ := ring.JWKS(t1.Add(delay + retention))
		return slices.Contains(jwksKids(t, b), k3) && slices.Equal(jwksKids(t, late), []string{k3})
	})
	steps := []struct {
		name      string
		at        time.Time
		signer    string
		published []string
	}{
		{"before activation the previous key signs", t1, k2, []string{k1, k2, k3}},
		{"after activation the new key signs", t1.Add(delay), k3, []string{k1, k2, k3}},
		{"first key gone after its retention", t0.Add(retention), k3, []string{k2, k3}},
		{"second key gone after its retention", t1.Add(delay + retention), k3, []string{k3}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := ring.SigningKeyID(s.at); got != s.signer {
				t.Errorf("signer %s, want %s", got, s.signer)
			}
			b, _ := ring.JWKS(s.at)
			got := jwksKids(t, b)
			slices.Sort(got)
			want := slices.Clone(s.published)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("published %v, want %v", got, want)
			}
		})
	}

	// Rotating after the retention deletes keys that can have no live token.
	later := t1.Add(delay + retention + time.Second)
	k4, err := RotateKV(ctx, kv, retention, 0, later)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{k1, k2} {
		if _, err := kv.Get(ctx, keyPrefix+gone); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("key %s still stored (err %v)", gone, err)
		}
	}
	for _, kept := range []string{k3, k4} {
		if _, err := kv.Get(ctx, keyPrefix+kept); err != nil {
			t.Errorf("key %s: %v", kept, err)
		}
	}
	poll.Until(t, 10*time.Second, "replica follows the deletions", func() bool {
		b, _ := ring.JWKS(later)
		got := jwksKids(t, b)
		slices.Sort(got)
		want := []string{k3, k4}
		slices.Sort(want)
		return slices.Equal(got, want)
	})
}

func TestRotateKVOnEmptyBucket(t *testing.T) {
	kv := keysBucket(t)
	kid, err := RotateKV(context.Background(), kv, time.Hour, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := openRing(t, kv, time.Hour).SigningKeyID(time.Now()); got != kid {
		t.Fatalf("signs with %s, want %s", got, kid)
	}
}

// TestKVKeyringOutlivesBucketAndServer: a replica follows rotations written
// to a deleted and re-created keys bucket, and after a NATS restart.
func TestKVKeyringOutlivesBucketAndServer(t *testing.T) {
	watchCheckEvery = 50 * time.Millisecond
	t.Cleanup(func() { watchCheckEvery = 0 })
	kv := keysBucket(t)
	ring := openRing(t, kv, time.Hour)
	ctx := context.Background()
	k1 := ring.SigningKeyID(time.Now())

	if err := kv.js.DeleteKeyValue(ctx, kv.Bucket()); err != nil {
		t.Fatal(err)
	}
	kv.create(t)
	k2, err := RotateKV(ctx, kv, time.Hour, 0, time.Now()) // the first key of the new bucket
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the key of the re-created bucket, and only it, published", func() bool {
		b, _ := ring.JWKS(time.Now())
		return ring.SigningKeyID(time.Now()) == k2 && slices.Equal(jwksKids(t, b), []string{k2})
	})
	if k2 == k1 {
		t.Fatal("the re-created bucket has the old key")
	}

	natstest.Stop(t, kv.ns)()
	// A request made while the connection is still reconnecting may go
	// unanswered: the rotation is retried, as its caller would (the last
	// key it reports is the one that must be published).
	var k3 string
	poll.UntilNil(t, 15*time.Second, "a rotation after the NATS restart", func() (err error) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		k3, err = RotateKV(rctx, kv, time.Hour, 0, time.Now())
		return err
	})
	poll.Until(t, 10*time.Second, "the key rotated after the NATS restart", func() bool { return ring.SigningKeyID(time.Now()) == k3 })
}
