package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The machine is shared: another process running on a generator's CPU
// lowers the frames per second without making a frame any dearer. So each
// sample also measures the CPU time that generating, forwarding and
// counting took: the generator threads' own run time (the receiving NAPI
// work runs in their context when the live-frame run enables softirqs)
// plus the ksoftirqd threads' (softirq work the kernel deferred). CPU
// nanoseconds per delivered frame do not move with other load.

// runtimeOf reads the run time (ns on CPU) of a task from its schedstat.
func runtimeOf(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("read %s: empty", path)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return time.Duration(ns), nil
}

// threadRuntime is the calling thread's run time.
func threadRuntime() (time.Duration, error) { return runtimeOf("/proc/thread-self/schedstat") }

// softirqThreads lists the schedstat files of every ksoftirqd thread.
func softirqThreads() ([]string, error) {
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil {
			continue // exited meanwhile
		}
		if strings.HasPrefix(string(b), "ksoftirqd/") {
			out = append(out, filepath.Join(filepath.Dir(c), "schedstat"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ksoftirqd threads in /proc")
	}
	return out, nil
}

// softirqRuntime is the sum of the ksoftirqd threads' run times.
func softirqRuntime(paths []string) (time.Duration, error) {
	var sum time.Duration
	for _, p := range paths {
		d, err := runtimeOf(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}
