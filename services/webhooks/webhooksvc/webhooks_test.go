package webhooksvc_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
	"github.com/wxlogin/wxlogin/services/webhooks/webhooktest"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/poll"
)

type delivery = webhooktest.Delivery

const wait = 15 * time.Second

// Each endpoint gets each event of its types once, signed under its own
// secret, with the event id as webhook-id and the event as the body; an
// endpoint of one type gets no other.
func TestDeliversSignedEventsOfTheEndpointsTypes(t *testing.T) {
	b := newBus(t)
	allSecret, createdSecret := webhooktest.NewSecret(), webhooktest.NewSecret()
	all, created := webhooktest.NewReceiver(t, allSecret), webhooktest.NewReceiver(t, createdSecret)
	// The query holds a token: it must reach the receiver, never a log line.
	svc := start(t, b.config(writeFile(t,
		endpoint{Name: "all", URL: all.URL + "?token=query-token-123", Secret: allSecret},
		// One at a time: in stream order, so once the last event is in,
		// any wrongly delivered one would have come before it.
		endpoint{Name: "created", URL: created.URL, Secret: createdSecret, Events: []string{"user.created"}, Concurrency: 1},
	)))

	evs := []published{
		b.publish(identity.EventUserCreated, "u1"),
		b.publish(identity.EventUserLoggedIn, "u1"),
		b.publish(identity.EventUserCreated, "u2"),
		b.publish(identity.EventUserUpdated, "u1"),
		b.publish(identity.EventUserCreated, "u3"),
	}
	poll.Until(t, wait, "every event at the endpoint for all", func() bool { return len(all.Accepted()) == len(evs) })
	poll.Until(t, wait, "the three user.created at the user.created endpoint", func() bool { return len(created.Accepted()) == 3 })

	byID := map[string]published{}
	for _, e := range evs {
		byID[e.ID] = e
	}
	check := func(name string, r *webhooktest.Receiver, want []string) {
		t.Helper()
		for _, d := range r.Deliveries() {
			if !d.Valid {
				t.Errorf("%s: a delivery's signature does not verify: %v", name, d.Header)
			}
			e, ok := byID[d.ID]
			if !ok {
				t.Errorf("%s: webhook-id %q is no event's id", name, d.ID)
				continue
			}
			if !bytes.Equal(d.Body, e.Body) {
				t.Errorf("%s: body %s, want the event as published %s", name, d.Body, e.Body)
			}
			if ct := d.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", name, ct)
			}
		}
		got := ids(r.Deliveries())
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("%s got webhook-ids %v, want each of %v once", name, got, want)
		}
	}
	var allIDs, createdIDs []string
	for _, e := range evs {
		allIDs = append(allIDs, e.ID)
		if e.Type == identity.EventUserCreated {
			createdIDs = append(createdIDs, e.ID)
		}
	}
	slices.Sort(allIDs)
	slices.Sort(createdIDs)
	check("all", all, allIDs)
	check("created", created, createdIDs)
	if q := all.Deliveries()[0].Header; q.Get("webhook-signature") == created.Deliveries()[0].Header.Get("webhook-signature") {
		t.Error("two endpoints' signatures are equal")
	}

	poll.Until(t, wait, "the delivery metrics", func() bool {
		return svc.metric(t, series(webhooksvc.NameDeliveries, "all")) == 5 && svc.metric(t, series(webhooksvc.NameDeliveries, "created")) == 3
	})
	if n := svc.metric(t, series(webhooksvc.NameFailures, "all", `reason="status"`)); n != 0 {
		t.Errorf("failures = %v, want 0", n)
	}
	if n := svc.metric(t, webhooksvc.NameRequestDuration+`_count{endpoint="all"}`); n != 5 {
		t.Errorf("request duration count = %v, want 5", n)
	}
	for _, secret := range []string{"query-token-123", allSecret, createdSecret, strings.TrimPrefix(allSecret, "whsec_")} {
		if strings.Contains(svc.logs.String(), secret) {
			t.Errorf("the logs hold %q: %s", secret, svc.logs)
		}
	}
}

