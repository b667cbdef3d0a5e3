package password

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"
)

func TestHashFormatAndVerify(t *testing.T) {
	h := NewHasher(2)
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(phc) {
		t.Fatalf("hash %q is not the PHC string of our parameters", phc)
	}
	again, _ := h.Hash(ctx, "correct horse battery staple")
	if again == phc {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		name, phc, password string
		ok                  bool
		err                 error
	}{
		{"right password", phc, "correct horse battery staple", true, nil},
		{"wrong password", phc, "correct horse battery stapler", false, nil},
		{"empty password", phc, "", false, nil},
		// The reference implementation's vector:
		// echo -n password | argon2 somesalt -id -t 2 -m 16 -p 4 -l 32 -e
		{"reference vector", "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password", true, nil},
		{"reference vector, wrong password", "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "Password", false, nil},
		{"no hash (unknown user)", "", "password", false, nil},
		{"argon2i", "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password", false, ErrMalformed},
		{"old version", "$argon2id$v=16$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password", false, ErrMalformed},
		{"huge memory", "$argon2id$v=19$m=4194304,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password", false, ErrMalformed},
		{"trailing parameters", "$argon2id$v=19$m=65536,t=2,p=4,x=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password", false, ErrMalformed},
		{"not base64", "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$!!!", "password", false, ErrMalformed},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "password", false, ErrMalformed},
		{"garbage", "x", "x", false, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tc.phc, tc.password)
			if ok != tc.ok || !errors.Is(err, tc.err) {
				t.Errorf("Verify = %v, %v; want %v, %v", ok, err, tc.ok, tc.err)
			}
		})
	}
}

// An unknown user costs what a real one costs, so the answer time does not
// tell whether the username exists.
func TestVerifyWithoutHashDoesTheWork(t *testing.T) {
	h := NewHasher(1)
	ctx := context.Background()
	phc, _ := h.Hash(ctx, "some password")
	measure := func(phc string) time.Duration {
		best := time.Hour
		for range 5 {
			began := time.Now()
			_, _ = h.Verify(ctx, phc, "guess")
			best = min(best, time.Since(began))
		}
		return best
	}
	real, dummy := measure(phc), measure("")
	if dummy < real/2 {
		t.Errorf("verify without a hash took %v, with one %v: the dummy does not do the work", dummy, real)
	}
}

// A caller whose deadline passes while every hashing slot is taken gives up
// instead of piling up 19 MiB hashes.
func TestBusySlotsHonourTheDeadline(t *testing.T) {
	h := NewHasher(2)
	h.sem <- struct{}{}
	h.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash with every slot busy = %v, want the deadline", err)
	}
	if _, err := h.Verify(ctx, "", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify with every slot busy = %v, want the deadline", err)
	}
	<-h.sem
	if _, err := h.Hash(context.Background(), "x"); err != nil {
		t.Errorf("Hash with a free slot: %v", err)
	}
}
