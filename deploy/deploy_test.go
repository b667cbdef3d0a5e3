package deploy

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// Paths are relative to this directory (go test runs in the package dir).
const (
	repoRoot           = ".." // deploy/ is one level below the repository root
	composePath        = "../docker-compose.yml"
	clusterComposePath = "nats/cluster/compose.yml"
	dockerfilePath     = "Dockerfile"
	dockerignorePath   = "../.dockerignore"
	devEnvPath         = "dev.env"
	envExamplePath     = "env.example"
)

// designEnv is the contract's configuration (docs/configuration.md), plus the metrics address
// identity and session serve their /healthz and /metrics on. A WXLOGIN_
// variable outside it is a typo or an undocumented knob.
var designEnv = []string{
	"WXLOGIN_NATS_URL",
	"WXLOGIN_DATABASE_URL",
	"WXLOGIN_HTTP_ADDR",
	"WXLOGIN_PUBLIC_URL",
	"WXLOGIN_WECHAT_API_BASE",
	"WXLOGIN_WECHAT_OPEN_BASE",
	"WXLOGIN_MINIPROGRAM_APPID",
	"WXLOGIN_MINIPROGRAM_SECRET",
	"WXLOGIN_WEB_APPID",
	"WXLOGIN_WEB_SECRET",
	"WXLOGIN_APPS_FILE",
	"WXLOGIN_OA_APPID",
	"WXLOGIN_OA_SECRET",
	"WXLOGIN_OA_TOKEN",
	"WXLOGIN_OA_AES_KEY",
	"WXLOGIN_APP_APPID",
	"WXLOGIN_APP_SECRET",
	"WXLOGIN_REDIRECT_URIS",
	"WXLOGIN_AUTO_REGISTER",
	"WXLOGIN_JWT_ALG",
	"WXLOGIN_JWT_KEY_FILE",
	"WXLOGIN_JWT_SECRET",
	"WXLOGIN_JWT_ISSUER",
	"WXLOGIN_JWT_AUDIENCE",
	"WXLOGIN_ACCESS_TTL",
	"WXLOGIN_REFRESH_TTL",
	"WXLOGIN_QR_TTL",
	"WXLOGIN_CORS_ORIGINS",
	"WXLOGIN_LOG_LEVEL",
	"WXLOGIN_INTROSPECT_CLIENTS",
	"WXLOGIN_WEBHOOKS_FILE",
	"WXLOGIN_WEBHOOKS_MAX_AGE",
	// Additions to the contract, documented in the README's configuration table.
	"WXLOGIN_METRICS_ADDR",
	"WXLOGIN_NATS_REPLICAS",
	"WXLOGIN_RATE_LIMIT",
	"WXLOGIN_TRUSTED_PROXIES",
	"WXLOGIN_REVOCATION_MAX_STALE",
	"WXLOGIN_INTROSPECT_RATE_LIMIT",
	"WXLOGIN_QR_MAX_BYTES",
	"WXLOGIN_SESSIONS_MAX_BYTES",
	"WXLOGIN_MAX_SESSIONS_PER_USER",
	"WXLOGIN_WORKERS",
	"WXLOGIN_DB_MAX_CONNS",
	"WXLOGIN_NATS_USER",
	"WXLOGIN_NATS_PASSWORD",
	"WXLOGIN_NATS_CREDS",
	"WXLOGIN_NATS_GATEWAY_PASSWORD",
	"WXLOGIN_NATS_IDENTITY_PASSWORD",
	"WXLOGIN_NATS_SESSION_PASSWORD",
	"WXLOGIN_NATS_EVENTS_PASSWORD",
}

// The images deploy/Dockerfile builds (its SERVICE argument).
var buildableServices = []string{"gateway", "identity", "session", "webhooks", "fakewechat"}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]composeSecret  `yaml:"secrets"`
}

type composeSecret struct {
	File string `yaml:"file"`
}

type composeService struct {
	Image         string               `yaml:"image"`
	PullPolicy    string               `yaml:"pull_policy"`
	Build         *composeBuild        `yaml:"build"`
	Command       []string             `yaml:"command"`
	Ports         []any                `yaml:"ports"`
	ContainerName string               `yaml:"container_name"`
	Profiles      []string             `yaml:"profiles"`
	Environment   composeEnv           `yaml:"environment"`
	Healthcheck   *composeHealthcheck  `yaml:"healthcheck"`
	DependsOn     map[string]dependsOn `yaml:"depends_on"`
	Restart       string               `yaml:"restart"`
	Volumes       []string             `yaml:"volumes"`
	ReadOnly      bool                 `yaml:"read_only"`
	Secrets       []string             `yaml:"secrets"`
}

type composeBuild struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

type composeHealthcheck struct {
	Test []string `yaml:"test"`
}

type dependsOn struct {
	Condition string `yaml:"condition"`
	Required  *bool  `yaml:"required"`
}

// composeEnv accepts both forms compose allows: a mapping, or a list of
// KEY=VALUE strings.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return err
		}
		*e = m
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*e = composeEnv{}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("environment: unexpected YAML node kind %v", n.Kind)
	}
	return nil
}

