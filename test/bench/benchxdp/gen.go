package benchxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// FrameLen is the length of every generated frame: Ethernet, IPv4 and TCP
// headers and 6 bytes of payload, the 60-byte minimum Ethernet frame.
const FrameLen = 60

// Offsets of the fields the generator varies, in the frame.
const (
	offSrcPort = 14 + 20
	offTCPSum  = 14 + 20 + 16
)

// Flows describes the frames a Generator sends: TCP ACKs (the steady state
// of established connections) from Src to Dst:DstPort, the source port
// running through Count values from BasePort, one step per frame (on each
// CPU through its share of them: Generator.Split).
type Flows struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr // IPv4
	DstPort        uint16
	BasePort       uint16
	Count          int // a power of two, at most 32768
}

func (f Flows) validate() error {
	if len(f.SrcMAC) != 6 || len(f.DstMAC) != 6 {
		return errors.New("flows: MACs must be 6 bytes")
	}
	if !f.Src.Is4() || !f.Dst.Is4() {
		return errors.New("flows: addresses must be IPv4")
	}
	if f.Count < 1 || f.Count > 32768 || bits.OnesCount(uint(f.Count)) != 1 {
		return fmt.Errorf("flows: count %d is not a power of two in [1, 32768]", f.Count)
	}
	if int(f.BasePort)+f.Count > 65536 || f.BasePort == 0 {
		return fmt.Errorf("flows: ports %d..%d out of range", f.BasePort, int(f.BasePort)+f.Count-1)
	}
	return nil
}

// Frame returns the exact frame of the flow with source port sport.
func (f Flows) Frame(sport uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: f.SrcMAC, DstMAC: f.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 1, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: f.Src.AsSlice(), DstIP: f.Dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(f.DstPort), Seq: 1000, Ack: 2000, ACK: true, Window: 65535}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, FrameLen-54))); err != nil {
		panic(err) // fixed layers of a valid shape; cannot fail
	}
	return buf.Bytes()
}

// Generator sends frames with BPF_PROG_TEST_RUN in live-frame mode: the
// kernel runs the program on frames from a page pool and transmits each
// XDP_TX out of the interface named in the context, as a NIC's receive
// path would. The pool recycles pages with whatever the receivers left in
// them (an encapsulating balancer moves the headers), so the program writes
// the whole header into every frame, then the flow's source port and the
// TCP checksum updated for it.
type Generator struct {
	flows Flows
	prog  *ebpf.Program
	seq   *ebpf.Map // per-CPU genState: which flow is next, and the CPU's share
}

// genState is the generator's per-CPU value: frames sent, and the CPU's
// flows, source ports First..First+Span-1.
type genState struct {
	Seq   uint64
	First uint32
	Span  uint32
}

