package sessions

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	accessTTL  = 2 * time.Hour
	refreshTTL = 24 * time.Hour
	qrTTL      = 5 * time.Minute
	webAppID   = "wx2222222222222222"
	oaAppID    = "wx5555555555555555"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	js       jetstream.JetStream
	svc      *Service
	clock    *clock
	buckets  *kvstate.Buckets
	verifier *jwtverify.Verifier
	logs     *logtest.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	js := natstest.JetStream(t)
	ctx := context.Background()
	ttls := kvstate.TTLs{Access: accessTTL, Refresh: refreshTTL, QR: qrTTL}
	b, err := kvstate.Open(ctx, js, ttls, 1)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, js, b, &clock{now: time.Now().Truncate(time.Second)})
}

// newFixtureOn is a replica of the service on existing buckets (of js) and clock.
func newFixtureOn(t *testing.T, js jetstream.JetStream, b *kvstate.Buckets, clk *clock) *fixture {
	t.Helper()
	ctx := context.Background()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	users, err := kvstate.WatchUserRevocations(ctx, js, b.Sessions, refreshTTL, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(users.Stop)
	registry, err := apps.Load(apps.Config{MiniProgramAppID: "wx1111111111111111", WebAppID: webAppID, OAAppID: oaAppID})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keys, err := tokens.NewPEMKeyring(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Deps{
		Keys:            keys,
		Minter:          tokens.NewMinter(keys, "wxlogin", "wxlogin", accessTTL),
		Families:        kvstate.NewFamilies(b.Sessions),
		Revocations:     kvstate.NewRevocations(b.Revoked, accessTTL),
		UserRevocations: users,
		Tickets:         kvstate.NewTickets(b.QR),
		OAStates:        kvstate.NewOAStates(b.OA),
		OACodes:         kvstate.NewOACodes(b.OA),
		Apps:            registry,
		RefreshTTL:      refreshTTL,
		QRTTL:           qrTTL,
		Log:             log,
		Now:             clk.Now,
	})
	jwks, err := svc.JWKS(ctx, session.JWKSRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, svc: svc, clock: clk, buckets: b, verifier: v, logs: logs}
}

func (f *fixture) issue(t *testing.T) session.Tokens {
	t.Helper()
	return f.issueFor(t, "user-1")
}

func (f *fixture) issueFor(t *testing.T, userID string) session.Tokens {
	t.Helper()
	tok, err := f.svc.Issue(context.Background(), session.IssueRequest{UserID: userID, Kind: api.KindMiniProgram, AppID: "wx1111111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) refresh(token string) (session.Tokens, error) {
	return f.svc.Refresh(context.Background(), session.RefreshRequest{RefreshToken: token})
}

func (f *fixture) family(t *testing.T, refreshToken string) kvstate.Family {
	t.Helper()
	rt, err := tokens.ParseRefreshToken(refreshToken)
	if err != nil {
		t.Fatal(err)
	}
	fam, _, err := kvstate.NewFamilies(f.buckets.Sessions).Get(context.Background(), rt.UserID, rt.FamilyID)
	if err != nil {
		t.Fatal(err)
	}
	return fam
}

func wantCode(t *testing.T, err error, want api.Code) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestIssue(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		req  session.IssueRequest
		want api.Code // "" = success
	}{
		{"mini-program", session.IssueRequest{UserID: "u1", Kind: api.KindMiniProgram, AppID: "wx1111111111111111"}, ""},
		{"password login has client_id wxlogin", session.IssueRequest{UserID: "u1", Kind: api.KindPassword}, ""},
		{"missing user_id", session.IssueRequest{Kind: api.KindWeb}, api.CodeInvalidRequest},
		{"oversize user_id", session.IssueRequest{UserID: strings.Repeat("u", 65), Kind: api.KindWeb}, api.CodeInvalidRequest},
		{"user_id with a dot", session.IssueRequest{UserID: "u.1", Kind: api.KindWeb}, api.CodeInvalidRequest},
		{"user_id with a wildcard", session.IssueRequest{UserID: "u*", Kind: api.KindWeb}, api.CodeInvalidRequest},
		{"missing kind", session.IssueRequest{UserID: "u1"}, api.CodeInvalidRequest},
		{"unknown kind", session.IssueRequest{UserID: "u1", Kind: "saml"}, api.CodeInvalidRequest},
		{"oversize appid", session.IssueRequest{UserID: "u1", Kind: api.KindWeb, AppID: strings.Repeat("w", 65)}, api.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := f.svc.Issue(context.Background(), tc.req)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.ExpiresIn != int64(accessTTL/time.Second) || tok.RefreshExpiresIn != int64(refreshTTL/time.Second) {
				t.Errorf("tokens %+v", tok)
			}
			c, err := f.verifier.Verify(tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			wantClient := tc.req.AppID
			if wantClient == "" {
				wantClient = "wxlogin"
			}
			rt, _ := tokens.ParseRefreshToken(tok.RefreshToken)
			if c.Subject != tc.req.UserID || c.Kind != tc.req.Kind || c.ClientID != wantClient || c.SessionID != rt.FamilyID || rt.Generation != 0 {
				t.Errorf("claims %+v", c)
			}
			fam := f.family(t, tok.RefreshToken)
			if fam.UserID != tc.req.UserID || fam.Generation != 0 || fam.TokenHash != tokens.HashRefreshToken(tok.RefreshToken) ||
				!fam.ExpiresAt.Equal(f.clock.Now().Add(refreshTTL)) {
				t.Errorf("family %+v", fam)
			}
		})
	}
}

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	first := f.issue(t)
	f.clock.Advance(time.Hour)
	second, err := f.refresh(first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh returned the same tokens")
	}
	c1, _ := f.verifier.Verify(first.AccessToken)
	c2, err := f.verifier.Verify(second.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c2.SessionID != c1.SessionID || c2.Subject != c1.Subject || c2.ClientID != c1.ClientID || c2.Kind != c1.Kind || c2.ID == c1.ID {
		t.Errorf("claims after refresh %+v, before %+v", c2, c1)
	}
	// The lifetime is absolute: an hour later, an hour less.
	if want := int64((refreshTTL - time.Hour) / time.Second); second.RefreshExpiresIn != want {
		t.Errorf("refresh_expires_in = %d, want %d", second.RefreshExpiresIn, want)
	}
	fam := f.family(t, second.RefreshToken)
	if fam.Generation != 1 || fam.TokenHash != tokens.HashRefreshToken(second.RefreshToken) {
		t.Errorf("family %+v", fam)
	}
	if _, err := f.refresh(second.RefreshToken); err != nil {
		t.Fatalf("second refresh: %v", err)
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	f := newFixture(t)
	first := f.issue(t)
	second, err := f.refresh(first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	third, err := f.refresh(second.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		token string
		want  api.Code
	}{
		{"a spent token is reuse", first.RefreshToken, api.CodeRefreshTokenReused},
		{"the newest token is dead too", third.RefreshToken, api.CodeTokenRevoked},
		{"the other spent token", second.RefreshToken, api.CodeRefreshTokenReused},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			_, err := f.refresh(s.token)
			wantCode(t, err, s.want)
		})
	}
	if fam := f.family(t, third.RefreshToken); fam.RevokedAt == nil {
		t.Error("family not marked revoked")
	}
}

func TestRefreshRejects(t *testing.T) {
	f := newFixture(t)
	live := f.issue(t)
	next, err := f.refresh(live.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	live = next // generation 1, so a forged generation 0 is an "earlier" one
	rt, _ := tokens.ParseRefreshToken(live.RefreshToken)
	user, famID := rt.UserID, rt.FamilyID
	stolenKey := f.family(t, live.RefreshToken).MACKey
	guessKey, _ := tokens.NewFamilyKey()
	forgedEarlier, _ := tokens.NewRefreshToken(guessKey, user, famID, 0)
	forgedCurrent, _ := tokens.NewRefreshToken(guessKey, user, famID, 1)
	// Even with the stored key a current token cannot be made up.
	fromStoredKey, _ := tokens.NewRefreshToken(stolenKey, user, famID, 1)
	fromStoredKeyLater, _ := tokens.NewRefreshToken(stolenKey, user, famID, 2)
	unknown, _ := tokens.NewRefreshToken(guessKey, user, tokens.NewFamilyID(), 0)
	otherUser, _ := tokens.NewRefreshToken(guessKey, "user-2", famID, 0)
	tests := []struct {
		name  string
		token string
		want  api.Code
	}{
		{"empty", "", api.CodeTokenInvalid},
		{"garbage", "garbage", api.CodeTokenInvalid},
		{"an access token", live.AccessToken, api.CodeTokenInvalid},
		{"unknown family", unknown, api.CodeTokenInvalid},
		{"right family, made-up earlier generation", forgedEarlier, api.CodeTokenInvalid},
		{"right family, made-up current generation", forgedCurrent, api.CodeTokenInvalid},
		{"current generation from the stored key", fromStoredKey, api.CodeTokenInvalid},
		{"a later generation", fromStoredKeyLater, api.CodeTokenInvalid},
		{"right family, another user", otherUser, api.CodeTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.refresh(tc.token)
			wantCode(t, err, tc.want)
		})
	}
	// A made-up token of a known family does not kill it.
	if fam := f.family(t, live.RefreshToken); fam.RevokedAt != nil {
		t.Fatal("a made-up token revoked the family")
	}
	if _, err := f.refresh(live.RefreshToken); err != nil {
		t.Fatalf("live token after rejects: %v", err)
	}
}

// TestRefreshReuseHoweverOld: the first token of a family rotated 40 times
// (more than any window of remembered hashes) is still reuse, and revokes
// the newest pair.
func TestRefreshReuseHoweverOld(t *testing.T) {
	f := newFixture(t)
	first := f.issue(t)
	tok := first
	for i := range 40 {
		next, err := f.refresh(tok.RefreshToken)
		if err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		tok = next
	}
	newest, _ := f.verifier.Verify(tok.AccessToken)
	_, err := f.refresh(first.RefreshToken)
	wantCode(t, err, api.CodeRefreshTokenReused)
	if fam := f.family(t, tok.RefreshToken); fam.RevokedAt == nil || fam.Generation != 40 {
		t.Fatalf("family after reuse: generation %d, revoked_at %v", fam.Generation, fam.RevokedAt)
	}
	_, err = f.refresh(tok.RefreshToken)
	wantCode(t, err, api.CodeTokenRevoked)
	at := f.clock.Now().Unix()
	wantRevocation(t, f.buckets, session.RevokedSIDKey(newest.SessionID), session.Revocation{At: at, Exp: at + int64(accessTTL/time.Second)})
}

// conflictKV is a sessions bucket whose next Update first runs before: a
// change of the family between a refresh's read and its compare-and-set.
type conflictKV struct {
	jetstream.KeyValue
	mu     sync.Mutex
	before func()
}

func (c *conflictKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	c.mu.Lock()
	before := c.before
	c.before = nil
	c.mu.Unlock()
	if before != nil {
		before()
	}
	return c.KeyValue.Update(ctx, key, value, rev)
}

// TestRefreshLostRaceRevokes: a refresh that loses its compare-and-set to
// another refresh of the same token re-reads the family, finds its token
// earlier than the family's, and revokes the family: the winner's pair dies
// too. (Before: "reused" with nothing revoked.)
func TestRefreshLostRaceRevokes(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t)
	var winner session.Tokens
	var winErr error
	kv := &conflictKV{KeyValue: f.buckets.Sessions, before: func() { winner, winErr = f.refresh(tok.RefreshToken) }}
	raced := *f.buckets
	raced.Sessions = kv
	loser := newFixtureOn(t, f.js, &raced, f.clock)

	_, err := loser.refresh(tok.RefreshToken)
	if winErr != nil {
		t.Fatalf("the racing refresh: %v", winErr)
	}
	wantCode(t, err, api.CodeRefreshTokenReused)
	fam := f.family(t, winner.RefreshToken)
	if fam.RevokedAt == nil || fam.Generation != 1 {
		t.Fatalf("family after the lost race: generation %d, revoked_at %v", fam.Generation, fam.RevokedAt)
	}
	_, err = f.refresh(winner.RefreshToken)
	wantCode(t, err, api.CodeTokenRevoked)
	c, _ := f.verifier.Verify(winner.AccessToken)
	at := f.clock.Now().Unix()
	wantRevocation(t, f.buckets, session.RevokedSIDKey(c.SessionID), session.Revocation{At: at, Exp: at + int64(accessTTL/time.Second)})
}

// TestRefreshLostRaceToRevokeIsRevoked: a compare-and-set lost to a logout
// re-reads and answers token_revoked, not reuse.
func TestRefreshLostRaceToRevokeIsRevoked(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t)
	c, _ := f.verifier.Verify(tok.AccessToken)
	var revokeErr error
	kv := &conflictKV{KeyValue: f.buckets.Sessions, before: func() {
		_, revokeErr = f.svc.Revoke(context.Background(), session.RevokeRequest{SessionID: c.SessionID, Subject: c.Subject})
	}}
	raced := *f.buckets
	raced.Sessions = kv
	_, err := newFixtureOn(t, f.js, &raced, f.clock).refresh(tok.RefreshToken)
	if revokeErr != nil {
		t.Fatal(revokeErr)
	}
	wantCode(t, err, api.CodeTokenRevoked)
}