func loadCompose(t *testing.T, path string) composeFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func TestCompose(t *testing.T) {
	f := loadCompose(t, composePath)

	t.Run("services exist", func(t *testing.T) {
		for _, name := range []string{"nats", "postgres", "gateway", "identity", "session", "webhooks", "fakewechat"} {
			if _, ok := f.Services[name]; !ok {
				t.Errorf("service %q missing", name)
			}
		}
	})

	t.Run("only the gateway publishes ports", func(t *testing.T) {
		for name, s := range f.Services {
			if len(s.Ports) == 0 {
				continue
			}
			switch {
			case name == "gateway":
			case slices.Contains(s.Profiles, "dev"):
				// Development helpers may publish, but on loopback only.
				for _, p := range s.Ports {
					if ps, ok := p.(string); !ok || !strings.HasPrefix(ps, "127.0.0.1:") {
						t.Errorf("dev service %s publishes %v beyond 127.0.0.1", name, p)
					}
				}
			default:
				t.Errorf("service %s publishes ports %v", name, s.Ports)
			}
		}
		gw := f.Services["gateway"]
		if len(gw.Ports) != 1 || !strings.HasSuffix(fmt.Sprint(gw.Ports[0]), ":8080") {
			t.Errorf("gateway ports = %v, want one mapping to container port 8080", gw.Ports)
		}
		// Plain HTTP, for the TLS proxy on the same host: loopback unless
		// the operator says otherwise.
		if len(gw.Ports) == 1 && !strings.HasPrefix(fmt.Sprint(gw.Ports[0]), "${GATEWAY_BIND:-127.0.0.1}:") {
			t.Errorf("gateway port %v, want it published on ${GATEWAY_BIND:-127.0.0.1}", gw.Ports[0])
		}
		if got := gw.Environment["WXLOGIN_HTTP_ADDR"]; got != ":8080" {
			t.Errorf("gateway WXLOGIN_HTTP_ADDR = %q, want :8080", got)
		}
		// Metrics on their own, unpublished port.
		if got := gw.Environment["WXLOGIN_METRICS_ADDR"]; got == "" || strings.HasSuffix(got, ":8080") {
			t.Errorf("gateway WXLOGIN_METRICS_ADDR = %q, want a port other than the published 8080", got)
		}
	})

	t.Run("scalable services", func(t *testing.T) {
		for name, s := range f.Services {
			if s.ContainerName != "" {
				t.Errorf("%s has container_name %q: --scale would fail", name, s.ContainerName)
			}
		}
		for _, name := range []string{"identity", "session"} {
			if s := f.Services[name]; len(s.Ports) != 0 {
				t.Errorf("%s publishes ports %v: --scale would fail", name, s.Ports)
			}
		}
	})

	t.Run("profiles", func(t *testing.T) {
		for name, s := range f.Services {
			want := []string(nil)
			switch name {
			case "fakewechat":
				want = []string{"dev"}
			case "webhooks": // nothing to do without WXLOGIN_WEBHOOKS_FILE
				want = []string{"webhooks"}
			}
			if !slices.Equal(s.Profiles, want) {
				t.Errorf("%s profiles = %v, want %v", name, s.Profiles, want)
			}
		}
	})

	t.Run("nats runs JetStream with fsync always on a volume", func(t *testing.T) {
		nats := f.Services["nats"]
		opts := natsOptions(t, nats)
		// Say it on the command line too, where an operator looks first.
		if !opts.JetStream || !slices.ContainsFunc(nats.Command, func(a string) bool { return a == "-js" || a == "--jetstream" }) {
			t.Errorf("nats command %v does not enable JetStream", nats.Command)
		}
		if !opts.SyncAlways {
			t.Error("nats JetStream does not fsync every write (sync_interval: always)")
		}
		if !mountsVolumeAt(nats, f, opts.StoreDir) {
			t.Errorf("JetStream store_dir %q is not a named volume in %v", opts.StoreDir, nats.Volumes)
		}
		if opts.HTTPPort != 8222 {
			t.Errorf("nats monitoring port = %d, want 8222 for the healthcheck", opts.HTTPPort)
		}
		if !strings.Contains(strings.Join(nats.Healthcheck.testOrEmpty(), " "), "/healthz?js-enabled-only=true") {
			t.Errorf("nats healthcheck %v does not ask /healthz?js-enabled-only=true", nats.Healthcheck.testOrEmpty())
		}
	})

	t.Run("postgres", func(t *testing.T) {
		pg := f.Services["postgres"]
		if test := pg.Healthcheck.testOrEmpty(); !slices.Contains(test, "pg_isready") {
			t.Errorf("postgres healthcheck = %v, want pg_isready", test)
		}
		if pg.Environment["POSTGRES_DB"] != "wxlogin" {
			t.Errorf("POSTGRES_DB = %q, want wxlogin", pg.Environment["POSTGRES_DB"])
		}
		if got := pg.Environment["POSTGRES_PASSWORD"]; !strings.HasPrefix(got, "${POSTGRES_PASSWORD:?") {
			t.Errorf("POSTGRES_PASSWORD = %q, want it required from the environment (no default)", got)
		}
		if got := f.Services["identity"].Environment["WXLOGIN_DATABASE_URL"]; !strings.Contains(got, "${POSTGRES_PASSWORD:?") {
			t.Errorf("identity's default WXLOGIN_DATABASE_URL = %q, want the required POSTGRES_PASSWORD in it", got)
		}
		if !mountsVolumeAt(pg, f, "/var/lib/postgresql/data") {
			t.Errorf("postgres data is not on a named volume: %v", pg.Volumes)
		}
	})

	t.Run("env vars are the documented ones", func(t *testing.T) {
		for name, s := range f.Services {
			for k := range s.Environment {
				if strings.HasPrefix(k, "WXLOGIN_") && !slices.Contains(designEnv, k) {
					t.Errorf("%s: %s is not in the documented configuration (docs/configuration.md)", name, k)
				}
			}
		}
	})

	t.Run("secrets come from the environment", func(t *testing.T) {
		for name, s := range f.Services {
			if slices.Contains(s.Profiles, "dev") {
				continue // the fake WeChat's fake credentials
			}
			for k, v := range s.Environment {
				if !strings.Contains(k, "SECRET") && k != "WXLOGIN_OA_TOKEN" && k != "WXLOGIN_OA_AES_KEY" {
					continue
				}
				if v != "${"+k+"}" && v != "${"+k+":-}" {
					t.Errorf("%s: %s = %q, want exactly ${%s:-} (no secret in the file)", name, k, v, k)
				}
			}
		}
		// The gateway holds no WeChat secret and no database connection.
		for k := range f.Services["gateway"].Environment {
			switch k {
			case "WXLOGIN_DATABASE_URL", "WXLOGIN_MINIPROGRAM_SECRET", "WXLOGIN_WEB_SECRET", "WXLOGIN_APPS_FILE",
				"WXLOGIN_OA_SECRET", "WXLOGIN_OA_TOKEN", "WXLOGIN_OA_AES_KEY", "WXLOGIN_APP_SECRET":
				t.Errorf("gateway gets %s", k)
			}
		}
		if _, ok := f.Services["session"].Environment["WXLOGIN_DATABASE_URL"]; ok {
			t.Error("session gets WXLOGIN_DATABASE_URL")
		}
	})

	t.Run("services connect to the compose nats and postgres", func(t *testing.T) {
		for _, name := range []string{"gateway", "identity", "session", "webhooks"} {
			if got := f.Services[name].Environment["WXLOGIN_NATS_URL"]; !strings.Contains(got, "nats://nats:4222") {
				t.Errorf("%s WXLOGIN_NATS_URL = %q, want nats://nats:4222 by default", name, got)
			}
		}
		if got := f.Services["identity"].Environment["WXLOGIN_DATABASE_URL"]; !strings.Contains(got, "@postgres:5432/wxlogin") {
			t.Errorf("identity WXLOGIN_DATABASE_URL = %q, want the postgres service", got)
		}
	})

	t.Run("one image per service, built once, never pulled", func(t *testing.T) {
		builtBy := map[string]string{}
		for name, s := range f.Services {
			if s.Build == nil {
				continue
			}
			if other, ok := builtBy[s.Image]; ok {
				t.Errorf("%s and %s both build %s: two different images under one name", name, other, s.Image)
			}
			builtBy[s.Image] = name
			if s.PullPolicy != "build" {
				t.Errorf("%s pull_policy = %q, want build (the image is ours, in no registry)", name, s.PullPolicy)
			}
		}
		m := f.Services["migrate"]
		if m.Build != nil || m.Image != f.Services["identity"].Image || m.PullPolicy != "never" {
			t.Errorf("migrate: build %v, image %q, pull_policy %q; want identity's image %q, no build, pull_policy never",
				m.Build, m.Image, m.PullPolicy, f.Services["identity"].Image)
		}
		for _, name := range []string{"nats", "postgres"} {
			if img := f.Services[name].Image; !strings.HasPrefix(img, "${") {
				t.Errorf("%s image %q: want it named by a variable (for local stand-ins)", name, img)
			}
		}
	})

	t.Run("nats runs the tests' nats-server", func(t *testing.T) {
		want := natsServerVersion(t)
		for _, path := range []string{composePath, clusterComposePath} {
			for name, s := range loadCompose(t, path).Services {
				if s.Image == "" || !strings.Contains(s.Image, "nats:") {
					continue
				}
				if !strings.Contains(s.Image, "nats:"+want+"-") {
					t.Errorf("%s: %s image %q, want nats:%s (shared/go.mod's nats-server)", path, name, s.Image, want)
				}
			}
		}
	})

	t.Run("the cluster override replicates three times", func(t *testing.T) {
		over := loadCompose(t, clusterComposePath)
		for _, name := range []string{"identity", "session", "webhooks"} {
			if got := over.Services[name].Environment["WXLOGIN_NATS_REPLICAS"]; got != "3" {
				t.Errorf("cluster override: %s WXLOGIN_NATS_REPLICAS = %q, want 3", name, got)
			}
		}
	})

	t.Run("files are mounted as secrets", func(t *testing.T) {
		// A host path set in .env names nothing inside the container: each
		// file variable points at its mounted secret, or is empty.
		want := map[string]map[string]string{
			"identity": {"WXLOGIN_APPS_FILE": "wxlogin_apps"},
			"migrate":  {"WXLOGIN_APPS_FILE": "wxlogin_apps"},
			"session":  {"WXLOGIN_APPS_FILE": "wxlogin_apps", "WXLOGIN_JWT_KEY_FILE": "wxlogin_jwt_key"},
			"webhooks": {"WXLOGIN_WEBHOOKS_FILE": "wxlogin_webhooks"},
		}
		for name, vars := range want {
			s := f.Services[name]
			for v, secret := range vars {
				if got, exp := s.Environment[v], "${"+v+":+/run/secrets/"+secret+"}"; got != exp {
					t.Errorf("%s %s = %q, want %q", name, v, got, exp)
				}
				if !slices.Contains(s.Secrets, secret) {
					t.Errorf("%s does not mount secret %s (has %v)", name, secret, s.Secrets)
				}
				if got, exp := f.Secrets[secret].File, "${"+v+":-/dev/null}"; got != exp {
					t.Errorf("secret %s file = %q, want %q", secret, got, exp)
				}
			}
		}
	})

	t.Run("images build from deploy/Dockerfile", func(t *testing.T) {
		for name, s := range f.Services {
			if s.Build == nil {
				continue
			}
			if s.Build.Context != "." || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("%s build = %+v, want context . and deploy/Dockerfile", name, *s.Build)
			}
			for _, arg := range []string{"GO_IMAGE", "RUNTIME_IMAGE"} {
				if !strings.HasPrefix(s.Build.Args[arg], "${"+arg+":-") {
					t.Errorf("%s build arg %s = %q, want ${%s:-the real image}", name, arg, s.Build.Args[arg], arg)
				}
			}
			svc := s.Build.Args["SERVICE"]
			if !slices.Contains(buildableServices, svc) {
				t.Errorf("%s build arg SERVICE = %q, want one of %v", name, svc, buildableServices)
			}
			if want := "wxlogin/" + svc + ":"; !strings.HasPrefix(s.Image, want) {
				t.Errorf("%s image = %q, want %s…", name, s.Image, want)
			}
			if !s.ReadOnly {
				t.Errorf("%s: read_only is not set", name)
			}
		}
		for _, name := range []string{"gateway", "identity", "session", "webhooks", "fakewechat"} {
			if b := f.Services[name].Build; b == nil || b.Args["SERVICE"] != name {
				t.Errorf("%s does not build SERVICE=%s", name, name)
			}
		}
	})

	t.Run("healthchecks run without a shell", func(t *testing.T) {
		// Our images are distroless: CMD-SHELL (or a bare string) needs /bin/sh.
		for name, s := range f.Services {
			if s.Build == nil || s.Healthcheck == nil {
				continue
			}
			test := s.Healthcheck.Test
			if len(test) < 2 || test[0] != "CMD" || test[1] != "/healthcheck" {
				t.Errorf("%s healthcheck = %v, want [CMD /healthcheck URL]", name, test)
			}
		}
		// identity and session are healthy when ready (the gateway waits
		// for that); the gateway when alive (/readyz would tie its health
		// to theirs).
		for name, url := range map[string]string{"gateway": "8080/livez", "identity": "9100/readyz", "session": "9100/readyz", "webhooks": "9100/readyz"} {
			s := f.Services[name]
			port, _, _ := strings.Cut(url, "/")
			want := "http://127.0.0.1:" + url
			if !slices.Contains(s.Healthcheck.testOrEmpty(), want) {
				t.Errorf("%s healthcheck = %v, want it to probe %s", name, s.Healthcheck.testOrEmpty(), want)
			}
			if port == "9100" && s.Environment["WXLOGIN_METRICS_ADDR"] != ":9100" {
				t.Errorf("%s WXLOGIN_METRICS_ADDR = %q, want :9100 (its healthcheck port)", name, s.Environment["WXLOGIN_METRICS_ADDR"])
			}
		}
	})

	t.Run("depends_on", func(t *testing.T) {
		for name, s := range f.Services {
			for dep, d := range s.DependsOn {
				target, ok := f.Services[dep]
				if !ok {
					t.Errorf("%s depends on unknown service %s", name, dep)
					continue
				}
				if d.Condition == "service_healthy" && target.Healthcheck == nil {
					t.Errorf("%s waits for %s to be healthy, but it has no healthcheck", name, dep)
				}
				// A profile-only service is absent without its profile: the
				// dependency must be optional or `docker compose up` fails.
				if len(target.Profiles) > 0 && (d.Required == nil || *d.Required) {
					t.Errorf("%s depends on %s (profiles %v) without required: false", name, dep, target.Profiles)
				}
			}
		}
		want := map[string]map[string]string{
			"gateway":  {"nats": "service_healthy", "identity": "service_healthy", "session": "service_healthy"},
			"identity": {"nats": "service_healthy", "postgres": "service_healthy"},
			"session":  {"nats": "service_healthy"},
			"webhooks": {"nats": "service_healthy"},
		}
		for name, deps := range want {
			for dep, cond := range deps {
				if got := f.Services[name].DependsOn[dep].Condition; got != cond {
					t.Errorf("%s depends_on %s condition = %q, want %q", name, dep, got, cond)
				}
			}
		}
	})

	t.Run("restart and volumes", func(t *testing.T) {
		for name, s := range f.Services {
			if s.Restart != "unless-stopped" && !(name == "migrate" && s.Restart == "no") {
				t.Errorf("%s restart = %q, want unless-stopped", name, s.Restart)
			}
			checkVolumes(t, name, s, f)
		}
	})
}

