// Package identitysvc runs the identity service: the public entry points
// that its main.go and the devstack share (configuration, Run, Migrate).
package identitysvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/envconfig"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Names of the apps configured by the WXLOGIN_MINIPROGRAM_*, WXLOGIN_WEB_*,
// WXLOGIN_OA_* and WXLOGIN_APP_* variables (shared/apps names them after
// their kinds); they are the default apps of their kinds.
const (
	AppMiniProgram     = apps.KindMiniProgram
	AppWeb             = apps.KindWeb
	AppOfficialAccount = apps.KindOfficialAccount
	AppMobile          = apps.KindApp
)

// Config is the identity service's configuration (docs/configuration.md).
// Build it with ConfigFromEnv, or in code (devstack, tests).
type Config struct {
	NATSURL string `env:"WXLOGIN_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSAuth is the NATS user identity's credentials (WXLOGIN_NATS_USER, ...).
	NATSAuth          natsconn.Credentials
	DatabaseURL       string     `env:"WXLOGIN_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/wxlogin?sslmode=disable"`
	WechatAPIBase     string     `env:"WXLOGIN_WECHAT_API_BASE" envDefault:"https://api.weixin.qq.com"`
	MiniProgramAppID  string     `env:"WXLOGIN_MINIPROGRAM_APPID"`
	MiniProgramSecret string     `env:"WXLOGIN_MINIPROGRAM_SECRET"`
	WebAppID          string     `env:"WXLOGIN_WEB_APPID"`
	WebSecret         string     `env:"WXLOGIN_WEB_SECRET"`
	OAAppID           string     `env:"WXLOGIN_OA_APPID"`
	OASecret          string     `env:"WXLOGIN_OA_SECRET"`
	OAToken           string     `env:"WXLOGIN_OA_TOKEN"`
	OAAESKey          string     `env:"WXLOGIN_OA_AES_KEY"`
	AppAppID          string     `env:"WXLOGIN_APP_APPID"`
	AppSecret         string     `env:"WXLOGIN_APP_SECRET"`
	AppsFile          string     `env:"WXLOGIN_APPS_FILE"`
	AutoRegister      bool       `env:"WXLOGIN_AUTO_REGISTER" envDefault:"true"`
	LogLevel          slog.Level `env:"WXLOGIN_LOG_LEVEL" envDefault:"info"`
	// NATSReplicas is how many copies JetStream keeps of the event stream
	// and the KV buckets identity creates: 1 for a single server, 3 on a
	// cluster (at most 5, JetStream's limit).
	NATSReplicas int `env:"WXLOGIN_NATS_REPLICAS" envDefault:"1"`
	// MetricsAddr is where GET /metrics and GET /healthz are served; "" off.
	MetricsAddr string `env:"WXLOGIN_METRICS_ADDR"`
	// Workers is how many NATS requests are handled at once; 0: 32 per CPU
	// (natsrpc.Workers).
	Workers int `env:"WXLOGIN_WORKERS"`
	// DBMaxConns caps the connections to Postgres; 0: 4 per CPU, at least 8.
	DBMaxConns int `env:"WXLOGIN_DB_MAX_CONNS"`
	// Pprof serves net/http/pprof on the ops listener (never the public one).
	Pprof bool `env:"WXLOGIN_PPROF"`
	// WechatMPBase serves the images of official-account QR codes
	// (cgi-bin/showqrcode); OALoginReply, when set, is the text message a
	// follow-to-log-in answers the user with ("" answers "success": none).
	WechatMPBase string `env:"WXLOGIN_WECHAT_MP_BASE" envDefault:"https://mp.weixin.qq.com"`
	OALoginReply string `env:"WXLOGIN_OA_LOGIN_REPLY"`
}

// maxDBConns bounds WXLOGIN_DB_MAX_CONNS.
const maxDBConns = 1000

// dbConns is the connection cap: configured or sized from the CPUs.
func (c Config) dbConns() int {
	if c.DBMaxConns > 0 {
		return c.DBMaxConns
	}
	return max(8, 4*runtime.GOMAXPROCS(0))
}

// maxOALoginReply bounds the reply text: WeChat takes 2,048 bytes.
const maxOALoginReply = 600

// DefaultConfig is the configuration of an empty environment.
func DefaultConfig() Config {
	var cfg Config
	if err := envconfig.Defaults(&cfg); err != nil {
		panic(err) // only a broken envDefault tag gets here
	}
	return cfg
}

// ConfigFromEnv reads the configuration from the environment and checks it.
// An error names the offending variable.
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

// Validate checks the values and the app list (reading WXLOGIN_APPS_FILE).
func (c Config) Validate() error {
	if err := envconfig.CheckNATS(c.NATSURL, c.NATSReplicas); err != nil {
		return err
	}
	if err := c.NATSAuth.Validate(c.NATSURL); err != nil {
		return err
	}
	if strings.TrimSpace(c.DatabaseURL) == "" {
		return errors.New("WXLOGIN_DATABASE_URL: must not be empty")
	}
	if strings.Contains(c.DatabaseURL, "://") {
		// Said here, without the URL: url.Parse's error would quote it,
		// password and all.
		if _, err := url.Parse(c.DatabaseURL); err != nil {
			return fmt.Errorf("WXLOGIN_DATABASE_URL (%s): not a valid URL; percent-encode special characters of the password", envconfig.RedactURLs(c.DatabaseURL))
		}
	}
	if u, err := url.Parse(c.WechatAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("WXLOGIN_WECHAT_API_BASE: %q is not an http(s) URL", c.WechatAPIBase)
	}
	if u, err := url.Parse(c.WechatMPBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("WXLOGIN_WECHAT_MP_BASE: %q is not an http(s) URL", c.WechatMPBase)
	}
	if len(c.OALoginReply) > maxOALoginReply || !utf8.ValidString(c.OALoginReply) {
		return fmt.Errorf("WXLOGIN_OA_LOGIN_REPLY: must be UTF-8 text of at most %d bytes", maxOALoginReply)
	}
	if c.Workers < 0 || c.Workers > natsrpc.MaxWorkers {
		return fmt.Errorf("WXLOGIN_WORKERS: %d is outside 0..%d (0: 32 per CPU)", c.Workers, natsrpc.MaxWorkers)
	}
	if c.DBMaxConns < 0 || c.DBMaxConns > maxDBConns {
		return fmt.Errorf("WXLOGIN_DB_MAX_CONNS: %d is outside 0..%d (0: 4 per CPU, at least 8)", c.DBMaxConns, maxDBConns)
	}
	if err := envconfig.CheckMetricsAddr(c.MetricsAddr); err != nil {
		return err
	}
	_, err := c.apps()
	return err
}

// apps is the app registry (shared/apps, as every service reads it), with
// the checks only identity needs: every app has its secret, every official
// account its message token.
func (c Config) apps() (*apps.Registry, error) {
	// Each default app's variables: the appid and what must come with it.
	pairs := []struct{ appidVar, appid, needVar, need string }{
		{"WXLOGIN_MINIPROGRAM_APPID", c.MiniProgramAppID, "WXLOGIN_MINIPROGRAM_SECRET", c.MiniProgramSecret},
		{"WXLOGIN_WEB_APPID", c.WebAppID, "WXLOGIN_WEB_SECRET", c.WebSecret},
		{"WXLOGIN_OA_APPID", c.OAAppID, "WXLOGIN_OA_SECRET", c.OASecret},
		{"WXLOGIN_OA_APPID", c.OAAppID, "WXLOGIN_OA_TOKEN", c.OAToken},
		{"WXLOGIN_APP_APPID", c.AppAppID, "WXLOGIN_APP_SECRET", c.AppSecret},
	}
	for _, p := range pairs {
		switch {
		case p.appid == "" && p.need != "":
			return nil, fmt.Errorf("%s: must be set when %s is", p.appidVar, p.needVar)
		case p.appid != "" && p.need == "":
			return nil, fmt.Errorf("%s: must be set when %s is", p.needVar, p.appidVar)
		}
	}
	if c.OAAppID == "" && c.OAAESKey != "" {
		return nil, errors.New("WXLOGIN_OA_APPID: must be set when WXLOGIN_OA_AES_KEY is")
	}
	reg, err := apps.Load(apps.Config{
		MiniProgramAppID: c.MiniProgramAppID, MiniProgramSecret: c.MiniProgramSecret,
		WebAppID: c.WebAppID, WebSecret: c.WebSecret,
		OAAppID: c.OAAppID, OASecret: c.OASecret, OAToken: c.OAToken, OAAESKey: c.OAAESKey,
		AppAppID: c.AppAppID, AppSecret: c.AppSecret,
		AppsFile: c.AppsFile,
	})
	if err != nil {
		return nil, err
	}
	for _, app := range reg.All() {
		if app.Secret == "" {
			return nil, fmt.Errorf("WXLOGIN_APPS_FILE: app %q has no secret", app.Name)
		}
		if app.Kind == apps.KindOfficialAccount && app.Token == "" {
			return nil, fmt.Errorf("WXLOGIN_APPS_FILE: official account %q has no token", app.Name)
		}
	}
	return reg, nil
}

// String is the configuration as %v prints it: what LogValue logs, so no
// secret (the struct's own fields hold them all).
func (c Config) String() string { return c.LogValue().String() }

// LogValue is the configuration as logged: secrets masked.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("nats_url", envconfig.RedactURLs(c.NATSURL)),
		slog.Any("nats_auth", c.NATSAuth),
		slog.String("database_url", envconfig.RedactURLs(c.DatabaseURL)),
		slog.String("wechat_api_base", c.WechatAPIBase),
		slog.String("miniprogram_appid", c.MiniProgramAppID),
		slog.String("miniprogram_secret", mask(c.MiniProgramSecret)),
		slog.String("web_appid", c.WebAppID),
		slog.String("web_secret", mask(c.WebSecret)),
		slog.String("oa_appid", c.OAAppID),
		slog.String("oa_secret", mask(c.OASecret)),
		slog.String("oa_token", mask(c.OAToken)),
		slog.String("oa_aes_key", mask(c.OAAESKey)),
		slog.String("app_appid", c.AppAppID),
		slog.String("app_secret", mask(c.AppSecret)),
		slog.String("apps_file", c.AppsFile),
		slog.Bool("auto_register", c.AutoRegister),
		slog.String("log_level", c.LogLevel.String()),
		slog.Int("nats_replicas", c.NATSReplicas),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Int("workers", natsrpc.Workers(c.Workers)),
		slog.Int("db_max_conns", c.dbConns()),
		slog.Bool("pprof", c.Pprof),
		slog.String("wechat_mp_base", c.WechatMPBase),
		slog.Int("oa_login_reply_bytes", len(c.OALoginReply)),
	)
}
