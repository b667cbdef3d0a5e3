// Command webhooks delivers wxlogin's events to HTTP endpoints as signed
// Standard Webhooks (see docs/webhooks.md).
//
//	webhooks                          serve (configuration from WXLOGIN_* variables)
//	webhooks replay [-endpoint NAME]  deliver the dead letters again, deleting each delivered
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webhooks:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := webhooksvc.ConfigFromEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("svc", "webhooks")
	if len(args) == 0 {
		return webhooksvc.Run(ctx, cfg, log)
	}
	switch args[0] {
	case "replay":
		fs := flag.NewFlagSet("replay", flag.ContinueOnError)
		fs.SetOutput(stderr)
		endpoint := fs.String("endpoint", "", "replay only this endpoint's dead letters (its name in WXLOGIN_WEBHOOKS_FILE)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return errors.New("usage: webhooks replay [-endpoint NAME]")
		}
		return webhooksvc.Replay(ctx, cfg, *endpoint, stdout, log)
	default:
		return errors.New("usage: webhooks [replay [-endpoint NAME]]")
	}
}