// A receiver that answers 500, or is not there at all, gets the events once
// it is back; meanwhile the other endpoints are not held up, and the
// backlog gauge shows how old the oldest waiting event is.
func TestRetriesUntilTheReceiverIsBack(t *testing.T) {
	b := newBus(t)
	failingSecret, downSecret, fineSecret := webhooktest.NewSecret(), webhooktest.NewSecret(), webhooktest.NewSecret()
	failing := webhooktest.NewReceiver(t, failingSecret)
	failing.Answer(http.StatusInternalServerError)
	fine := webhooktest.NewReceiver(t, fineSecret)
	// Nothing listens at down's address until the receiver comes up there.
	downAddr := freeaddr.Addr(t)
	svc := start(t, b.config(writeFile(t,
		endpoint{Name: "failing", URL: failing.URL, Secret: failingSecret},
		endpoint{Name: "down", URL: "http://" + downAddr + "/hook", Secret: downSecret},
		endpoint{Name: "fine", URL: fine.URL, Secret: fineSecret},
	)))

	var evs []string
	for _, u := range []string{"u1", "u2", "u3"} {
		evs = append(evs, b.publish(identity.EventUserCreated, u).ID)
	}
	poll.Until(t, wait, "the healthy endpoint served", func() bool { return len(fine.Accepted()) == 3 })
	poll.Until(t, wait, "each event refused twice by the failing receiver", func() bool {
		n := map[string]int{}
		for _, d := range failing.Deliveries() {
			n[d.ID]++
		}
		return n[evs[0]] >= 2 && n[evs[1]] >= 2 && n[evs[2]] >= 2
	})
	poll.Until(t, wait, "connection failures to the absent receiver", func() bool {
		return svc.metric(t, series(webhooksvc.NameFailures, "down", `reason="network"`)) >= 3
	})
	poll.Until(t, wait, "the oldest-undelivered gauge above 0", func() bool {
		return svc.metric(t, series(webhooksvc.NameOldestUndelivered, "failing")) > 0 &&
			svc.metric(t, series(webhooksvc.NameOldestUndelivered, "down")) > 0
	})
	if n := svc.metric(t, series(webhooksvc.NameFailures, "failing", `reason="status"`)); n < 6 {
		t.Errorf("status failures = %v, want at least 6", n)
	}

	failing.Answer(http.StatusNoContent)
	ln, err := net.Listen("tcp", downAddr)
	if err != nil {
		t.Fatalf("listen on the absent receiver's address again: %v", err)
	}
	down := webhooktest.Serve(t, downSecret, ln)
	want := slices.Sorted(slices.Values(evs))
	for name, r := range map[string]*webhooktest.Receiver{"failing": failing, "down": down} {
		poll.Until(t, wait, name+" receiver served after it came back", func() bool { return len(r.Accepted()) == 3 })
		if got := slices.Sorted(slices.Values(ids(r.Accepted()))); !slices.Equal(got, want) {
			t.Errorf("%s took %v, want each of %v once", name, got, want)
		}
		for _, d := range r.Deliveries() {
			if !d.Valid {
				t.Errorf("%s: an invalid signature", name)
			}
		}
	}
	poll.Until(t, wait, "the gauges back at 0", func() bool {
		return svc.metric(t, series(webhooksvc.NameOldestUndelivered, "failing")) == 0 &&
			svc.metric(t, series(webhooksvc.NameOldestUndelivered, "down")) == 0
	})
	if n := svc.metric(t, series(webhooksvc.NameParked, "failing")); n != 0 {
		t.Errorf("parked = %v, want 0", n)
	}
}

// Two copies share each endpoint's consumer: every event is delivered
// once, by one of them.
func TestCopiesShareTheWork(t *testing.T) {
	b := newBus(t)
	secret := webhooktest.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	cfg := b.config(writeFile(t, endpoint{Name: "crm", URL: r.URL, Secret: secret, Concurrency: 2}))
	// Started together: both may find no consumer and create it.
	one, two := startNotReady(t, cfg), startNotReady(t, cfg)
	one.waitReady(t)
	two.waitReady(t)

	const n = 40
	var want []string
	for i := range n {
		want = append(want, b.publish(identity.EventUserCreated, "u"+string(rune('a'+i%26))).ID)
	}
	slices.Sort(want)
	poll.Until(t, wait, "every event delivered", func() bool { return len(r.Accepted()) >= n })
	if got := slices.Sorted(slices.Values(ids(r.Deliveries()))); !slices.Equal(got, want) {
		t.Errorf("delivered %d times (%d distinct events), want each of %d once", len(got), len(slices.Compact(got)), n)
	}
	// Each copy counts what it delivered: together, every event once.
	var total float64
	poll.Until(t, wait, "the copies' counts", func() bool {
		total = one.metric(t, series(webhooksvc.NameDeliveries, "crm")) + two.metric(t, series(webhooksvc.NameDeliveries, "crm"))
		return total == n
	})
}