func (h *composeHealthcheck) testOrEmpty() []string {
	if h == nil {
		return nil
	}
	return h.Test
}

// mountsVolumeAt reports whether s mounts a declared named volume at dir.
func mountsVolumeAt(s composeService, f composeFile, dir string) bool {
	for _, v := range s.Volumes {
		src, rest, _ := strings.Cut(v, ":")
		target, _, _ := strings.Cut(rest, ":")
		if _, declared := f.Volumes[src]; declared && target == dir {
			return true
		}
	}
	return false
}

// checkVolumes: named volumes are declared, bind mounts name files that exist.
func checkVolumes(t *testing.T, name string, s composeService, f composeFile) {
	t.Helper()
	for _, v := range s.Volumes {
		src, _, _ := strings.Cut(v, ":")
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
			continue
		}
		if _, ok := f.Volumes[src]; !ok {
			t.Errorf("%s uses volume %s that is not declared", name, src)
		}
	}
}

// mergeVolumes merges an override's mounts into a base's as compose does:
// keyed by the target path, the override winning.
func mergeVolumes(base, override []string) []string {
	target := func(v string) string {
		_, rest, _ := strings.Cut(v, ":")
		t, _, _ := strings.Cut(rest, ":")
		return t
	}
	out := slices.Clone(override)
	for _, b := range base {
		if !slices.ContainsFunc(override, func(o string) bool { return target(o) == target(b) }) {
			out = append(out, b)
		}
	}
	return out
}

