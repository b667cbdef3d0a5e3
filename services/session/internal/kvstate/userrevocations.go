package kvstate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/kvwatch"
)

// userCutoffPrefix starts the keys of user cut-offs in the sessions bucket:
// "cutoff.user.<user_id>". Three tokens, so neither a user's family listing
// ("<user_id>.*") nor an owner scan ("*.<family_id>"), both two tokens, can
// ever match one, whatever the ids.
const userCutoffPrefix = "cutoff.user."

// UserCutoffKey is the sessions bucket key of a user's cut-off.
func UserCutoffKey(userID string) string { return userCutoffPrefix + userID }

// SetUserCutoff records that every family of the user created at or before
// at is revoked. It lives in the sessions bucket, whose TTL is the refresh
// TTL: as long as any such family could still be refreshed (the revoked
// bucket keeps its user keys only one access TTL).
func (f *Families) SetUserCutoff(ctx context.Context, userID string, at time.Time) error {
	data, err := json.Marshal(session.Revocation{At: at.Unix()})
	if err != nil {
		return err
	}
	if _, err := f.kv.Put(ctx, UserCutoffKey(userID), data); err != nil {
		return fmt.Errorf("store user cut-off: %w", err)
	}
	return nil
}

// UserRevocations is a local, watched copy of the user cut-offs in the
// sessions bucket. Issue, Refresh and QR consume consult it so a family
// created while its user was being revoked (after the revoke listed the
// user's families) still dies: a refresh then costs no extra round trip.
// The watch is shared/kvwatch's: it outlives NATS restarts and a bucket
// deleted and re-created.
type UserRevocations struct {
	log       *slog.Logger
	retention time.Duration
	stop      context.CancelFunc
	done      chan struct{}
	stopOnce  sync.Once

	loaded   chan struct{} // closed by the first load
	loadOnce sync.Once

	mu  sync.RWMutex
	cut map[string]int64 // user id -> revoked at (unix seconds)
	// next collects a (re)started watch's initial values; it replaces cut
	// once they are all in, so cut-offs deleted while no watch ran are
	// forgotten. nil while no load is in progress.
	next map[string]int64
}

// watchCheckEvery is how often the watch checks for its bucket having been
// re-created (kvwatch's default when zero); tests shorten it.
var watchCheckEvery time.Duration

// WatchUserRevocations loads the user cut-offs of the sessions bucket kv,
// watched through js, and keeps following them until Stop. It returns once
// the current values are loaded. Entries older than retention (the bucket
// TTL, the refresh TTL) are ignored: the bucket has dropped them too.
func WatchUserRevocations(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, retention time.Duration, log *slog.Logger) (*UserRevocations, error) {
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	u := &UserRevocations{log: log, retention: retention, stop: stop, done: make(chan struct{}),
		loaded: make(chan struct{}), cut: map[string]int64{}}
	go func() {
		defer close(u.done)
		opts := kvwatch.Options{Keys: userCutoffPrefix + "*", CheckEvery: watchCheckEvery}
		kvwatch.Run(wctx, kvwatch.NewBucket(js, kv.Bucket()), opts, (*cutoffHandler)(u), log)
	}()
	select {
	case <-u.loaded:
		return u, nil
	case <-ctx.Done():
		u.Stop()
		return nil, fmt.Errorf("watch user revocations: initial values: %w", ctx.Err())
	}
}

// cutoffHandler feeds the watch into UserRevocations.
type cutoffHandler UserRevocations

func (h *cutoffHandler) Begin() {
	u := (*UserRevocations)(h)
	u.mu.Lock()
	u.next = map[string]int64{}
	u.mu.Unlock()
}

func (h *cutoffHandler) Entry(e jetstream.KeyValueEntry) {
	u := (*UserRevocations)(h)
	userID, ok := strings.CutPrefix(e.Key(), userCutoffPrefix)
	if !ok {
		return
	}
	var at int64
	if e.Operation() == jetstream.KeyValuePut {
		r, err := session.DecodeRevocation(e.Value())
		if err != nil {
			u.log.Warn("undecodable user revocation ignored", "user_id", userID, "error", err)
			return
		}
		at = r.At
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, m := range []map[string]int64{u.cut, u.next} {
		switch {
		case m == nil:
		case e.Operation() == jetstream.KeyValuePut:
			m[userID] = at
		default:
			delete(m, userID)
		}
	}
}

func (h *cutoffHandler) Loaded() {
	u := (*UserRevocations)(h)
	u.mu.Lock()
	if u.next != nil {
		u.cut, u.next = u.next, nil
	}
	u.mu.Unlock()
	u.loadOnce.Do(func() { close(u.loaded) })
}

// Cutoff returns when the user's tokens were last revoked in bulk (unix
// seconds): a family created at or before it is revoked.
func (u *UserRevocations) Cutoff(userID string, now time.Time) (int64, bool) {
	u.mu.RLock()
	at, ok := u.cut[userID]
	u.mu.RUnlock()
	if !ok {
		return 0, false
	}
	if now.Unix()-at > int64(u.retention/time.Second) {
		// Aged out of the bucket without a marker: forget it here too.
		u.mu.Lock()
		if u.cut[userID] == at {
			delete(u.cut, userID)
		}
		u.mu.Unlock()
		return 0, false
	}
	return at, true
}

// Record notes a revocation this replica has just written, so its own next
// refresh sees it before the watch delivers it (also into a load in
// progress, whose initial values may predate the write).
func (u *UserRevocations) Record(userID string, at int64) {
	u.mu.Lock()
	for _, m := range []map[string]int64{u.cut, u.next} {
		if m != nil && at > m[userID] {
			m[userID] = at
		}
	}
	u.mu.Unlock()
}

// Stop ends the watch and waits for its goroutine. Calling it again is a no-op.
func (u *UserRevocations) Stop() {
	u.stopOnce.Do(func() {
		u.stop()
		<-u.done
	})
}
