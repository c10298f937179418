package decap

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

// maxFrame bounds fuzzed frames: a program without xdp.frags never sees more
// than one page of frame, and BPF_PROG_TEST_RUN hands it only the first
// page of a longer buffer.
const maxFrame = 3000

// decapSeeds are well-formed frames of every kind the program tells apart,
// for the fuzzer to start from and mutate.
func decapSeeds(t testing.TB) [][]byte {
	in4 := inner(t, false, "fuzz v4")
	in6 := inner(t, true, "fuzz v6")
	return [][]byte{
		tunnel4(t, l7Addr, false, in4, nil),
		tunnel4(t, l7Addr, true, in6, nil),
		tunnel6(t, l7Addr6, false, in4),
		tunnel6(t, l7Addr6, true, in6),
		tunnel4(t, other4, false, in4, nil),
		gue(t, outer4(l7Addr, false, nil), guePort, in4, false),
		gue(t, outer4(l7Addr, false, nil), guePort, in6, true),
		gue(t, outer6(l7Addr6, false), guePort, in6, true),
		gue(t, outer6(l7Addr6, false), guePort, in4, false),
		append(append(l2(layers.EthernetTypeDot1Q), 0x00, 42, 0x08, 0x00), tunnel4(t, l7Addr, false, in4, nil)[14:]...),
		append(l2(layers.EthernetTypeIPv4), in4...),
		append(l2(layers.EthernetTypeIPv6), in6...),
		l2(layers.EthernetTypeARP),
		{},
	}
}

// checkDecap runs one frame and checks what must hold for every input:
// the verdict is XDP_PASS or XDP_DROP (never XDP_ABORTED, never a
// transmit); a dropped or passed-untouched frame keeps its bytes; a changed
// frame is the input with 20 to 68 bytes of outer headers removed after an
// unchanged L2 header, its outer destination one of this host's addresses,
// and the EtherType that of the inner packet's version; and exactly one
// counter moved by one.
func checkDecap(t testing.TB, d *Decap, in []byte) outcome {
	t.Helper()
	if len(in) > maxFrame {
		in = in[:maxFrame]
	}
	before, err := d.Stats()
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}
	frame := append([]byte(nil), in...)
	out := make([]byte, len(in)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	verdict, err := d.Program().Run(opts)
	if len(in) < 14 {
		// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet
		// header; the kernel never hands XDP one.
		return outcomeNone
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	out = opts.DataOut
	// Checked by hand, not with testify: the fuzzer runs this hundreds of
	// thousands of times and minimizes inputs by rerunning it, so the hex
	// dump is built only for a failure.
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nin:\n%sout:\n%s", append(args, hex.Dump(in), hex.Dump(out))...)
	}
	if verdict != xdpDrop && verdict != xdpPass {
		fail("verdict %d", verdict)
	}
	if verdict == xdpDrop && !bytes.Equal(in, out) {
		fail("a dropped frame was changed")
	}
	if !bytes.Equal(in, out) {
		l2len := 14
		if in[12] == 0x81 && in[13] == 0x00 || in[12] == 0x88 && in[13] == 0xa8 {
			l2len = 18
		}
		strip := len(in) - len(out)
		if strip < 20 || strip > 68 {
			fail("outer headers of %d bytes removed", strip)
		}
		if !bytes.Equal(in[:l2len-2], out[:l2len-2]) {
			fail("the L2 header changed")
		}
		if !bytes.HasSuffix(in, out[l2len:]) {
			fail("the output is not the input's inner packet")
		}
		wantType := []byte{0x08, 0x00}
		if out[l2len]>>4 == 6 {
			wantType = []byte{0x86, 0xdd}
		}
		if !bytes.Equal(wantType, out[l2len-2:l2len]) {
			fail("EtherType %x for an inner packet of version %d", out[l2len-2:l2len], out[l2len]>>4)
		}
		outer := in[l2len:]
		var dst netip.Addr
		switch outer[0] >> 4 {
		case 4:
			dst = netip.AddrFrom4([4]byte(outer[16:20]))
		case 6:
			dst = netip.AddrFrom16([16]byte(outer[24:40]))
		}
		if dst != l7Addr && dst != l7Addr6 {
			fail("decapsulated a tunnel to %s, not to this host", dst)
		}
	}
	after, err := d.Stats()
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}
	var moved int
	for name, c := range after.Reasons() {
		was := before.Reasons()[name]
		switch {
		case c.Packets == was.Packets:
		case c.Packets == was.Packets+1 && c.Bytes == was.Bytes+uint64(len(in)):
			moved++
		default:
			fail("counter %s moved by %d packets, %d bytes", name, c.Packets-was.Packets, c.Bytes-was.Bytes)
		}
	}
	if moved != 1 {
		fail("%d counters moved, want exactly one", moved)
	}
	switch {
	case verdict == xdpDrop:
		return outcomeDropped
	case bytes.Equal(in, out):
		return outcomePassed
	}
	return outcomeDecapsulated
}

// outcome is what checkDecap saw happen to a frame.
type outcome int

const (
	outcomeNone outcome = iota // not run: shorter than an Ethernet header
	outcomePassed
	outcomeDropped
	outcomeDecapsulated
)

// FuzzDecap feeds arbitrary frames through the real program. `go test`
// runs the seeds; `go test -fuzz FuzzDecap ./l4/decap` explores.
func FuzzDecap(f *testing.F) {
	d := openForTest(f)
	for _, s := range decapSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecap(t, d, in)
	})
}

// TestDecapMutations is a bounded, deterministic fuzz run inside the normal
// test suite: every seed with random bytes flipped, lengths edited and
// tails cut, 3000 frames in all.
func TestDecapMutations(t *testing.T) {
	d := openForTest(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	seeds := decapSeeds(t)
	seen := map[outcome]int{}
	for i := 0; i < 3000; i++ {
		seen[checkDecap(t, d, mutate(rnd, seeds[i%len(seeds)]))]++
	}
	t.Logf("passed %d, dropped %d, decapsulated %d, too short to run %d",
		seen[outcomePassed], seen[outcomeDropped], seen[outcomeDecapsulated], seen[outcomeNone])
	// The mutations reach every outcome, so every check above ran.
	for _, o := range []outcome{outcomePassed, outcomeDropped, outcomeDecapsulated} {
		if seen[o] == 0 {
			t.Errorf("no mutation ended with outcome %d", o)
		}
	}
}

// mutate returns a copy of b with a few random edits: bytes overwritten
// (often in the headers, where the program looks), the frame cut short or
// extended.
func mutate(rnd *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	for n := 1 + rnd.IntN(4); n > 0 && len(out) > 0; n-- {
		i := rnd.IntN(len(out))
		if rnd.IntN(4) > 0 {
			i = rnd.IntN(min(len(out), 14+60+8+60))
		}
		out[i] = byte(rnd.Uint32())
	}
	switch rnd.IntN(6) {
	case 0:
		if len(out) > 0 {
			out = out[:rnd.IntN(len(out))]
		}
	case 1:
		out = append(out, make([]byte, rnd.IntN(32))...)
	}
	return out
}