// natsOptions parses a nats service's command line the way nats-server does,
// with the config file it mounts read from the repository.
func natsOptions(t *testing.T, s composeService) *server.Options {
	t.Helper()
	setNATSPasswords(t)
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			mounts[parts[1]] = filepath.Join("..", parts[0])
		}
	}
	// local is where the file at path in the container comes from: a file
	// mount, or a file inside a mounted directory.
	local := func(path string) (string, bool) {
		for dir := path; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
			if src, ok := mounts[dir]; ok {
				return filepath.Join(src, strings.TrimPrefix(path, dir)), true
			}
		}
		return "", false
	}
	args := slices.Clone(s.Command)
	if len(args) > 0 && args[0] == "nats-server" {
		args = args[1:]
	}
	for i := range args {
		if i > 0 && (args[i-1] == "--config" || args[i-1] == "-c") {
			path, ok := local(args[i])
			if !ok {
				t.Fatalf("nats config %s is not mounted from the repository", args[i])
			}
			args[i] = path
		}
	}
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts, err := server.ConfigureOptions(fs, args, nil, nil, nil)
	if err != nil {
		t.Fatalf("nats-server would reject %v: %v", s.Command, err)
	}
	return opts
}

func TestNATSCluster(t *testing.T) {
	routeRE := regexp.MustCompile(`nats-route://nats-[123]:6222`)
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		path := fmt.Sprintf("nats/cluster/nats-%d.conf", i)
		t.Run(path, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`(?m)^\s*sync_interval:\s*always\s*$`).Match(raw) {
				t.Error("no `sync_interval: always`")
			}
			if n := len(routeRE.FindAll(raw, -1)); n != 3 {
				t.Errorf("%d routes to nats-{1,2,3}:6222, want 3", n)
			}
			setNATSPasswords(t)
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("nats-server rejects it: %v", err)
			}
			checkUsers(t, opts)
			if !opts.JetStream || !opts.SyncAlways || opts.StoreDir != "/data" {
				t.Errorf("jetstream = %v, sync always = %v, store_dir = %q; want true, true, /data",
					opts.JetStream, opts.SyncAlways, opts.StoreDir)
			}
			if opts.Cluster.Name != "wxlogin" || opts.Cluster.Port != 6222 {
				t.Errorf("cluster %q on port %d, want wxlogin on 6222", opts.Cluster.Name, opts.Cluster.Port)
			}
			if len(opts.Routes) != 3 {
				t.Errorf("%d routes, want 3", len(opts.Routes))
			}
			if want := fmt.Sprintf("nats-%d", i); opts.ServerName != want {
				t.Errorf("server_name = %q, want %q", opts.ServerName, want)
			}
			if names[opts.ServerName] {
				t.Errorf("server_name %q used twice", opts.ServerName)
			}
			names[opts.ServerName] = true
		})
	}

	t.Run("compose override", func(t *testing.T) {
		base := loadCompose(t, composePath)
		over := loadCompose(t, clusterComposePath)
		merged := composeFile{Services: map[string]composeService{}, Volumes: map[string]any{}}
		for k, v := range base.Volumes {
			merged.Volumes[k] = v
		}
		for k, v := range over.Volumes {
			merged.Volumes[k] = v
		}
		for i, name := range []string{"nats", "nats-2", "nats-3"} {
			s, ok := over.Services[name]
			if !ok {
				t.Fatalf("override has no service %s", name)
			}
			if name == "nats" {
				s.Volumes = mergeVolumes(base.Services["nats"].Volumes, s.Volumes)
				s.Environment = base.Services["nats"].Environment
			}
			if !slices.Contains(s.Volumes, natsConfMount) {
				t.Errorf("%s does not mount %s", name, natsConfMount)
			}
			if want := []string{"--config", fmt.Sprintf("/etc/nats/cluster/nats-%d.conf", i+1)}; !slices.Equal(s.Command, want) {
				t.Errorf("%s command = %v, want %v", name, s.Command, want)
			}
			checkNATSPasswords(t, name, s)
			checkVolumes(t, name, s, merged)
			opts := natsOptions(t, s)
			if !opts.JetStream || !opts.SyncAlways || len(opts.Routes) != 3 || opts.ServerName != fmt.Sprintf("nats-%d", i+1) {
				t.Errorf("%s: jetstream %v, sync always %v, %d routes, name %q",
					name, opts.JetStream, opts.SyncAlways, len(opts.Routes), opts.ServerName)
			}
			if !mountsVolumeAt(s, merged, "/data") {
				t.Errorf("%s has no data volume at /data", name)
			}
		}
		for _, name := range []string{"gateway", "identity", "session", "webhooks"} {
			got := over.Services[name].Environment["WXLOGIN_NATS_URL"]
			for i := 1; i <= 3; i++ {
				if !strings.Contains(got, fmt.Sprintf("nats://nats-%d:4222", i)) {
					t.Errorf("%s WXLOGIN_NATS_URL = %q, want every node", name, got)
				}
			}
		}
		for name := range over.Services {
			if _, ok := base.Services[name]; !ok && !strings.HasPrefix(name, "nats-") {
				t.Errorf("override adds unexpected service %s", name)
			}
		}
	})
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, USER, …
	args string
}

