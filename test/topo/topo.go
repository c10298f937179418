package topo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"golang.org/x/sys/unix"
)

const (
	// DefaultBase starts every prefix New makes up; CleanupStale looks for it.
	DefaultBase = "xlbt"
	// BridgeMTU is the default MTU of the bridge and its ports: room for
	// an outer IPv6 header on a 1500-byte packet.
	BridgeMTU = 1600
	// HostIfname is the name of each host's interface in its namespace.
	HostIfname = "eth0"
	// BridgeName is the bridge's name in the bridge namespace.
	BridgeName = "br0"

	netnsDir = "/run/netns"
	// ownerDir holds one file per live topology naming the owning PID, so
	// CleanupStale can tell a crashed run's leftovers from a live run.
	ownerDir = "/run/xlb-topo"
)

// Options configure a Topology. The zero value is usable.
type Options struct {
	// Prefix starts every namespace name. Default: DefaultBase followed by
	// six random hex digits.
	Prefix string
	// Subnet4 and Subnet6 number the hosts' interfaces in the order they
	// are added (.1, .2, ...). Default 10.99.0.0/24 and fd00:99::/64.
	Subnet4, Subnet6 netip.Prefix
	// BridgeMTU is the MTU of the bridge and of the bridge-side ports
	// (default BridgeMTU).
	BridgeMTU int
	// Logger receives topology creation and teardown (default: discard).
	Logger *slog.Logger
}

// Topology is a bridge namespace plus host namespaces. Methods are safe
// for concurrent use.
type Topology struct {
	prefix  string
	sub4    netip.Prefix
	sub6    netip.Prefix
	mtu     int
	log     *slog.Logger
	brNS    *nsHandle
	brIndex int

	mu     sync.Mutex
	hosts  []*Host
	byName map[string]*Host
	pass   *ebpf.Program
	links  []link.Link
	closed bool
}

// New creates the bridge namespace of a new topology. Call Close to remove
// it; tests should use NewT.
func New(opts Options) (_ *Topology, err error) {
	if opts.Prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("make topology prefix: %w", err)
		}
		opts.Prefix = DefaultBase + hex.EncodeToString(b[:])
	}
	if strings.ContainsAny(opts.Prefix, "/- ") {
		return nil, fmt.Errorf("create topology: prefix %q must not contain '/', '-' or spaces", opts.Prefix)
	}
	if !opts.Subnet4.IsValid() {
		opts.Subnet4 = netip.MustParsePrefix("10.99.0.0/24")
	}
	if !opts.Subnet6.IsValid() {
		opts.Subnet6 = netip.MustParsePrefix("fd00:99::/64")
	}
	if !opts.Subnet4.Addr().Is4() || !opts.Subnet6.Addr().Is6() {
		return nil, fmt.Errorf("create topology: Subnet4 %v must be IPv4 and Subnet6 %v IPv6", opts.Subnet4, opts.Subnet6)
	}
	if opts.BridgeMTU == 0 {
		opts.BridgeMTU = BridgeMTU
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tp := &Topology{
		prefix: opts.Prefix,
		sub4:   opts.Subnet4.Masked(),
		sub6:   opts.Subnet6.Masked(),
		mtu:    opts.BridgeMTU,
		log:    opts.Logger.With("topo", opts.Prefix),
		byName: map[string]*Host{},
	}
	// From here on, Close undoes whatever was made.
	defer func() {
		if err != nil {
			err = errors.Join(err, tp.Close())
		}
	}()
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", ownerDir, err)
	}
	if err := os.WriteFile(tp.ownerFile(), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("write topology owner file: %w", err)
	}
	if tp.brNS, err = newNamedNS(tp.NetNSName("br")); err != nil {
		return nil, err
	}
	nl, err := tp.brNS.netlink()
	if err != nil {
		return nil, fmt.Errorf("open netlink in bridge netns: %w", err)
	}
	defer nl.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: tp.mtu}}
	if err := nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create bridge: %w", err)
	}
	if err := nl.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set bridge up: %w", err)
	}
	l, err := nl.LinkByName(BridgeName)
	if err != nil {
		return nil, fmt.Errorf("find bridge: %w", err)
	}
	tp.brIndex = l.Attrs().Index
	tp.log.Info("topology created")
	return tp, nil
}

