package identitysvc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/apps"
	"github.com/wxlogin/wxlogin/shared/logtest"
)

// clearEnv unsets every WXLOGIN_ variable for the test (t.Setenv restores them).
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "WXLOGIN_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestConfigFromEnvDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NATSURL:       "nats://127.0.0.1:4222",
		DatabaseURL:   "postgres://postgres@127.0.0.1:5432/wxlogin?sslmode=disable",
		WechatAPIBase: "https://api.weixin.qq.com",
		WechatMPBase:  "https://mp.weixin.qq.com",
		AutoRegister:  true,
		LogLevel:      slog.LevelInfo,
		NATSReplicas:  1,
	}
	if cfg != want {
		t.Errorf("defaults = %+v\nwant %+v", cfg, want)
	}
	if DefaultConfig() != want {
		t.Errorf("DefaultConfig() = %+v", DefaultConfig())
	}
}

func TestConfigFromEnvValues(t *testing.T) {
	clearEnv(t)
	t.Setenv("WXLOGIN_AUTO_REGISTER", "false")
	t.Setenv("WXLOGIN_LOG_LEVEL", "debug")
	t.Setenv("WXLOGIN_MINIPROGRAM_APPID", "wxa")
	t.Setenv("WXLOGIN_MINIPROGRAM_SECRET", "sa")
	t.Setenv("WXLOGIN_METRICS_ADDR", ":9100")
	t.Setenv("WXLOGIN_NATS_REPLICAS", "3")
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AutoRegister || cfg.LogLevel != slog.LevelDebug || cfg.MiniProgramAppID != "wxa" || cfg.MiniProgramSecret != "sa" ||
		cfg.MetricsAddr != ":9100" || cfg.NATSReplicas != 3 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestConfigFromEnvErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad bool", map[string]string{"WXLOGIN_AUTO_REGISTER": "maybe"}, "WXLOGIN_AUTO_REGISTER"},
		{"bad level", map[string]string{"WXLOGIN_LOG_LEVEL": "loud"}, "WXLOGIN_LOG_LEVEL"},
		{"bad api base", map[string]string{"WXLOGIN_WECHAT_API_BASE": "api.weixin.qq.com"}, "WXLOGIN_WECHAT_API_BASE"},
		{"empty nats url", map[string]string{"WXLOGIN_NATS_URL": " "}, "WXLOGIN_NATS_URL"},
		{"replicas not a number", map[string]string{"WXLOGIN_NATS_REPLICAS": "three"}, "WXLOGIN_NATS_REPLICAS"},
		{"replicas 0", map[string]string{"WXLOGIN_NATS_REPLICAS": "0"}, "WXLOGIN_NATS_REPLICAS"},
		{"replicas 6", map[string]string{"WXLOGIN_NATS_REPLICAS": "6"}, "WXLOGIN_NATS_REPLICAS"},
		{"metrics addr without port", map[string]string{"WXLOGIN_METRICS_ADDR": "9100"}, "WXLOGIN_METRICS_ADDR"},
		{"metrics addr with empty port", map[string]string{"WXLOGIN_METRICS_ADDR": "localhost:"}, "WXLOGIN_METRICS_ADDR"},
		{"mp base not a URL", map[string]string{"WXLOGIN_WECHAT_MP_BASE": "mp.weixin.qq.com"}, "WXLOGIN_WECHAT_MP_BASE"},
		{"login reply too long", map[string]string{"WXLOGIN_OA_LOGIN_REPLY": strings.Repeat("好", 201)}, "WXLOGIN_OA_LOGIN_REPLY"},
		{"appid without secret", map[string]string{"WXLOGIN_MINIPROGRAM_APPID": "wxa"}, "WXLOGIN_MINIPROGRAM_SECRET"},
		{"secret without appid", map[string]string{"WXLOGIN_WEB_SECRET": "s"}, "WXLOGIN_WEB_APPID"},
		{"missing apps file", map[string]string{"WXLOGIN_APPS_FILE": filepath.Join(dir, "none.yaml")}, "WXLOGIN_APPS_FILE"},
		{"unparsable apps file", map[string]string{"WXLOGIN_APPS_FILE": write("bad.yaml", "- name: [\n")}, "WXLOGIN_APPS_FILE"},
		{"file app without secret", map[string]string{"WXLOGIN_APPS_FILE": write("nosecret.yaml", "- {name: a, kind: web, appid: x}\n")}, "WXLOGIN_APPS_FILE"},
		{"bad kind", map[string]string{"WXLOGIN_APPS_FILE": write("kind.yaml", "- {name: a, kind: mobile, appid: x, secret: y}\n")}, "WXLOGIN_APPS_FILE"},
		{"oa appid without secret", map[string]string{"WXLOGIN_OA_APPID": "wxo", "WXLOGIN_OA_TOKEN": "tok123"}, "WXLOGIN_OA_SECRET"},
		{"oa appid without token", map[string]string{"WXLOGIN_OA_APPID": "wxo", "WXLOGIN_OA_SECRET": "so"}, "WXLOGIN_OA_TOKEN"},
		{"oa token without appid", map[string]string{"WXLOGIN_OA_TOKEN": "tok123"}, "WXLOGIN_OA_APPID"},
		{"oa aes key without appid", map[string]string{"WXLOGIN_OA_AES_KEY": testAESKey}, "WXLOGIN_OA_APPID"},
		{"oa token too short", map[string]string{"WXLOGIN_OA_APPID": "wxo", "WXLOGIN_OA_SECRET": "so", "WXLOGIN_OA_TOKEN": "ab"}, "WXLOGIN_OA_TOKEN"},
		{"oa aes key padded", map[string]string{"WXLOGIN_OA_APPID": "wxo", "WXLOGIN_OA_SECRET": "so", "WXLOGIN_OA_TOKEN": "tok123", "WXLOGIN_OA_AES_KEY": testAESKey[:42] + "="}, "WXLOGIN_OA_AES_KEY"},
		{"oa aes key short", map[string]string{"WXLOGIN_OA_APPID": "wxo", "WXLOGIN_OA_SECRET": "so", "WXLOGIN_OA_TOKEN": "tok123", "WXLOGIN_OA_AES_KEY": testAESKey[:40]}, "WXLOGIN_OA_AES_KEY"},
		{"app appid without secret", map[string]string{"WXLOGIN_APP_APPID": "wxm"}, "WXLOGIN_APP_SECRET"},
		{"app secret without appid", map[string]string{"WXLOGIN_APP_SECRET": "s"}, "WXLOGIN_APP_APPID"},
		{"file oa without token", map[string]string{"WXLOGIN_APPS_FILE": write("notoken.yaml", "- {name: a, kind: officialaccount, appid: x, secret: y}\n")}, "WXLOGIN_APPS_FILE"},
		{"file oa with a bad key", map[string]string{"WXLOGIN_APPS_FILE": write("badkey.yaml", "- {name: a, kind: officialaccount, appid: x, secret: y, token: tok123, encoding_aes_key: short}\n")}, "WXLOGIN_APPS_FILE"},
		{"token on a web app", map[string]string{"WXLOGIN_APPS_FILE": write("webtoken.yaml", "- {name: a, kind: web, appid: x, secret: y, token: tok123}\n")}, "WXLOGIN_APPS_FILE"},
		{"name clash with env app", map[string]string{
			"WXLOGIN_WEB_APPID": "wxw", "WXLOGIN_WEB_SECRET": "sw",
			"WXLOGIN_APPS_FILE": write("clash.json", `[{"name":"web","kind":"web","appid":"wxother","secret":"s"}]`),
		}, "WXLOGIN_APPS_FILE"},
		{"appid twice", map[string]string{"WXLOGIN_APPS_FILE": write("twice.yaml", "- {name: a, kind: web, appid: x, secret: y}\n- {name: b, kind: miniprogram, appid: x, secret: z}\n")}, "WXLOGIN_APPS_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := ConfigFromEnv()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want+":") {
				t.Errorf("err = %v, want one starting %s:", err, tc.want)
			}
		})
	}
}