// NewGenerator loads the generator for flows.
func NewGenerator(flows Flows) (*Generator, error) {
	if err := flows.validate(); err != nil {
		return nil, err
	}
	seq, err := ebpf.NewMap(&ebpf.MapSpec{Name: "gen_seq", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create generator counter: %w", err)
	}
	tmpl := flows.Frame(0)
	// One's-complement sum of everything the TCP checksum covers with the
	// source port zero; adding a port to it gives that flow's checksum.
	base := uint64(^binary.BigEndian.Uint16(tmpl[offTCPSum:]))
	binary.BigEndian.PutUint16(tmpl[offTCPSum:], 0)

	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // ctx
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, seq.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R7, asm.R0, 8, asm.Word),  // first port
		asm.LoadMem(asm.R5, asm.R0, 12, asm.Word), // span
		asm.JEq.Imm(asm.R5, 0, "drop"),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, FrameLen),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),
	}
	for off := 0; off+8 <= FrameLen; off += 8 {
		insns = append(insns,
			asm.LoadImm(asm.R1, int64(binary.LittleEndian.Uint64(tmpl[off:])), asm.DWord),
			asm.StoreMem(asm.R2, int16(off), asm.R1, asm.DWord))
	}
	insns = append(insns,
		asm.StoreImm(asm.R2, FrameLen/8*8, int64(binary.LittleEndian.Uint32(tmpl[FrameLen/8*8:])), asm.Word),
		// port = first + seq % span: the CPU's flows in turn, starting
		// with its first (seq counts from 0).
		asm.Mod.Reg(asm.R8, asm.R5),
		asm.Add.Reg(asm.R8, asm.R7),
		// sum = base + port, folded twice; checksum = ^sum
		asm.Mov.Reg(asm.R9, asm.R8),
		asm.Add.Imm(asm.R9, int32(base)),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.RSh.Imm(asm.R1, 16),
		asm.And.Imm(asm.R9, 0xffff),
		asm.Add.Reg(asm.R9, asm.R1),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.RSh.Imm(asm.R1, 16),
		asm.And.Imm(asm.R9, 0xffff),
		asm.Add.Reg(asm.R9, asm.R1),
		asm.Xor.Imm(asm.R9, 0xffff),
		asm.HostTo(asm.BE, asm.R8, asm.Half),
		asm.StoreMem(asm.R2, offSrcPort, asm.R8, asm.Half),
		asm.HostTo(asm.BE, asm.R9, asm.Half),
		asm.StoreMem(asm.R2, offTCPSum, asm.R9, asm.Half),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_gen", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		seq.Close()
		return nil, fmt.Errorf("load generator program: %w", err)
	}
	g := &Generator{flows: flows, prog: prog, seq: seq}
	if err := g.Split(1); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Split shares the flows out over the first n CPUs, the way a NIC's RSS
// hashes each flow to one receive queue: CPU c sends only the c-th of n
// equal, disjoint parts, so every flow is received on one CPU only. With
// n = 1 every CPU sends every flow (which no NIC does: a flow's state is
// then written from every sending CPU in turn). CPUs from n on send every
// flow. Each CPU starts again at its first flow. n must divide Count.
func (g *Generator) Split(n int) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("split flows: %w", err)
	}
	if n < 1 || n > cpus || g.flows.Count%n != 0 {
		return fmt.Errorf("split %d flows over %d CPUs: need 1 <= n <= %d dividing the flow count", g.flows.Count, n, cpus)
	}
	vals := make([]genState, cpus)
	for c := range vals {
		first, count := g.flows.Ports(n, c)
		vals[c] = genState{First: uint32(first), Span: uint32(count)}
	}
	if err := g.seq.Put(uint32(0), vals); err != nil {
		return fmt.Errorf("split flows over %d CPUs: %w", n, err)
	}
	return nil
}

// Ports is the range of source ports CPU cpu sends after Split(n): the
// first and how many.
func (f Flows) Ports(n, cpu int) (first uint16, count int) {
	if n < 1 || cpu >= n || f.Count%n != 0 {
		return f.BasePort, f.Count
	}
	span := f.Count / n
	return f.BasePort + uint16(cpu*span), span
}

// Close releases the program and its map.
func (g *Generator) Close() error {
	return errors.Join(g.prog.Close(), g.seq.Close())
}

// Program is the generator program, for a test run of one frame.
func (g *Generator) Program() *ebpf.Program { return g.prog }

// xdpMD is struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// Send runs the generator count times in live-frame mode and transmits
// every frame out of the interface ifindex of the calling thread's network
// namespace: from there the frames go to the interface's peer as if the
// interface had received and forwarded them. The call runs on the calling
// thread's CPU and returns when all are sent.
func (g *Generator) Send(ifindex int, count uint32) error {
	frame := g.flows.Frame(g.flows.BasePort)
	_, err := g.prog.Run(&ebpf.RunOptions{
		Data:    frame,
		Repeat:  count,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
	})
	if err != nil {
		return fmt.Errorf("send %d live frames out of ifindex %d: %w", count, ifindex, err)
	}
	return nil
}
