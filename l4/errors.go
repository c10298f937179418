package l4

import (
	"errors"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// Sentinel errors; check with errors.Is. The wrapped messages say what to do.
// The lifecycle ones are xdplink's, so the balancer and the decapsulator
// fail alike.
var (
	// ErrNotPermitted: loading or attaching needs root (CAP_BPF,
	// CAP_NET_ADMIN, and CAP_SYS_ADMIN for pinning).
	ErrNotPermitted = xdplink.ErrNotPermitted
	// ErrNoBTF: the kernel exposes no BTF (/sys/kernel/btf/vmlinux).
	ErrNoBTF = xdplink.ErrNoBTF
	// ErrNoInterface: the named interface does not exist in this network namespace.
	ErrNoInterface = xdplink.ErrNoInterface
	// ErrModeUnsupported: the driver cannot run XDP in the requested mode.
	ErrModeUnsupported = xdplink.ErrUnsupported
	// ErrNoBPFFS: PinPath is not on a mounted bpffs.
	ErrNoBPFFS = xdplink.ErrNoBPFFS
	// ErrIncompatiblePins: pinned maps were created with other sizes or by an
	// incompatible version.
	ErrIncompatiblePins = errors.New("pinned maps are incompatible with this configuration: use the old sizes or remove the pins (Dataplane.Unpin)")
	// ErrUnknownVIP: the VIP was never upserted.
	ErrUnknownVIP = errors.New("unknown vip")
	// ErrUnknownBackend: no live backend has this id.
	ErrUnknownBackend = errors.New("unknown backend")
	// ErrBackendInUse: an installed table still names the backend; install
	// tables without it first.
	ErrBackendInUse = errors.New("backend is still in an installed table: install tables without it first")
	// ErrFull: no free VIP or backend id; raise Config.MaxVIPs/MaxBackends.
	ErrFull = errors.New("no free id: raise the configured maximum")
	// ErrBadTable: the table length is neither 0 nor Config.TableSize.
	ErrBadTable = errors.New("table length must be 0 or the configured table size")
	// ErrNotVIP: Lookup's flow matches no VIP; the packet would pass.
	ErrNotVIP = errors.New("flow matches no vip")
	// ErrNoBackend: Lookup's flow would be dropped (empty table slot).
	ErrNoBackend = errors.New("no backend for flow")
	// ErrUnsupportedHost: the host exceeds a bound the data path is built
	// with (more possible CPUs than XLB_MAX_CPUS).
	ErrUnsupportedHost = errors.New("host not supported by this build of the balancer")
	// ErrInvalid: an argument is malformed (address family, protocol).
	ErrInvalid = errors.New("invalid argument")
)
