package decap

// The objects are committed; clang-19 is needed only to regenerate them
// (`make generate` sets BPF_CLANG and BPF_CFLAGS).
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags "$BPF_CFLAGS" -target bpfel -tags linux decap ../../bpf/decap.c
