package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/internal/outbox"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

func newDB(t *testing.T) (*sqlx.DB, *store.Store) {
	t.Helper()
	dsn := pgtest.NewDatabase(t, func(dsn string) error {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		return store.Migrate(context.Background(), db.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := store.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return db, st
}

// startNATS runs a JetStream server on port (-1: any) storing in dir, so a
// test can stop it and start it again where it was.
func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func runRelay(t *testing.T, db *sqlx.DB, nc *nats.Conn, logs io.Writer, opts outbox.Options) *outbox.Relay {
	t.Helper()
	r, err := outbox.New(db, nc, slog.New(slog.NewTextHandler(logs, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("relay did not stop")
		}
	})
	return r
}

func countRows(t *testing.T, db *sqlx.DB, query string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query); err != nil {
		t.Fatal(err)
	}
	return n
}

func login(t *testing.T, st *store.Store, openid string) store.LoginResult {
	t.Helper()
	res, err := st.LoginWechat(context.Background(), store.WechatLogin{
		Kind: api.KindMiniProgram, AppID: "wx1111111111111111", OpenID: openid, SessionKey: "secret-session-key-" + openid,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type streamed struct {
	msgID, subject string
	event          identity.Event
	data           string
}

// readStream returns every message of the event stream.
func readStream(t *testing.T, js jetstream.JetStream) []streamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, identity.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamed
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		var e identity.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, streamed{msgID: m.Header.Get(jetstream.MsgIDHeader), subject: m.Subject, event: e, data: string(m.Data)})
	}
	return out
}

func TestRelayPublishesWithMsgID(t *testing.T) {
	db, st := newDB(t)
	ns := startNATS(t, -1, t.TempDir())
	nc := connect(t, ns.ClientURL())
	r := runRelay(t, db, nc, io.Discard, outbox.Options{Interval: 20 * time.Millisecond})

	first := login(t, st, "o-one")
	login(t, st, "o-one")
	login(t, st, "o-two")
	r.Notify()
	poll.Until(t, 15*time.Second, "all rows published", func() bool {
		return countRows(t, db, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, js)
	var got []string
	for _, m := range msgs {
		got = append(got, m.subject)
		if m.msgID == "" || m.msgID != m.event.ID {
			t.Errorf("Nats-Msg-Id %q, event id %q", m.msgID, m.event.ID)
		}
		if m.subject != "wxlogin.events."+m.event.Type {
			t.Errorf("subject %s carries a %s event", m.subject, m.event.Type)
		}
		if strings.Contains(m.data, "secret-session-key") || strings.Contains(m.data, "session_key") {
			t.Errorf("event carries the session_key: %s", m.data)
		}
	}
	// o-one's second login is a returning one: its logged_in is not an
	// outbox row (the login's caller publishes it directly).
	want := []string{identity.SubjectUserCreated, identity.SubjectUserLoggedIn,
		identity.SubjectUserCreated, identity.SubjectUserLoggedIn}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stream subjects =\n%v\nwant\n%v", got, want)
	}
	if len(msgs) > 0 && msgs[0].event.User.ID != first.User.ID {
		t.Errorf("first event's user = %s, want %s", msgs[0].event.User.ID, first.User.ID)
	}
	if n := countRows(t, db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d rows left in the outbox after publishing, want none (published rows are deleted)", n)
	}

	cfg, err := js.Stream(context.Background(), identity.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.CachedInfo().Config; c.Duplicates != 2*time.Minute || c.Storage != jetstream.FileStorage {
		t.Errorf("stream config: duplicates %v, storage %v", c.Duplicates, c.Storage)
	}
}

func TestRelaySurvivesNATSOutage(t *testing.T) {
	db, st := newDB(t)
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	nc := connect(t, ns.ClientURL())
	logs := &logtest.Buffer{}
	r := runRelay(t, db, nc, logs, outbox.Options{Interval: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, PublishTimeout: 300 * time.Millisecond})

	login(t, st, "o-before")
	r.Notify()
	poll.Until(t, 15*time.Second, "the first events published", func() bool {
		return countRows(t, db, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})

	ns.Shutdown()
	ns.WaitForShutdown()
	login(t, st, "o-during")
	login(t, st, "o-during-2")
	r.Notify()
	poll.Until(t, 15*time.Second, "a failed publish", func() bool { return strings.Contains(logs.String(), "outbox relay failed") })
	var ids []string
	if err := db.Select(&ids, `SELECT id FROM outbox WHERE published_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 4 {
		t.Fatalf("%d rows unpublished while NATS is away, want 4", len(ids))
	}

	startNATS(t, port, dir)
	poll.Until(t, 15*time.Second, "the events of the outage published", func() bool {
		return countRows(t, db, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, js)
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.msgID] {
			t.Errorf("event %s stored twice", m.msgID)
		}
		seen[m.msgID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("event %s never reached the stream", id)
		}
	}
	if len(msgs) != 6 {
		t.Errorf("stream holds %d messages, want 6 (3 users: created, logged_in)", len(msgs))
	}
}

func TestRelaySharesWorkWithoutLoss(t *testing.T) {
	db, st := newDB(t)
	ns := startNATS(t, -1, t.TempDir())
	var relays []*outbox.Relay
	for range 3 {
		relays = append(relays, runRelay(t, db, connect(t, ns.ClientURL()), io.Discard, outbox.Options{Interval: 20 * time.Millisecond, BatchSize: 7}))
	}
	for i := range 60 {
		login(t, st, fmt.Sprint("o-", i%20))
		relays[i%3].Notify()
	}
	poll.Until(t, 15*time.Second, "all rows published", func() bool {
		return countRows(t, db, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
	js, err := jetstream.New(connect(t, ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	// The 40 returning logins publish their logged_in without the outbox.
	if got, left := len(readStream(t, js)), countRows(t, db, `SELECT count(*) FROM outbox`); got != 40 || left != 0 {
		t.Errorf("stream holds %d events, outbox %d rows; want 40 (20 created + 20 logged_in) and 0", got, left)
	}
}
