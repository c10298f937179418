package xdplink

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// PreparePinDir makes sure dir is on a mounted bpffs (ErrNoBPFFS if not)
// and creates it.
func PreparePinDir(dir string) error {
	if err := CheckPinDir(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin path %s: %w", dir, err)
	}
	return nil
}

// CheckPinDir tells whether dir is, or would be created, on a mounted
// bpffs (ErrNoBPFFS if not), changing nothing.
func CheckPinDir(dir string) error {
	parent := dir
	for {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		next := filepath.Dir(parent)
		if next == parent {
			break
		}
		parent = next
	}
	var st unix.Statfs_t
	if err := unix.Statfs(parent, &st); err != nil {
		return fmt.Errorf("stat pin path %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("check pin path %s: %w", dir, ErrNoBPFFS)
	}
	return nil
}

// PinProgram pins prog as dir/name, replacing the pin of a previous
// instance. The pin is for inspection (bpftool); the links hold the program.
func PinProgram(prog *ebpf.Program, dir, name string) error {
	path := filepath.Join(dir, name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace program pin %s: %w", path, err)
	}
	if err := prog.Pin(path); err != nil {
		return fmt.Errorf("pin program %s: %w", path, err)
	}
	return nil
}

// Adopt takes over every link pinned under dir by a previous instance and
// switches it to prog. bpf_link_update replaces the program in one step:
// the interface is never without one. A link whose interface is gone is
// defunct: its pin is removed and it is left out. Each Link's Mode is read
// from the kernel in the calling thread's namespace (ModeAuto if it cannot
// be told, logged).
func Adopt(dir string, prog *ebpf.Program, log *slog.Logger) ([]*Link, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	paths, err := filepath.Glob(filepath.Join(dir, linkPinPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("list pinned links in %s: %w", dir, err)
	}
	var out []*Link
	for _, p := range paths {
		ifname := strings.TrimPrefix(filepath.Base(p), linkPinPrefix)
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			for _, a := range out {
				_ = a.Close()
			}
			return nil, fmt.Errorf("load pinned link %s: %w", p, err)
		}
		if err := l.Update(prog); err != nil {
			log.Warn("dropping defunct pinned xdp link", "iface", ifname, "error", err)
			_ = l.Unpin()
			_ = l.Close()
			continue
		}
		mode, err := kernelMode(l, ifname)
		if err != nil {
			log.Warn("cannot tell the xdp mode of an adopted link", "iface", ifname, "error", err)
		}
		out = append(out, &Link{Link: l, Iface: ifname, Mode: mode, pinned: p})
		log.Info("adopted xdp link", "iface", ifname, "mode", mode.String())
	}
	return out, nil
}

// RemovePins removes every pin under dir (maps, programs, links; pinned
// links are detached first) and dir itself. It
// refuses the root of a bpffs mount, which holds other programs' pins.
func RemovePins(dir string) error {
	if isMountRoot(dir) {
		return fmt.Errorf("remove pins: %s is the root of a bpffs mount, not a pin directory of xlb's", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pin directory %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), linkPinPrefix) {
			// Detach first: an unlinked pin lets go of its link only
			// after an RCU grace period, and the caller expects the
			// interface to be free when this returns.
			if l, err := link.LoadPinnedLink(path, nil); err == nil {
				if err := l.Detach(); err != nil {
					errs = append(errs, fmt.Errorf("detach pinned link %s: %w", path, err))
				}
				_ = l.Close()
			}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove pin: %w", err))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
	}
	return errors.Join(errs...)
}

// isMountRoot reports whether dir is the root of a mount: its device
// differs from its parent's (or it is /).
func isMountRoot(dir string) bool {
	dir = filepath.Clean(dir)
	var st, pst unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return false
	}
	parent := filepath.Dir(dir)
	if parent == dir {
		return true
	}
	if unix.Stat(parent, &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}
