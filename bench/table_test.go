package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMarkdownTable(t *testing.T) {
	got := markdownTable([]string{"a", "long header"}, [][]string{{"wide cell", "1"}, {"µ", ""}})
	want := "" +
		"| a         | long header |\n" +
		"| --------- | ----------- |\n" +
		"| wide cell | 1           |\n" +
		"| µ         |             |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{0: "–", 420 * time.Microsecond: "0.42 ms",
		3140 * time.Microsecond: "3.1 ms", 67 * time.Millisecond: "67 ms"} {
		if got := ms(in); got != want {
			t.Errorf("ms(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteReport(t *testing.T) {
	rows := []row{
		{name: "mini-program login, returning users", ok: 20000, elapsed: 10 * time.Second,
			lat:  summary{p50: 10 * time.Millisecond, p95: 20 * time.Millisecond, p99: 30 * time.Millisecond, max: 40 * time.Millisecond},
			errs: errorCounts{},
			cpu:  map[string]time.Duration{"gateway": 2 * time.Second, "postgres": 8 * time.Second},
			pg:   &pgDelta{commits: 30000, walBytes: 60e6, ins: 20000, upd: 80000, hotUpd: 10000}},
		{name: "bare chain: login, returning users", ok: 50000, elapsed: 10 * time.Second, errs: errorCounts{"503": 1},
			cpu: map[string]time.Duration{"gateway": time.Second}},
		{name: "1,000 long polls waiting", ok: 1000},
	}
	var b bytes.Buffer
	writeReport(&b, rows)
	writeRatios(&b, rows)
	out := b.String()
	for _, want := range []string{
		// 20,000 in 10 s; 100 µs of gateway CPU and 400 of Postgres per login, 500 in all.
		"| mini-program login, returning users | 20,000 | 2,000 | 10 ms | 20 ms | 30 ms | 40 ms | 0      | 100        |",
		"| 400         |",
		"| 500      |",
		"| 1× 503 |",
		// 1.5 commits, 3,000 WAL bytes, 1 insert, 4 updates (0.5 HOT).
		"| mini-program login, returning users | 1.50    | 3000      | 1.00          | 4.00         | 0.50         | 0.00         |",
		"| 1,000 long polls waiting            | 1,000  | –     |",
		"mini-program login, returning users: 40% of the bare chain's rate (2,000/s against 5,000/s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-short"})
	if err != nil || c.duration != 1500*time.Millisecond || c.pgSettle != 0 || c.clients != 64 || c.polls != 1000 {
		t.Errorf("-short: %+v %v", c, err)
	}
	c, err = parseFlags([]string{"-short", "-duration", "3s", "-scenarios", "me, refresh"})
	if err != nil || c.duration != 3*time.Second || len(c.only) != 2 || c.only[1] != "refresh" {
		t.Errorf("-short with -duration: %+v %v", c, err)
	}
	c, err = parseFlags(nil)
	if err != nil || c.duration != 10*time.Second || c.pgSettle != 11*time.Second {
		t.Errorf("defaults: %+v %v", c, err)
	}
	if _, err := parseFlags([]string{"-poll-window", "40s"}); err == nil {
		t.Error("a poll window longer than the polls wait")
	}
}
