package sessionsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/jssetup"
	"github.com/wxlogin/wxlogin/shared/jwtverify"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// DefaultActivationDelay is how long a rotated-in key is published before it
// signs: verifiers (the gateway refreshes its key set every 30 s) must know a
// key before they meet a token signed with it.
const DefaultActivationDelay = time.Minute

// RotateKey adds a new generated signing key to the keys bucket and makes it
// the current one; running replicas pick it up without a restart and start
// signing with it after activateAfter. It returns the new kid. Keys retired
// long enough ago that no token of theirs can be alive are deleted.
func RotateKey(ctx context.Context, cfg Config, log *slog.Logger, activateAfter time.Duration) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	switch {
	case cfg.JWTAlg == jwtverify.AlgHS256:
		return "", errors.New("WXLOGIN_JWT_ALG: rotate-key rotates generated EdDSA keys; with HS256 change WXLOGIN_JWT_SECRET instead")
	case cfg.JWTKeyFile != "":
		return "", errors.New("WXLOGIN_JWT_KEY_FILE: is set, so keys come from the file; rotate by replacing it (older keys may follow the new one in the file to stay published)")
	case activateAfter < 0:
		return "", errors.New("activation delay must not be negative")
	}
	nc, err := connect(cfg, "wxlogin-session-rotate-key", false, log)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := kvstate.OpenKeys(ctx, js, cfg.NATSReplicas)
	if err != nil {
		return "", jssetup.ReplicasError(err, cfg.NATSReplicas)
	}
	now := time.Now()
	kid, err := tokens.RotateKV(ctx, kv, keyRetention(cfg), activateAfter, now)
	if err != nil {
		return kid, err
	}
	log.Info("signing key rotated", "kid", kid, "signs_from", now.Add(activateAfter).UTC())
	return kid, nil
}
