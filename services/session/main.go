// Command session is the wxlogin session service: it issues, refreshes and
// revokes tokens and owns the signing keys and KV state.
//
//	session                      serve (configuration from WXLOGIN_* variables)
//	session rotate-key [-delay]  add a new generated signing key, make it current, print its kid
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

	"github.com/wxlogin/wxlogin/services/session/sessionsvc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "session:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := sessionsvc.ConfigFromEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("svc", "session")
	if len(args) == 0 {
		return sessionsvc.Run(ctx, cfg, log)
	}
	switch args[0] {
	case "rotate-key":
		fs := flag.NewFlagSet("rotate-key", flag.ContinueOnError)
		fs.SetOutput(stderr)
		delay := fs.Duration("delay", sessionsvc.DefaultActivationDelay, "how long the new key is published before it signs")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		kid, err := sessionsvc.RotateKey(ctx, cfg, log, *delay)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, kid)
		return err
	default:
		return errors.New("usage: session [rotate-key [-delay 1m]]")
	}
}
