// Package ratelimit limits requests per key (the client IP) with token
// buckets (golang.org/x/time/rate) held in a bounded, sharded LRU map, so a
// flood of distinct keys costs bounded memory and an idle key is forgotten.
package ratelimit

import (
	"container/list"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Spec is a token bucket: Rate tokens per second refill a bucket of Burst.
// The zero Spec means no limit.
type Spec struct {
	Rate  rate.Limit
	Burst int
}

// Off reports whether the spec limits nothing.
func (s Spec) Off() bool { return s.Rate <= 0 || s.Burst <= 0 }

// String formats s the way ParseSpec reads it.
func (s Spec) String() string {
	if s.Off() {
		return "off"
	}
	return strconv.FormatFloat(float64(s.Rate), 'f', -1, 64) + "/s,burst=" + strconv.Itoa(s.Burst)
}

var units = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
}

// ParseSpec reads "N/unit[,burst=B]" (unit s, m or h; e.g. "10/s,burst=20",
// "600/m") or "off". Without burst, the bucket holds one unit's worth of
// tokens (N, at least 1).
func ParseSpec(v string) (Spec, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "off" || v == "none" || v == "0" {
		return Spec{}, nil
	}
	ratePart, burstPart, hasBurst := strings.Cut(v, ",")
	num, unit, ok := strings.Cut(strings.TrimSpace(ratePart), "/")
	if !ok {
		return Spec{}, fmt.Errorf("%q: want N/unit[,burst=B] (unit s, m or h) or off", v)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Spec{}, fmt.Errorf("%q: the rate must be a positive number", v)
	}
	per, ok := units[strings.TrimSpace(unit)]
	if !ok {
		return Spec{}, fmt.Errorf("%q: the unit must be s, m or h", v)
	}
	spec := Spec{Rate: rate.Limit(n / per.Seconds()), Burst: max(1, int(math.Ceil(n)))}
	if hasBurst {
		key, val, ok := strings.Cut(strings.TrimSpace(burstPart), "=")
		if !ok || strings.TrimSpace(key) != "burst" {
			return Spec{}, fmt.Errorf("%q: after the comma, want burst=B", v)
		}
		b, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || b < 1 {
			return Spec{}, fmt.Errorf("%q: burst must be a positive integer", v)
		}
		spec.Burst = b
	}
	return spec, nil
}

// shardCount spreads keys over independent locks, so concurrent requests
// from different clients rarely contend.
const shardCount = 32

// DefaultMaxKeys bounds the keys remembered when Options.MaxKeys is zero:
// about 100 bytes each, so ~10 MB at most.
const DefaultMaxKeys = 100_000

// Options tune a Limiter.
type Options struct {
	// MaxKeys bounds the keys remembered (DefaultMaxKeys when zero). Past it
	// the least recently seen key is forgotten, which at worst gives that
	// client a fresh bucket.
	MaxKeys int
	// Now is the clock (time.Now when nil); tests move it by hand.
	Now func() time.Time
}

// Limiter limits events per key. Its methods are safe for concurrent use.
type Limiter struct {
	spec Spec
	now  func() time.Time
	// idle is how long an untouched bucket takes to fill up again; after
	// that it equals a fresh one and can be dropped.
	idle   time.Duration
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*list.Element
	lru   list.List // front = most recently seen; values are *entry
}

type entry struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter for spec; with spec.Off() it allows everything.
func New(spec Spec, o Options) *Limiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	l := &Limiter{spec: spec, now: o.Now, seed: maphash.MakeSeed()}
	if !spec.Off() {
		l.idle = time.Duration(float64(spec.Burst) / float64(spec.Rate) * float64(time.Second))
	}
	perShard := max(1, o.MaxKeys/shardCount)
	for i := range l.shards {
		l.shards[i].max = perShard
		l.shards[i].byKey = make(map[string]*list.Element)
	}
	return l
}

// Spec returns the limit.
func (l *Limiter) Spec() Spec { return l.spec }

// Allow takes a token from key's bucket. When the bucket is empty it takes
// nothing and returns false with the time until a token is there.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.spec.Off() {
		return true, 0
	}
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%shardCount]
	sh.mu.Lock()
	lim := sh.limiter(key, now, l)
	sh.mu.Unlock()

	if lim.AllowN(now, 1) {
		return true, 0
	}
	// A refusal takes no token, so retrying early does not push the next
	// allowed request further out.
	missing := 1 - lim.TokensAt(now)
	return false, max(time.Millisecond, time.Duration(missing/float64(l.spec.Rate)*float64(time.Second)))
}

// limiter finds or adds key's bucket and marks it recently seen; sh.mu held.
func (sh *shard) limiter(key string, now time.Time, l *Limiter) *rate.Limiter {
	if el, ok := sh.byKey[key]; ok {
		e := el.Value.(*entry)
		e.seen = now
		sh.lru.MoveToFront(el)
		return e.lim
	}
	// Forget a few buckets that have been idle long enough to be full
	// again, so memory follows the set of active clients; then make room.
	for range 2 {
		back := sh.lru.Back()
		if back == nil || now.Sub(back.Value.(*entry).seen) < l.idle {
			break
		}
		sh.remove(back)
	}
	for sh.lru.Len() >= sh.max {
		sh.remove(sh.lru.Back())
	}
	e := &entry{key: key, lim: rate.NewLimiter(l.spec.Rate, l.spec.Burst), seen: now}
	sh.byKey[key] = sh.lru.PushFront(e)
	return e.lim
}

func (sh *shard) remove(el *list.Element) {
	sh.lru.Remove(el)
	delete(sh.byKey, el.Value.(*entry).key)
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}

// RetryAfterSeconds rounds a wait up to whole seconds for a Retry-After
// header (at least 1: "0" would invite an immediate retry).
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
