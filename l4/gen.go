package l4

// The balancer object is compiled for little-endian BPF only (x86_64 and
// arm64 hosts); `make generate` sets BPF_CLANG and BPF_CFLAGS to the pinned
// compiler and flags so that the committed output is byte-reproducible.
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags "$BPF_CFLAGS" -tags linux -target bpfel -type xlb_counter xlb ../bpf/xlb.c

// The constants Go shares with the balancer (bpf/include/abi.h): an object
// that is never loaded, whose enums bpf2go exports without -type because
// abi.c's anchor variables use them.
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags "$BPF_CFLAGS" -tags linux -target bpfel abi ../bpf/abi.c