// natsServerVersion is the nats-server version shared/go.mod requires (the
// one the tests embed), without its v.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	// This repository's shared module (deploy/ is one level below the root).
	raw, err := os.ReadFile(filepath.Join(repoRoot, "shared", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/nats-io/nats-server/v2" {
			return strings.TrimPrefix(f[1], "v")
		}
	}
	t.Fatal("shared/go.mod does not require nats-server")
	return ""
}

// argDefault is image with a ${NAME} (an ARG before the first FROM)
// replaced by the ARG's default.
func argDefault(ins []instruction, image string) string {
	name, ok := strings.CutPrefix(image, "${")
	if !ok {
		return image
	}
	name = strings.TrimSuffix(name, "}")
	for _, in := range ins {
		if k, v, _ := strings.Cut(in.args, "="); in.cmd == "ARG" && k == name {
			return v
		}
	}
	return image
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, dockerfilePath)
	last := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 {
		t.Fatal("no FROM")
	}
	build, final := ins[:last], ins[last:]

	t.Run("final stage is distroless and non-root", func(t *testing.T) {
		image := argDefault(ins, strings.Fields(final[0].args)[0])
		if !strings.HasPrefix(image, "gcr.io/distroless/static") && image != "scratch" {
			t.Errorf("final stage FROM %s, want distroless static or scratch", image)
		}
		var user, entrypoint string
		for _, in := range final {
			switch in.cmd {
			case "USER":
				user = in.args
			case "ENTRYPOINT":
				entrypoint = in.args
			case "RUN":
				t.Errorf("RUN %s in the final stage: it has no shell", in.args)
			}
		}
		if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
			t.Errorf("final stage USER = %q, want a non-root user", user)
		}
		if entrypoint != `["/service"]` {
			t.Errorf("ENTRYPOINT %s, want [\"/service\"]", entrypoint)
		}
		joined := fmt.Sprint(final)
		for _, bin := range []string{"/out/service /service", "/out/healthcheck /healthcheck"} {
			if !strings.Contains(joined, bin) {
				t.Errorf("final stage does not copy %s", bin)
			}
		}
	})

	t.Run("build stage", func(t *testing.T) {
		all := fmt.Sprint(build) + " " + argDefault(ins, strings.Fields(build[0].args)[0])
		for _, want := range []string{"golang:", "ARG SERVICE", "GOWORK=off", "CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`} {
			if !strings.Contains(all, want) {
				t.Errorf("build stage lacks %s", want)
			}
		}
		for _, svc := range buildableServices {
			if !strings.Contains(all, svc) {
				t.Errorf("build stage does not accept SERVICE=%s", svc)
			}
		}
	})

	t.Run("dockerignore lets in what COPY reads", func(t *testing.T) {
		ignore := readDockerignore(t) // also fails on a pattern it does not know
		if !ignore.excludesAll {
			t.Error(".dockerignore does not start from `*` (exclude everything, allow what builds need)")
		}
		for _, in := range ins {
			if in.cmd != "COPY" || strings.Contains(in.args, "--from=") {
				continue
			}
			srcs := strings.Fields(in.args)
			for _, src := range srcs[:len(srcs)-1] {
				for _, svc := range buildableServices {
					p := strings.TrimSuffix(strings.TrimSuffix(strings.ReplaceAll(src, "${SERVICE}", svc), "go.*"), "/")
					if !ignore.sends(p) {
						t.Errorf("COPY %s: %s is excluded by .dockerignore", src, p)
					}
					if _, err := os.Stat(filepath.Join("..", p)); err != nil {
						t.Errorf("COPY %s: %v", src, err)
					}
				}
			}
		}
	})
}

