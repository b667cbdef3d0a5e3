package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/outbox"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// Direct publishes with the event id as Nats-Msg-Id (a republished copy is
// dropped) and counts an event JetStream never acknowledged as lost.
func TestDirectPublishesAtMostOnce(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	nc := connect(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), outbox.StreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	d, err := outbox.NewDirect(nc, slog.New(slog.NewTextHandler(io.Discard, nil)), 200*time.Millisecond, func() { lost.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"ev-1","type":"user.logged_in","user":{"id":"u-1"}}`)
	d.Publish("ev-1", identity.SubjectUserLoggedIn, body)
	d.Publish("ev-1", identity.SubjectUserLoggedIn, body)
	d.Publish("ev-2", identity.SubjectUserLoggedIn, []byte(`{"id":"ev-2","type":"user.logged_in","user":{"id":"u-1"}}`))
	poll.Until(t, 15*time.Second, "two events on the stream", func() bool { return len(readStream(t, js)) == 2 })
	for _, m := range readStream(t, js) {
		if m.msgID != m.event.ID {
			t.Errorf("Nats-Msg-Id %q on event %q", m.msgID, m.event.ID)
		}
	}
	if n := lost.Load(); n != 0 {
		t.Errorf("%d events counted lost, want 0", n)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	d.Publish("ev-3", identity.SubjectUserLoggedIn, body)
	poll.Until(t, 15*time.Second, "the event published while NATS is away counted lost", func() bool { return lost.Load() == 1 })
}
