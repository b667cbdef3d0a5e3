// Command subscriber is an example consumer of wxlogin's events: it reads the
// JetStream stream WXLOGIN_EVENTS through a durable consumer and prints one
// line per event, each event once.
//
//	WXLOGIN_NATS_URL=nats://127.0.0.1:4222 WXLOGIN_NATS_USER=events WXLOGIN_NATS_PASSWORD=... \
//	  go run ./examples/subscriber -filter wxlogin.events.user.created
//
// Copy it as the start of your own: replace printEvent with your effect, and
// the in-memory dedupe with an id stored in your database (see seenIDs).
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
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// Config is read from the environment; the flags of the same meaning
// override it.
type Config struct {
	NATSURL string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSAuth is the credentials of the NATS user events, the one that
	// may read the event stream (WXLOGIN_NATS_USER=events, ...).
	NATSAuth natsconn.Credentials
	LogLevel slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`

	Stream string `env:"SUBSCRIBER_STREAM" envDefault:"WXLOGIN_EVENTS"`
	// The durable consumer's name: the server remembers how far it got, so a
	// restart resumes there. Every copy of one subscriber shares it (and the
	// work); another application picks its own name.
	Durable string `env:"SUBSCRIBER_DURABLE" envDefault:"wxlogin-example-subscriber"`
	Filter  string `env:"SUBSCRIBER_FILTER" envDefault:"wxlogin.events.>"`
	// How long the server waits for an ack before delivering again.
	AckWait time.Duration `env:"SUBSCRIBER_ACK_WAIT" envDefault:"30s"`
	// Deliveries of one event before it is given up (logged and terminated).
	MaxDeliver int `env:"SUBSCRIBER_MAX_DELIVER" envDefault:"5"`
	// Pause before a failed event is delivered again.
	RetryDelay time.Duration `env:"SUBSCRIBER_RETRY_DELAY" envDefault:"2s"`
	// Event ids remembered for dedupe.
	DedupeSize int `env:"SUBSCRIBER_DEDUPE_SIZE" envDefault:"10000"`
}

// ConfigFromEnv reads and validates the configuration.
func ConfigFromEnv() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, envError(err)
	}
	return cfg, cfg.Validate()
}

// envError names the variable behind each parse error (env names the Go
// field).
func envError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	t := reflect.TypeFor[Config]()
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				msgs = append(msgs, fmt.Sprintf("%s: %v", f.Tag.Get("env"), pe.Err))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
}

// Validate names the variable of the first bad value.
func (c Config) Validate() error {
	switch {
	case c.NATSAuth.Validate(c.NATSURL) != nil:
		return fmt.Errorf("config: %w", c.NATSAuth.Validate(c.NATSURL))
	case c.Stream == "":
		return errors.New("config: SUBSCRIBER_STREAM is empty")
	case c.Durable == "":
		return errors.New("config: SUBSCRIBER_DURABLE (-durable) is empty")
	case c.Filter == "":
		return errors.New("config: SUBSCRIBER_FILTER (-filter) is empty")
	case c.AckWait <= 0:
		return fmt.Errorf("config: SUBSCRIBER_ACK_WAIT must be positive, got %s", c.AckWait)
	case c.MaxDeliver < 1:
		return fmt.Errorf("config: SUBSCRIBER_MAX_DELIVER must be at least 1, got %d", c.MaxDeliver)
	case c.RetryDelay < 0:
		return fmt.Errorf("config: SUBSCRIBER_RETRY_DELAY must not be negative, got %s", c.RetryDelay)
	case c.DedupeSize < 1:
		return fmt.Errorf("config: SUBSCRIBER_DEDUPE_SIZE must be at least 1, got %d", c.DedupeSize)
	}
	return nil
}

// drainTimeout bounds the wait for the acks of a drain (nats.go's default).
const drainTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Filter, "filter", cfg.Filter, "subject filter, e.g. "+identity.SubjectUserCreated+" (env SUBSCRIBER_FILTER)")
	fs.StringVar(&cfg.Durable, "durable", cfg.Durable, "durable consumer name (env SUBSCRIBER_DURABLE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	nc, err := natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Credentials: cfg.NATSAuth, Name: "wxlogin-example-subscriber", Role: natsconn.Events,
		Retry: true, Log: log,
	})
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	runErr := NewSubscriber(js, cfg, printEvent(stdout), log).Run(ctx)
	// Acks of the drained messages are flushed before the connection goes.
	natsconn.Drain(nc, drainTimeout, log)
	if errors.Is(runErr, context.Canceled) {
		return nil // stopped while still waiting for the stream
	}
	return runErr
}

// printEvent is this example's effect: one line per event on w. It prints
// ids, kinds and appids; not openids, nicknames or other personal data.
func printEvent(w io.Writer) Handler {
	return func(_ context.Context, ev identity.Event) error {
		line := fmt.Sprintf("%s %s id=%s user_id=%s username=%s",
			ev.OccurredAt.UTC().Format(time.RFC3339Nano), ev.Type, ev.ID, ev.User.ID, ev.User.Username)
		if ev.Identity != nil {
			line += fmt.Sprintf(" kind=%s appid=%s", ev.Identity.Kind, ev.Identity.AppID)
		}
		_, err := fmt.Fprintln(w, line)
		return err
	}
}
