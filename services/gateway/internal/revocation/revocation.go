// Package revocation is the gateway's local view of revoked access tokens.
// The session service writes revocations to KV bucket wxlogin_revoked; the
// gateway watches the whole bucket and keeps the entries in memory, so
// checking a token costs no round trip:
//
//	jti.<jti>  that access token is revoked (logout)
//	sid.<sid>  every access token of that refresh family is revoked
//	user.<uid> every access token of that user issued at or before "at"
//
// Keys and values (JSON {"at": unix seconds, "exp": unix seconds}) are
// shared/api/session's. The bucket's TTL removes entries without telling
// watchers, so entries are also dropped here once every token they could
// match has expired: at the value's exp, which the session service sets
// from its own token lifetime; only a value without one (an older writer)
// is aged by this gateway's access TTL.
package revocation

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/kvwatch"
)

// slack covers the clock skew the verifier tolerates on exp: an entry is
// kept that much longer than the tokens it matches.
const slack = jwtverify.MaxLeeway

// pruneEvery is how often forgotten entries are swept from memory.
const pruneEvery = time.Minute

// DefaultMaxStale is the default of New's maxStale (WXLOGIN_REVOCATION_MAX_STALE).
const DefaultMaxStale = 5 * time.Second

// entry is one revocation in memory.
type entry struct {
	at    int64     // unix seconds; user entries match tokens issued at or before it
	until time.Time // after it no live token can match
}

// Set is the local view. It is safe for concurrent use.
type Set struct {
	accessTTL time.Duration
	log       *slog.Logger
	now       func() time.Time
	// checkEvery is kvwatch's bucket check interval (its default when zero).
	checkEvery time.Duration
	// maxStale is how long the watch may be unhealthy (kvwatch.Health)
	// before Check stops trusting the view.
	maxStale time.Duration
	health   *kvwatch.Health

	loaded atomic.Bool

	mu      sync.RWMutex
	entries map[string]entry // by KV key
	// next collects a (re)started watch's initial values; it replaces
	// entries once they are all in, so keys deleted while no watch ran are
	// forgotten. nil while no load is in progress.
	next map[string]entry
	// local are revocations this gateway made itself (logout, disable,
	// revoke-all, a disabled user's refresh), effective before the watch
	// delivers the session service's write.
	local map[string]entry
}

// New returns an empty Set; Run fills it. accessTTL is the longest lifetime
// of an access token (WXLOGIN_ACCESS_TTL); maxStale how long the view is
// trusted while its watch is unhealthy (DefaultMaxStale when not positive).
func New(accessTTL, maxStale time.Duration, log *slog.Logger) *Set {
	if maxStale <= 0 {
		maxStale = DefaultMaxStale
	}
	s := &Set{
		accessTTL: accessTTL,
		maxStale:  maxStale,
		log:       log,
		now:       time.Now,
		entries:   map[string]entry{},
		local:     map[string]entry{},
	}
	// Through s.now, which tests replace.
	s.health = kvwatch.NewHealth(func() time.Time { return s.now() })
	return s
}

// Run watches the revocation bucket until ctx ends. The bucket is the
// session service's: Run waits for it to exist and re-creates the watch if
// it breaks.
func (s *Set) Run(ctx context.Context, js jetstream.JetStream) {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pruneEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.prune()
			}
		}
	})
	kvwatch.Run(ctx, kvwatch.NewBucket(js, session.BucketRevoked), kvwatch.Options{CheckEvery: s.checkEvery, Health: s.health}, (*handler)(s), s.log)
	wg.Wait()
}

// Loaded reports whether the bucket's content has been read once. Until
// then no token can be checked.
func (s *Set) Loaded() bool { return s.loaded.Load() }

// Stale reports whether the view is not to be trusted: never loaded, or its
// watch unhealthy (disconnected, bucket gone, lagging) for longer than
// maxStale. A revocation written meanwhile could be missing from it.
func (s *Set) Stale() bool {
	return !s.Loaded() || s.health.UnhealthyFor() > s.maxStale
}

// Revoked reports whether the token with these (verified) claims has been
// revoked: by its jti, by its refresh family, or by a revocation of its user
// at or after it was issued.
func (s *Set) Revoked(c *jwtverify.Claims) bool {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.matchLocked(s.entries, c, now) || s.matchLocked(s.local, c, now)
}

func (s *Set) matchLocked(m map[string]entry, c *jwtverify.Claims, now time.Time) bool {
	if len(m) == 0 {
		return false
	}
	live := func(key string) (entry, bool) {
		e, ok := m[key]
		return e, ok && now.Before(e.until)
	}
	if c.ID != "" {
		if _, ok := live(session.RevokedJTIKey(c.ID)); ok {
			return true
		}
	}
	if c.SessionID != "" {
		if _, ok := live(session.RevokedSIDKey(c.SessionID)); ok {
			return true
		}
	}
	if c.Subject != "" {
		if e, ok := live(session.RevokedUserKey(c.Subject)); ok && c.IssuedAt.Unix() <= e.at {
			return true
		}
	}
	return false
}

