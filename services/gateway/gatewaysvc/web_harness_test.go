package gatewaysvc_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

const (
	webAppID      = "wx2222222222222222"
	testOpenBase  = "https://open.example.test"
	testPublicURL = "http://gw.example.test:8080"
)

// webStub plays the session service's QR, refresh and revoke endpoints and
// identity's web.resolve, over the real KV buckets on the embedded server,
// the way the services do (Create, Update by revision, Delete by revision).
type webStub struct {
	e       *env
	qr      jetstream.KeyValue
	revoked jetstream.KeyValue

	mu          sync.Mutex
	qrTTL       time.Duration
	createFail  *api.Error
	resolveFail *api.Error
	refreshFail *api.Error
	revokeFail  *api.Error
	// browser holds the cookies of the browser that created the tickets
	// putRecord writes, as createQR sets them; callback calls with it.
	browser *http.Client
	base    string

	creates   []session.QRCreateRequest
	resolves  []identity.WebResolveRequest
	completes []session.QRCompleteRequest
	consumes  int
	refreshes []string
	revokes   []session.RevokeRequest
}

// upWeb starts every stub and a gateway configured for the website login,
// and waits until it is ready.
func (e *env) upWeb(mutate func(*gatewaysvc.Config)) (string, *webStub) {
	e.t.Helper()
	e.ensureBuckets()
	js, err := jetstream.New(e.nc)
	must(e.t, err)
	ctx := context.Background()
	w := &webStub{e: e, qrTTL: 5 * time.Minute}
	w.qr, err = js.KeyValue(ctx, session.BucketQR)
	must(e.t, err)
	w.revoked, err = js.KeyValue(ctx, session.BucketRevoked)
	must(e.t, err)

	se, err := micro.AddService(e.nc, micro.Config{Name: session.Service, Version: "0.0.1", QueueGroup: session.Service})
	must(e.t, err)
	must(e.t, se.AddEndpoint("qr_create", endpoint(w.qrCreate), micro.WithEndpointSubject(session.SubjectQRCreate)))
	must(e.t, se.AddEndpoint("qr_complete", endpoint(w.qrComplete), micro.WithEndpointSubject(session.SubjectQRComplete)))
	must(e.t, se.AddEndpoint("qr_consume", endpoint(w.qrConsume), micro.WithEndpointSubject(session.SubjectQRConsume)))
	must(e.t, se.AddEndpoint("refresh", endpoint(w.refresh), micro.WithEndpointSubject(session.SubjectRefresh)))
	must(e.t, se.AddEndpoint("revoke", endpoint(w.revoke), micro.WithEndpointSubject(session.SubjectRevoke)))
	e.stopper(se)
	id, err := micro.AddService(e.nc, micro.Config{Name: identity.Service, Version: "0.0.1", QueueGroup: identity.Service})
	must(e.t, err)
	must(e.t, id.AddEndpoint("web_resolve", endpoint(w.webResolve), micro.WithEndpointSubject(identity.SubjectWebResolve)))
	e.stopper(id)

	base := e.up(func(c *gatewaysvc.Config) {
		c.PublicURL = testPublicURL
		c.WechatOpenBase = testOpenBase
		if mutate != nil {
			mutate(c)
		}
	})
	w.browser, w.base = newBrowser(e.t), base
	return base, w
}

// newBrowser is a client with its own cookie jar: one browser.
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	must(t, err)
	return &http.Client{Jar: jar}
}

// callback calls the callback page from the browser that created the
// ticket (it carries the ticket's cookie).
func (w *webStub) callback(t *testing.T, q url.Values) response {
	t.Helper()
	return callbackFrom(t, w.browser, w.base, q)
}

// callbackFrom calls the callback page from browser.
func callbackFrom(t *testing.T, browser *http.Client, base string, q url.Values) response {
	t.Helper()
	return doWith(t, browser, context.Background(), http.MethodGet, base+callbackURL+"?"+q.Encode(), "", "", nil)
}

