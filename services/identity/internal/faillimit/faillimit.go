// Package faillimit counts failed password attempts per key (a username and
// a client IP) and blocks a key after too many within a window. Keying by
// the pair slows a guesser without letting anyone lock a user out from
// elsewhere. The state is per replica and in memory: a lost count after a
// restart only gives a guesser a few more tries.
package faillimit

import (
	"container/list"
	"sync"
	"time"
)

// Limiter blocks a key after limit failures within window of the first
// one. It holds at most capacity keys, forgetting the least recently failed
// first. It is safe for concurrent use.
type Limiter struct {
	max      int
	window   time.Duration
	capacity int
	now      func() time.Time

	mu    sync.Mutex
	order *list.List // of *entry, most recently failed first
	byKey map[string]*list.Element
}

type entry struct {
	key      string
	first    time.Time // of the current window
	failures int
}

// New returns a Limiter. now may be nil (time.Now).
func New(limit int, window time.Duration, capacity int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{max: limit, window: window, capacity: max(capacity, 1), now: now,
		order: list.New(), byKey: make(map[string]*list.Element)}
}

// Blocked reports whether key has used up its failures, and how long until
// its window ends.
func (l *Limiter) Blocked(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.byKey[key]
	if !ok {
		return 0, false
	}
	e := el.Value.(*entry)
	left := e.first.Add(l.window).Sub(l.now())
	if left <= 0 {
		l.remove(el)
		return 0, false
	}
	return left, e.failures >= l.max
}

// Fail records a failure of key.
func (l *Limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el, ok := l.byKey[key]; ok {
		e := el.Value.(*entry)
		if now.Sub(e.first) >= l.window {
			e.first, e.failures = now, 0
		}
		e.failures++
		l.order.MoveToFront(el)
		return
	}
	for l.order.Len() >= l.capacity {
		l.remove(l.order.Back())
	}
	l.byKey[key] = l.order.PushFront(&entry{key: key, first: now, failures: 1})
}

// Reset forgets key's failures (after a success).
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.byKey[key]; ok {
		l.remove(el)
	}
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

func (l *Limiter) remove(el *list.Element) {
	l.order.Remove(el)
	delete(l.byKey, el.Value.(*entry).key)
}
