package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runNodeTests runs `node --test` over the *.test.js files of dir (relative
// to the repository root; the other files there are the tests' helpers) with
// env added, and fails the test when any Node test fails or is skipped: the
// live tests skip without a stack, and here they have one. The client
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
	files, err := filepath.Glob(filepath.Join(root, dir, "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.js in %s (%v)", dir, err)
	}
	cmd := exec.Command(node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("node --test %s: %v", dir, err)
	}
	if m := skipped.FindSubmatch(out); m == nil || string(m[1]) != "0" {
		t.Fatalf("node --test %s: tests skipped (or no summary): %q", dir, m)
	}
}

// skipped is the spec reporter's summary line of skipped tests.
var skipped = regexp.MustCompile(`(?m)^ℹ skipped (\d+)$`)