// An event the endpoint has not taken within WXLOGIN_WEBHOOKS_MAX_AGE is
// parked in the dead-letter stream, and `replay` delivers it (with its
// event id as webhook-id) and deletes it; a failed replay leaves it, a
// forged dead letter is deleted unsent.
func TestParksOldEventsAndReplayDeliversThem(t *testing.T) {
	b := newBus(t)
	aSecret, bSecret := webhooktest.NewSecret(), webhooktest.NewSecret()
	ra, rb := webhooktest.NewReceiver(t, aSecret), webhooktest.NewReceiver(t, bSecret)
	ra.Answer(http.StatusServiceUnavailable)
	rb.Answer(http.StatusInternalServerError)
	cfg := b.config(writeFile(t,
		endpoint{Name: "a", URL: ra.URL, Secret: aSecret},
		endpoint{Name: "b", URL: rb.URL, Secret: bSecret, Events: []string{"user.created"}},
	))
	cfg.MaxAge = time.Second
	svc := start(t, cfg)

	created := b.publish(identity.EventUserCreated, "u1")
	updated := b.publish(identity.EventUserUpdated, "u1")
	poll.Until(t, wait, "the events parked", func() bool {
		d := b.deadLetters()
		return d["a"] == 2 && d["b"] == 1
	})
	poll.Until(t, wait, "the parked and dead-letter metrics", func() bool {
		return svc.metric(t, series(webhooksvc.NameParked, "a")) == 2 && svc.metric(t, series(webhooksvc.NameDeadLetters, "a")) == 2 &&
			svc.metric(t, series(webhooksvc.NameDeadLetters, "b")) == 1
	})
	attempts := len(ra.Deliveries())
	if attempts < 4 {
		t.Errorf("a was tried %d times before its events were parked, want retries", attempts)
	}
	// The dead letter: the event as it was, where it failed and why.
	dead, err := b.events.Stream(context.Background(), webhooks.DeadStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dead.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if h := m.Header; !bytes.Equal(m.Data, created.Body) && !bytes.Equal(m.Data, updated.Body) ||
		h.Get(webhooks.HeaderError) == "" || !strings.HasPrefix(h.Get(webhooks.HeaderError), "HTTP 5") ||
		h.Get(webhooks.HeaderEndpoint) == "" || h.Get(webhooks.HeaderMAC) == "" {
		t.Errorf("dead letter %s %v", m.Data, m.Header)
	}

	// The receiver still fails: the replay says so and the letters stay.
	var out bytes.Buffer
	if err := webhooksvc.Replay(context.Background(), cfg, "a", &out, svc.log); err == nil {
		t.Error("replay into a failing receiver succeeded")
	}
	if d := b.deadLetters(); d["a"] != 2 {
		t.Errorf("after a failed replay: dead letters %v", d)
	}

	// A dead letter the service did not write: anyone with the events user could.
	if _, err := b.events.PublishMsg(context.Background(), &nats.Msg{
		Subject: webhooks.DeadSubjectPrefix + "a", Data: []byte(`{"id":"forged","type":"user.created"}`),
		Header: nats.Header{webhooks.HeaderMAC: []string{"bm90IGEgbWFj"}},
	}); err != nil {
		t.Fatal(err)
	}
	ra.Answer(http.StatusOK)
	rb.Answer(http.StatusOK)
	before := len(ra.Deliveries())
	out.Reset()
	if err := webhooksvc.Replay(context.Background(), cfg, "a", &out, svc.log); err != nil {
		t.Fatalf("replay a: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "replayed 2 dead letters") || !strings.Contains(out.String(), "1 forged") {
		t.Errorf("replay printed %q", out.String())
	}
	replayed := ra.Deliveries()[before:]
	if got, want := slices.Sorted(slices.Values(ids(replayed))), slices.Sorted(slices.Values([]string{created.ID, updated.ID})); !slices.Equal(got, want) {
		t.Errorf("replay delivered %v, want %v", got, want)
	}
	for _, d := range replayed {
		if !d.Accepted() {
			t.Errorf("replayed delivery not accepted: valid %v, status %d", d.Valid, d.Status)
		}
	}
	if d := b.deadLetters(); d["a"] != 0 || d["b"] != 1 {
		t.Errorf("after replaying a: dead letters %v, want b's only", d)
	}
	if len(rb.Deliveries()) == 0 || rb.Deliveries()[len(rb.Deliveries())-1].Status == http.StatusOK {
		t.Error("replaying a touched b")
	}

	out.Reset()
	if err := webhooksvc.Replay(context.Background(), cfg, "", &out, svc.log); err != nil {
		t.Fatalf("replay all: %v (%s)", err, out.String())
	}
	if acc := rb.Accepted(); len(acc) != 1 || acc[0].ID != created.ID {
		t.Errorf("b took %v after the replay, want %s", ids(acc), created.ID)
	}
	if d := b.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters left: %v", d)
	}
	if err := webhooksvc.Replay(context.Background(), cfg, "nope", &out, svc.log); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("replay of an unknown endpoint: %v", err)
	}
}

