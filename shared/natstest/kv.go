package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/poll"
)

// CreateKeyValue creates a bucket for a test. Right after the bucket was
// deleted, JetStream may refuse for a moment ("error creating store for
// stream": the old store is still being moved away), so it tries until the
// create works, as the services' own bucket setup does.
func CreateKeyValue(t testing.TB, js jetstream.JetStream, cfg jetstream.KeyValueConfig) jetstream.KeyValue {
	t.Helper()
	var kv jetstream.KeyValue
	poll.UntilNil(t, 10*time.Second, "bucket "+cfg.Bucket+" created", func() (err error) {
		kv, err = js.CreateKeyValue(context.Background(), cfg)
		return err
	})
	return kv
}

// KVStreamConfig is the configuration of the stream behind KV bucket name,
// as the server holds it (limits included, which KV's status does not show).
func KVStreamConfig(t testing.TB, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		t.Fatalf("bucket %s: status is a %T", name, st)
	}
	return bs.StreamInfo().Config
}

// JetStream starts an embedded server (Start) and returns JetStream over a
// connection to it; both end with the test.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(Connect(t, Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	return js
}
