// Package keys holds the gateway's access-token verifier and keeps its keys in
// step with the session service: with EdDSA it fetches the JWK set over NATS
// in the background and re-reads it periodically, because keys rotate; with
// HS256 the shared secret is all there is.
package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// DefaultRefresh is how often the JWK set is re-read once loaded.
const DefaultRefresh = 30 * time.Second

// Backoff bounds for retrying a failed fetch: it doubles from minBackoff up
// to maxBackoff, and starts over after a success.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// fetchTimeout bounds one JWKS request.
const fetchTimeout = 2 * time.Second

// FetchFunc returns the session service's current JWK set.
type FetchFunc func(ctx context.Context) ([]byte, error)

// Keys verifies access tokens. It is safe for concurrent use.
type Keys struct {
	opts    jwtverify.Options
	fetch   FetchFunc // nil for HS256
	refresh time.Duration
	log     *slog.Logger

	verifier atomic.Pointer[jwtverify.Verifier] // nil until the first JWKS arrives
	jwks     atomic.Pointer[[]byte]             // the set the verifier holds, served as is
}

// NewHS256 returns Keys for tokens signed with a shared secret. They are
// ready at once and publish no JWKS.
func NewHS256(secret []byte, opts jwtverify.Options) (*Keys, error) {
	v, err := jwtverify.NewHS256(secret, opts)
	if err != nil {
		return nil, err
	}
	k := &Keys{opts: opts}
	k.verifier.Store(v)
	return k, nil
}

// NewEdDSA returns Keys whose Ed25519 keys come from fetch. They verify
// nothing (service_unavailable) until Run has loaded a set; refresh <= 0
// means DefaultRefresh.
func NewEdDSA(fetch FetchFunc, opts jwtverify.Options, refresh time.Duration, log *slog.Logger) *Keys {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	return &Keys{opts: opts, fetch: fetch, refresh: refresh, log: log}
}

var errNotLoaded = &api.Error{Code: api.CodeServiceUnavailable, Message: "verification keys not loaded yet; try again shortly"}

// Verify checks an access token with the current keys.
func (k *Keys) Verify(token string) (*jwtverify.Claims, error) {
	v := k.verifier.Load()
	if v == nil {
		return nil, errNotLoaded
	}
	return v.Verify(token)
}

// Loaded reports whether tokens can be verified.
func (k *Keys) Loaded() bool { return k.verifier.Load() != nil }

// JWKS returns the JWK set to publish: not_found with HS256 (a secret is
// never published), service_unavailable until the first fetch succeeds.
func (k *Keys) JWKS() ([]byte, error) {
	if k.fetch == nil {
		return nil, &api.Error{Code: api.CodeNotFound, Message: "no public keys: tokens are signed with a shared secret"}
	}
	set := k.jwks.Load()
	if set == nil {
		return nil, errNotLoaded
	}
	return *set, nil
}

// Run keeps the keys fresh until ctx ends: it retries the first fetch with
// backoff, then re-reads the set every refresh interval. A failed refresh
// keeps the keys already loaded. With HS256 it returns at once.
func (k *Keys) Run(ctx context.Context) {
	if k.fetch == nil {
		return
	}
	retry := &backoff.ExponentialBackOff{InitialInterval: minBackoff, Multiplier: 2, MaxInterval: maxBackoff}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := jitter(k.refresh)
		if err := k.load(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = retry.NextBackOff()
			k.log.Warn("cannot load the verification keys from the session service",
				"error", err, "loaded", k.Loaded(), "retry_in", wait)
		} else {
			retry.Reset()
		}
		timer.Reset(wait)
	}
}

// load fetches the set and installs it. Only Run calls it, so installs never race.
func (k *Keys) load(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	set, err := k.fetch(fctx)
	if err != nil {
		return err
	}
	if prev := k.jwks.Load(); prev != nil && string(*prev) == string(set) {
		return nil
	}
	n, err := countEd25519(set)
	if err != nil {
		return err
	}
	if n == 0 {
		// An empty set would make every token fail; most likely the session
		// service runs with HS256 while the gateway expects EdDSA.
		return errors.New("the session service publishes no Ed25519 key: is WXLOGIN_JWT_ALG the same for session and gateway?")
	}
	set = append([]byte(nil), set...)
	if v := k.verifier.Load(); v != nil {
		if err := v.SetJWKS(set); err != nil {
			return err
		}
		k.jwks.Store(&set)
	} else {
		v, err := jwtverify.NewEdDSA(set, k.opts)
		if err != nil {
			return err
		}
		// The set first, so a gateway that verifies also publishes.
		k.jwks.Store(&set)
		k.verifier.Store(v)
	}
	k.log.Info("verification keys loaded", "keys", n)
	return nil
}

func countEd25519(set []byte) (int, error) {
	var s struct {
		Keys []jwtverify.JWK `json:"keys"`
	}
	if err := json.Unmarshal(set, &s); err != nil {
		return 0, fmt.Errorf("decode JWK set: %w", err)
	}
	n := 0
	for _, key := range s.Keys {
		if key.Kty == "OKP" && key.Crv == "Ed25519" {
			n++
		}
	}
	return n, nil
}

// jitter spreads refreshes of many gateways by up to a tenth of d.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}
