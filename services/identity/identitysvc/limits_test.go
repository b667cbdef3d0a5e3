package identitysvc

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/bindtoken"
	"github.com/wxlogin/wxlogin/services/identity/internal/faillimit"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

// TestBucketsHaveByteLimits: every KV bucket identity creates is capped in
// bytes and per value (anyone can make it write: failed logins, bind
// tokens), and the bind bucket has the limits session creates it with.
func TestBucketsHaveByteLimits(t *testing.T) {
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := createAssets(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bindtoken.BucketConfig(1).Bucket, wxauth.BucketConfig(1).Bucket, faillimit.BucketConfig(1).Bucket} {
		cfg := natstest.KVStreamConfig(t, js, name)
		if cfg.MaxBytes <= 0 || cfg.MaxMsgSize <= 0 || cfg.Discard != jetstream.DiscardNew {
			t.Errorf("%s: max bytes %d, max value %d, discard %v; want both capped, DiscardNew", name, cfg.MaxBytes, cfg.MaxMsgSize, cfg.Discard)
		}
		if name == session.BucketBind && (cfg.MaxBytes != session.BindMaxBytes || cfg.MaxMsgSize != session.BindMaxValueSize) {
			t.Errorf("bind bucket: %d / %d, want session's %d / %d", cfg.MaxBytes, cfg.MaxMsgSize, session.BindMaxBytes, session.BindMaxValueSize)
		}
	}
}
