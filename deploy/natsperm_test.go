package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// TestNATSPermissions runs the project's own nats.conf (in-process, with
// the test's ports and store) and checks, user by user, what must work and
// what the server must refuse. Every refusal is asserted by the server's
// permissions violation naming the subject, after the same operation has
// been shown to work for the user allowed to do it: a refusal cannot pass
// because the thing was absent or the server down.
func TestNATSPermissions(t *testing.T) {
	passwords := setNATSPasswords(t)
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := startNATS(t, opts)
	url := s.ClientURL()
	as := func(user string) *busUser { return connectAs(t, url, user, passwords[user]) }
	gateway, identity, session, events := as(natsauth.Gateway), as(natsauth.Identity), as(natsauth.Session), as(natsauth.Events)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// What the services create at start, each as itself: this is also the
	// proof that each may create what it owns.
	if _, err := identity.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "WXLOGIN_EVENTS", Subjects: []string{"wxlogin.events.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("identity creates WXLOGIN_EVENTS: %v", err)
	}
	if _, err := identity.js.Publish(ctx, "wxlogin.events.user.created", []byte(`{"type":"user.created"}`), jetstream.WithMsgID("ev-1")); err != nil {
		t.Fatalf("identity publishes user.created: %v", err)
	}
	buckets := map[string]jetstream.KeyValue{}
	for owner, names := range map[*busUser][]string{
		session:  {"wxlogin_keys", "wxlogin_sessions", "wxlogin_qr", "wxlogin_revoked", "wxlogin_oa"},
		identity: {"wxlogin_bind", "wxlogin_wechat", "wxlogin_faillimit", "wxlogin_oa_pushes"},
	} {
		for _, b := range names {
			kv, err := owner.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, History: 1})
			if err != nil {
				t.Fatalf("%s creates bucket %s: %v", owner.name, b, err)
			}
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatalf("%s writes bucket %s: %v", owner.name, b, err)
			}
			buckets[b] = kv
		}
	}
	// A stand-in for each service's endpoints, answered as its own user.
	for _, r := range []struct {
		u       *busUser
		subject string
	}{{session, "wxlogin.session.>"}, {identity, "wxlogin.identity.>"}} {
		sub, err := r.u.nc.QueueSubscribe(r.subject, "q", func(m *nats.Msg) { _ = m.Respond([]byte("token-for-" + m.Subject)) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		if err := r.u.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("no connection without a user", func(t *testing.T) {
		for name, opts := range map[string][]nats.Option{
			"anonymous":      nil,
			"wrong password": {nats.UserInfo(natsauth.Events, "not-the-password")},
			"unknown user":   {nats.UserInfo("admin", passwords[natsauth.Events])},
			"token":          {nats.Token(passwords[natsauth.Gateway])},
		} {
			nc, err := nats.Connect(url, opts...)
			if err == nil {
				nc.Close()
				t.Errorf("%s: connected", name)
			} else if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("%s: %v, want an authorization violation", name, err)
			}
		}
	})

	t.Run("gateway", func(t *testing.T) {
		for _, subj := range []string{"wxlogin.session.issue", "wxlogin.identity.miniprogram.login", "wxlogin.identity.admin.users.get"} {
			gateway.mustRequest(t, subj)
		}
		gateway.mustRead(t, ctx, "wxlogin_qr")
		gateway.mustWatch(t, ctx, "wxlogin_qr")
		gateway.mustRead(t, ctx, "wxlogin_revoked")
		gateway.mustWatch(t, ctx, "wxlogin_revoked")
		// Readiness: PING the services; a stand-in answers as session would.
		sub, err := session.nc.Subscribe("$SRV.PING.session", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		session.nc.Flush()
		gateway.mustRequest(t, "$SRV.PING.session")

		// wxlogin_oa holds in-WeChat login states and codes: session's alone.
		for b, owner := range map[string]*busUser{"wxlogin_keys": session, "wxlogin_sessions": session, "wxlogin_oa": session, "wxlogin_bind": identity, "wxlogin_wechat": identity, "wxlogin_oa_pushes": identity} {
			owner.mustRead(t, ctx, b)
			gateway.cannotRead(t, ctx, b)
		}
		session.mustWrite(t, ctx, "wxlogin_qr")
		gateway.cannotWrite(t, "wxlogin_qr")
		session.mustWrite(t, ctx, "wxlogin_oa")
		gateway.cannotWrite(t, "wxlogin_oa")
		gateway.cannotWrite(t, "wxlogin_revoked")
		identity.mustPublish(t, "wxlogin.events.user.created")
		gateway.cannotPublish(t, "wxlogin.events.user.created")
		gateway.cannotSubscribe(t, "wxlogin.session.>")
		gateway.cannotSubscribe(t, natsconn.InboxPrefix(natsauth.Events)+".>")
		gateway.cannotRequest(t, "$JS.API.STREAM.DELETE.KV_wxlogin_qr")
	})

	t.Run("identity", func(t *testing.T) {
		identity.mustPublish(t, "wxlogin.events.user.bound")
		identity.mustRead(t, ctx, "wxlogin_bind")
		gateway.mustRequest(t, "wxlogin.session.issue")
		identity.cannotRequest(t, "wxlogin.session.issue")
		identity.cannotRequest(t, "wxlogin.session.refresh")
		// The server URL's pushes reach identity from the gateway only.
		gateway.mustRequest(t, "wxlogin.identity.oa.push")
		session.cannotRequest(t, "wxlogin.identity.oa.push")
		events.cannotRequest(t, "wxlogin.identity.oa.push")
		session.mustRead(t, ctx, "wxlogin_keys")
		identity.cannotRead(t, ctx, "wxlogin_keys")
		identity.cannotRead(t, ctx, "wxlogin_sessions")
		identity.cannotRead(t, ctx, "wxlogin_oa")
		identity.cannotWrite(t, "wxlogin_oa")
		identity.cannotWrite(t, "wxlogin_revoked")
		identity.cannotSubscribe(t, "wxlogin.session.>")
		identity.cannotSubscribe(t, natsconn.InboxPrefix(natsauth.Gateway)+".>")
	})

	t.Run("session", func(t *testing.T) {
		session.mustRead(t, ctx, "wxlogin_keys")
		session.mustWrite(t, ctx, "wxlogin_sessions")
		identity.mustRead(t, ctx, "wxlogin_bind")
		session.cannotRead(t, ctx, "wxlogin_bind")
		session.cannotWrite(t, "wxlogin_faillimit")
		session.cannotWrite(t, "wxlogin_oa_pushes")
		gateway.cannotWrite(t, "wxlogin_oa_pushes")
		session.cannotPublish(t, "wxlogin.events.user.created")
		session.cannotRequest(t, "wxlogin.identity.user.get")
		session.cannotSubscribe(t, "wxlogin.identity.>")
		session.cannotSubscribe(t, natsconn.InboxPrefix(natsauth.Gateway)+".>")
	})

	t.Run("events", func(t *testing.T) {
		// It reads user.created through an ephemeral ordered consumer and a
		// durable pull consumer it acknowledges, and may delete its own.
		stream, err := events.js.Stream(ctx, "WXLOGIN_EVENTS")
		if err != nil {
			t.Fatalf("events: stream info: %v", err)
		}
		oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"wxlogin.events.user.created"}})
		if err != nil {
			t.Fatalf("events: ordered consumer: %v", err)
		}
		if m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || m.Subject() != "wxlogin.events.user.created" {
			t.Fatalf("events: read user.created: %v", err)
		}
		dc, err := events.js.CreateOrUpdateConsumer(ctx, "WXLOGIN_EVENTS", jetstream.ConsumerConfig{
			Durable: "perm-test", FilterSubject: "wxlogin.events.user.created", AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			t.Fatalf("events: durable consumer: %v", err)
		}
		m, err := dc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("events: fetch from the durable: %v", err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("events: ack: %v", err)
		}
		if err := events.js.DeleteConsumer(ctx, "WXLOGIN_EVENTS", "perm-test"); err != nil {
			t.Fatalf("events: delete its consumer: %v", err)
		}

		// services/webhooks, as events: a durable per endpoint, filtered on
		// several types (the create subject without a filter in it)...
		wc, err := events.js.CreateOrUpdateConsumer(ctx, "WXLOGIN_EVENTS", jetstream.ConsumerConfig{
			Durable: "webhooks_crm", FilterSubjects: []string{"wxlogin.events.user.created", "wxlogin.events.user.bound"},
			AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			t.Fatalf("events: the webhooks' durable consumer: %v", err)
		}
		wm, err := wc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("events: fetch from the webhooks' consumer: %v", err)
		}
		if err := wm.NakWithDelay(time.Millisecond); err != nil {
			t.Fatalf("events: nak with a delay: %v", err)
		}
		if wm, err = wc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || wm.DoubleAck(ctx) != nil {
			t.Fatalf("events: the retry, acknowledged: %v", err)
		}
		if _, err := wc.Info(ctx); err != nil {
			t.Fatalf("events: consumer info: %v", err)
		}
		// ...and the dead-letter stream, a work queue it creates, parks
		// events on, reads, and empties by acknowledging.
		dead, err := events.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "WXLOGIN_WEBHOOKS_DEAD", Subjects: []string{"wxlogin.webhooks.dead.>"}, Retention: jetstream.WorkQueuePolicy,
		})
		if err != nil {
			t.Fatalf("events: create the dead-letter stream: %v", err)
		}
		if _, err := events.js.Publish(ctx, "wxlogin.webhooks.dead.crm", []byte(`{"id":"ev-1"}`)); err != nil {
			t.Fatalf("events: park a dead letter: %v", err)
		}
		if _, err := dead.GetMsg(ctx, 1); err != nil {
			t.Fatalf("events: read a dead letter: %v", err)
		}
		rc, err := dead.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: "wxlogin.webhooks.dead.crm", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("events: replay consumer: %v", err)
		}
		if dm, err := rc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || dm.DoubleAck(ctx) != nil {
			t.Fatalf("events: replay a dead letter: %v", err)
		}
		if err := dead.DeleteConsumer(ctx, rc.CachedInfo().Name); err != nil {
			t.Fatalf("events: delete the replay consumer: %v", err)
		}
		if n := streamMsgs(t, ctx, events, "WXLOGIN_WEBHOOKS_DEAD"); n != 0 {
			t.Errorf("the acknowledged dead letter is still there (%d messages)", n)
		}
		// No one else parks dead letters; events parks nowhere else, and
		// deletes neither the stream nor a message of it.
		events.mustPublish(t, "wxlogin.webhooks.dead.crm")
		for _, u := range []*busUser{gateway, identity, session} {
			u.cannotPublish(t, "wxlogin.webhooks.dead.crm")
		}
		events.cannotPublish(t, "wxlogin.webhooks.other")
		events.cannotRequest(t, "$JS.API.STREAM.CREATE.WXLOGIN_WEBHOOKS_OTHER")
		events.cannotRequest(t, "$JS.API.STREAM.DELETE.WXLOGIN_WEBHOOKS_DEAD")
		events.cannotRequest(t, "$JS.API.STREAM.PURGE.WXLOGIN_WEBHOOKS_DEAD")
		events.cannotRequest(t, "$JS.API.STREAM.MSG.DELETE.WXLOGIN_WEBHOOKS_DEAD")
		identity.mustPublish(t, "wxlogin.events.user.bound")
		events.cannotPublish(t, "wxlogin.events.user.bound")

		// No requests to the services: not a token, not a user, not admin.
		for _, subj := range []string{"wxlogin.session.issue", "wxlogin.session.refresh", "wxlogin.identity.user.get", "wxlogin.identity.admin.users.disabled", "wxlogin.identity.miniprogram.login"} {
			gateway.mustRequest(t, subj)
			events.cannotRequest(t, subj)
		}
		// No forged event: the stream does not grow.
		before := streamMsgs(t, ctx, identity, "WXLOGIN_EVENTS")
		events.cannotPublish(t, "wxlogin.events.user.created")
		pctx, pcancel := context.WithTimeout(ctx, refusedTimeout)
		_, err = events.js.Publish(pctx, "wxlogin.events.user.created", []byte(`{}`))
		pcancel()
		if err == nil {
			t.Error("events: a JetStream publish of user.created was acknowledged")
		}
		if after := streamMsgs(t, ctx, identity, "WXLOGIN_EVENTS"); after != before {
			t.Errorf("WXLOGIN_EVENTS grew from %d to %d messages after the forged publishes", before, after)
		}
		// No KV at all, private buckets above all.
		for _, b := range []string{"wxlogin_keys", "wxlogin_sessions", "wxlogin_qr", "wxlogin_revoked", "wxlogin_bind", "wxlogin_oa"} {
			events.cannotRead(t, ctx, b)
		}
		events.cannotWrite(t, "wxlogin_revoked")
		// The stream stays as identity made it.
		events.cannotRequest(t, "$JS.API.STREAM.PURGE.WXLOGIN_EVENTS")
		events.cannotRequest(t, "$JS.API.STREAM.DELETE.WXLOGIN_EVENTS")
		events.cannotRequest(t, "$JS.API.STREAM.UPDATE.WXLOGIN_EVENTS")
		events.cannotRequest(t, "$JS.API.STREAM.CREATE.EVIL")
		events.cannotRequest(t, "$SRV.PING")

		// Replies travel in the requester's inbox; no one else may listen
		// there, so a token on its way to the gateway stays unread.
		for _, other := range []string{"_INBOX.>", natsconn.InboxPrefix(natsauth.Gateway) + ".>", natsconn.InboxPrefix(natsauth.Identity) + ".>", ">"} {
			events.cannotSubscribe(t, other)
		}
		events.cannotSubscribe(t, "wxlogin.>")
		sub := events.eavesdrop(t, natsconn.InboxPrefix(natsauth.Gateway)+".>")
		gateway.mustRequest(t, "wxlogin.session.issue")
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("events read the gateway's reply %q", m.Data)
		}
	})
}

