package l4

import (
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The balancer keeps UDP idle time in jiffies (bpf_jiffies64 is inlined by
// the verifier; a clock helper costs a kernel call per packet, ~20 ns on
// CPUs with return-stack mitigations). Converting a timeout needs the
// kernel's HZ, which userspace cannot query, so kernelHZ measures it: it
// reads jiffies through a three-instruction program twice, 60 ms apart,
// and rounds to the nearest HZ a kernel can be built with.
var hzChoices = []float64{100, 250, 300, 1000}

const hzWindow = 60 * time.Millisecond

func kernelHZ() (uint64, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xlb_jiffies",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.FnJiffies64.Call(),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return 0, fmt.Errorf("load jiffies probe: %w", err)
	}
	defer prog.Close()
	read := func() (uint32, time.Time, error) {
		in := make([]byte, 14)
		v, _, err := prog.Test(in)
		return v, time.Now(), err
	}
	j1, t1, err := read()
	if err != nil {
		return 0, fmt.Errorf("read jiffies: %w", err)
	}
	time.Sleep(hzWindow)
	j2, t2, err := read()
	if err != nil {
		return 0, fmt.Errorf("read jiffies: %w", err)
	}
	hz := float64(j2-j1) / t2.Sub(t1).Seconds()
	best := hzChoices[0]
	for _, c := range hzChoices {
		if math.Abs(c-hz) < math.Abs(best-hz) {
			best = c
		}
	}
	return uint64(best), nil
}

// jiffies converts a duration to whole jiffies, rounding down: a timeout
// shorter than one tick expires at the next packet.
func jiffies(d time.Duration, hz uint64) uint64 {
	return uint64(d.Nanoseconds()) * hz / uint64(time.Second)
}
