package benchxdp

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// MACSwap loads the bounce: bounds-check the Ethernet header, swap the MAC
// addresses, XDP_TX. It is the least an XDP_TX forwarder can do per frame.
func MACSwap() (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
		asm.LoadMem(asm.R6, asm.R2, 4, asm.Half),
		asm.LoadMem(asm.R7, asm.R2, 6, asm.Word),
		asm.LoadMem(asm.R8, asm.R2, 10, asm.Half),
		asm.StoreMem(asm.R2, 0, asm.R7, asm.Word),
		asm.StoreMem(asm.R2, 4, asm.R8, asm.Half),
		asm.StoreMem(asm.R2, 6, asm.R5, asm.Word),
		asm.StoreMem(asm.R2, 10, asm.R6, asm.Half),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "mac_swap", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		return nil, fmt.Errorf("load mac swap program: %w", err)
	}
	return p, nil
}

// Pass loads "return XDP_PASS": on a veth it turns on the NAPI path, so
// frames sent to it in XDP form go up the kernel's stack.
func Pass() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bench_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp pass program: %w", err)
	}
	return p, nil
}

// XDP verdicts (linux/bpf.h enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)