func TestEnvFiles(t *testing.T) {
	for _, path := range []string{devEnvPath, envExamplePath} {
		t.Run(path, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{}
			for _, line := range strings.Split(string(raw), "\n") {
				line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
				k, v, ok := strings.Cut(line, "=")
				if !ok || strings.ContainsAny(k, " \t") {
					continue // prose
				}
				vars[k] = v
				if strings.HasPrefix(k, "WXLOGIN_") && !slices.Contains(designEnv, k) {
					t.Errorf("%s is not in the documented configuration (docs/configuration.md)", k)
				}
			}
			if path != devEnvPath {
				for k, v := range vars {
					if (strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD")) && v != "" {
						t.Errorf("example sets %s to a value", k)
					}
				}
				return
			}
			want := map[string]string{
				"COMPOSE_PROFILES":           "dev",
				"WXLOGIN_WECHAT_API_BASE":    "http://fakewechat:9090",
				"WXLOGIN_MINIPROGRAM_APPID":  "wx1111111111111111",
				"WXLOGIN_MINIPROGRAM_SECRET": "devstack-miniprogram-secret",
				"WXLOGIN_WEB_APPID":          "wx2222222222222222",
				"WXLOGIN_WEB_SECRET":         "devstack-web-secret",
			}
			for k, v := range want {
				if vars[k] != v {
					t.Errorf("%s = %q, want %q", k, vars[k], v)
				}
			}
		})
	}
}

