package gatewaysvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// Config is the gateway's configuration (DESIGN.md). Fields left zero in a
// Config built in code take the DESIGN.md defaults.
type Config struct {
	NATSURL   string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	HTTPAddr  string `env:"WXLOGIN_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	PublicURL string `env:"WXLOGIN_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	// CORSOrigins are the origins browsers may call from; "*" allows any.
	CORSOrigins []string `env:"WXLOGIN_CORS_ORIGINS" envDefault:"*" envSeparator:","`
	// JWTAlg is jwtverify.AlgEdDSA (keys from the session service) or jwtverify.AlgHS256.
	JWTAlg string `env:"WXLOGIN_JWT_ALG" envDefault:"EdDSA"`
	// JWTSecret is the HS256 secret (at least 32 bytes); unused with EdDSA.
	JWTSecret   string     `env:"WXLOGIN_JWT_SECRET"`
	JWTIssuer   string     `env:"WXLOGIN_JWT_ISSUER" envDefault:"wxlogin"`
	JWTAudience string     `env:"WXLOGIN_JWT_AUDIENCE" envDefault:"wxlogin"`
	LogLevel    slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`

	// JWKSRefresh is how often the EdDSA keys are re-read from the session
	// service; zero means 30s. Not read from the environment.
	JWKSRefresh time.Duration
}

// ConfigFromEnv reads the configuration from the environment. A bad value
// is an error naming its variable.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := env.Parse(&cfg); err != nil {
		return Config{}, envError(err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate fills in defaults for zero fields and checks every value; the
// error names the variable at fault.
func (c *Config) Validate() error {
	def := func(v *string, d string) {
		if strings.TrimSpace(*v) == "" {
			*v = d
		}
	}
	def(&c.NATSURL, "nats://127.0.0.1:4222")
	def(&c.HTTPAddr, "127.0.0.1:8080")
	def(&c.PublicURL, "http://127.0.0.1:8080")
	def(&c.JWTAlg, jwtverify.AlgEdDSA)
	def(&c.JWTIssuer, "wxlogin")
	def(&c.JWTAudience, "wxlogin")

	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: WXLOGIN_PUBLIC_URL: %q is not an absolute http(s) URL", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")

	origins := make([]string, 0, len(c.CORSOrigins))
	for _, o := range c.CORSOrigins {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				return fmt.Errorf("config: WXLOGIN_CORS_ORIGINS: %q is not an origin (scheme://host[:port]) or *", o)
			}
		}
		origins = append(origins, o)
	}
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	c.CORSOrigins = origins

	switch {
	case strings.EqualFold(c.JWTAlg, jwtverify.AlgEdDSA):
		c.JWTAlg = jwtverify.AlgEdDSA
	case strings.EqualFold(c.JWTAlg, jwtverify.AlgHS256):
		c.JWTAlg = jwtverify.AlgHS256
		if len(c.JWTSecret) < jwtverify.MinSecretLength {
			return fmt.Errorf("config: WXLOGIN_JWT_SECRET: HS256 needs a secret of at least %d bytes", jwtverify.MinSecretLength)
		}
	default:
		return fmt.Errorf("config: WXLOGIN_JWT_ALG: %q is neither EdDSA nor HS256", c.JWTAlg)
	}
	if c.JWKSRefresh < 0 {
		return errors.New("config: JWKSRefresh must not be negative")
	}
	return nil
}

// LogValue logs the configuration with the secret masked.
func (c Config) LogValue() slog.Value {
	secret := ""
	if c.JWTSecret != "" {
		secret = "(set)"
	}
	return slog.GroupValue(
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("cors_origins", strings.Join(c.CORSOrigins, ",")),
		slog.String("jwt_alg", c.JWTAlg),
		slog.String("jwt_secret", secret),
		slog.String("jwt_issuer", c.JWTIssuer),
		slog.String("jwt_audience", c.JWTAudience),
		slog.String("log_level", c.LogLevel.String()),
	)
}

// redactURL hides passwords in NATS URLs (nats://user:pass@host).
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// envError rewrites caarlos0/env errors, which name Go fields, to name the
// environment variable instead.
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
			name := pe.Name
			if f, ok := t.FieldByName(pe.Name); ok {
				name = f.Tag.Get("env")
			}
			msgs = append(msgs, fmt.Sprintf("%s: %v", name, pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
}
