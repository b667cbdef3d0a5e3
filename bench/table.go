package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// processes are the CPU columns, in order: the services (or the bare
// chain's programs in their places), NATS, Postgres, the fake WeChat and
// the load generator itself.
var processes = []string{"gateway", "identity", "session", "nats", "postgres", "fake", "bench"}

// row is one scenario's figures.
type row struct {
	name    string
	ok      int           // successful operations
	elapsed time.Duration // the load window
	lat     summary
	errs    errorCounts
	// cpu is the CPU each process used over the load window and the drain
	// after it (events still being relayed); nil without processes (-target).
	cpu map[string]time.Duration
	pg  *pgDelta // nil when Postgres was not measured
	// notes are extra figures of the scenario (QR latency, drain, ...).
	notes []string
}

func (r row) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// perOp is d per successful operation, in microseconds.
func (r row) perOp(d time.Duration) string {
	if r.ok == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(r.ok))
}

// writeReport prints the tables of rows as Markdown, so a run can be pasted
// into docs/BENCHMARKS.md as it is.
func writeReport(w io.Writer, rows []row) {
	header := []string{"scenario", "ok", "req/s", "p50", "p95", "p99", "max", "errors"}
	withCPU := slices.ContainsFunc(rows, func(r row) bool { return r.cpu != nil })
	if withCPU {
		for _, p := range processes {
			header = append(header, p+" µs")
		}
		header = append(header, "total µs")
	}
	var cells [][]string
	for _, r := range rows {
		rate := "–"
		if r.elapsed > 0 {
			rate = thousands(int(r.rate() + 0.5))
		}
		c := []string{r.name, thousands(r.ok), rate, ms(r.lat.p50), ms(r.lat.p95), ms(r.lat.p99), ms(r.lat.max), errorsCell(r.errs)}
		if withCPU {
			var total time.Duration
			for _, p := range processes {
				if r.cpu == nil {
					c = append(c, "")
					continue
				}
				total += r.cpu[p]
				c = append(c, r.perOp(r.cpu[p]))
			}
			if r.cpu == nil {
				c = append(c, "")
			} else {
				c = append(c, r.perOp(total))
			}
		}
		cells = append(cells, c)
	}
	fmt.Fprintln(w, markdownTable(header, cells))
	if withCPU {
		fmt.Fprintln(w, "CPU columns: microseconds of CPU (user + system, /proc/<pid>/stat) per successful operation, over the load window and the drain after it.")
		fmt.Fprintln(w)
	}

	var pgCells [][]string
	for _, r := range rows {
		if r.pg == nil || r.ok == 0 {
			continue
		}
		per := func(v float64) string { return fmt.Sprintf("%.2f", v/float64(r.ok)) }
		pgCells = append(pgCells, []string{r.name, per(r.pg.commits), fmt.Sprintf("%.0f", r.pg.walBytes/float64(r.ok)),
			per(r.pg.ins), per(r.pg.upd), per(r.pg.hotUpd), per(r.pg.del)})
	}
	if len(pgCells) > 0 {
		fmt.Fprintln(w, markdownTable([]string{"Postgres per operation", "commits", "WAL bytes", "rows inserted", "rows updated", "of which HOT", "rows deleted"}, pgCells))
	}
	for _, r := range rows {
		for _, n := range r.notes {
			fmt.Fprintf(w, "- %s: %s\n", r.name, n)
		}
	}
}

// markdownTable lays out a Markdown table with padded columns.
func markdownTable(header []string, rows [][]string) string {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// ms formats a latency in milliseconds: 0.42, 3.1, 67.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "–"
	case v < 1:
		return fmt.Sprintf("%.2f ms", v)
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// thousands formats n with commas: 12,345.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// errorsCell lists the errors by kind, most frequent first: "3× 503
// service_unavailable, 1× transport".
func errorsCell(e errorCounts) string {
	if len(e) == 0 {
		return "0"
	}
	kinds := make([]string, 0, len(e))
	for k := range e {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if e[a] != e[b] {
			return e[b] - e[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d× %s", e[k], k)
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