// TestInterpolation checks each $ in the compose files is a well-formed
// substitution, so a typo does not silently become a literal value.
func TestInterpolation(t *testing.T) {
	for _, path := range []string{composePath, clusterComposePath} {
		t.Run(path, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(raw), "\n") {
				if err := checkInterpolation(line); err != nil {
					t.Errorf("%s:%d: %v", path, i+1, err)
				}
			}
		})
	}
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// checkInterpolation accepts $$, ${NAME}, ${NAME:-default} / ${NAME-default}
// / ${NAME:?err} / ${NAME:+alt} with defaults that nest.
func checkInterpolation(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			i++
		case strings.HasPrefix(rest, "{"):
			n, err := substitution(rest[1:])
			if err != nil {
				return fmt.Errorf("%q: %w", s[i:], err)
			}
			i += 1 + n
		default:
			return fmt.Errorf("%q: bare $ (write $$ or ${NAME})", s[i:])
		}
	}
	return nil
}

// substitution checks the body of ${…} and returns its length incl. "}".
func substitution(s string) (int, error) {
	name := varName.FindString(s)
	if name == "" {
		return 0, fmt.Errorf("no variable name")
	}
	i := len(name)
	if i < len(s) && s[i] == '}' {
		return i + 1, nil
	}
	op := ""
	for _, o := range []string{":-", ":?", ":+", "-", "?", "+"} {
		if strings.HasPrefix(s[i:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return 0, fmt.Errorf("unexpected %q after ${%s", s[i:], name)
	}
	i += len(op)
	for i < len(s) {
		switch {
		case s[i] == '}':
			return i + 1, nil
		case strings.HasPrefix(s[i:], "${"):
			n, err := substitution(s[i+2:])
			if err != nil {
				return 0, err
			}
			i += 2 + n
		default:
			i++
		}
	}
	return 0, fmt.Errorf("unclosed ${%s", name)
}

func TestCheckInterpolation(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"plain", true},
		{"${A}", true},
		{"${A:-}", true},
		{"x${A:-b}y", true},
		{"${A:-postgres://u:${B:-pw}@h/db?x=1}", true},
		{"$$HOME", true},
		{"${A", false},
		{"${A:-${B}", false},
		{"$A", false},
		{"${}", false},
		{"${A!}", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if err := checkInterpolation(tt.in); (err == nil) != tt.ok {
				t.Errorf("checkInterpolation(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
		})
	}
}

// TestDockerComposeConfig lets the real compose CLI validate the files when
// it is installed. It needs no engine. Without the plugin the assertions
// above are the test; this one then only says so.
func TestDockerComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Log("docker CLI not installed; compose files checked by the YAML assertions only")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, docker, "compose", "version").CombinedOutput(); err != nil {
		t.Logf("docker compose plugin not installed (%s); compose files checked by the YAML assertions only", bytes.TrimSpace(out))
		return
	}
	tests := []struct {
		name string
		args []string
	}{
		{"production", []string{"-f", composePath}},
		{"dev profile", []string{"--env-file", devEnvPath, "-f", composePath}},
		{"nats cluster", []string{"-f", composePath, "-f", clusterComposePath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"compose"}, tt.args...), "config", "-q")
			cmd := exec.CommandContext(ctx, docker, args...)
			// The NATS passwords have no default: production gets them from .env.
			cmd.Env = os.Environ()
			if tt.name != "dev profile" {
				for _, u := range natsauth.Users() {
					cmd.Env = append(cmd.Env, natsauth.PasswordVar(u)+"=example")
				}
				cmd.Env = append(cmd.Env, "POSTGRES_PASSWORD=example")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestImageSources builds each service the way deploy/Dockerfile does, from
// a copy of just what the Docker build context lets in (.dockerignore) and
// the Dockerfile copies, with GOWORK=off: it catches a service that needs a
// file or module outside shared/, verify/, clients/web/ and services/$SERVICE/
// (or a test-only file that .dockerignore drops). It needs Go, not Docker.
func TestImageSources(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH")
	}
	ignore := readDockerignore(t)
	for _, svc := range buildableServices {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			ctxDir := t.TempDir()
			for _, dir := range []string{"shared", "verify", "clients/web", "services/" + svc, "deploy/healthcheck"} {
				copyContext(t, ignore, dir, ctxDir)
			}
			for _, dir := range []string{"services/" + svc, "deploy/healthcheck"} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", `-ldflags=-s -w`, "-o", filepath.Join(t.TempDir(), "bin"), ".")
				cmd.Dir = filepath.Join(ctxDir, dir)
				cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("go build in %s (as in the image): %v\n%s", dir, err, out)
				}
			}
		})
	}
}

