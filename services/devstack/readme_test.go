package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestREADMEQuickStartCurl runs the README's curl walk-through, as a
// newcomer would paste it, against a devstack (its addresses put in for
// the README's 127.0.0.1:8080 and :8081): the login makes Alice, and the
// token the script picks out of the answer works on /api/v1/me.
func TestREADMEQuickStartCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed; .ci/run installs it")
		}
		t.Skip("curl not installed: the README's quick start runs where it is (always under CI=true)")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "A mini-program login through it with curl:")
	if !ok {
		t.Fatal("README: the curl walk-through is gone")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	script, _, ok := strings.Cut(rest, "```")
	if !ok || !strings.Contains(script, "127.0.0.1:8080") || !strings.Contains(script, "127.0.0.1:8081") {
		t.Fatalf("README: the curl walk-through has changed shape:\n%s", script)
	}

	st := startStack(t)
	script = strings.NewReplacer("http://127.0.0.1:8080", st.GatewayURL, "http://127.0.0.1:8081", st.FakeURL).Replace(script)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's curl walk-through: %v\n%s", err, out)
	}
	// Two answers: the login's, then /me's.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"is_new_user":true`) ||
		!strings.Contains(lines[1], `"nickname":"Alice"`) || strings.Contains(lines[1], `"code":`) {
		t.Fatalf("the README's curl walk-through printed:\n%s", out)
	}
}
