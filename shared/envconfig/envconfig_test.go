package envconfig

import (
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

type testDB struct {
	Port int `env:"PORT" envDefault:"5432"`
}

type testConfig struct {
	Level   slog.Level    `env:"ENVCONFIG_TEST_LEVEL" envDefault:"info"`
	TTL     time.Duration `env:"ENVCONFIG_TEST_TTL" envDefault:"2h"`
	Count   int           `env:"ENVCONFIG_TEST_COUNT" envDefault:"1"`
	On      bool          `env:"ENVCONFIG_TEST_ON" envDefault:"true"`
	Names   []string      `env:"ENVCONFIG_TEST_NAMES" envSeparator:","`
	URL     *url.URL      `env:"ENVCONFIG_TEST_URL"`
	Primary testDB        `envPrefix:"ENVCONFIG_TEST_PRIMARY_"`
	Replica testDB        `envPrefix:"ENVCONFIG_TEST_REPLICA_"`
	Ignored int           `env:"-"`
	hidden  int
}

// testVars are every variable testConfig reads, cleared for each test.
var testVars = []string{
	"ENVCONFIG_TEST_LEVEL", "ENVCONFIG_TEST_TTL", "ENVCONFIG_TEST_COUNT", "ENVCONFIG_TEST_ON", "ENVCONFIG_TEST_NAMES",
	"ENVCONFIG_TEST_URL", "ENVCONFIG_TEST_PRIMARY_PORT", "ENVCONFIG_TEST_REPLICA_PORT",
}

func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, k := range testVars {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func TestParse(t *testing.T) {
	defaults := testConfig{Level: slog.LevelInfo, TTL: 2 * time.Hour, Count: 1, On: true, Primary: testDB{5432}, Replica: testDB{5432}}
	tests := []struct {
		name  string
		env   map[string]string
		want  testConfig
		lines []string // the error's lines, each starting with its variable; nil = no error
		never []string // values the error must not show
	}{
		{name: "defaults", want: defaults},
		{name: "values", env: map[string]string{
			"ENVCONFIG_TEST_LEVEL": "debug", "ENVCONFIG_TEST_TTL": "5m", "ENVCONFIG_TEST_COUNT": "3", "ENVCONFIG_TEST_ON": "false",
			"ENVCONFIG_TEST_NAMES": "a,b", "ENVCONFIG_TEST_REPLICA_PORT": "6432",
		}, want: testConfig{Level: slog.LevelDebug, TTL: 5 * time.Minute, Count: 3, Names: []string{"a", "b"},
			Primary: testDB{5432}, Replica: testDB{6432}}},
		{name: "bad bool", env: map[string]string{"ENVCONFIG_TEST_ON": "maybe"}, lines: []string{"ENVCONFIG_TEST_ON: invalid value: "}},
		{name: "bad level", env: map[string]string{"ENVCONFIG_TEST_LEVEL": "loud"}, lines: []string{"ENVCONFIG_TEST_LEVEL: invalid value: "}},
		{name: "not a number", env: map[string]string{"ENVCONFIG_TEST_COUNT": "three"}, lines: []string{"ENVCONFIG_TEST_COUNT: invalid value: "}},
		{name: "bad duration", env: map[string]string{"ENVCONFIG_TEST_TTL": "two hours"}, lines: []string{"ENVCONFIG_TEST_TTL: invalid value: "}},
		{name: "nested with prefix", env: map[string]string{"ENVCONFIG_TEST_PRIMARY_PORT": "db"},
			lines: []string{"ENVCONFIG_TEST_PRIMARY_PORT or ENVCONFIG_TEST_REPLICA_PORT: invalid value: "}},
		{name: "bad URL hides the credentials", env: map[string]string{"ENVCONFIG_TEST_URL": "postgres://app:url-secret@db:port/x"},
			lines: []string{"ENVCONFIG_TEST_URL: invalid value: not a URL: "}, never: []string{"url-secret"}},
		{name: "one line per bad variable", env: map[string]string{"ENVCONFIG_TEST_LEVEL": "loud", "ENVCONFIG_TEST_COUNT": "x", "ENVCONFIG_TEST_TTL": "1"},
			lines: []string{"ENVCONFIG_TEST_LEVEL: ", "ENVCONFIG_TEST_TTL: ", "ENVCONFIG_TEST_COUNT: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setEnv(t, tc.env)
			var got testConfig
			err := Parse(&got)
			if tc.lines == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %+v\nwant %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.lines) {
				t.Fatalf("error %q: %d lines, want %d", err, len(lines), len(tc.lines))
			}
			for i, want := range tc.lines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q, want it to start %q", i, lines[i], want)
				}
			}
			for _, s := range tc.never {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
			if !errors.As(err, new(env.ParseError)) {
				t.Errorf("error %v holds no env.ParseError", err)
			}
		})
	}
}

// The errors of env that already name a variable keep it first.
func TestParseTagErrors(t *testing.T) {
	type config struct {
		Must  string `env:"ENVCONFIG_TEST_MUST,required"`
		Full  string `env:"ENVCONFIG_TEST_FULL,notEmpty"`
		File  string `env:"ENVCONFIG_TEST_FILE,file"`
		Inner struct {
			Deep string `env:"DEEP,required"`
		} `envPrefix:"ENVCONFIG_TEST_INNER_"`
	}
	t.Setenv("ENVCONFIG_TEST_FULL", "")
	t.Setenv("ENVCONFIG_TEST_FILE", filepath.Join(t.TempDir(), "missing"))
	os.Unsetenv("ENVCONFIG_TEST_MUST")
	os.Unsetenv("ENVCONFIG_TEST_INNER_DEEP")
	err := Parse(&config{})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{"ENVCONFIG_TEST_MUST: must be set", "ENVCONFIG_TEST_FULL: must not be empty", "ENVCONFIG_TEST_FILE: ", "ENVCONFIG_TEST_INNER_DEEP: must be set"}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("error %q, want %d lines", err, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want it to start %q", i, lines[i], want[i])
		}
	}
}

