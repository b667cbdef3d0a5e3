package gatewaysvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/services/gateway/internal/ratelimit"
	"github.com/wxlogin/wxlogin/services/gateway/internal/redirecturi"
	"github.com/wxlogin/wxlogin/services/gateway/internal/revocation"
	"github.com/wxlogin/wxlogin/shared/envconfig"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// Config is the gateway's configuration (docs/configuration.md). Fields left zero in a
// Config built in code take the documented defaults.
type Config struct {
	NATSURL string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSAuth is the NATS user gateway's credentials (WXLOGIN_NATS_USER, ...).
	NATSAuth  natsconn.Credentials
	HTTPAddr  string `env:"WXLOGIN_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	PublicURL string `env:"WXLOGIN_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	// WechatOpenBase is WeChat's Open Platform base: the QR login page is
	// WechatOpenBase + /connect/qrconnect (the fake WeChat in development).
	WechatOpenBase string `env:"WXLOGIN_WECHAT_OPEN_BASE" envDefault:"https://open.weixin.qq.com"`
	// AccessTTL is the access token lifetime the session service issues
	// with: a revocation is forgotten once no token it matches can be alive.
	AccessTTL time.Duration `env:"WXLOGIN_ACCESS_TTL" envDefault:"2h"`
	// CORSOrigins are the origins browsers may call from; "*" allows any.
	CORSOrigins []string `env:"WXLOGIN_CORS_ORIGINS" envDefault:"*" envSeparator:","`
	// JWTAlg is jwtverify.AlgEdDSA (keys from the session service) or jwtverify.AlgHS256.
	JWTAlg string `env:"WXLOGIN_JWT_ALG" envDefault:"EdDSA"`
	// JWTSecret is the HS256 secret (at least 32 bytes); unused with EdDSA.
	JWTSecret   string     `env:"WXLOGIN_JWT_SECRET"`
	JWTIssuer   string     `env:"WXLOGIN_JWT_ISSUER" envDefault:"wxlogin"`
	JWTAudience string     `env:"WXLOGIN_JWT_AUDIENCE" envDefault:"wxlogin"`
	LogLevel    slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`
	// RateLimit is the per-client-IP limit shared by the login-like routes
	// (logins, register, bind, refresh, QR create): "N/unit[,burst=B]" with
	// unit s, m or h, or "off". The default lets a large office behind one
	// NAT address log in freely, but not a load test from one address:
	// benchmarks run with "off".
	RateLimit string `env:"WXLOGIN_RATE_LIMIT" envDefault:"200/s,burst=400"`
	// TrustedProxies are reverse proxies (IPs or CIDRs, comma separated)
	// whose X-Forwarded-For names the client; none by default, so the
	// client is the TCP peer and a forged header changes nothing.
	TrustedProxies []string `env:"WXLOGIN_TRUSTED_PROXIES" envSeparator:","`
	// RevocationMaxStale is how long the revocation view is trusted while
	// its watch is unhealthy (NATS down, bucket gone, lagging): past it,
	// Bearer routes answer 503 rather than miss a revocation.
	RevocationMaxStale time.Duration `env:"WXLOGIN_REVOCATION_MAX_STALE" envDefault:"5s"`
	// MetricsAddr is where GET /metrics and GET /healthz are served, away
	// from the public listener (shared/opshttp); "" off.
	MetricsAddr string `env:"WXLOGIN_METRICS_ADDR"`
	// IntrospectClients are the resource servers that may call POST
	// /api/v1/auth/introspect: "id:secret,..." (secrets of at least
	// minIntrospectSecret bytes); none by default, so every call is 401.
	IntrospectClients string `env:"WXLOGIN_INTROSPECT_CLIENTS"`
	// IntrospectRateLimit is the per-client limit of introspection, in
	// WXLOGIN_RATE_LIMIT's syntax.
	IntrospectRateLimit string `env:"WXLOGIN_INTROSPECT_RATE_LIMIT" envDefault:"1000/s,burst=2000"`
	// Pprof serves net/http/pprof on the ops listener, never the public one.
	Pprof bool `env:"WXLOGIN_PPROF"`
	// RedirectURIs are the URL prefixes (scheme, host, path prefix) the
	// in-WeChat login may send a browser back to; none: it sends none.
	RedirectURIs []string `env:"WXLOGIN_REDIRECT_URIS" envSeparator:","`

	// JWKSRefresh is how often the EdDSA keys are re-read from the session
	// service; zero means 30s. Not read from the environment.
	JWKSRefresh time.Duration
	// MetricsListener, when set, serves what MetricsAddr would (tests and
	// the devstack listen themselves). Not read from the environment.
	MetricsListener net.Listener
}

// defaultRateLimit is WXLOGIN_RATE_LIMIT's default.
const defaultRateLimit = "200/s,burst=400"

// defaultIntrospectRateLimit is WXLOGIN_INTROSPECT_RATE_LIMIT's default.
const defaultIntrospectRateLimit = "1000/s,burst=2000"

// minIntrospectSecret is the shortest introspection client secret (128 bits
// as hex, or more): it guards a view of every session.
const minIntrospectSecret = 32

// ConfigFromEnv reads the configuration from the environment. A bad value
// is an error naming its variable.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := envconfig.Parse(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
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
	def(&c.WechatOpenBase, "https://open.weixin.qq.com")
	def(&c.JWTAlg, jwtverify.AlgEdDSA)
	def(&c.JWTIssuer, "wxlogin")
	def(&c.JWTAudience, "wxlogin")
	def(&c.RateLimit, defaultRateLimit)
	def(&c.IntrospectRateLimit, defaultIntrospectRateLimit)

	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: WXLOGIN_PUBLIC_URL: %q is not an absolute http(s) URL", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if u, err := url.Parse(c.WechatOpenBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("config: WXLOGIN_WECHAT_OPEN_BASE: %q is not an absolute http(s) URL without query", c.WechatOpenBase)
	}
	c.WechatOpenBase = strings.TrimSuffix(c.WechatOpenBase, "/")
	switch {
	case c.AccessTTL == 0:
		c.AccessTTL = 2 * time.Hour
	case c.AccessTTL < 0:
		return fmt.Errorf("config: WXLOGIN_ACCESS_TTL: %s is negative", c.AccessTTL)
	}
	switch {
	case c.RevocationMaxStale == 0:
		c.RevocationMaxStale = revocation.DefaultMaxStale
	case c.RevocationMaxStale < 0:
		return fmt.Errorf("config: WXLOGIN_REVOCATION_MAX_STALE: %s is negative", c.RevocationMaxStale)
	}
	if err := envconfig.CheckMetricsAddr(c.MetricsAddr); err != nil {
		return fmt.Errorf("config: %w", err)
	}

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
	if _, err := ratelimit.ParseSpec(c.RateLimit); err != nil {
		return fmt.Errorf("config: WXLOGIN_RATE_LIMIT: %w", err)
	}
	if _, err := ratelimit.ParseSpec(c.IntrospectRateLimit); err != nil {
		return fmt.Errorf("config: WXLOGIN_INTROSPECT_RATE_LIMIT: %w", err)
	}
	if _, err := c.introspectClients(); err != nil {
		return err
	}
	proxies := make([]string, 0, len(c.TrustedProxies))
	for _, p := range c.TrustedProxies {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return fmt.Errorf("config: WXLOGIN_TRUSTED_PROXIES: %q is neither an IP address nor a CIDR", p)
			}
		}
		proxies = append(proxies, p)
	}
	c.TrustedProxies = nil
	if len(proxies) > 0 {
		c.TrustedProxies = proxies
	}
	redirects, err := redirecturi.Parse(c.RedirectURIs)
	if err != nil {
		return fmt.Errorf("config: WXLOGIN_REDIRECT_URIS: %w (want prefixes such as https://www.example.com/h5/)", err)
	}
	c.RedirectURIs = nil
	if redirects.Len() > 0 {
		c.RedirectURIs = redirects.Strings()
	}
	if err := c.NATSAuth.Validate(c.NATSURL); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.JWKSRefresh < 0 {
		return errors.New("config: JWKSRefresh must not be negative")
	}
	return nil
}

// introspectClients parses IntrospectClients into id → secret.
func (c Config) introspectClients() (map[string]string, error) {
	clients := map[string]string{}
	for _, entry := range strings.Split(c.IntrospectClients, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, secret, ok := strings.Cut(entry, ":")
		switch {
		case !ok || id == "":
			return nil, errors.New("config: WXLOGIN_INTROSPECT_CLIENTS: each entry must be id:secret")
		case len(secret) < minIntrospectSecret:
			return nil, fmt.Errorf("config: WXLOGIN_INTROSPECT_CLIENTS: the secret of %q must be at least %d bytes", id, minIntrospectSecret)
		case clients[id] != "":
			return nil, fmt.Errorf("config: WXLOGIN_INTROSPECT_CLIENTS: client %q appears twice", id)
		}
		clients[id] = secret
	}
	return clients, nil
}

// String is the configuration as %v prints it: what LogValue logs, so no
// secret (the struct's own fields hold them).
func (c Config) String() string { return c.LogValue().String() }

// LogValue logs the configuration with the secret masked.
func (c Config) LogValue() slog.Value {
	secret := ""
	if c.JWTSecret != "" {
		secret = "(set)"
	}
	return slog.GroupValue(
		slog.String("nats_url", envconfig.RedactURLs(c.NATSURL)),
		slog.Any("nats_auth", c.NATSAuth),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("wechat_open_base", c.WechatOpenBase),
		slog.Duration("access_ttl", c.AccessTTL),
		slog.String("cors_origins", strings.Join(c.CORSOrigins, ",")),
		slog.String("jwt_alg", c.JWTAlg),
		slog.String("jwt_secret", secret),
		slog.String("jwt_issuer", c.JWTIssuer),
		slog.String("jwt_audience", c.JWTAudience),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("rate_limit", c.RateLimit),
		slog.String("trusted_proxies", strings.Join(c.TrustedProxies, ",")),
		slog.Duration("revocation_max_stale", c.RevocationMaxStale),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("introspect_clients", c.introspectClientIDs()),
		slog.String("introspect_rate_limit", c.IntrospectRateLimit),
		slog.Bool("pprof", c.Pprof),
		slog.String("redirect_uris", strings.Join(c.RedirectURIs, ",")),
	)
}

// introspectClientIDs lists the introspection clients for the log: ids only.
func (c Config) introspectClientIDs() string {
	clients, err := c.introspectClients()
	if err != nil {
		return "(invalid)"
	}
	ids := make([]string, 0, len(clients))
	for id := range clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}