// NewT creates a topology for a test: it skips the test when not root,
// removes leftovers of crashed runs, and registers Close with t.Cleanup
// (which also runs when the test fails or panics).
func NewT(t testing.TB, opts Options) *Topology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI runs this as root")
	}
	if err := CleanupStale(); err != nil {
		t.Logf("remove stale topologies: %v", err)
	}
	tp, err := New(opts)
	if err != nil {
		t.Fatalf("create topology: %v", err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("close topology %s: %v", tp.Prefix(), err)
		}
	})
	return tp
}

// Prefix returns the prefix of every namespace of this topology.
func (tp *Topology) Prefix() string { return tp.prefix }

// NetNSName returns the namespace name of the host called name
// ("br" is the bridge's).
func (tp *Topology) NetNSName(name string) string { return tp.prefix + "-" + name }

func (tp *Topology) ownerFile() string { return filepath.Join(ownerDir, tp.prefix) }

// BridgeDo runs fn in the bridge namespace (e.g. to read port counters).
func (tp *Topology) BridgeDo(fn func() error) error { return inNS(tp.brNS, fn) }

// Host returns the host called name, or nil.
func (tp *Topology) Host(name string) *Host {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.byName[name]
}

// Hosts returns the hosts in the order they were added.
func (tp *Topology) Hosts() []*Host {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]*Host(nil), tp.hosts...)
}

// Close detaches the XDP programs the topology attached and removes its
// namespaces (and so every link in them). Sockets still open in a
// namespace keep it alive, unnamed, until they are closed. Close is
// idempotent.
func (tp *Topology) Close() error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		return nil
	}
	tp.closed = true
	var errs []error
	for _, l := range tp.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach xdp pass: %w", err))
		}
	}
	if tp.pass != nil {
		errs = append(errs, tp.pass.Close())
	}
	for _, h := range tp.hosts {
		h.ns.close()
	}
	tp.brNS.close()
	// Remove by name, not by the handles: this also catches a namespace
	// whose creation failed half-way.
	errs = append(errs, Cleanup(tp.prefix))
	errs = append(errs, removeIfExists(tp.ownerFile()))
	tp.log.Info("topology removed")
	return errors.Join(errs...)
}

// Cleanup removes every namespace named "<prefix>-*". It does not check
// whether a live process still uses them: use it for a prefix you own.
func Cleanup(prefix string) error {
	if prefix == "" {
		return errors.New("cleanup topology: empty prefix")
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", netnsDir, err)
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix+"-") {
			continue
		}
		if err := deleteNamed(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func deleteNamed(name string) error {
	p := filepath.Join(netnsDir, name)
	// Not mounted (a creation that failed before the bind mount) is fine.
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %q: %w", name, err)
	}
	return removeIfExists(p)
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// CleanupStale removes the namespaces of topologies (prefix DefaultBase)
// whose owning process is gone: leftovers of runs that crashed or were
// killed before Close. Live topologies of concurrent runs are kept.
func CleanupStale() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", netnsDir, err)
	}
	stale := map[string]bool{}
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "-")
		if !ok || !strings.HasPrefix(prefix, DefaultBase) {
			continue
		}
		if _, seen := stale[prefix]; !seen {
			stale[prefix] = !ownerAlive(prefix)
		}
	}
	var errs []error
	for prefix, dead := range stale {
		if !dead {
			continue
		}
		errs = append(errs, Cleanup(prefix), removeIfExists(filepath.Join(ownerDir, prefix)))
	}
	return errors.Join(errs...)
}

// ownerAlive reports whether the process that created prefix still runs.
// No owner file means a run from before owner files, or one that crashed
// between writing it and creating namespaces: treat as dead.
func ownerAlive(prefix string) bool {
	b, err := os.ReadFile(filepath.Join(ownerDir, prefix))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