// busUser is one connection as a wxlogin NATS user, with the server's
// asynchronous errors (permission violations) collected.
type busUser struct {
	name string
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connectAs(t *testing.T, url, user, password string) *busUser {
	t.Helper()
	u := &busUser{name: user, errs: make(chan error, 64)}
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(natsconn.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case u.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	u.nc = nc
	if u.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return u
}

// refusedTimeout bounds an operation the server refuses: a refused request
// is never answered, so it ends by its timeout.
const refusedTimeout = 500 * time.Millisecond

// expectViolation waits for the server's permissions violation of kind
// ("Publish", "Subscription") on subject, after op ran.
func (u *busUser) expectViolation(t *testing.T, kind, subject string, op func() error) error {
	t.Helper()
	for len(u.errs) > 0 {
		<-u.errs
	}
	opErr := op()
	want := fmt.Sprintf("Permissions Violation for %s to %q", kind, subject)
	deadline := time.After(2 * time.Second)
	for {
		select {
		case err := <-u.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
				return opErr
			}
		case <-deadline:
			t.Errorf("%s: no %q from the server (operation returned %v)", u.name, want, opErr)
			return opErr
		}
	}
}

func (u *busUser) mustRequest(t *testing.T, subject string) {
	t.Helper()
	if _, err := u.nc.Request(subject, nil, 2*time.Second); err != nil {
		t.Errorf("%s: request %s: %v", u.name, subject, err)
	}
}

func (u *busUser) cannotRequest(t *testing.T, subject string) {
	t.Helper()
	if err := u.expectViolation(t, "Publish", subject, func() error {
		_, err := u.nc.Request(subject, nil, refusedTimeout)
		return err
	}); err == nil {
		t.Errorf("%s: request %s was answered", u.name, subject)
	}
}

func (u *busUser) mustPublish(t *testing.T, subject string) {
	t.Helper()
	if _, err := u.js.Publish(context.Background(), subject, []byte(`{}`)); err != nil {
		t.Errorf("%s: JetStream publish to %s: %v", u.name, subject, err)
	}
}

func (u *busUser) cannotPublish(t *testing.T, subject string) {
	t.Helper()
	u.expectViolation(t, "Publish", subject, func() error {
		if err := u.nc.Publish(subject, []byte(`{"type":"user.created"}`)); err != nil {
			return err
		}
		return u.nc.Flush()
	})
}

func (u *busUser) cannotSubscribe(t *testing.T, subject string) {
	t.Helper()
	u.expectViolation(t, "Subscription", subject, func() error {
		sub, err := u.nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		return u.nc.Flush()
	})
}

// eavesdrop subscribes where the server refuses it (the refusal is
// asserted) and returns the subscription, to show nothing arrives.
func (u *busUser) eavesdrop(t *testing.T, subject string) *nats.Subscription {
	t.Helper()
	var sub *nats.Subscription
	u.expectViolation(t, "Subscription", subject, func() error {
		var err error
		if sub, err = u.nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		return u.nc.Flush()
	})
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return sub
}

// mustRead opens bucket b and reads its key k.
func (u *busUser) mustRead(t *testing.T, ctx context.Context, b string) {
	t.Helper()
	kv, err := u.js.KeyValue(ctx, b)
	if err != nil {
		t.Errorf("%s: open bucket %s: %v", u.name, b, err)
		return
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Errorf("%s: read %s/k: %v", u.name, b, err)
	}
}

// mustWatch watches bucket b and gets its key k.
func (u *busUser) mustWatch(t *testing.T, ctx context.Context, b string) {
	t.Helper()
	kv, err := u.js.KeyValue(ctx, b)
	if err != nil {
		t.Errorf("%s: open bucket %s: %v", u.name, b, err)
		return
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Errorf("%s: watch %s: %v", u.name, b, err)
		return
	}
	defer w.Stop()
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "k" {
			t.Errorf("%s: watch %s: first update %v, want k", u.name, b, e)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: watch %s: no update", u.name, b)
	}
}

// cannotRead tries every way to read bucket b: its stream info (opening
// it), a direct get, a stream message get, and a consumer (a watch).
func (u *busUser) cannotRead(t *testing.T, ctx context.Context, b string) {
	t.Helper()
	stream := "KV_" + b
	if err := u.expectViolation(t, "Publish", "$JS.API.STREAM.INFO."+stream, func() error {
		c, cancel := context.WithTimeout(ctx, refusedTimeout)
		defer cancel()
		_, err := u.js.KeyValue(c, b)
		return err
	}); err == nil {
		t.Errorf("%s: opened bucket %s", u.name, b)
	}
	for _, subj := range []string{
		"$JS.API.DIRECT.GET." + stream + ".$KV." + b + ".k",
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.CONSUMER.CREATE." + stream,
	} {
		u.cannotRequest(t, subj)
	}
}

func (u *busUser) mustWrite(t *testing.T, ctx context.Context, b string) {
	t.Helper()
	kv, err := u.js.KeyValue(ctx, b)
	if err != nil {
		t.Errorf("%s: open bucket %s: %v", u.name, b, err)
		return
	}
	if _, err := kv.Put(ctx, "w", []byte("v")); err != nil {
		t.Errorf("%s: write %s: %v", u.name, b, err)
	}
}

// cannotWrite puts a key into bucket b the way KV does, on $KV.<b>.<key>.
func (u *busUser) cannotWrite(t *testing.T, b string) {
	t.Helper()
	subj := "$KV." + b + ".forged"
	if err := u.expectViolation(t, "Publish", subj, func() error {
		_, err := u.nc.Request(subj, []byte("x"), refusedTimeout)
		return err
	}); err == nil {
		t.Errorf("%s: a write to %s was acknowledged", u.name, b)
	}
}

func streamMsgs(t *testing.T, ctx context.Context, u *busUser, name string) uint64 {
	t.Helper()
	s, err := u.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
