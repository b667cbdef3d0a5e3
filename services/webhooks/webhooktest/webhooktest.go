// Package webhooktest is a webhook receiver for tests: an HTTP server that
// checks each delivery's Standard Webhooks signature with code of its own
// (not the sender's, so a mistake in one shows in the other) and records
// every request.
package webhooktest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tolerance is how far a webhook-timestamp may be from the receiver's clock.
const tolerance = 5 * time.Minute

// NewSecret returns a fresh endpoint secret: whsec_ and the base64 of 32
// random bytes.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Delivery is one request the receiver got.
type Delivery struct {
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Header    http.Header
	Body      []byte
	Event     Event
	// Valid: the signature verified under the receiver's secret, within
	// the timestamp tolerance.
	Valid bool
	// Status is what the receiver answered.
	Status int
}

// Accepted reports whether the receiver took the delivery: valid, 2xx.
func (d Delivery) Accepted() bool { return d.Valid && d.Status >= 200 && d.Status < 300 }

// Event is what the tests read of a delivered event.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
}

// Receiver is a running receiver.
type Receiver struct {
	// URL is where it listens (http://127.0.0.1:port/hook).
	URL string

	key []byte
	srv *http.Server

	mu     sync.Mutex
	answer int
	got    []Delivery
}

// NewReceiver starts a receiver for secret on a free loopback port; it
// answers 204 to valid deliveries and stops when the test ends.
func NewReceiver(t testing.TB, secret string) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, secret, ln)
}

// Serve is NewReceiver on ln.
func Serve(t testing.TB, secret string, ln net.Listener) *Receiver {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("webhooktest: secret: %v", err)
	}
	r := &Receiver{URL: "http://" + ln.Addr().String() + "/hook", key: key, answer: http.StatusNoContent}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.Close)
	return r
}

// Close stops the receiver: from then on its address refuses connections.
func (r *Receiver) Close() { _ = r.srv.Close() }

// Answer sets the status valid deliveries get from now on (e.g. 500 to
// fail them; 204 to take them again). Invalid ones always get 401.
func (r *Receiver) Answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = status
}

// Deliveries returns every request so far, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Accepted returns the deliveries the receiver took (valid, 2xx), in order.
func (r *Receiver) Accepted() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Accepted() {
			out = append(out, d)
		}
	}
	return out
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "body", http.StatusRequestEntityTooLarge)
		return
	}
	d := Delivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Header: req.Header.Clone(), Body: body}
	d.Valid = req.Method == http.MethodPost && r.verify(d.ID, d.Timestamp, req.Header.Get("webhook-signature"), body)
	_ = json.Unmarshal(body, &d.Event)
	r.mu.Lock()
	d.Status = r.answer
	if !d.Valid {
		d.Status = http.StatusUnauthorized
	}
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(d.Status)
}

// verify checks sigs ("v1,<base64> v1,<base64>…") against the HMAC-SHA256
// of "id.timestamp.body" under the receiver's key.
func (r *Receiver) verify(id, ts, sigs string, body []byte) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return false
	}
	if skew := time.Since(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return false
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
