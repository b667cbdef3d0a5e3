// Command identity is the wxlogin identity service.
//
//	identity                       serve (configuration from WXLOGIN_* variables)
//	identity migrate               apply the database migrations and exit
//	identity grant-admin USERNAME  make a user an administrator
//	identity revoke-admin USERNAME take administrator rights away
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/envconfig"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "identity:", err)
		os.Exit(1)
	}
}

const usage = "usage: identity [migrate | grant-admin USERNAME | revoke-admin USERNAME]"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := identitysvc.ConfigFromEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("svc", "identity")

	switch {
	case len(args) == 0:
		return identitysvc.Run(ctx, cfg, log)
	case args[0] == "migrate" && len(args) == 1:
		if err := identitysvc.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return err // without the DSN's password (Migrate redacts)
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case (args[0] == "grant-admin" || args[0] == "revoke-admin") && len(args) == 2:
		// lib/pq's errors may quote the DSN, password and all.
		return envconfig.RedactError(setAdmin(ctx, cfg, stdout, args[1], args[0] == "grant-admin"), cfg.DatabaseURL)
	default:
		return errors.New(usage)
	}
}

func setAdmin(ctx context.Context, cfg identitysvc.Config, stdout io.Writer, username string, admin bool) error {
	db, err := sqlx.Open("postgres", cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := store.New(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.SetAdmin(ctx, username, admin)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no such user: %q", username)
	case err != nil:
		return err
	case admin:
		fmt.Fprintf(stdout, "%s is now an administrator\n", username)
	default:
		fmt.Fprintf(stdout, "%s is no longer an administrator\n", username)
	}
	return nil
}