func TestRefreshConcurrentOneWinner(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t)
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []session.Tokens
		codes   = map[api.Code]int{}
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			res, err := f.refresh(tok.RefreshToken)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, res)
				return
			}
			codes[api.CodeOf(err)]++
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d refreshes succeeded, want 1 (errors %v)", len(winners), codes)
	}
	// Every loser presented a token earlier than the family's by the time it
	// decided: reuse, so the family, the winner's new pair included, is
	// revoked. A double submit costs a login; a thief racing the owner gets
	// nothing.
	if codes[api.CodeRefreshTokenReused] != n-1 {
		t.Errorf("losers got %v, want %d × %s", codes, n-1, api.CodeRefreshTokenReused)
	}
	if fam := f.family(t, winners[0].RefreshToken); fam.Generation != 1 || fam.RevokedAt == nil {
		t.Errorf("family after one winning refresh and %d reuses: generation %d, revoked_at %v", n-1, fam.Generation, fam.RevokedAt)
	}
}

func TestRefreshExpiryIsAbsolute(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t)
	// Refreshing keeps working, but never beyond the first login + refresh TTL.
	for elapsed := time.Duration(0); elapsed+6*time.Hour < refreshTTL; elapsed += 6 * time.Hour {
		f.clock.Advance(6 * time.Hour)
		next, err := f.refresh(tok.RefreshToken)
		if err != nil {
			t.Fatalf("after %s: %v", elapsed+6*time.Hour, err)
		}
		tok = next
	}
	f.clock.Advance(6 * time.Hour) // exactly refreshTTL after issue
	_, err := f.refresh(tok.RefreshToken)
	wantCode(t, err, api.CodeTokenExpired)
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t)
	c, err := f.verifier.Verify(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		req  session.RevokeRequest
	}{
		{"empty", session.RevokeRequest{}},
		{"jti without exp", session.RevokeRequest{JTI: c.ID}},
		{"malformed jti", session.RevokeRequest{JTI: "a.*", ExpiresAt: 1}},
		{"malformed sid", session.RevokeRequest{SessionID: "{" + c.SessionID + "}"}},
		{"malformed sub", session.RevokeRequest{SessionID: c.SessionID, Subject: "a.b"}},
		{"malformed user_id", session.RevokeRequest{UserID: "user.*"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Revoke(ctx, tc.req)
			wantCode(t, err, api.CodeInvalidRequest)
		})
	}

	req := session.RevokeRequest{JTI: c.ID, ExpiresAt: c.ExpiresAt.Unix(), SessionID: c.SessionID, Subject: c.Subject}
	for i := range 2 { // idempotent
		if _, err := f.svc.Revoke(ctx, req); err != nil {
			t.Fatalf("revoke #%d: %v", i+1, err)
		}
	}
	now := f.clock.Now().Unix()
	wantRevocation(t, f.buckets, session.RevokedJTIKey(c.ID), session.Revocation{At: now, Exp: c.ExpiresAt.Unix()})
	wantRevocation(t, f.buckets, session.RevokedSIDKey(c.SessionID), session.Revocation{At: now, Exp: now + int64(accessTTL/time.Second)})
	_, err = f.refresh(tok.RefreshToken)
	wantCode(t, err, api.CodeTokenRevoked)

	// Unknown family: nothing to do, not an error.
	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{SessionID: tokens.NewFamilyID()}); err != nil {
		t.Fatalf("revoke unknown sid: %v", err)
	}
}

