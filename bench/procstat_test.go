package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis: fields are counted
	// from the last ')'. utime 250 and stime 50 ticks: 3 s.
	line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 99 123456789 2048 18446744073709551615"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "4242 no parens S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) took it", bad)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tgateway\nVmPeak:\t  900000 kB\nVmRSS:\t   21504 kB\nRssAnon:\t 10000 kB\n"
	got, err := parseStatusRSS([]byte(status))
	if err != nil || got != 21504<<10 {
		t.Fatalf("parseStatusRSS = %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("parseStatusRSS(%q) took it", bad)
		}
	}
}

// The bench's own process, read from the real /proc: CPU grows with work,
// RSS is plausible, a gone process is an error, and used sums the deltas.
func TestProcOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	before, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var after time.Duration
	for x := 0; after < before+2*clockTick && time.Now().Before(deadline); x++ {
		for i := range 1_000_000 {
			x ^= i * 31
		}
		after, _ = cpuTime(pid)
	}
	if after < before+2*clockTick {
		t.Fatalf("CPU time did not grow: %v then %v", before, after)
	}
	if r, err := rss(pid); err != nil || r < 1<<20 || r > 1<<34 {
		t.Errorf("rss = %d, %v", r, err)
	}
	if _, err := cpuTime(1 << 30); err == nil {
		t.Error("cpuTime of a pid that does not exist")
	}
	start := cpuSample{1: time.Second, 2: 2 * time.Second}
	end := cpuSample{1: 3 * time.Second, 3: time.Second} // 2 ended, 3 started in between
	if got := used(start, end); got != 3*time.Second {
		t.Errorf("used = %v, want 3s", got)
	}
}