func randomToken(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (w *webStub) set(f func(w *webStub)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// putRecord writes a ticket as session would create it and returns the
// ticket and poll token.
func (w *webStub) putRecord(t *testing.T, rec session.QRRecord) (ticket, pollToken string) {
	t.Helper()
	ticket, pollToken = randomToken(t), randomToken(t)
	if rec.Status == "" {
		rec.Status = session.QRPending
	}
	if rec.AppID == "" {
		rec.AppID = webAppID
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = time.Now()
	}
	if rec.ExpiresAt.IsZero() {
		rec.ExpiresAt = rec.CreatedAt.Add(w.qrTTL)
	}
	rec.PollTokenHash = hashHex(pollToken)
	b, err := json.Marshal(rec)
	must(t, err)
	_, err = w.qr.Create(context.Background(), ticket, b)
	must(t, err)
	u, err := url.Parse(w.base + "/api/v1/auth/web")
	must(t, err)
	w.browser.Jar.SetCookies(u, []*http.Cookie{{Name: "wxlogin_qr_" + ticket, Value: pollToken, Path: "/api/v1/auth/web"}})
	return ticket, pollToken
}

// record reads a ticket back (ok false when it is gone).
func (w *webStub) record(t *testing.T, ticket string) (session.QRRecord, bool) {
	t.Helper()
	e, err := w.qr.Get(context.Background(), ticket)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session.QRRecord{}, false
	}
	must(t, err)
	var rec session.QRRecord
	must(t, json.Unmarshal(e.Value(), &rec))
	return rec, true
}

func (w *webStub) qrCreate(ctx context.Context, req session.QRCreateRequest) (session.QRTicket, error) {
	w.mu.Lock()
	w.creates = append(w.creates, req)
	fail, ttl := w.createFail, w.qrTTL
	w.mu.Unlock()
	if fail != nil {
		return session.QRTicket{}, fail
	}
	ticket, poll := randomToken(w.e.t), randomToken(w.e.t)
	now := time.Now()
	b, _ := json.Marshal(session.QRRecord{Status: session.QRPending, App: req.App, AppID: webAppID, PollTokenHash: hashHex(poll),
		CreatedAt: now, ExpiresAt: now.Add(ttl)})
	if _, err := w.qr.Create(ctx, ticket, b); err != nil {
		return session.QRTicket{}, err
	}
	return session.QRTicket{Ticket: ticket, PollToken: poll, AppID: webAppID, ExpiresIn: int64(ttl / time.Second)}, nil
}

func (w *webStub) qrComplete(ctx context.Context, req session.QRCompleteRequest) (session.QRStatus, error) {
	w.mu.Lock()
	w.completes = append(w.completes, req)
	w.mu.Unlock()
	for {
		e, err := w.qr.Get(ctx, req.Ticket)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return session.QRStatus{}, api.Errorf(api.CodeQRTicketNotFound, "no such ticket")
		}
		if err != nil {
			return session.QRStatus{}, err
		}
		var rec session.QRRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return session.QRStatus{}, err
		}
		if !time.Now().Before(rec.ExpiresAt) {
			return session.QRStatus{}, api.Errorf(api.CodeQRTicketExpired, "expired")
		}
		if rec.Status != session.QRPending {
			return session.QRStatus{Status: rec.Status}, nil
		}
		switch {
		case req.Denied:
			rec.Status, rec.Reason = session.QRDenied, req.Reason
		case req.BindToken != "":
			rec.Status, rec.BindToken, rec.Nickname, rec.AvatarURL = session.QRNotBound, req.BindToken, req.Nickname, req.AvatarURL
		default:
			rec.Status, rec.User, rec.IsNewUser = session.QRConfirmed, req.User, req.IsNewUser
		}
		b, _ := json.Marshal(rec)
		if _, err := w.qr.Update(ctx, req.Ticket, b, e.Revision()); err == nil {
			return session.QRStatus{Status: rec.Status}, nil
		}
		// Lost a race: answer what stands.
	}
}

