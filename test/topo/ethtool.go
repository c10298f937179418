package topo

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Legacy single-feature ethtool commands (linux/ethtool.h); still served
// by the kernel and far simpler than the feature-bitmap interface.
const (
	ethtoolSTXCSUM = 0x17 // TX checksum offload
	ethtoolSTSO    = 0x1f // TCP segmentation offload
	ethtoolSGSO    = 0x24 // generic segmentation offload
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // pad to sizeof(struct ifreq)
}

// SetOffloads turns TX checksum offload, TSO and GSO on the host's
// interface on or off (ethtool -K eth0 tx off tso off gso off). Off matters
// where an XDP program forwards the host's frames: native XDP_TX loses the
// partial-checksum state, and generic XDP cannot segment a GSO
// super-packet after encapsulation.
func (h *Host) SetOffloads(on bool) error {
	var v uint32
	if on {
		v = 1
	}
	// TSO and GSO first: the kernel refuses TSO without checksum offload,
	// so turning off in this order never trips it.
	cmds := []uint32{ethtoolSTSO, ethtoolSGSO, ethtoolSTXCSUM}
	if on {
		cmds = []uint32{ethtoolSTXCSUM, ethtoolSGSO, ethtoolSTSO}
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open ethtool socket in %s: %w", h.Name, err)
		}
		defer unix.Close(fd)
		for _, cmd := range cmds {
			ev := ethtoolValue{cmd: cmd, data: v}
			var ifr ifreqData
			copy(ifr.name[:], h.Ifname)
			ifr.data = unsafe.Pointer(&ev)
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
			if errno != 0 {
				return fmt.Errorf("set offload 0x%x=%d on %s in %s: %w", cmd, v, h.Ifname, h.Name, errno)
			}
		}
		return nil
	})
}
