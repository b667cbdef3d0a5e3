// Package sessionsvc runs the session service: the entry point of its binary
// and of devstack, which cannot import the service's internal packages.
package sessionsvc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/envconfig"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Config is the session service's configuration (docs/configuration.md). JWTSecret is
// secret: Config's String and LogValue mask it.
type Config struct {
	NATSURL string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSAuth is the NATS user session's credentials (WXLOGIN_NATS_USER, ...).
	NATSAuth    natsconn.Credentials
	JWTAlg      string        `env:"WXLOGIN_JWT_ALG" envDefault:"EdDSA"`
	JWTKeyFile  string        `env:"WXLOGIN_JWT_KEY_FILE"`
	JWTSecret   string        `env:"WXLOGIN_JWT_SECRET"`
	JWTIssuer   string        `env:"WXLOGIN_JWT_ISSUER" envDefault:"wxlogin"`
	JWTAudience string        `env:"WXLOGIN_JWT_AUDIENCE" envDefault:"wxlogin"`
	AccessTTL   time.Duration `env:"WXLOGIN_ACCESS_TTL" envDefault:"2h"`
	RefreshTTL  time.Duration `env:"WXLOGIN_REFRESH_TTL" envDefault:"720h"`
	QRTTL       time.Duration `env:"WXLOGIN_QR_TTL" envDefault:"5m"`
	LogLevel    slog.Level    `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`
	// The app registry (shared/apps), for QR tickets. Session needs only
	// names and appids: it never reads the app secrets.
	MiniProgramAppID string `env:"WXLOGIN_MINIPROGRAM_APPID"`
	WebAppID         string `env:"WXLOGIN_WEB_APPID"`
	OAAppID          string `env:"WXLOGIN_OA_APPID"`
	AppAppID         string `env:"WXLOGIN_APP_APPID"`
	AppsFile         string `env:"WXLOGIN_APPS_FILE"`
	// NATSReplicas is how many copies of each KV bucket JetStream keeps: 1
	// for a single server, 3 on a cluster (at most 5, JetStream's limit).
	NATSReplicas int `env:"WXLOGIN_NATS_REPLICAS" envDefault:"1"`
	// MetricsAddr is where GET /metrics and GET /healthz are served; "" off.
	MetricsAddr string `env:"WXLOGIN_METRICS_ADDR"`
	// Workers is how many NATS requests are handled at once; 0: 32 per CPU
	// (natsrpc.Workers).
	Workers int `env:"WXLOGIN_WORKERS"`
	// Pprof serves net/http/pprof on the ops listener (never the public one).
	Pprof bool `env:"WXLOGIN_PPROF"`
	// QRMaxBytes and SessionsMaxBytes cap the QR and sessions KV buckets;
	// 0 sizes them from WXLOGIN_QR_TTL and WXLOGIN_REFRESH_TTL (kvstate's
	// limits.go). A full QR bucket answers new tickets 503.
	QRMaxBytes       int64 `env:"WXLOGIN_QR_MAX_BYTES"`
	SessionsMaxBytes int64 `env:"WXLOGIN_SESSIONS_MAX_BYTES"`
	// MaxSessionsPerUser bounds one user's refresh families: past it a
	// login ends the user's oldest sessions (1: one device at a time).
	MaxSessionsPerUser int `env:"WXLOGIN_MAX_SESSIONS_PER_USER" envDefault:"100"`
}

// Bounds on the lifetimes: beyond them a value is far more likely a typo
// (2000h for 2h) than a choice.
const (
	minAccessTTL  = time.Second
	maxAccessTTL  = 24 * time.Hour
	maxRefreshTTL = 365 * 24 * time.Hour
	minQRTTL      = 10 * time.Second
	maxQRTTL      = time.Hour
	// minBucketBytes is the smallest bucket cap that may be configured.
	minBucketBytes = 8 << 10
	// maxSessionsPerUser: listing a user's families is the cap's cost.
	maxSessionsPerUser = 10000
)

// ConfigFromEnv reads the configuration from the environment and validates
// it. Errors name the offending variable.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := envconfig.Parse(&cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// DefaultConfig returns the configuration with every documented default and
// nothing read from the environment.
func DefaultConfig() Config {
	var cfg Config
	if err := envconfig.Defaults(&cfg); err != nil {
		panic(fmt.Sprintf("sessionsvc: defaults do not parse: %v", err)) // a bug in the tags above
	}
	return cfg
}

