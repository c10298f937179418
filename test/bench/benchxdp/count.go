package benchxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Class sorts what a Counter receives.
type Class uint32

const (
	// Other is an IPv4 packet not addressed to the backend prefix (a
	// bounced frame still goes to the VIP).
	Other Class = iota
	// Backend is a plain IPv4 packet to an address in the backend prefix
	// (what a NAT balancer forwards).
	Backend
	// Tunnel is IP-in-IP to an address in the backend prefix (what xlb
	// forwards).
	Tunnel
	// NotIPv4 is anything else: too short for an IPv4 header, or another
	// EtherType (the kernel's own IPv6 neighbour discovery or ARP on the
	// link, never a forwarded frame).
	NotIPv4
	numClasses
)

func (c Class) String() string {
	switch c {
	case Other:
		return "other"
	case Backend:
		return "backend"
	case Tunnel:
		return "tunnel"
	case NotIPv4:
		return "not_ipv4"
	}
	return fmt.Sprintf("class(%d)", uint32(c))
}

// Counts are frames received, by class.
type Counts [numClasses]uint64

// Total is the sum over classes.
func (c Counts) Total() uint64 { return c[Other] + c[Backend] + c[Tunnel] + c[NotIPv4] }

// Sub returns c - o, class by class.
func (c Counts) Sub(o Counts) Counts {
	var d Counts
	for i := range c {
		d[i] = c[i] - o[i]
	}
	return d
}

// Counter is the receiving end: an XDP program that counts every frame by
// Class in a per-CPU map and drops it. On a veth it is also what makes the
// peer's native XDP_TX deliver at all.
type Counter struct {
	prog   *ebpf.Program
	counts *ebpf.Map
}

// NewCounter loads a counter that tells frames to backends (an IPv4
// prefix) from the rest.
func NewCounter(backends netip.Prefix) (*Counter, error) {
	if !backends.Addr().Is4() {
		return nil, fmt.Errorf("counter: backend prefix %v is not IPv4", backends)
	}
	backends = backends.Masked()
	var mask [4]byte
	binary.BigEndian.PutUint32(mask[:], ^uint32(0)<<(32-backends.Bits()))
	net4 := backends.Addr().As4()
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_counts", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(numClasses)})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w", err)
	}
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Imm(asm.R7, int32(NotIPv4)),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20),
		asm.JGT.Reg(asm.R4, asm.R3, "count"),
		// Loads are little-endian: compare with the wire bytes read so.
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, int32(binary.LittleEndian.Uint16([]byte{0x08, 0x00})), "count"),
		asm.Mov.Imm(asm.R7, int32(Other)),
		asm.LoadMem(asm.R5, asm.R2, 14+16, asm.Word), // destination address
		asm.And.Imm32(asm.R5, int32(binary.LittleEndian.Uint32(mask[:]))),
		asm.JNE.Imm32(asm.R5, int32(binary.LittleEndian.Uint32(net4[:])), "count"),
		asm.Mov.Imm(asm.R7, int32(Backend)),
		asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R5, 4, "count"),             // IPPROTO_IPIP
		asm.Mov.Imm(asm.R7, int32(Tunnel)),
		asm.StoreMem(asm.R10, -4, asm.R7, asm.Word).WithSymbol("count"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, counts.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("out"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_count", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		counts.Close()
		return nil, fmt.Errorf("load counter program: %w", err)
	}
	return &Counter{prog: prog, counts: counts}, nil
}

// Program is the counting program, to attach to the receiving interface.
func (c *Counter) Program() *ebpf.Program { return c.prog }

// Read sums the counts over CPUs.
func (c *Counter) Read() (Counts, error) {
	var out Counts
	for k := range numClasses {
		var per []uint64
		if err := c.counts.Lookup(uint32(k), &per); err != nil {
			return out, fmt.Errorf("read counter %s: %w", k, err)
		}
		for _, v := range per {
			out[k] += v
		}
	}
	return out, nil
}

// Close releases the program and its map.
func (c *Counter) Close() error { return errors.Join(c.prog.Close(), c.counts.Close()) }

func (c Counts) String() string {
	return fmt.Sprintf("%s=%d %s=%d %s=%d %s=%d", Other, c[Other], Backend, c[Backend], Tunnel, c[Tunnel], NotIPv4, c[NotIPv4])
}
