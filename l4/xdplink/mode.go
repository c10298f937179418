package xdplink

import (
	"fmt"
	"strconv"
)

// Mode selects the XDP hook a program is attached to.
type Mode int

const (
	// ModeAuto tries ModeNative and falls back to ModeGeneric when the
	// driver refuses. As a reported mode (Link.Mode) it means unknown: the
	// kernel could not be asked.
	ModeAuto Mode = iota
	// ModeNative is the driver's hook, before any skb is allocated: the
	// fast path. Attaching fails where the driver lacks it.
	ModeNative
	// ModeGeneric is the driver-independent hook on the skb path: works on
	// every interface, several times slower per packet.
	ModeGeneric
)

// modeNames are the canonical names, indexed by Mode.
var modeNames = [...]string{ModeAuto: "auto", ModeNative: "native", ModeGeneric: "generic"}

// ModeNames lists the canonical mode names: auto, native, generic.
func ModeNames() []string { return append([]string(nil), modeNames[:]...) }

// String returns the canonical name ParseMode accepts.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode" + strconv.Itoa(int(m))
}

// ParseMode parses a mode name: auto (also the empty string), native
// (alias driver) or generic (alias skb), the names ip-link uses included.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "native", "driver", "drv":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return ModeAuto, fmt.Errorf("parse xdp mode %q: want auto, native or generic", s)
}

// MarshalText implements encoding.TextMarshaler (JSON and YAML use it).
func (m Mode) MarshalText() ([]byte, error) {
	if m < 0 || int(m) >= len(modeNames) {
		return nil, fmt.Errorf("marshal xdp mode %d: not a mode", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
