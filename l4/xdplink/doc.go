// Package xdplink is the one XDP lifecycle of xlb's programs: the balancer
// (l4) and the decapsulator (l4/decap) both attach, pin, adopt and remove
// their programs through it, so a mode, a pin or an error means the same
// thing for both.
//
//   - Mode: native (the driver's hook), generic (the skb path, slower, works
//     everywhere) or auto, which tries native and falls back to generic.
//     Attach returns the mode the program actually runs in; an operator has to
//     see when auto ended up on the slow path.
//   - Pins: a link pinned under a bpffs directory keeps the program attached
//     after the process exits. Adopt switches every pinned link to a freshly
//     loaded program with one bpf_link_update, so a restart never leaves the
//     interface without a program (hitless restart).
//   - Errors: attach and load failures are wrapped with a sentinel that says
//     what to do (ErrNotPermitted, ErrUnsupported, ErrBusy, ErrNoInterface,
//     ErrNoBPFFS, ErrNoBTF), keeping the kernel's error, verifier log
//     included, reachable with errors.As.
//
// A pin directory belongs to one program: RemovePins empties it.
package xdplink
