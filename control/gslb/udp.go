package gslb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP is served by a loop of its own rather than miekg/dns's server: that
// one reads one datagram per system call and starts a goroutine for each
// (whose stack then grows on every query). Here one recvmmsg reads every
// query waiting, each is answered inline, and one sendmmsg writes all the
// answers: under load the system calls, most of the cost of a query, are
// shared by a whole batch.
const (
	// udpBatch is the most datagrams read or written by one system call.
	udpBatch = 64
	// udpReadSize is the receive buffer of one datagram; a larger query
	// is cut and then answered FORMERR.
	udpReadSize = 4096
)

// batchConn reads and writes datagrams in batches (ipv4.PacketConn and
// ipv6.PacketConn; their Message is the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// sourcer sets an answer's source address to the query's destination:
// needed on a wildcard listener of a host with several addresses, where
// the kernel would otherwise pick one the client did not ask.
type sourcer interface {
	oobSize() int
	replyOOB(queryOOB []byte) []byte
}

type src4 struct{}

func (src4) oobSize() int { return len(ipv4.NewControlMessage(ipv4.FlagDst | ipv4.FlagInterface)) }
func (src4) replyOOB(oob []byte) []byte {
	var cm ipv4.ControlMessage
	if cm.Parse(oob) != nil || cm.Dst == nil {
		return nil
	}
	return (&ipv4.ControlMessage{Src: cm.Dst}).Marshal()
}

type src6 struct{}

func (src6) oobSize() int { return len(ipv6.NewControlMessage(ipv6.FlagDst | ipv6.FlagInterface)) }
func (src6) replyOOB(oob []byte) []byte {
	var cm ipv6.ControlMessage
	if cm.Parse(oob) != nil || cm.Dst == nil {
		return nil
	}
	return (&ipv6.ControlMessage{Src: cm.Dst}).Marshal()
}

// newBatchConn wraps pc; the sourcer is nil unless pc listens on a
// wildcard address.
func newBatchConn(pc net.PacketConn) (batchConn, sourcer, error) {
	la, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, nil, fmt.Errorf("dns udp: %T is not a UDP socket", pc.LocalAddr())
	}
	if la.IP.To4() != nil {
		c := ipv4.NewPacketConn(pc)
		if !la.IP.IsUnspecified() {
			return c, nil, nil
		}
		if err := c.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			return nil, nil, fmt.Errorf("dns udp: ask for destination addresses: %w", err)
		}
		return c, src4{}, nil
	}
	c := ipv6.NewPacketConn(pc)
	if !la.IP.IsUnspecified() {
		return c, nil, nil
	}
	if err := c.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return nil, nil, fmt.Errorf("dns udp: ask for destination addresses: %w", err)
	}
	return c, src6{}, nil
}

// serveUDP answers the queries arriving on pc until pc is closed.
func (s *Server) serveUDP(pc net.PacketConn) error {
	bc, srcs, err := newBatchConn(pc)
	if err != nil {
		return err
	}
	in := make([]ipv4.Message, udpBatch)
	outBufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
		if srcs != nil {
			in[i].OOB = make([]byte, srcs.oobSize())
		}
		outBufs[i] = make([]byte, answerUDPSize)
	}
	out := make([]ipv4.Message, 0, udpBatch)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dns udp read: %w", err)
		}
		start := time.Now()
		out = out[:0]
		for i := range in[:n] {
			q := &in[i]
			m := s.replyUDP(q.Buffers[0][:q.N], q.Addr, start)
			if m == nil {
				continue
			}
			b, err := m.PackBuffer(outBufs[len(out)])
			if err != nil {
				s.log.Debug("dns pack", "client", q.Addr.String(), "err", err)
				continue
			}
			a := ipv4.Message{Buffers: [][]byte{b}, Addr: q.Addr}
			if srcs != nil {
				a.OOB = srcs.replyOOB(q.OOB[:q.NN])
			}
			out = append(out, a)
		}
		for sent := 0; sent < len(out); {
			k, err := bc.WriteBatch(out[sent:], 0)
			if err != nil {
				// One bad destination (e.g. unreachable) must not cost
				// the rest of the batch their answers.
				s.log.Debug("dns udp write", "client", out[sent].Addr.String(), "err", err)
				k = max(k, 1)
			}
			sent += k
		}
		took := time.Since(start).Seconds()
		for range out {
			s.metrics.latency.Observe(took)
		}
	}
}

// replyUDP is the answer to one datagram, nil for none. Like miekg/dns's
// server: a datagram without a whole header is dropped, and one the
// default accept rules reject (a response, not one question, ...) or
// that does not parse is answered FORMERR (NOTIMP for an opcode other
// than QUERY and NOTIFY) with the query's ID.
func (s *Server) replyUDP(b []byte, remote net.Addr, start time.Time) *dns.Msg {
	if len(b) < 12 {
		return nil
	}
	dh := dns.Header{
		Id: binary.BigEndian.Uint16(b), Bits: binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]), Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]), Arcount: binary.BigEndian.Uint16(b[10:]),
	}
	switch dns.DefaultMsgAcceptFunc(dh) {
	case dns.MsgIgnore:
		return nil
	case dns.MsgAccept:
		r := new(dns.Msg)
		if r.Unpack(b) == nil {
			return s.reply(r, remote, start)
		}
		return rejected(dh, dns.RcodeFormatError)
	case dns.MsgRejectNotImplemented:
		return rejected(dh, dns.RcodeNotImplemented)
	default:
		return rejected(dh, dns.RcodeFormatError)
	}
}

// rejected is the header-only answer to a query that is not answered.
func rejected(dh dns.Header, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.Id, m.Response, m.Rcode = dh.Id, true, rcode
	m.RecursionDesired = dh.Bits&(1<<8) != 0
	m.CheckingDisabled = dh.Bits&(1<<4) != 0
	if rcode == dns.RcodeNotImplemented {
		m.Opcode = int(dh.Bits>>11) & 0xf
	}
	return m
}