func TestRevokeSIDFindsFamily(t *testing.T) {
	tests := []struct {
		name string
		sub  func(c *jwtverify.Claims) string
	}{
		{"with sub", func(c *jwtverify.Claims) string { return c.Subject }},
		{"without sub (scan)", func(*jwtverify.Claims) string { return "" }},
		{"wrong sub (scan)", func(*jwtverify.Claims) string { return "someone-else" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok := f.issue(t)
			other := f.issue(t) // same user, another session: stays alive
			c, _ := f.verifier.Verify(tok.AccessToken)
			if _, err := f.svc.Revoke(context.Background(), session.RevokeRequest{SessionID: c.SessionID, Subject: tc.sub(c)}); err != nil {
				t.Fatal(err)
			}
			_, err := f.refresh(tok.RefreshToken)
			wantCode(t, err, api.CodeTokenRevoked)
			if _, err := f.refresh(other.RefreshToken); err != nil {
				t.Fatalf("another session of the user: %v", err)
			}
		})
	}
}

func TestRevokeUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const alice, bob = "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	var aliceTokens []session.Tokens
	for range 3 {
		aliceTokens = append(aliceTokens, f.issueFor(t, alice))
	}
	// One of alice's families has moved on by a refresh: still hers.
	refreshed, err := f.refresh(aliceTokens[2].RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	aliceTokens[2] = refreshed
	bobTokens := f.issueFor(t, bob)

	for i := range 2 { // idempotent
		if _, err := f.svc.Revoke(ctx, session.RevokeRequest{UserID: alice}); err != nil {
			t.Fatalf("revoke #%d: %v", i+1, err)
		}
	}
	at := f.clock.Now().Unix()
	wantRevocation(t, f.buckets, session.RevokedUserKey(alice), session.Revocation{At: at, Exp: at + int64(accessTTL/time.Second)})
	for i, tok := range aliceTokens {
		t.Run(fmt.Sprint("alice family ", i), func(t *testing.T) {
			_, err := f.refresh(tok.RefreshToken)
			wantCode(t, err, api.CodeTokenRevoked)
			if fam := f.family(t, tok.RefreshToken); fam.RevokedAt == nil {
				t.Error("family not marked revoked")
			}
		})
	}
	if _, err := f.refresh(bobTokens.RefreshToken); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
	if _, err := f.buckets.Revoked.Get(ctx, session.RevokedUserKey(bob)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("bob has a user revocation: %v", err)
	}
	// A later login (re-enabled account) works again, once the second
	// after the cut-off has passed.
	f.clock.Advance(2 * time.Second)
	if _, err := f.refresh(f.issueFor(t, alice).RefreshToken); err != nil {
		t.Fatalf("login after the revocation: %v", err)
	}
}