// 410 Gone: the receiver wants this event never; it is parked at once, not
// retried, and the endpoint keeps getting the next events.
func TestGoneIsParkedWithoutRetries(t *testing.T) {
	b := newBus(t)
	secret := webhooktest.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	r.Answer(http.StatusGone)
	svc := start(t, b.config(writeFile(t, endpoint{Name: "gone", URL: r.URL, Secret: secret})))
	first := b.publish(identity.EventUserCreated, "u1")
	poll.Until(t, wait, "the event parked", func() bool { return b.deadLetters()["gone"] == 1 })
	if got := r.Deliveries(); len(got) != 1 || got[0].ID != first.ID {
		t.Errorf("deliveries %v, want one of %s", ids(got), first.ID)
	}
	r.Answer(http.StatusNoContent)
	next := b.publish(identity.EventUserCreated, "u2")
	poll.Until(t, wait, "the next event delivered", func() bool { return len(r.Accepted()) == 1 })
	if got := r.Accepted()[0].ID; got != next.ID {
		t.Errorf("delivered %s, want %s", got, next.ID)
	}
	if n := svc.metric(t, series(webhooksvc.NameParked, "gone")); n != 1 {
		t.Errorf("parked = %v", n)
	}
}

// The service waits for the event stream (identity creates it) rather than
// fail, and delivers from then on.
func TestWaitsForTheEventStream(t *testing.T) {
	b := newBareBus(t)
	secret := webhooktest.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	cfg := b.config(writeFile(t, endpoint{URL: r.URL, Secret: secret}))
	svc := startNotReady(t, cfg)
	poll.Until(t, wait, "the service waiting for the stream", func() bool {
		return strings.Contains(svc.logs.String(), "waiting for the event stream")
	})
	if _, err := b.identity.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: identity.EventStream, Subjects: []string{identity.EventStreamSubjects},
	}); err != nil {
		t.Fatal(err)
	}
	svc.waitReady(t)
	ev := b.publish(identity.EventUserBound, "u1")
	poll.Until(t, wait, "the event delivered", func() bool { return len(r.Accepted()) == 1 })
	if r.Accepted()[0].ID != ev.ID {
		t.Errorf("delivered %s, want %s", r.Accepted()[0].ID, ev.ID)
	}
}