// dockerignore is the part of .dockerignore's syntax we use: `*`, `!dir/`
// and `**/name` patterns.
type dockerignore struct {
	excludesAll bool     // `*`
	allowed     []string // path prefixes let in by !dir/
	anywhere    []string // **/pattern: a path element (or base name) to drop
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	raw, err := os.ReadFile(dockerignorePath)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "*":
			d.excludesAll = true
		case strings.HasPrefix(line, "!"):
			d.allowed = append(d.allowed, strings.TrimPrefix(line, "!"))
		case strings.HasPrefix(line, "**/"):
			d.anywhere = append(d.anywhere, strings.TrimSuffix(strings.TrimPrefix(line, "**/"), "/"))
		default:
			t.Fatalf(".dockerignore: pattern %q not understood by this test", line)
		}
	}
	return d
}

func (d dockerignore) sends(rel string) bool {
	if !slices.ContainsFunc(d.allowed, func(a string) bool { return strings.HasPrefix(rel+"/", a) || strings.HasPrefix(rel, a) }) {
		return false
	}
	for _, elem := range strings.Split(rel, "/") {
		for _, p := range d.anywhere {
			if ok, _ := filepath.Match(p, elem); ok {
				return false
			}
		}
	}
	return true
}

// copyContext copies the files of repo directory dir that the build context
// holds into ctxDir, keeping their paths.
func copyContext(t *testing.T, ignore dockerignore, dir, ctxDir string) {
	t.Helper()
	root := filepath.Join("..", dir)
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel("..", path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !ignore.sends(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(ctxDir, rel), 0o755)
		}
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(ctxDir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", dir, err)
	}
}

// startNATS runs a real nats-server with opts, moved onto loopback, random
// ports and a temporary store so the test can run anywhere.
func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}

// waitHealthy polls the server's monitoring /healthz with the query the
// compose healthcheck uses, until it answers 200 or a deadline passes.
func waitHealthy(t *testing.T, s *server.Server) {
	t.Helper()
	url := fmt.Sprintf("http://%s/healthz?js-enabled-only=true", s.MonitorAddr())
	poll.UntilNil(t, 15*time.Second, url+" to answer 200", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// The compose NATS command and config really start a JetStream server whose
// healthcheck URL answers.
func TestNATSSingleRuns(t *testing.T) {
	opts := natsOptions(t, loadCompose(t, composePath).Services["nats"])
	s := startNATS(t, opts)
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
	waitHealthy(t, s)
}

// The three cluster configs form a cluster (routes pointed at loopback) in
// which a replicated (R3) stream takes and acknowledges writes.
func TestNATSClusterRuns(t *testing.T) {
	var ports []int
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var servers []*server.Server
	for i := range 3 {
		setNATSPasswords(t)
		opts, err := server.ProcessConfigFile(fmt.Sprintf("nats/cluster/nats-%d.conf", i+1))
		if err != nil {
			t.Fatal(err)
		}
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", ports[i]
		opts.Routes = routes
		servers = append(servers, startNATS(t, opts))
	}

	// identity is the user that creates and writes the stream.
	nc, err := nats.Connect(servers[0].ClientURL(), nats.UserInfo(natsauth.Identity, os.Getenv(natsauth.PasswordVar(natsauth.Identity))),
		nats.CustomInboxPrefix(natsconn.InboxPrefix(natsauth.Identity)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The meta leader is elected once the routes are up; until then stream
	// creation fails. Retry until the deadline.
	var stream jetstream.Stream
	poll.UntilNil(t, 20*time.Second, "the R3 stream to be created", func() error {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		defer cancelAttempt()
		stream, err = js.CreateStream(attempt, jetstream.StreamConfig{
			Name: "WXLOGIN_EVENTS", Subjects: []string{"wxlogin.events.>"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		if err != nil {
			return fmt.Errorf("%w (routes %d %d %d, clustered %v)", err, servers[0].NumRoutes(), servers[1].NumRoutes(), servers[2].NumRoutes(), servers[0].JetStreamIsClustered())
		}
		return nil
	})
	if _, err := js.Publish(ctx, "wxlogin.events.user.created", []byte(`{}`), jetstream.WithMsgID("ev-1")); err != nil {
		t.Fatalf("publish to R3 stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("stream cluster info %+v, want a leader and 2 replicas", info.Cluster)
	}
	for _, s := range servers {
		waitHealthy(t, s)
	}
}

// TestREADMEDocumentsEveryVariable keeps the README's configuration table
// in step with what the deployment sets.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## Configuration"); i >= 0 {
		section = section[i:]
	}
	for _, v := range designEnv {
		if !strings.Contains(section, "`"+v+"`") {
			t.Errorf("README's configuration table does not list %s", v)
		}
	}
}