// A family created while its user was being revoked (after the revoke listed
// the families, so it is not marked) dies at its first refresh, for as long
// as it could be refreshed at all: the cut-off outlives the revoked bucket's
// user key (one access TTL).
func TestRevokeUserRacingLogin(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration // between the revocation and the refresh
	}{
		{"at once", 0},
		{"after the user key aged out of the revoked bucket", accessTTL + time.Hour},
		{"just before the family expires", refreshTTL - time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			const user = "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09"
			late := f.issueFor(t, user) // created in the second of the cut-off
			// The revocation, as another replica wrote it while this family
			// was being created: the keys, but the family was not marked.
			at := f.clock.Now()
			if err := kvstate.NewRevocations(f.buckets.Revoked, accessTTL).RevokeUser(ctx, user, at); err != nil {
				t.Fatal(err)
			}
			if err := kvstate.NewFamilies(f.buckets.Sessions).SetUserCutoff(ctx, user, at); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 5*time.Second, "the user's cut-off in the watched view", func() bool { _, ok := f.svc.UserRevocations.Cutoff(user, at); return ok })
			f.clock.Advance(tc.after)
			_, err := f.refresh(late.RefreshToken)
			wantCode(t, err, api.CodeTokenRevoked)
			if fam := f.family(t, late.RefreshToken); fam.RevokedAt == nil {
				t.Error("family not marked revoked")
			}
		})
	}
}