// A consumer deleted under the service (`nats consumer rm`) is created
// again, and the endpoint gets the events from then on.
func TestRecreatesADeletedConsumer(t *testing.T) {
	b := newBus(t)
	secret := webhooktest.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	svc := start(t, b.config(writeFile(t, endpoint{Name: "crm", URL: r.URL, Secret: secret})))
	ctx := context.Background()
	if err := b.events.DeleteConsumer(ctx, identity.EventStream, webhooks.ConsumerPrefix+"crm"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "the consumer created again", func() bool {
		_, err := b.events.Consumer(ctx, identity.EventStream, webhooks.ConsumerPrefix+"crm")
		return err == nil && strings.Contains(svc.logs.String(), "consumer gone; creating it again")
	})
	ev := b.publish(identity.EventUserCreated, "u1")
	poll.Until(t, wait, "the event delivered", func() bool { return len(r.Accepted()) == 1 })
	if got := r.Accepted()[0].ID; got != ev.ID {
		t.Errorf("delivered %s, want %s", got, ev.ID)
	}
}

// On shutdown a delivery in flight finishes and is acknowledged: the
// event does not come again to a restarted service.
func TestShutdownFinishesDeliveriesInFlight(t *testing.T) {
	b := newBus(t)
	secret := webhooktest.NewSecret()
	arrived := make(chan struct{})
	var once sync.Once
	// A receiver that takes half a second to answer: a Serve that did not
	// wait for it would have closed its connection by then, losing the ack.
	const answerAfter = 500 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done():
		case <-time.After(answerAfter):
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	cfg := b.config(writeFile(t, endpoint{Name: "slow", URL: srv.URL, Secret: secret}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- webhooksvc.Serve(ctx, cfg, slog.New(slog.DiscardHandler), ln) }()
	poll.Until(t, wait, "ready", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	b.publish(identity.EventUserCreated, "u1")
	<-arrived
	cancel() // SIGTERM while the receiver still holds the request
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cons, err := b.events.Consumer(context.Background(), identity.EventStream, webhooks.ConsumerPrefix+"slow")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 1 {
		t.Errorf("after the stop: %d ack pending, %d pending, ack floor %d; want the event acknowledged", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
}

// The consumer is durable: the events stored while no copy runs are
// delivered when one starts again, and none twice.
func TestResumesAfterARestart(t *testing.T) {
	b := newBus(t)
	secret := webhooktest.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	cfg := b.config(writeFile(t, endpoint{Name: "crm", URL: r.URL, Secret: secret}))
	svc := start(t, cfg)
	first := b.publish(identity.EventUserCreated, "u1")
	poll.Until(t, wait, "the first event delivered", func() bool { return len(r.Accepted()) == 1 })
	svc.stop()
	var want []string
	for _, u := range []string{"u2", "u3"} {
		want = append(want, b.publish(identity.EventUserCreated, u).ID)
	}
	start(t, cfg)
	poll.Until(t, wait, "the events of the downtime delivered", func() bool { return len(r.Accepted()) == 3 })
	if got := ids(r.Deliveries()); got[0] != first.ID || !slices.Equal(slices.Sorted(slices.Values(got[1:])), slices.Sorted(slices.Values(want))) {
		t.Errorf("delivered %v, want %s then %v, each once", got, first.ID, want)
	}
}

// holdingReceiver holds every request until the test answers it, and
// counts how many it holds at once; an answered request goes on to its
// webhooktest.Receiver, which checks the signature, records it and answers.
type holdingReceiver struct {
	*webhooktest.Receiver
	URL string // where it listens: not the Receiver's URL

	mu   sync.Mutex
	held []chan struct{} // the requests waiting to be answered, oldest first
	peak int             // the most held at once

	stopOnce sync.Once
	stopped  chan struct{} // closed: every request passes
}

func newHoldingReceiver(t *testing.T, secret string) *holdingReceiver {
	t.Helper()
	// The Receiver's own server is left unused: this one hands it the requests.
	h := &holdingReceiver{Receiver: webhooktest.NewReceiver(t, secret), stopped: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer := make(chan struct{})
		h.mu.Lock()
		h.held = append(h.held, answer)
		h.peak = max(h.peak, len(h.held))
		h.mu.Unlock()
		select {
		case <-answer:
		case <-h.stopped:
		case <-r.Context().Done(): // the service gave up on it: no longer in flight
			h.mu.Lock()
			h.held = slices.DeleteFunc(h.held, func(c chan struct{}) bool { return c == answer })
			h.mu.Unlock()
			return
		}
		h.Receiver.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

// stop lets every request through, held or to come. A test defers it
// with t.Cleanup after starting the service, so that it runs before the
// service's stop, which waits for the requests in flight.
func (h *holdingReceiver) stop() { h.stopOnce.Do(func() { close(h.stopped) }) }

// inFlight is how many requests it holds now, and the most it held at once.
func (h *holdingReceiver) inFlight() (now, peak int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held), h.peak
}

// answerOne lets the oldest held request through. The request leaves the
// count at once, before it is answered: the service cannot send another
// in its slot before it has the answer.
func (h *holdingReceiver) answerOne(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) == 0 {
		t.Fatal("no request held")
	}
	close(h.held[0])
	h.held = h.held[1:]
}

// An endpoint has at most its concurrency of requests in flight, and as
// many as that while events wait: a receiver holding every request sees
// exactly Concurrency at once, never more, again each time it answers
// one. An endpoint whose slots are all taken holds up no other; in the
// end each event reaches each endpoint once.
func TestConcurrencyBoundsTheRequestsInFlight(t *testing.T) {
	const limit, events = 3, 12
	b := newBus(t)
	cappedSecret, otherSecret := webhooktest.NewSecret(), webhooktest.NewSecret()
	capped, other := newHoldingReceiver(t, cappedSecret), webhooktest.NewReceiver(t, otherSecret)
	svc := start(t, b.config(writeFile(t,
		// A timeout far above the test's: no request is given up and retried.
		endpoint{Name: "capped", URL: capped.URL, Secret: cappedSecret, Concurrency: limit, Timeout: "1m"},
		endpoint{Name: "other", URL: other.URL, Secret: otherSecret},
	)))
	t.Cleanup(capped.stop)

	var want []string
	for i := range events {
		want = append(want, b.publish(identity.EventUserCreated, fmt.Sprintf("u%d", i)).ID)
	}
	slices.Sort(want)

	poll.Until(t, wait, fmt.Sprintf("%d requests held by the capped receiver", limit), func() bool {
		now, _ := capped.inFlight()
		return now >= limit
	})
	poll.Until(t, wait, "every event at the other endpoint while the capped one has no free slot", func() bool {
		return len(other.Accepted()) == events
	})
	if now, peak := capped.inFlight(); now != limit || peak != limit || len(capped.Deliveries()) != 0 {
		t.Fatalf("capped endpoint: %d requests in flight, at most %d, %d answered; want %d, %d, 0", now, peak, len(capped.Deliveries()), limit, limit)
	}
	// Answer one at a time: each time the service fills the slot it
	// freed, and no more.
	for answered := range events {
		expect := min(limit, events-answered)
		poll.Until(t, wait, fmt.Sprintf("%d requests in flight after %d answered", expect, answered), func() bool {
			now, _ := capped.inFlight()
			return now >= expect
		})
		if now, peak := capped.inFlight(); peak > limit {
			t.Fatalf("after %d answered: %d requests in flight, at most %d at once; want at most %d", answered, now, peak, limit)
		}
		capped.answerOne(t)
	}

	poll.Until(t, wait, "every event at the capped endpoint", func() bool { return len(capped.Accepted()) == events })
	// Both consumers acknowledged everything: no event comes again.
	for _, name := range []string{"capped", "other"} {
		poll.Until(t, wait, name+"'s events all acknowledged", func() bool {
			cons, err := b.events.Consumer(context.Background(), identity.EventStream, webhooks.ConsumerPrefix+name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cons.Info(context.Background())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream == events
		})
	}
	for name, r := range map[string]*webhooktest.Receiver{"capped": capped.Receiver, "other": other} {
		if got := slices.Sorted(slices.Values(ids(r.Deliveries()))); !slices.Equal(got, want) {
			t.Errorf("%s got webhook-ids %v, want each of %v once", name, got, want)
		}
		for _, d := range r.Deliveries() {
			if !d.Accepted() {
				t.Errorf("%s: delivery %s not accepted (valid %v, status %d)", name, d.ID, d.Valid, d.Status)
			}
		}
	}
	if _, peak := capped.inFlight(); peak != limit {
		t.Errorf("at most %d requests in flight at once, want %d", peak, limit)
	}
	if n := svc.metric(t, series(webhooksvc.NameDeliveries, "capped")); n != events {
		t.Errorf("capped deliveries = %v, want %d", n, events)
	}
}
