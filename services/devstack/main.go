// Command devstack runs all of wxlogin in one process for development and
// demos: an embedded NATS server with JetStream, the fake WeChat, identity,
// session and the gateway, and the webhooks service when
// WXLOGIN_WEBHOOKS_FILE names endpoints. It needs only a reachable
// PostgreSQL; it creates and migrates the database itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	opts, err := optionsFromEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel}))
	st, err := Start(ctx, opts, log)
	if err != nil {
		return err
	}
	fmt.Print(st.Banner())
	<-ctx.Done()
	log.Info("shutting down")
	if err := st.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