// A login that reaches Issue within a second of its user's revocation (a
// disable racing the login) gets no tokens; a later one does.
func TestIssueRightAfterRevokeUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const user = "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09"
	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{UserID: user}); err != nil {
		t.Fatal(err)
	}
	// Another replica learns the cut-off from its watch, not from Record.
	other := newFixtureOn(t, f.js, f.buckets, f.clock)
	poll.Until(t, 5*time.Second, "the cut-off in the other copy's view", func() bool { _, ok := other.svc.UserRevocations.Cutoff(user, f.clock.Now()); return ok })
	req := session.IssueRequest{UserID: user, Kind: api.KindPassword}
	steps := []struct {
		name    string
		advance time.Duration
		want    api.Code
	}{
		{"same second", 0, api.CodeTokenRevoked},
		{"next second", time.Second, api.CodeTokenRevoked},
		{"two seconds later", time.Second, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			f.clock.Advance(st.advance)
			for name, svc := range map[string]*Service{"revoking replica": f.svc, "other replica": other.svc} {
				_, err := svc.Issue(ctx, req)
				if got := api.CodeOf(err); err != nil && got != st.want || err == nil && st.want != "" {
					t.Errorf("%s: Issue = %v, want %q", name, err, st.want)
				}
			}
		})
	}
	// The cut-off is in the sessions bucket, under a key no family listing
	// of any user matches.
	e, err := f.buckets.Sessions.Get(ctx, kvstate.UserCutoffKey(user))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := session.DecodeRevocation(e.Value()); err != nil || r.At == 0 {
		t.Fatalf("cut-off %s (%v)", e.Value(), err)
	}
}