// Validate checks the values; the error names the variable to fix.
func (c Config) Validate() error {
	if err := envconfig.CheckNATS(c.NATSURL, c.NATSReplicas); err != nil {
		return err
	}
	switch {
	case c.JWTIssuer == "":
		return errors.New("WXLOGIN_JWT_ISSUER: must not be empty")
	case c.JWTAudience == "":
		return errors.New("WXLOGIN_JWT_AUDIENCE: must not be empty")
	case c.AccessTTL < minAccessTTL || c.AccessTTL > maxAccessTTL:
		return fmt.Errorf("WXLOGIN_ACCESS_TTL: %s is outside %s..%s", c.AccessTTL, minAccessTTL, maxAccessTTL)
	case c.RefreshTTL <= c.AccessTTL || c.RefreshTTL > maxRefreshTTL:
		return fmt.Errorf("WXLOGIN_REFRESH_TTL: %s must be longer than WXLOGIN_ACCESS_TTL (%s) and at most %s", c.RefreshTTL, c.AccessTTL, maxRefreshTTL)
	case c.QRTTL < minQRTTL || c.QRTTL > maxQRTTL:
		return fmt.Errorf("WXLOGIN_QR_TTL: %s is outside %s..%s", c.QRTTL, minQRTTL, maxQRTTL)
	case c.Workers < 0 || c.Workers > natsrpc.MaxWorkers:
		return fmt.Errorf("WXLOGIN_WORKERS: %d is outside 0..%d (0: 32 per CPU)", c.Workers, natsrpc.MaxWorkers)
	case c.QRMaxBytes != 0 && c.QRMaxBytes < minBucketBytes:
		return fmt.Errorf("WXLOGIN_QR_MAX_BYTES: %d is below %d bytes (0: sized from WXLOGIN_QR_TTL)", c.QRMaxBytes, minBucketBytes)
	case c.SessionsMaxBytes != 0 && c.SessionsMaxBytes < minBucketBytes:
		return fmt.Errorf("WXLOGIN_SESSIONS_MAX_BYTES: %d is below %d bytes (0: sized from WXLOGIN_REFRESH_TTL)", c.SessionsMaxBytes, minBucketBytes)
	case c.MaxSessionsPerUser < 1 || c.MaxSessionsPerUser > maxSessionsPerUser:
		return fmt.Errorf("WXLOGIN_MAX_SESSIONS_PER_USER: %d is outside 1..%d", c.MaxSessionsPerUser, maxSessionsPerUser)
	}
	if err := c.NATSAuth.Validate(c.NATSURL); err != nil {
		return err
	}
	if err := envconfig.CheckMetricsAddr(c.MetricsAddr); err != nil {
		return err
	}
	switch c.JWTAlg {
	case jwtverify.AlgEdDSA:
		if c.JWTSecret != "" {
			return errors.New("WXLOGIN_JWT_SECRET: only used with WXLOGIN_JWT_ALG=HS256; unset it or set WXLOGIN_JWT_ALG=HS256")
		}
	case jwtverify.AlgHS256:
		if len(c.JWTSecret) < jwtverify.MinSecretLength {
			return fmt.Errorf("WXLOGIN_JWT_SECRET: WXLOGIN_JWT_ALG=HS256 needs a secret of at least %d bytes", jwtverify.MinSecretLength)
		}
		if c.JWTKeyFile != "" {
			return errors.New("WXLOGIN_JWT_KEY_FILE: an Ed25519 key file cannot be used with WXLOGIN_JWT_ALG=HS256")
		}
	default:
		return fmt.Errorf("WXLOGIN_JWT_ALG: %q is not EdDSA or HS256", c.JWTAlg)
	}
	return nil
}

// Apps loads the app registry the configuration names (the apps file is
// read here). Errors name the variable. The apps file may hold secrets
// (identity reads the same file); session drops them at once.
func (c Config) Apps() (*apps.Registry, error) {
	reg, err := apps.Load(apps.Config{MiniProgramAppID: c.MiniProgramAppID, WebAppID: c.WebAppID,
		OAAppID: c.OAAppID, AppAppID: c.AppAppID, AppsFile: c.AppsFile})
	if err != nil {
		return nil, err
	}
	return reg.WithoutSecrets(), nil
}

// masked is Config with the secrets replaced, for logs and %v.
func (c Config) masked() Config {
	if c.JWTSecret != "" {
		c.JWTSecret = "[set]"
	}
	c.NATSURL = envconfig.RedactURLs(c.NATSURL)
	if c.NATSAuth.Password != "" {
		c.NATSAuth.Password = "[set]"
	}
	return c
}

// String prints the configuration without the secret.
func (c Config) String() string {
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c.masked()))
}

// LogValue logs the configuration without the secret.
func (c Config) LogValue() slog.Value {
	m := c.masked()
	return slog.GroupValue(
		slog.String("nats_url", m.NATSURL),
		slog.Any("nats_auth", c.NATSAuth),
		slog.String("jwt_alg", m.JWTAlg),
		slog.String("jwt_key_file", m.JWTKeyFile),
		slog.String("jwt_secret", m.JWTSecret),
		slog.String("jwt_issuer", m.JWTIssuer),
		slog.String("jwt_audience", m.JWTAudience),
		slog.Duration("access_ttl", m.AccessTTL),
		slog.Duration("refresh_ttl", m.RefreshTTL),
		slog.Duration("qr_ttl", m.QRTTL),
		slog.String("log_level", m.LogLevel.String()),
		slog.String("miniprogram_appid", m.MiniProgramAppID),
		slog.String("web_appid", m.WebAppID),
		slog.String("oa_appid", m.OAAppID),
		slog.String("app_appid", m.AppAppID),
		slog.String("apps_file", m.AppsFile),
		slog.Int("nats_replicas", m.NATSReplicas),
		slog.String("metrics_addr", m.MetricsAddr),
		slog.Int("workers", natsrpc.Workers(m.Workers)),
		slog.Bool("pprof", m.Pprof),
		slog.Int64("qr_max_bytes", m.QRMaxBytes),
		slog.Int64("sessions_max_bytes", m.SessionsMaxBytes),
		slog.Int("max_sessions_per_user", m.MaxSessionsPerUser),
	)
}
