// Package webhooksvc runs the webhooks service: it delivers wxlogin's
// events (the JetStream stream WXLOGIN_EVENTS) to the HTTP endpoints of
// WXLOGIN_WEBHOOKS_FILE, signed as Standard Webhooks, retried with backoff
// for up to WXLOGIN_WEBHOOKS_MAX_AGE, then parked in the dead-letter stream
// WXLOGIN_WEBHOOKS_DEAD for `webhooks replay`. It is the entry point of the
// binary and of devstack. See docs/webhooks.md.
package webhooksvc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wxlogin/wxlogin/shared/envconfig"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// Config is the webhooks service's configuration (docs/configuration.md).
// The secrets are in the endpoints file, which only Endpoints reads.
type Config struct {
	NATSURL string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSAuth is the credentials of the NATS user events.
	NATSAuth natsconn.Credentials
	// WebhooksFile is the endpoints: a YAML or JSON list of url, secret,
	// events and optionally name, concurrency, timeout.
	WebhooksFile string `env:"WXLOGIN_WEBHOOKS_FILE"`
	// MaxAge is how long an event is retried, counted from when the stream
	// stored it; past it a failed event is parked as a dead letter.
	MaxAge time.Duration `env:"WXLOGIN_WEBHOOKS_MAX_AGE" envDefault:"24h"`
	// NATSReplicas is the copies of the dead-letter stream (as identity's
	// and session's: 1 on a single server, 3 on a cluster).
	NATSReplicas int        `env:"WXLOGIN_NATS_REPLICAS" envDefault:"1"`
	MetricsAddr  string     `env:"WXLOGIN_METRICS_ADDR"`
	Pprof        bool       `env:"WXLOGIN_PPROF"`
	LogLevel     slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`

	// Retry is the wait after the 1st, 2nd, ... failed attempt, the last
	// repeating until MaxAge; nil is DefaultRetry. Not from the
	// environment: tests shorten it.
	Retry []time.Duration
	// StatsInterval is how often the backlog gauges (oldest undelivered
	// event, dead letters) are read from NATS; 0 is 15s.
	StatsInterval time.Duration
}

// DefaultRetry retries within seconds first, then ever more slowly: an
// endpoint down for a deploy gets its events within a minute, one down for
// a day is not hammered.
var DefaultRetry = []time.Duration{
	time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
}

// Bounds of WXLOGIN_WEBHOOKS_MAX_AGE: WXLOGIN_EVENTS keeps an event 7
// days, so an undelivered one cannot wait longer.
const (
	minMaxAge = time.Second
	maxMaxAge = 7 * 24 * time.Hour
)

// ConfigFromEnv reads the configuration from the environment and validates
// it. Errors name the variable.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := envconfig.Parse(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// Validate checks the values (not yet the endpoints file: see Endpoints).
func (c Config) Validate() error {
	if err := envconfig.CheckNATS(c.NATSURL, c.NATSReplicas); err != nil {
		return err
	}
	switch {
	case c.WebhooksFile == "":
		return errors.New("WXLOGIN_WEBHOOKS_FILE: must be set: the YAML or JSON list of endpoints (docs/webhooks.md)")
	case c.MaxAge < minMaxAge || c.MaxAge > maxMaxAge:
		return fmt.Errorf("WXLOGIN_WEBHOOKS_MAX_AGE: %s is outside %s..%s (the event stream keeps events 7 days)", c.MaxAge, minMaxAge, maxMaxAge)
	}
	if err := c.NATSAuth.Validate(c.NATSURL); err != nil {
		return err
	}
	if err := envconfig.CheckMetricsAddr(c.MetricsAddr); err != nil {
		return err
	}
	for _, d := range c.Retry {
		if d <= 0 {
			return fmt.Errorf("webhooksvc: retry delay %s is not positive", d)
		}
	}
	return nil
}

// Endpoints reads and validates WXLOGIN_WEBHOOKS_FILE.
func (c Config) Endpoints() ([]*Endpoint, error) { return LoadEndpoints(c.WebhooksFile) }

// retryDelay is the wait after the n-th failed attempt (n from 1).
func (c Config) retryDelay(n uint64) time.Duration {
	schedule := c.Retry
	if len(schedule) == 0 {
		schedule = DefaultRetry
	}
	return schedule[min(max(n, 1), uint64(len(schedule)))-1]
}

func (c Config) statsInterval() time.Duration {
	if c.StatsInterval > 0 {
		return c.StatsInterval
	}
	return 15 * time.Second
}

// LogValue logs the configuration without a credential.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", envconfig.RedactURLs(c.NATSURL)),
		slog.Any("nats_auth", c.NATSAuth),
		slog.String("webhooks_file", c.WebhooksFile),
		slog.Duration("max_age", c.MaxAge),
		slog.Int("nats_replicas", c.NATSReplicas),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Bool("pprof", c.Pprof),
		slog.String("log_level", c.LogLevel.String()),
	)
}

// String is LogValue's text, for %v.
func (c Config) String() string {
	return fmt.Sprintf("{NATSURL:%s NATSAuth:%v WebhooksFile:%s MaxAge:%s NATSReplicas:%d MetricsAddr:%s}",
		envconfig.RedactURLs(c.NATSURL), c.NATSAuth, c.WebhooksFile, c.MaxAge, c.NATSReplicas, c.MetricsAddr)
}
