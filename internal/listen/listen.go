package listen

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// TCP listens on addr, which the config key names (listeners[0].addr,
// metrics.listen), with an error that says what to do when it cannot.
func TCP(addr, key string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, Explain("tcp", addr, key, err)
	}
	return ln, nil
}

// UDP is TCP for a packet socket.
func UDP(addr, key string) (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, Explain("udp", addr, key, err)
	}
	return pc, nil
}

// Explain wraps err, the failure to listen on addr (network tcp or udp)
// that key names, with its cause in the operator's words and the next
// step. err stays reachable through errors.Is and errors.As.
func Explain(network, addr, key string, err error) error {
	host, port, _ := net.SplitHostPort(addr)
	where := fmt.Sprintf("listen on %s %s (%s)", network, addr, key)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s: another process already listens there (`ss -%slnp 'sport = :%s'` shows which): stop it, or change %s: %w",
			where, ssFlag(network), port, key, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s: %s is not an address of this host (`ip addr` lists them); a VIP goes on loopback first "+
			"(ip addr add %s dev lo, docs/deploy.md), or listen on the port of every address (:%s): %w",
			where, host, hostPrefix(host), port, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: a port below 1024 needs root or CAP_NET_BIND_SERVICE (the packaged units grant it): %w", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func ssFlag(network string) string {
	if network == "udp" {
		return "u"
	}
	return "t"
}

// hostPrefix is host as a one-address prefix for `ip addr add`.
func hostPrefix(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return host + "/128"
	}
	return host + "/32"
}