func (w *webStub) qrConsume(ctx context.Context, req session.QRConsumeRequest) (session.QRConsumeResult, error) {
	notFound := api.Errorf(api.CodeQRTicketNotFound, "no such ticket")
	e, err := w.qr.Get(ctx, req.Ticket)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session.QRConsumeResult{}, notFound
	}
	if err != nil {
		return session.QRConsumeResult{}, err
	}
	var rec session.QRRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return session.QRConsumeResult{}, err
	}
	if subtle.ConstantTimeCompare([]byte(hashHex(req.PollToken)), []byte(rec.PollTokenHash)) != 1 || rec.Status != session.QRConfirmed || rec.User == nil {
		return session.QRConsumeResult{}, notFound
	}
	if err := w.qr.Delete(ctx, req.Ticket, jetstream.LastRevision(e.Revision())); err != nil {
		return session.QRConsumeResult{}, notFound
	}
	w.mu.Lock()
	w.consumes++
	w.mu.Unlock()
	return session.QRConsumeResult{
		Tokens: session.Tokens{AccessToken: w.e.se.token(rec.User.ID, func(c jwt.MapClaims) {
			c["kind"], c["client_id"] = api.KindWeb, rec.AppID
		}), TokenType: "Bearer", ExpiresIn: 7200, RefreshToken: rec.User.ID + "." + uuid.NewString() + ".secret", RefreshExpiresIn: 2592000},
		User: *rec.User, IsNewUser: rec.IsNewUser,
	}, nil
}

func (w *webStub) webResolve(_ context.Context, req identity.WebResolveRequest) (identity.LoginResult, error) {
	w.mu.Lock()
	w.resolves = append(w.resolves, req)
	fail := w.resolveFail
	w.mu.Unlock()
	if fail != nil {
		return identity.LoginResult{}, fail
	}
	u := testUser()
	u.Nickname = "Web " + req.Code
	return identity.LoginResult{User: u, IsNewUser: true, Kind: api.KindWeb, AppID: webAppID}, nil
}

func (w *webStub) refresh(_ context.Context, req session.RefreshRequest) (session.Tokens, error) {
	w.mu.Lock()
	w.refreshes = append(w.refreshes, req.RefreshToken)
	fail := w.refreshFail
	w.mu.Unlock()
	if fail != nil {
		return session.Tokens{}, fail
	}
	return session.Tokens{AccessToken: w.e.se.token(testUserID, nil), TokenType: "Bearer", ExpiresIn: 7200,
		RefreshToken: testUserID + "." + uuid.NewString() + ".next", RefreshExpiresIn: 2592000}, nil
}

// revoke writes the revocation keys the way session does.
func (w *webStub) revoke(ctx context.Context, req session.RevokeRequest) (session.RevokeResponse, error) {
	w.mu.Lock()
	w.revokes = append(w.revokes, req)
	fail := w.revokeFail
	w.mu.Unlock()
	if fail != nil {
		return session.RevokeResponse{}, fail
	}
	now := time.Now().Unix()
	put := func(key string, v session.Revocation) error {
		b, _ := json.Marshal(v)
		_, err := w.revoked.Put(ctx, key, b)
		return err
	}
	if req.JTI != "" {
		if err := put(session.RevokedJTIKey(req.JTI), session.Revocation{At: now, Exp: req.ExpiresAt}); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	if req.SessionID != "" {
		if err := put(session.RevokedSIDKey(req.SessionID), session.Revocation{At: now}); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	if req.UserID != "" {
		if err := put(session.RevokedUserKey(req.UserID), session.Revocation{At: now}); err != nil {
			return session.RevokeResponse{}, err
		}
	}
	return session.RevokeResponse{}, nil
}

// putRevocation writes a revocation key directly, as another gateway's
// logout or an admin disable would through session.
func (w *webStub) putRevocation(t *testing.T, key string, v session.Revocation) {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	_, err = w.revoked.Put(context.Background(), key, b)
	must(t, err)
}

// pollHeader is the header of a poll with token.
func pollHeader(token string) map[string]string {
	if token == "" {
		return nil
	}
	return map[string]string{"X-Poll-Token": token}
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
}

// decodeBody decodes a JSON object answer (nil for anything else).
func decodeBody(raw string) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	return m
}