// JetStream keeps 1 to 5 replicas of a stream; anything else is refused
// before Run connects to anything.
func TestConfigReplicasBounds(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		ok       bool
	}{
		{-1, false}, {0, false}, {1, true}, {2, true}, {3, true}, {5, true}, {6, false}, {100, false},
	} {
		t.Run(fmt.Sprint(tc.replicas), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NATSReplicas = tc.replicas
			err := cfg.Validate()
			switch {
			case tc.ok && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case !tc.ok && (err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_NATS_REPLICAS: ")):
				t.Errorf("Validate = %v, want an error naming WXLOGIN_NATS_REPLICAS", err)
			}
		})
	}
}

func TestConfigApps(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apps.yaml")
	text := "- name: shop\n  kind: miniprogram\n  appid: wxshop\n  secret: s-shop\n- name: site2\n  kind: web\n  appid: wxsite2\n  secret: s-site2\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                string
		cfg                 Config
		defaultMP, defaultW string
	}{
		{"env apps are the defaults", Config{MiniProgramAppID: "wxmp", MiniProgramSecret: "s1", WebAppID: "wxweb", WebSecret: "s2", AppsFile: file}, "wxmp", "wxweb"},
		{"file only: first of each kind", Config{AppsFile: file}, "wxshop", "wxsite2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := tc.cfg.apps()
			if err != nil {
				t.Fatal(err)
			}
			for kind, want := range map[string]string{api.KindMiniProgram: tc.defaultMP, api.KindWeb: tc.defaultW} {
				app, ok := reg.Lookup("", kind)
				if !ok || app.AppID != want {
					t.Errorf("default %s = %+v, %v; want %s", kind, app, ok, want)
				}
			}
			if app, ok := reg.Lookup("shop", api.KindMiniProgram); !ok || app.Secret != "s-shop" {
				t.Errorf("shop = %+v, %v", app, ok)
			}
			if _, ok := reg.Lookup("shop", api.KindWeb); ok {
				t.Error("shop found as a web app")
			}
		})
	}
}