func TestReuseWritesSIDKey(t *testing.T) {
	f := newFixture(t)
	first := f.issue(t)
	c, _ := f.verifier.Verify(first.AccessToken)
	if _, err := f.refresh(first.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.buckets.Revoked.Get(context.Background(), session.RevokedSIDKey(c.SessionID)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("sid key before any reuse: %v", err)
	}
	f.clock.Advance(time.Minute)
	_, err := f.refresh(first.RefreshToken)
	wantCode(t, err, api.CodeRefreshTokenReused)
	at := f.clock.Now().Unix()
	wantRevocation(t, f.buckets, session.RevokedSIDKey(c.SessionID), session.Revocation{At: at, Exp: at + int64(accessTTL/time.Second)})
}

func wantRevocation(t *testing.T, b *kvstate.Buckets, key string, want session.Revocation) {
	t.Helper()
	e, err := b.Revoked.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("%s not in KV: %v", key, err)
	}
	got, err := session.DecodeRevocation(e.Value())
	if err != nil || got != want {
		t.Fatalf("%s = %s (%v), want %+v", key, e.Value(), err, want)
	}
}

func TestStoredFamilyHoldsNoToken(t *testing.T) {
	f := newFixture(t)
	first := f.issue(t)
	second, err := f.refresh(first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := tokens.ParseRefreshToken(second.RefreshToken)
	e, err := f.buckets.Sessions.Get(context.Background(), rt.UserID+"."+rt.FamilyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{first.RefreshToken, second.RefreshToken} {
		secret := tok[strings.LastIndex(tok, ".")+1:]
		if strings.Contains(string(e.Value()), secret) {
			t.Fatalf("KV value holds a refresh token: %s", e.Value())
		}
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"user_id", "kind", "appid", "token_hash", "generation", "mac_key", "created_at", "expires_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("family JSON lacks %q: %s", k, e.Value())
		}
	}
}

// TestFamiliesPerUserCapped: one user's logins keep at most MaxFamilies
// refresh families (plus the logins since the last check, fewer than
// TrimEvery): the oldest go, their refresh tokens stop working and their
// sids are revoked (access tokens), the newest keep working, and other
// users are untouched.
func TestFamiliesPerUserCapped(t *testing.T) {
	f := newFixture(t)
	f.svc.MaxFamilies, f.svc.TrimEvery = 3, 2
	other := f.issueFor(t, "user-2")
	var toks []session.Tokens
	for range 9 {
		f.clock.Advance(time.Second) // the families' ages order them
		toks = append(toks, f.issueFor(t, "user-1"))
	}
	fams, err := f.svc.Families.ListUser(context.Background(), "user-1")
	if err != nil {
		t.Fatal(err)
	}
	// Trimmed to 3 at the 8th login; the 9th came after.
	if len(fams) != 4 {
		t.Fatalf("%d families after 9 logins, want 4 (3 kept at the last check, 1 since)", len(fams))
	}
	for i, tok := range toks {
		c, err := f.verifier.Verify(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		_, revokedErr := f.buckets.Revoked.Get(context.Background(), session.RevokedSIDKey(c.SessionID))
		_, err = f.refresh(tok.RefreshToken)
		if i >= 5 { // kept
			if err != nil {
				t.Errorf("login %d (kept): refresh: %v", i+1, err)
			}
			if !errors.Is(revokedErr, jetstream.ErrKeyNotFound) {
				t.Errorf("login %d (kept): its sid is revoked (%v)", i+1, revokedErr)
			}
			continue
		}
		wantCode(t, err, api.CodeTokenInvalid) // trimmed
		// Its access tokens end too, as at a logout.
		if revokedErr != nil {
			t.Errorf("login %d (trimmed): its sid is not revoked: %v", i+1, revokedErr)
		}
	}
	if _, err := f.refresh(other.RefreshToken); err != nil {
		t.Errorf("another user's session: %v", err)
	}
}

// TestTrimEveryFollowsTheCap: the check runs often enough that a user
// exceeds a small cap by little (every login for a cap of 1), and at most
// every MaxTrimEvery logins for a large one.
func TestTrimEveryFollowsTheCap(t *testing.T) {
	for _, tc := range []struct{ max, want int }{{0, 16}, {1, 1}, {6, 1}, {12, 2}, {100, 16}, {10000, 16}} {
		if got := New(Deps{MaxFamilies: tc.max}).TrimEvery; got != tc.want {
			t.Errorf("MaxFamilies %d: TrimEvery %d, want %d", tc.max, got, tc.want)
		}
	}
	if got := New(Deps{MaxFamilies: 100, TrimEvery: 3}).TrimEvery; got != 3 {
		t.Errorf("an explicit TrimEvery became %d", got)
	}
}