var (
	errNotLoaded = &api.Error{Code: api.CodeServiceUnavailable, Message: "the revocation list is not loaded yet; try again shortly"}
	errStale     = &api.Error{Code: api.CodeServiceUnavailable, Message: "the revocation list is out of date; try again shortly"}
	errRevoked   = &api.Error{Code: api.CodeTokenRevoked, Message: "the access token has been revoked"}
)

// Check is Revoked as an error for the Bearer middleware: token_revoked,
// or service_unavailable until the list is loaded and while it is stale (a
// token is never let through unchecked, nor checked against an old view).
func (s *Set) Check(c *jwtverify.Claims) error {
	if !s.Loaded() {
		return errNotLoaded
	}
	if s.Stale() {
		return errStale
	}
	if s.Revoked(c) {
		return errRevoked
	}
	return nil
}

// Add revokes the token (its jti and its refresh family) here at once. The
// session service has written the same to KV, which every gateway learns
// through its watch a moment later; this closes that moment on the gateway
// that handled the logout.
func (s *Set) Add(c *jwtverify.Claims) {
	now := s.now()
	until := c.ExpiresAt.Add(slack)
	if c.ExpiresAt.IsZero() {
		until = now.Add(s.accessTTL + slack)
	}
	e := entry{at: now.Unix(), until: until}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID != "" {
		s.local[session.RevokedJTIKey(c.ID)] = e
	}
	if c.SessionID != "" {
		// Tokens of the family issued later must die too (refresh is
		// refused from now on): keep the family for a whole access TTL.
		s.local[session.RevokedSIDKey(c.SessionID)] = entry{at: e.at, until: now.Add(s.accessTTL + slack)}
	}
}

// AddUser revokes here, at once, every access token of the user issued up
// to at, as the session service's user revocation does in KV (disable,
// revoke all sessions). at is when the caller began to revoke, before it
// asked the session service: session's own cut-off comes later, so a login
// after it is never refused here (tokens issued in between are caught when
// the watch delivers session's cut-off). As with Add, the other gateways
// learn it through their watch; this closes the moment on the gateway that
// made the change.
func (s *Set) AddUser(userID string, at time.Time) {
	now := s.now()
	key := session.RevokedUserKey(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.local[key]; ok && e.at > at.Unix() {
		return // an earlier call revoked up to a later moment
	}
	s.local[key] = entry{at: at.Unix(), until: now.Add(s.accessTTL + slack)}
}

// prune forgets entries no live token can match any more.
func (s *Set) prune() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]entry{s.entries, s.next, s.local} {
		for k, e := range m {
			if !now.Before(e.until) {
				delete(m, k)
			}
		}
	}
}

// Len is the number of revocations held (for tests and metrics).
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries) + len(s.local)
}

// decode turns a KV entry into a revocation; ok is false for keys that
// are not part of the scheme.
func (s *Set) decode(e jetstream.KeyValueEntry) (entry, bool) {
	key := e.Key()
	_, _, ok := session.ParseRevokedKey(key)
	if !ok {
		s.log.Debug("ignoring an unknown key in the revocation bucket", "key", key)
		return entry{}, false
	}
	v, err := session.DecodeRevocation(e.Value())
	if err != nil || v.At <= 0 {
		// Fail closed: a revocation we cannot read still revokes, as of
		// when it was written.
		s.log.Warn("revocation entry without a readable time; using its write time", "key", key, "revision", e.Revision())
		v = session.Revocation{At: e.Created().Unix()}
	}
	at := time.Unix(v.At, 0)
	// An entry rewritten later (Update renews it) is kept from the later
	// write on.
	from := at
	if c := e.Created(); c.After(from) {
		from = c
	}
	until := from.Add(s.accessTTL + slack)
	if v.Exp > 0 {
		// The writer knows how long its tokens live; a gateway whose
		// WXLOGIN_ACCESS_TTL is shorter (or unset) must not forget early.
		until = time.Unix(v.Exp, 0).Add(slack)
	}
	return entry{at: v.At, until: until}, true
}

// handler feeds the watch into the Set.
type handler Set

func (h *handler) Begin() {
	s := (*Set)(h)
	s.mu.Lock()
	s.next = map[string]entry{}
	s.mu.Unlock()
}

func (h *handler) Entry(e jetstream.KeyValueEntry) {
	s := (*Set)(h)
	op := e.Operation()
	var rev entry
	if op == jetstream.KeyValuePut {
		var ok bool
		if rev, ok = s.decode(e); !ok {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]entry{s.entries, s.next} {
		if m == nil {
			continue
		}
		if op == jetstream.KeyValuePut {
			m[e.Key()] = rev
		} else {
			delete(m, e.Key())
		}
	}
}

func (h *handler) Loaded() {
	s := (*Set)(h)
	s.mu.Lock()
	if s.next != nil {
		s.entries, s.next = s.next, nil
	}
	n := len(s.entries)
	s.mu.Unlock()
	if !s.loaded.Swap(true) {
		s.log.Info("revocation list loaded", "entries", n)
	}
}