// testAESKey is a well-formed EncodingAESKey: 43 characters of base64.
const testAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

// The official account and the mobile app from the environment are the
// defaults of their kinds, with the token and key identity needs.
func TestConfigOfficialAccountAndMobileApp(t *testing.T) {
	cfg := Config{OAAppID: "wxoa", OASecret: "so", OAToken: "tok123", OAAESKey: testAESKey, AppAppID: "wxapp", AppSecret: "sa"}
	reg, err := cfg.apps()
	if err != nil {
		t.Fatal(err)
	}
	if oa, ok := reg.Lookup("", apps.KindOfficialAccount); !ok || oa.AppID != "wxoa" || oa.Secret != "so" || oa.Token != "tok123" || oa.EncodingAESKey != testAESKey {
		t.Errorf("official account = %+v, %v", oa, ok)
	}
	if app, ok := reg.Lookup(AppMobile, apps.KindApp); !ok || app.AppID != "wxapp" || app.Secret != "sa" {
		t.Errorf("mobile app = %+v, %v", app, ok)
	}
	cfg.OAAESKey = "" // plaintext mode
	if _, err := cfg.apps(); err != nil {
		t.Errorf("plaintext official account refused: %v", err)
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MiniProgramAppID, cfg.MiniProgramSecret = "wxmp", "mp-secret-value"
	cfg.WebAppID, cfg.WebSecret = "wxweb", "web-secret-value"
	cfg.OAAppID, cfg.OASecret, cfg.OAToken, cfg.OAAESKey = "wxoa", "oa-secret-value", "oaTokenValue", testAESKey
	cfg.AppAppID, cfg.AppSecret = "wxapp", "app-secret-value"
	cfg.DatabaseURL = "postgres://app:db-password@db:5432/wxlogin"
	cfg.NATSURL = "nats://u:nats-password@n1:4222,nats://n2:4222"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", cfg)
	out := buf.String()
	printed := fmt.Sprintf("%v %+v %s", cfg, cfg, cfg)
	for _, secret := range []string{"mp-secret-value", "web-secret-value", "oa-secret-value", "oaTokenValue", testAESKey, "app-secret-value", "db-password", "nats-password"} {
		if strings.Contains(out, secret) {
			t.Errorf("logged config holds %q: %s", secret, out)
		}
		if strings.Contains(printed, secret) {
			t.Errorf("printed config holds %q: %s", secret, printed)
		}
	}
	for _, visible := range []string{"wxmp", "wxweb", "wxoa", "wxapp", "db:5432", "n2:4222"} {
		if !strings.Contains(out, visible) {
			t.Errorf("logged config lacks %q: %s", visible, out)
		}
	}
}

// The secrets as Kubernetes mounts them: files named by the *_FILE
// variables (deploy/k8s), the nested NATS credentials too.
func TestConfigFromEnvFiles(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("WXLOGIN_DATABASE_URL_FILE", file("database-url", "postgres://wxlogin:db-secret@db:5432/wxlogin?sslmode=require\n"))
	t.Setenv("WXLOGIN_NATS_PASSWORD_FILE", file("nats-password", "nats-secret\n"))
	t.Setenv("WXLOGIN_MINIPROGRAM_SECRET_FILE", file("miniprogram-secret", "mp-secret"))
	t.Setenv("WXLOGIN_MINIPROGRAM_APPID", "wxa")
	t.Setenv("WXLOGIN_NATS_USER", "identity")
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres://wxlogin:db-secret@db:5432/wxlogin?sslmode=require" || cfg.NATSAuth.Password != "nats-secret" || cfg.MiniProgramSecret != "mp-secret" {
		t.Errorf("cfg = %+v", cfg)
	}
}

// TestDatabaseErrorsHideThePassword: a URL that does not parse is refused
// at start without quoting it, and lib/pq's errors (which quote the DSN
// they fail to parse) reach neither the log nor the returned error with
// the password in them.
func TestDatabaseErrorsHideThePassword(t *testing.T) {
	const password = "p%zz-db-secret"
	dsn := "postgres://app:" + password + "@127.0.0.1:5432/wxlogin?sslmode=disable"
	cfg := DefaultConfig()
	cfg.DatabaseURL = dsn
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "WXLOGIN_DATABASE_URL") || strings.Contains(err.Error(), "zz-db-secret") {
		t.Fatalf("Validate: %v; want WXLOGIN_DATABASE_URL named, the password not", err)
	}

	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	db, err := openDB(ctx, dsn, 1, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err == nil {
		db.Close()
		t.Fatal("openDB: no error for a DSN lib/pq cannot parse")
	}
	for what, text := range map[string]string{"error": err.Error(), "log": logs.String(), "migrate": fmt.Sprint(Migrate(ctx, dsn))} {
		if strings.Contains(text, "zz-db-secret") {
			t.Errorf("%s holds the password: %s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "database not reachable yet") {
		t.Errorf("the retry was not logged: %s", logs.String())
	}
}

// The start line shows every setting: a field added to Config is logged.
func TestConfigLogsEveryField(t *testing.T) {
	logtest.LogsEveryField(t, Config{})
}
