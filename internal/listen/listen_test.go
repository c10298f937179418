package listen

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTCPInUse: a port another socket holds is named with the key and how
// to find the holder.
func TestTCPInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	addr := held.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	_, err = TCP(addr, "listeners[0].addr")
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.Contains(t, err.Error(), "listen on tcp "+addr+" (listeners[0].addr): another process already listens there (`ss -tlnp 'sport = :"+port+"'` shows which): stop it, or change listeners[0].addr")
}

// TestTCPNotThisHost: an address of no interface (the VIP before it is on
// loopback) says to put it there. 192.0.2.0/24 is documentation space: no
// packet is sent, the bind fails locally.
func TestTCPNotThisHost(t *testing.T) {
	_, err := TCP("192.0.2.123:18080", "listeners[0].addr")
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
	assert.Contains(t, err.Error(), "192.0.2.123 is not an address of this host")
	assert.Contains(t, err.Error(), "ip addr add 192.0.2.123/32 dev lo")
	_, err = UDP("[2001:db8::123]:5353", "listen")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen on udp [2001:db8::123]:5353 (listen): 2001:db8::123 is not an address of this host")
	assert.Contains(t, err.Error(), "ip addr add 2001:db8::123/128 dev lo")
}

// TestExplain: the causes a test cannot provoke as root, and one without
// advice, which keeps the system's words.
func TestExplain(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	err := Explain("tcp", ":80", "listeners[0].addr", opErr(syscall.EACCES))
	assert.Equal(t, "listen on tcp :80 (listeners[0].addr): a port below 1024 needs root or CAP_NET_BIND_SERVICE (the packaged units grant it): listen tcp: bind: permission denied", err.Error())
	assert.ErrorIs(t, err, syscall.EACCES)
	err = Explain("udp", ":53", "listen", opErr(syscall.EMFILE))
	assert.Equal(t, "listen on udp :53 (listen): listen tcp: bind: too many open files", err.Error())
	var op *net.OpError
	assert.True(t, errors.As(err, &op))
}
