package natstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

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
