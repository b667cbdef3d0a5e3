package kvstate

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Byte limits of the buckets. Every bucket has a cap (MaxBytes), so that
// nobody can fill NATS's disk through it: QR creation is unauthenticated.
// KV buckets discard new messages when full (DiscardNew): a full bucket
// refuses new keys (JetStream's "maximum bytes exceeded", answered as 503
// service_unavailable by shared/natsrpc). A write to an existing key (with
// History 1 it replaces the key's message) still succeeds when full only if
// the value does not grow: a QR ticket grows when it is completed, so new
// tickets stop at qrCreateFill of the cap (Tickets.Room), leaving the rest
// for the tickets already in it.
//
// A default cap is sized as TTL × rate × record: how many records are alive
// at once at a sustained creation rate, times the largest usual record with
// its KV overhead (subject, headers). MaxValueSize bounds a single value
// well above the largest legitimate one.
const (
	// QR tickets: 100 completed tickets a second, 1 KiB each (a ticket with
	// its user and KV overhead). 5 minutes (the default QR TTL): 29 MiB, of
	// which new tickets may fill a quarter (qrCreateFill).
	qrRate         = 100
	qrRecord       = 1 << 10
	qrMaxValueSize = 32 << 10 // a completed ticket carries the user
	// Refresh families (and user cut-offs): 0.1 new logins a second kept
	// for the refresh TTL, 4 KiB each (a family with its spent hashes).
	// 720 hours (the default): 1 GiB. WXLOGIN_SESSIONS_MAX_BYTES raises it.
	sessionsRate         = 0.1
	sessionsRecord       = 4 << 10
	sessionsMaxValueSize = 16 << 10
	// Revocations: 10 a second for the revoked TTL (access TTL + 1m), 256
	// bytes each ({"at":…,"exp":…} under jti./sid./user. keys). 2h: 18 MiB.
	revokedRate         = 10
	revokedRecord       = 256
	revokedMaxValueSize = 1 << 10
	// In-WeChat login states and codes (BucketOA, TTL session.OAStateTTL):
	// 50 logins a second, 2 KiB each (a state with a long redirect_uri and
	// KV overhead; its code is smaller). 10 minutes: 59 MiB, of which new
	// states may fill half (oaStartFill), the rest is for their codes.
	oaRate         = 50
	oaRecord       = 2 << 10
	oaMaxValueSize = 16 << 10 // a code carries the user
	oaStartFill    = 0.5
	// Signing keys: a handful, kept until retired.
	keysMaxBytes     = 1 << 20
	keysMaxValueSize = 64 << 10
	// minBucketBytes is the smallest default cap, for short TTLs.
	minBucketBytes = 1 << 20
	// qrCreateFill is the share of the QR bucket's cap new tickets may
	// fill. A pending ticket is ~350 bytes with overhead; completing it adds
	// the user (a profile with an identity: ~600 bytes more). Stopping new
	// tickets at a quarter of the cap leaves room for every ticket in the
	// bucket to grow fourfold, so a flood of new tickets never keeps the
	// ones already shown from completing.
	qrCreateFill = 0.25
)

// ErrFull: the bucket has no room for a new key; callers answer 503.
var ErrFull = errors.New("kvstate: bucket full")

// Room is nil while the QR bucket has room for a new ticket, ErrFull once
// qrCreateFill of its cap is used. It costs one stream info request.
func (t *Tickets) Room(ctx context.Context) error { return t.room(ctx, qrCreateFill) }

// Room is nil while the OA bucket has room for a new state, ErrFull once
// oaStartFill of its cap is used: starting is unauthenticated, and the
// states already in it must still become codes.
func (s *OAStates) Room(ctx context.Context) error { return s.room(ctx, oaStartFill) }

// oaCap is the OA bucket's cap, sized from its TTL.
func oaCap() int64 { return sized(session.OAStateTTL, oaRate, oaRecord) }

// sized is the default cap of a bucket whose records live ttl, created at
// perSecond and about record bytes each.
func sized(ttl time.Duration, perSecond float64, record int64) int64 {
	n := math.Ceil(ttl.Seconds() * perSecond)
	return max(int64(n)*record, minBucketBytes)
}

// qrCap is the QR bucket's cap: t.QRMaxBytes, or sized from the QR TTL.
func (t TTLs) qrCap() int64 {
	if t.QRMaxBytes > 0 {
		return t.QRMaxBytes
	}
	return sized(t.QR, qrRate, qrRecord)
}

// sessionsCap is the sessions bucket's cap: t.SessionsMaxBytes, or sized
// from the refresh TTL.
func (t TTLs) sessionsCap() int64 {
	if t.SessionsMaxBytes > 0 {
		return t.SessionsMaxBytes
	}
	return sized(t.Refresh, sessionsRate, sessionsRecord)
}

// revokedCap is the revoked bucket's cap, sized from its TTL.
func (t TTLs) revokedCap() int64 {
	return sized(t.Revoked(), revokedRate, revokedRecord)
}
