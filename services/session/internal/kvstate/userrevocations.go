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
type UserRevocations struct {
	log       *slog.Logger
	retention time.Duration
	watcher   jetstream.KeyWatcher
	done      chan struct{}
	stopOnce  sync.Once

	mu  sync.RWMutex
	cut map[string]int64 // user id -> revoked at (unix seconds)
}

// WatchUserRevocations loads the user cut-offs of the sessions bucket kv
// and keeps following them until Stop. It returns once the current values
// are loaded. Entries older than retention (the bucket TTL, the refresh
// TTL) are ignored: the bucket has dropped them too.
func WatchUserRevocations(ctx context.Context, kv jetstream.KeyValue, retention time.Duration, log *slog.Logger) (*UserRevocations, error) {
	// The watcher's ordered consumer recreates itself after NATS outages, so
	// one watch lasts for the life of the service.
	w, err := kv.Watch(context.Background(), userCutoffPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("watch user revocations: %w", err)
	}
	u := &UserRevocations{log: log, retention: retention, watcher: w, done: make(chan struct{}), cut: map[string]int64{}}
	loaded := make(chan struct{})
	go u.follow(loaded)
	select {
	case <-loaded:
		return u, nil
	case <-ctx.Done():
		u.Stop()
		return nil, fmt.Errorf("watch user revocations: initial values: %w", ctx.Err())
	}
}

func (u *UserRevocations) follow(loaded chan struct{}) {
	defer close(u.done)
	for e := range u.watcher.Updates() {
		if e == nil { // every current value delivered
			if loaded != nil {
				close(loaded)
				loaded = nil
			}
			continue
		}
		userID, ok := strings.CutPrefix(e.Key(), userCutoffPrefix)
		if !ok {
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			u.mu.Lock()
			delete(u.cut, userID)
			u.mu.Unlock()
			continue
		}
		r, err := session.DecodeRevocation(e.Value())
		if err != nil {
			u.log.Warn("undecodable user revocation ignored", "user_id", userID, "error", err)
			continue
		}
		u.mu.Lock()
		u.cut[userID] = r.At
		u.mu.Unlock()
	}
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
// refresh sees it before the watch delivers it.
func (u *UserRevocations) Record(userID string, at int64) {
	u.mu.Lock()
	if at > u.cut[userID] {
		u.cut[userID] = at
	}
	u.mu.Unlock()
}

// Stop ends the watch and waits for its goroutine. Calling it again is a no-op.
func (u *UserRevocations) Stop() {
	u.stopOnce.Do(func() {
		if err := u.watcher.Stop(); err != nil {
			u.log.Warn("stop user revocation watch", "error", err)
		}
		<-u.done
	})
}
