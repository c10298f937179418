package topo

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// newPassProgram loads "return XDP_PASS". A veth only delivers native
// XDP_TX/XDP_REDIRECT frames to a peer that runs an XDP program, and this
// is the cheapest one; built from instructions so no C is needed.
func newPassProgram() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xlbt_pass",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp pass program: %w", err)
	}
	return p, nil
}
