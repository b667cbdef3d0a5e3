package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runNodeTests runs `node --test` over dir (relative to the repository root)
// with env added, and fails the test when any Node test fails. The client
// libraries' own tests run this way so that `make test` covers them against
// a real stack. Under CI=true Node must be there (.ci/run installs it);
// elsewhere the test is skipped without one, as the browser tests are.
func runNodeTests(t *testing.T, dir string, env ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; .ci/run installs Node.js")
		}
		t.Skip("node not installed: the client library tests run where it is (always under CI=true)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", "--test-reporter=spec", filepath.Join(root, dir))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("node --test %s: %v", dir, err)
	}
}
