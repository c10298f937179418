package xdplink

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Sentinel errors; check with errors.Is. Each message says what to do.
var (
	// ErrNotPermitted: loading or attaching needs root (CAP_BPF,
	// CAP_NET_ADMIN, and CAP_SYS_ADMIN for pinning).
	ErrNotPermitted = errors.New("not permitted: run as root or with CAP_BPF and CAP_NET_ADMIN")
	// ErrUnsupported: the driver cannot run XDP in the requested mode.
	ErrUnsupported = errors.New("xdp mode not supported by this driver: use generic or auto mode")
	// ErrBusy: another XDP program is attached to the interface.
	ErrBusy = errors.New("another xdp program is attached: remove it with `ip link set dev IFACE xdp off`")
	// ErrNoInterface: the named interface does not exist in this network
	// namespace.
	ErrNoInterface = errors.New("no such interface: check `ip link` in the daemon's network namespace")
	// ErrNoBPFFS: a pin directory is not on a mounted bpffs.
	ErrNoBPFFS = errors.New("pin path is not on bpffs: mount it with `mount -t bpf bpffs /sys/fs/bpf`")
	// ErrNoBTF: the kernel exposes no BTF (/sys/kernel/btf/vmlinux).
	ErrNoBTF = errors.New("kernel has no BTF: use a kernel built with CONFIG_DEBUG_INFO_BTF=y")
)

// AttachError classifies an attach failure: permission, another program
// in the way, or a mode the driver lacks. The kernel's error stays wrapped.
func AttachError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.ERANGE), errors.Is(err, unix.ENOSPC), errors.Is(err, ebpf.ErrNotSupported):
		// veth says ERANGE (peer MTU above a page) and ENOSPC (fewer RX
		// than peer TX queues) for what is, to the user, "native mode
		// does not work here".
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// LoadError classifies a failure to load a collection. A verifier
// rejection keeps the *ebpf.VerifierError wrapped and, with a logger, logs
// its whole log (the last lines alone rarely show the cause). Pinned maps of
// another layout (ebpf.ErrMapIncompatible) are left to the caller, who
// knows which sizes to advise.
func LoadError(err error, log *slog.Logger) error {
	var verr *ebpf.VerifierError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &verr):
		if log != nil {
			log.Error("verifier rejected the program", "error", fmt.Sprintf("%+v", verr))
		}
		return fmt.Errorf("verifier rejected the program: %w", err)
	case errors.Is(err, ebpf.ErrMapIncompatible):
		return err
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	}
	if _, berr := btf.LoadKernelSpec(); berr != nil {
		return fmt.Errorf("%w: %w", ErrNoBTF, err)
	}
	return err
}