// A bad argument is a bug in the caller: an error, not a panic.
func TestParseNotAStructPointer(t *testing.T) {
	for name, into := range map[string]any{"nil": nil, "struct": testConfig{}, "int pointer": new(int)} {
		t.Run(name, func(t *testing.T) {
			if err := Parse(into); err == nil || !strings.HasPrefix(err.Error(), "envconfig: ") {
				t.Errorf("Parse(%T) = %v, want an envconfig error", into, err)
			}
		})
	}
}

func TestDefaultsIgnoresTheEnvironment(t *testing.T) {
	setEnv(t, map[string]string{"ENVCONFIG_TEST_COUNT": "not even a number", "ENVCONFIG_TEST_LEVEL": "debug"})
	var got testConfig
	if err := Defaults(&got); err != nil {
		t.Fatal(err)
	}
	want := testConfig{Level: slog.LevelInfo, TTL: 2 * time.Hour, Count: 1, On: true, Primary: testDB{5432}, Replica: testDB{5432}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestParseFileVariants: V_FILE holds V's value in a file (a mounted
// Docker or Kubernetes secret), for every variable, nested ones too.
func TestParseFileVariants(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clearFiles := func(t *testing.T) {
		for _, k := range testVars {
			t.Setenv(k+FileSuffix, "")
			os.Unsetenv(k + FileSuffix)
		}
	}
	t.Run("read, trailing line end dropped", func(t *testing.T) {
		setEnv(t, nil)
		clearFiles(t)
		t.Setenv("ENVCONFIG_TEST_URL_FILE", write("url", "postgres://u:s3cret@db/x\r\n"))
		t.Setenv("ENVCONFIG_TEST_REPLICA_PORT_FILE", write("port", "6543\n"))
		var c testConfig
		if err := Parse(&c); err != nil {
			t.Fatal(err)
		}
		if c.URL == nil || c.URL.String() != "postgres://u:s3cret@db/x" || c.Replica.Port != 6543 || c.Primary.Port != 5432 {
			t.Fatalf("got URL %v, ports %d/%d", c.URL, c.Primary.Port, c.Replica.Port)
		}
	})
	t.Run("both set", func(t *testing.T) {
		setEnv(t, map[string]string{"ENVCONFIG_TEST_COUNT": "2"})
		clearFiles(t)
		t.Setenv("ENVCONFIG_TEST_COUNT_FILE", write("count", "3"))
		err := Parse(&testConfig{})
		if err == nil || !strings.Contains(err.Error(), "ENVCONFIG_TEST_COUNT and ENVCONFIG_TEST_COUNT_FILE") {
			t.Fatalf("err = %v, want one naming both variables", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		setEnv(t, nil)
		clearFiles(t)
		t.Setenv("ENVCONFIG_TEST_COUNT_FILE", filepath.Join(dir, "absent"))
		err := Parse(&testConfig{})
		if err == nil || !strings.HasPrefix(err.Error(), "ENVCONFIG_TEST_COUNT_FILE: ") {
			t.Fatalf("err = %v, want one naming ENVCONFIG_TEST_COUNT_FILE", err)
		}
	})
	t.Run("bad value in a file names the variable, not the content", func(t *testing.T) {
		setEnv(t, nil)
		clearFiles(t)
		t.Setenv("ENVCONFIG_TEST_COUNT_FILE", write("bad", "not-a-number"))
		err := Parse(&testConfig{})
		if err == nil || !strings.HasPrefix(err.Error(), "ENVCONFIG_TEST_COUNT: invalid value") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		setEnv(t, nil)
		clearFiles(t)
		t.Setenv("ENVCONFIG_TEST_NAMES_FILE", write("big", strings.Repeat("a", maxFileBytes+1)))
		if err := Parse(&testConfig{}); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSharedChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"a URL, one replica", CheckNATS("nats://127.0.0.1:4222", 1), ""},
		{"no replicas", CheckNATS("nats://127.0.0.1:4222", 0), "WXLOGIN_NATS_REPLICAS: 0 is outside 1..5"},
		{"empty URL", CheckNATS("  ", 1), "WXLOGIN_NATS_URL: must not be empty"},
		{"six replicas", CheckNATS("nats://x", 6), "WXLOGIN_NATS_REPLICAS: 6 is outside 1..5"},
		{"negative replicas", CheckNATS("nats://x", -1), "WXLOGIN_NATS_REPLICAS: -1 is outside 1..5"},
		{"no metrics listener", CheckMetricsAddr(""), ""},
		{"a port", CheckMetricsAddr(":9100"), ""},
		{"no port", CheckMetricsAddr("127.0.0.1"), `WXLOGIN_METRICS_ADDR: "127.0.0.1" is not a host:port address`},
		{"an empty port", CheckMetricsAddr("127.0.0.1:"), `WXLOGIN_METRICS_ADDR: "127.0.0.1:" is not a host:port address`},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v, want no error", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.HasPrefix(tc.err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q…", tc.name, tc.err, tc.want)
		}
	}
}
