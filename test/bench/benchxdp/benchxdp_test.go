package benchxdp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root; CI runs this as root")
	}
}

var testFlows = Flows{
	SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.10"),
	DstPort: 80, BasePort: 10000, Count: 4,
}

// pin keeps the test on CPU 0, so the generator's per-CPU sequence is
// one sequence.
func pin(t *testing.T) { pinTo(t, 0) }

// pinTo keeps the test on CPU cpu until it ends.
func pinTo(t *testing.T, cpu int) {
	t.Helper()
	runtime.LockOSThread()
	var old, one unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &old))
	one.Set(cpu)
	require.NoError(t, unix.SchedSetaffinity(0, &one))
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

func TestGeneratorWritesWholeFrames(t *testing.T) {
	requireRoot(t)
	pin(t)
	g, err := NewGenerator(testFlows)
	require.NoError(t, err)
	defer g.Close()

	// A recycled page holds whatever the last receiver left: the frame
	// must come out exact from garbage too.
	garbage := make([]byte, FrameLen)
	for i := range garbage {
		garbage[i] = byte(0xa5 ^ i)
	}
	var ports []uint16
	for i, in := range [][]byte{testFlows.Frame(testFlows.BasePort), garbage, garbage, garbage, garbage} {
		out := make([]byte, FrameLen+64)
		opts := &ebpf.RunOptions{Data: in, DataOut: out}
		v, err := g.Program().Run(opts)
		require.NoError(t, err)
		require.EqualValues(t, xdpTX, v, "run %d", i)
		require.Len(t, opts.DataOut, FrameLen)
		p := binary.BigEndian.Uint16(opts.DataOut[offSrcPort:])
		assert.Equal(t, testFlows.Frame(p), opts.DataOut, "run %d: frame for port %d", i, p)
		ports = append(ports, p)

		// gopacket agrees the checksums are right.
		pkt := gopacket.NewPacket(opts.DataOut, layers.LayerTypeEthernet, gopacket.Default)
		tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		require.True(t, ok)
		sum := tcp.Checksum
		require.NoError(t, tcp.SetNetworkLayerForChecksum(pkt.NetworkLayer()))
		buf := gopacket.NewSerializeBuffer()
		require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)))
		assert.Equal(t, sum, binary.BigEndian.Uint16(buf.Bytes()[16:]), "run %d: tcp checksum", i)
	}
	// One step per frame, wrapping at Count.
	for i := 1; i < len(ports); i++ {
		want := testFlows.BasePort + (ports[i-1]-testFlows.BasePort+1)%uint16(testFlows.Count)
		assert.Equal(t, want, ports[i])
	}

	short := make([]byte, 20)
	v, err := g.Program().Run(&ebpf.RunOptions{Data: short})
	require.NoError(t, err)
	assert.EqualValues(t, xdpDrop, v, "a frame shorter than a whole header is dropped")
}

// genPorts runs the generator n times on the calling thread's CPU and
// returns the source ports of the frames.
func genPorts(t *testing.T, g *Generator, n int) []uint16 {
	t.Helper()
	var ports []uint16
	for range n {
		in := testFlows.Frame(1)
		opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, FrameLen+64)}
		v, err := g.Program().Run(opts)
		require.NoError(t, err)
		require.EqualValues(t, xdpTX, v)
		p := binary.BigEndian.Uint16(opts.DataOut[offSrcPort:])
		// The checksum is the one of that port's whole frame.
		require.Equal(t, g.flows.Frame(p), opts.DataOut, "frame for port %d", p)
		ports = append(ports, p)
	}
	return ports
}

// TestGeneratorSplit: after Split(2) each of two CPUs sends its own half
// of the flows, every one of them in turn from the first, as a NIC's RSS
// gives each flow one receive queue; after Split(1) each sends all.
func TestGeneratorSplit(t *testing.T) {
	requireRoot(t)
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	flows := testFlows
	flows.Count = 8
	g, err := NewGenerator(flows)
	require.NoError(t, err)
	defer g.Close()

	assert.Error(t, g.Split(3), "3 does not divide 8 flows")
	assert.Error(t, g.Split(0))

	require.NoError(t, g.Split(2))
	for cpu, want := range [][]uint16{
		{10000, 10001, 10002, 10003, 10000, 10001},
		{10004, 10005, 10006, 10007, 10004, 10005},
	} {
		t.Run(fmt.Sprintf("cpu%d", cpu), func(t *testing.T) {
			pinTo(t, cpu)
			assert.Equal(t, want, genPorts(t, g, len(want)))
			first, n := flows.Ports(2, cpu)
			assert.Equal(t, want[0], first)
			assert.Equal(t, 4, n)
		})
	}
	require.NoError(t, g.Split(1))
	for cpu := range 2 {
		t.Run(fmt.Sprintf("all_cpu%d", cpu), func(t *testing.T) {
			pinTo(t, cpu)
			assert.Equal(t, []uint16{10000, 10001, 10002, 10003, 10004, 10005, 10006, 10007, 10000},
				genPorts(t, g, 9))
		})
	}
}

func TestFlowsValidate(t *testing.T) {
	for _, f := range []func(*Flows){
		func(f *Flows) { f.Count = 3 },
		func(f *Flows) { f.Count = 0 },
		func(f *Flows) { f.BasePort = 65535 },
		func(f *Flows) { f.Src = netip.MustParseAddr("fd00::1") },
		func(f *Flows) { f.DstMAC = nil },
	} {
		fl := testFlows
		f(&fl)
		_, err := NewGenerator(fl)
		assert.Error(t, err, "%+v", fl)
	}
}

func TestCounterClasses(t *testing.T) {
	requireRoot(t)
	pin(t)
	c, err := NewCounter(netip.MustParsePrefix("10.78.0.0/24"))
	require.NoError(t, err)
	defer c.Close()

	toBackend := testFlows
	toBackend.Dst = netip.MustParseAddr("10.78.0.3")
	outside := testFlows
	outside.Dst = netip.MustParseAddr("10.78.1.3")
	tunnel := toBackend.Frame(1)
	tunnel[14+9] = 4
	ipv6 := toBackend.Frame(1)
	ipv6[12], ipv6[13] = 0x86, 0xdd
	frames := []struct {
		in   []byte
		want Class
	}{
		{testFlows.Frame(1), Other},
		{toBackend.Frame(1), Backend},
		{outside.Frame(1), Other},
		{tunnel, Tunnel},
		{tunnel[:20], NotIPv4},
		{ipv6, NotIPv4},
	}
	var want Counts
	for _, f := range frames {
		v, err := c.Program().Run(&ebpf.RunOptions{Data: f.in})
		require.NoError(t, err)
		assert.EqualValues(t, xdpDrop, v)
		want[f.want]++
	}
	got, err := c.Read()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.EqualValues(t, len(frames), got.Total())
}

func TestMACSwap(t *testing.T) {
	requireRoot(t)
	p, err := MACSwap()
	require.NoError(t, err)
	defer p.Close()
	in := testFlows.Frame(1)
	out := make([]byte, len(in)+64)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	v, err := p.Run(opts)
	require.NoError(t, err)
	assert.EqualValues(t, xdpTX, v)
	swapped := testFlows
	swapped.SrcMAC, swapped.DstMAC = testFlows.DstMAC, testFlows.SrcMAC
	assert.Equal(t, swapped.Frame(1), opts.DataOut)
}
