package gatewaysvc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/gateway/internal/httpapi"
	"github.com/wxlogin/wxlogin/services/gateway/internal/qrwatch"
	"github.com/wxlogin/wxlogin/services/gateway/internal/redirecturi"
	"github.com/wxlogin/wxlogin/services/gateway/internal/revocation"
)

// kvViews are the gateway's read-only views of the session service's KV
// buckets: revoked tokens (wxlogin_revoked) and QR tickets (wxlogin_qr).
type kvViews struct {
	js          jetstream.JetStream
	revocations *revocation.Set
	tickets     *qrwatch.Tickets
}

func newKVViews(nc *nats.Conn, cfg Config, log *slog.Logger) (*kvViews, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	return &kvViews{
		js:          js,
		revocations: revocation.New(cfg.AccessTTL, cfg.RevocationMaxStale, log),
		tickets:     qrwatch.New(js, log),
	}, nil
}

// run keeps both watches alive until ctx ends.
func (v *kvViews) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { v.revocations.Run(ctx, v.js) })
	wg.Go(func() { v.tickets.Run(ctx) })
	wg.Wait()
}

// web is the QR login's part of the API options.
func (v *kvViews) web(cfg Config) httpapi.WebOptions {
	redirects, _ := redirecturi.Parse(cfg.RedirectURIs) // Validate has checked them
	return httpapi.WebOptions{PublicURL: cfg.PublicURL, WechatOpenBase: cfg.WechatOpenBase, Tickets: v.tickets,
		RedirectURIs: redirects}
}

// ready adds the revocation list to the readiness checks: until it is
// loaded, and while it is stale, Bearer routes cannot tell a revoked token.
func (v *kvViews) ready(next httpapi.ReadyFunc) httpapi.ReadyFunc {
	return func(ctx context.Context) []string {
		down := next(ctx)
		if v.revocations.Stale() {
			down = append(down, "revocations")
		}
		return down
	}
}
