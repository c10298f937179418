package api

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// VIPKey names a VIP the way the data path matches it: address, port and
// protocol. Port 0 means any port.
//
// Its text form, used by the CLI and in JSON, is ADDR:PORT/PROTO with IPv6
// addresses in brackets and * for any port: 10.0.0.1:80/tcp,
// [2001:db8::1]:443/tcp, 10.0.0.1:*/udp.
type VIPKey struct {
	Addr  netip.Addr
	Port  uint16 // 0 = any port
	Proto string // ProtoTCP or ProtoUDP
}

// ParseVIPKey parses the text form of a VIPKey. The protocol may be left out
// and then defaults to tcp, as most VIPs are HTTP.
func ParseVIPKey(s string) (VIPKey, error) {
	hostPort, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = ProtoTCP
	}
	host, port, err := splitHostPort(hostPort)
	if err != nil {
		return VIPKey{}, fmt.Errorf("parse vip %q: %w (want ADDR:PORT/PROTO, e.g. 10.0.0.1:80/tcp, [2001:db8::1]:443/tcp or 10.0.0.1:*/udp)", s, err)
	}
	k := VIPKey{Proto: strings.ToLower(proto)}
	if k.Addr, err = parseAddr(host); err != nil {
		return VIPKey{}, fmt.Errorf("parse vip %q: %w", s, err)
	}
	if port != "*" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return VIPKey{}, fmt.Errorf("parse vip %q: port %q is not a number 0-65535 or *", s, port)
		}
		k.Port = uint16(p)
	}
	if err := k.Validate(); err != nil {
		return VIPKey{}, fmt.Errorf("parse vip %q: %w", s, err)
	}
	return k, nil
}

// splitHostPort splits "host:port" or "[v6]:port". Unlike net.SplitHostPort
// it insists on brackets for IPv6, because "2001:db8::1:80" is ambiguous.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", fmt.Errorf("missing ] after IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		port, ok := strings.CutPrefix(rest, ":")
		if !ok || port == "" {
			return "", "", fmt.Errorf("missing :PORT after [%s]", host)
		}
		return host, port, nil
	}
	i := strings.LastIndex(s, ":")
	if i < 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("missing :PORT")
	}
	host, port = s[:i], s[i+1:]
	if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("IPv6 address must be in brackets, like [2001:db8::1]:443")
	}
	return host, port, nil
}

// parseAddr parses a VIP or backend address: plain IPv4 or IPv6, no zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has an IPv6 zone; zones are not supported", s)
	}
	return a, nil
}

// ParseBackendAddr parses a backend (L7 host) address and checks that it can
// be one.
func ParseBackendAddr(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parse backend: %w", err)
	}
	if err := checkUnicast(a); err != nil {
		return netip.Addr{}, fmt.Errorf("parse backend %q: %w", s, err)
	}
	return a, nil
}

// ParseFlowSource parses the SRC:PORT of `xlb flow`.
func ParseFlowSource(s string) (netip.AddrPort, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse source %q: %w (want ADDR:PORT)", s, err)
	}
	a, err := parseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse source %q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse source %q: port %q is not a number 0-65535", s, port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// checkUnicast rejects addresses that can never be a VIP or an L7 host.
func checkUnicast(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("address is missing")
	case a.Is4In6():
		return fmt.Errorf("IPv4-mapped IPv6 address %s: write it as %s", a, a.Unmap())
	case a.IsUnspecified():
		return fmt.Errorf("unspecified address %s", a)
	case a.IsMulticast():
		return fmt.Errorf("multicast address %s", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("broadcast address %s", a)
	case a.IsLoopback() && a.Is6():
		// ::1 cannot be routed anywhere; 127/8 is left to the operator,
		// since namespace tests use it.
		return fmt.Errorf("loopback address %s", a)
	}
	return nil
}

// Validate reports what is wrong with a key, or nil.
func (k VIPKey) Validate() error {
	if err := checkUnicast(k.Addr); err != nil {
		return fmt.Errorf("vip address: %w", err)
	}
	if k.Addr.Zone() != "" {
		return fmt.Errorf("vip address %s has an IPv6 zone", k.Addr)
	}
	if k.Proto != ProtoTCP && k.Proto != ProtoUDP {
		return fmt.Errorf("protocol %q: use tcp or udp", k.Proto)
	}
	return nil
}

// String returns the text form (see VIPKey); the zero key is "".
func (k VIPKey) String() string {
	if !k.Addr.IsValid() {
		return ""
	}
	port := "*"
	if k.Port != 0 {
		port = strconv.Itoa(int(k.Port))
	}
	host := k.Addr.String()
	if k.Addr.Is6() {
		host = "[" + host + "]"
	}
	return host + ":" + port + "/" + k.Proto
}

// MarshalText implements encoding.TextMarshaler, so a key is a string in JSON
// and can be a map key.
func (k VIPKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. The empty string gives
// the zero key, which Validate rejects.
func (k *VIPKey) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = VIPKey{}
		return nil
	}
	parsed, err := ParseVIPKey(string(b))
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// Validate reports what is wrong with a spec, or nil. The daemon may add its
// own checks (e.g. table size must be prime).
func (s VIPSpec) Validate() error {
	if err := s.Key.Validate(); err != nil {
		return err
	}
	if s.Mode != "" && !slices.Contains(Modes(), s.Mode) {
		return fmt.Errorf("forwarding mode %q: use %s", s.Mode, strings.Join(Modes(), " or "))
	}
	seen := make(map[netip.Addr]bool, len(s.Backends))
	for _, b := range s.Backends {
		if err := b.Validate(); err != nil {
			return err
		}
		if seen[b.Addr] {
			return fmt.Errorf("backend %s listed twice", b.Addr)
		}
		seen[b.Addr] = true
	}
	return nil
}

// Validate reports what is wrong with a spec, or nil.
func (s BackendSpec) Validate() error {
	if err := checkUnicast(s.Addr); err != nil {
		return fmt.Errorf("backend address: %w", err)
	}
	if s.Addr.Zone() != "" {
		return fmt.Errorf("backend address %s has an IPv6 zone", s.Addr)
	}
	return nil
}
