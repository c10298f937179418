package proxyproto_test

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/xlbproject/xlb/l7/proxyproto"
)

// The expected bytes are written out from the specification's layout:
// signature, version/command, family/transport, length, addresses, ports.
const sig = "0d0a0d0a000d0a515549540a"

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestHeader(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	tests := []struct {
		name     string
		src, dst net.Addr
		want     string
	}{
		{"ipv4", tcp("192.0.2.10:51234"), tcp("10.0.0.5:5432"),
			sig + "21 11 000c c000020a 0a000005 c822 1538"},
		{"ipv4-mapped client of a dual-stack listener is ipv4", tcp("[::ffff:192.0.2.10]:51234"), tcp("[::ffff:10.0.0.5]:5432"),
			sig + "21 11 000c c000020a 0a000005 c822 1538"},
		{"ipv6", tcp("[2001:db8::1]:443"), tcp("[2001:db8::2]:5433"),
			sig + "21 21 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 01bb 1539"},
		{"mixed families as ipv6", tcp("192.0.2.10:1"), tcp("[2001:db8::2]:2"),
			sig + "21 21 0024 00000000000000000000ffffc000020a 20010db8000000000000000000000002 0001 0002"},
		{"not tcp is local", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, tcp("10.0.0.5:5432"),
			sig + "20 00 0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := proxyproto.Header(tt.src, tt.dst)
			assert.Equal(t, unhex(tt.want), got, "got %x", got)
		})
	}
}

func TestLocal(t *testing.T) {
	assert.Equal(t, unhex(sig+"2000 0000"), proxyproto.Local())
}
