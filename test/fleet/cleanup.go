package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/test/topo"
)

// Cleanup removes what a fleet of this prefix left behind when its driver
// was killed before Close: the processes still running in its namespaces
// (SIGKILL), the daemons' pins, FRR's run directories and the namespaces.
func Cleanup(prefix string) error {
	if prefix == "" || strings.ContainsAny(prefix, "/-*") {
		return fmt.Errorf("cleanup fleet: bad prefix %q", prefix)
	}
	var errs []error
	for _, pid := range procsIn(prefix) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill leftover process %d: %w", pid, err))
		}
	}
	pins, _ := filepath.Glob("/sys/fs/bpf/" + prefix + "-*")
	for _, p := range pins {
		errs = append(errs, l4.RemovePins(p))
	}
	frr, _ := filepath.Glob("/var/run/frr/" + prefix + "-*")
	for _, p := range frr {
		errs = append(errs, os.RemoveAll(p))
	}
	errs = append(errs, topo.Cleanup(prefix))
	return errors.Join(errs...)
}

// procsIn lists the processes (other than this one) whose network
// namespace is one of the prefix's.
func procsIn(prefix string) []int {
	netns, _ := filepath.Glob("/run/netns/" + prefix + "-*")
	inodes := map[uint64]bool{}
	for _, p := range netns {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range procs {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || !inodes[st.Ino] {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(p, "/")[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// PIDs are the processes running in the fleet's namespaces: the ones it
// started and FRR's.
func (f *Fleet) PIDs() []int { return procsIn(f.Topo.Prefix()) }
