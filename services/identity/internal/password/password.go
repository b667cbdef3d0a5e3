// Package password hashes and verifies account passwords with argon2id
// (RFC 9106), stored as PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// (OWASP's minimum: 19 MiB, 2 passes, 1 lane; salt and hash in unpadded
// standard base64). Each hash takes tens of milliseconds of CPU and 19 MiB of
// memory, so a Hasher runs at most a fixed number at once: a burst of logins
// queues instead of exhausting memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// The parameters of new hashes.
const (
	Time    = 2
	Memory  = 19 * 1024 // KiB
	Threads = 1
	SaltLen = 16
	KeyLen  = 32
)

// Bounds on the parameters of a stored hash, so that a corrupt or hostile
// row cannot make one verification take gigabytes or minutes.
const (
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
	maxKeyLen  = 128
)

// ErrMalformed is a stored hash that is not an argon2id PHC string we accept.
var ErrMalformed = errors.New("password: malformed hash")

var b64 = base64.RawStdEncoding

// Hasher hashes and verifies passwords, at most a fixed number at once.
type Hasher struct {
	sem   chan struct{}
	dummy string
}

// NewHasher returns a Hasher running at most concurrency hashes at once
// (at least 1).
func NewHasher(concurrency int) *Hasher {
	// The dummy hash has our parameters and a random key nobody knows: a
	// verification against it costs what a real one costs and never matches.
	salt, key := make([]byte, SaltLen), make([]byte, KeyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return &Hasher{
		sem:   make(chan struct{}, max(concurrency, 1)),
		dummy: encode(params{memory: Memory, time: Time, threads: Threads}, salt, key),
	}
}

// Hash returns the PHC string of password with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	p := params{memory: Memory, time: Time, threads: Threads}
	key, err := h.key(ctx, password, salt, p, KeyLen)
	if err != nil {
		return "", err
	}
	return encode(p, salt, key), nil
}

// Verify reports whether password matches the stored hash phc. An empty phc
// (unknown user, or an account without a password) is checked against a
// dummy hash, so the answer takes as long as for a real account, and is
// false. A malformed phc is false with ErrMalformed, after the same work.
func (h *Hasher) Verify(ctx context.Context, phc, password string) (bool, error) {
	stored := phc
	var malformed error
	if stored == "" {
		stored = h.dummy
	}
	p, salt, want, err := decode(stored)
	if err != nil {
		malformed = err
		p, salt, want, _ = decode(h.dummy)
	}
	got, err := h.key(ctx, password, salt, p, uint32(len(want)))
	if err != nil {
		return false, err
	}
	if malformed != nil {
		return false, malformed
	}
	return phc != "" && subtle.ConstantTimeCompare(got, want) == 1, nil
}

// key runs argon2id once a slot is free, or gives up with ctx.
func (h *Hasher) key(ctx context.Context, password string, salt []byte, p params, keyLen uint32) ([]byte, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("password: waiting for a hashing slot: %w", ctx.Err())
	}
	defer func() { <-h.sem }()
	return argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, keyLen), nil
}

type params struct {
	memory  uint32
	time    uint32
	threads uint8
}

func encode(p params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decode(phc string) (params, []byte, []byte, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return params{}, nil, nil, ErrMalformed
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return params{}, nil, nil, ErrMalformed
	}
	var p params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory < 8*uint32(p.threads) || p.memory > maxMemory || p.time < 1 || p.time > maxTime ||
		p.threads < 1 || p.threads > maxThreads ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, p.threads) { // nothing trailing
		return params{}, nil, nil, ErrMalformed
	}
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > maxKeyLen {
		return params{}, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}
