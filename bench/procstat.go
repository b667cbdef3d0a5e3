package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports: the kernel reports in it
// whatever its internal HZ).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time (user + system) a process has used, from
// /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: no command field in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: %d fields after the command, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: utime %q, stime %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// rss is a process's resident set size in bytes, from /proc/<pid>/status.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusRSS(b)
}

// parseStatusRSS reads the VmRSS line ("VmRSS:    12345 kB").
func parseStatusRSS(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("procstat: VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: VmRSS line %q", line)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("procstat: no VmRSS line")
}

// cpuSample is the CPU time of a set of processes, by pid.
type cpuSample map[int]time.Duration

func sampleCPU(pids []int) cpuSample {
	s := make(cpuSample, len(pids))
	for _, pid := range pids {
		if t, err := cpuTime(pid); err == nil {
			s[pid] = t
		}
	}
	return s
}

// used is the CPU time the processes of end used since start. A process
// that started in between counts from zero; one that ended in between is
// lost (only short-lived Postgres workers do).
func used(start, end cpuSample) time.Duration {
	var d time.Duration
	for pid, t := range end {
		d += t - start[pid]
	}
	return d
}
