package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// tableSize is a small M: the data path does not care, and a small table
// keeps InstallTable cheap.
const tableSize = 257

// l7Host is an L7 host of the test: its namespace, decapsulator, backend
// ids and the servers listening on the VIPs.
type l7Host struct {
	host  *topo.Host
	decap *decap.Decap
	id4   l4.BackendID
	id6   l4.BackendID
}

// bed is the veth test bed:
//
//	client ─┐                         ┌─ l7-1 (VIPs on lo, decap on eth0)
//	lb ─────┼── br0 (own namespace) ──┼─ l7-2 (VIPs on lo, decap on eth0)
//	gw ─────┘
//
// The client routes the VIPs via the LB. The LB's balancer wraps each
// packet in IP-in-IP to the chosen L7 host and sends it (XDP_TX) to its
// configured next hop, gw, a one-armed router (the balancer is given
// one next-hop MAC in this test's configuration; without it, next hops come
// from FIB lookups). The L7 host decapsulates, its server answers from the VIP
// straight to the client.
type bed struct {
	tp     *topo.Topology
	client *topo.Host
	lb     *topo.Host
	gw     *topo.Host
	l7     []*l7Host
	dp     *l4.Dataplane
	vip4   netip.Addr
	vip6   netip.Addr
}

func newBed(t *testing.T, mode xdplink.Mode) *bed {
	t.Helper()
	b := &bed{
		tp:   topo.NewT(t, topo.Options{}),
		vip4: netip.MustParseAddr("198.51.100.10"),
		vip6: netip.MustParseAddr("2001:db8:100::10"),
	}
	var err error
	// The client's frames are forwarded by XDP: full checksums, no GSO
	// (TESTBED traps 2 and 4).
	b.client, err = b.tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	// Native XDP_TX on the LB's veth is delivered only if the bridge-side
	// peer runs XDP (trap 1).
	b.lb, err = b.tp.AddHost(topo.HostConfig{Name: "lb", PeerXDPPass: true})
	require.NoError(t, err)
	b.gw, err = b.tp.AddHost(topo.HostConfig{Name: "gw", MTU: topo.BridgeMTU, RPFilterOff: true, Router: true})
	require.NoError(t, err)
	require.NoError(t, b.client.AddRoute(netip.PrefixFrom(b.vip4, 32), b.lb.Addr4))
	require.NoError(t, b.client.AddRoute(netip.PrefixFrom(b.vip6, 128), b.lb.Addr6))

	b.dp, err = l4.Open(l4.Config{
		TableSize:   tableSize,
		MaxBackends: 16,
		MaxVIPs:     8,
		ConnEntries: 4096,
		OuterSrcV4:  b.lb.Addr4,
		OuterSrcV6:  b.lb.Addr6,
		SrcMAC:      b.lb.MAC,
		NextHopMAC:  b.gw.MAC,
	}, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.dp.Close()) })
	require.NoError(t, b.lb.Do(func() error { return b.dp.Attach(topo.HostIfname, mode) }))

	for i := 1; i <= 2; i++ {
		h, err := b.tp.AddHost(topo.HostConfig{Name: fmt.Sprintf("l7-%d", i), MTU: topo.BridgeMTU,
			VIPs: []netip.Addr{b.vip4, b.vip6}, RPFilterOff: true})
		require.NoError(t, err)
		d, err := decap.Open(decap.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, d.Close()) })
		require.NoError(t, d.SetAddrs([]netip.Addr{h.Addr4, h.Addr6}))
		require.NoError(t, h.Do(func() error { return d.Attach(topo.HostIfname, mode) }))
		l := &l7Host{host: h, decap: d}
		l.id4, err = b.dp.UpsertBackend(h.Addr4)
		require.NoError(t, err)
		l.id6, err = b.dp.UpsertBackend(h.Addr6)
		require.NoError(t, err)
		b.l7 = append(b.l7, l)
		for _, vip := range []netip.Addr{b.vip4, b.vip6} {
			ln, err := h.Listen("tcp", netip.AddrPortFrom(vip, 80).String())
			require.NoError(t, err)
			serve(t, ln, h.Name)
		}
	}
	return b
}

// tWriter sends the data plane's log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// serve answers a line protocol on every connection until the test ends:
//
//	"get N"  → N bytes of 'x' and a newline (a download)
//	anything → "<host> <client addr:port> <line>"
func serve(t *testing.T, ln net.Listener, name string) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Bounded: no connection of this test lives longer.
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimSpace(line)
					if n, ok := strings.CutPrefix(line, "get "); ok {
						size, _ := strconv.Atoi(n)
						if _, err := c.Write(append([]byte(strings.Repeat("x", size)), '\n')); err != nil {
							return
						}
						continue
					}
					if _, err := fmt.Fprintf(c, "%s %s %s\n", name, c.RemoteAddr(), line); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// conn is a client connection with its reader.
type conn struct {
	net.Conn
	r *bufio.Reader
}

// ask sends a line and returns the answering host and the client address
// it saw.
func (c *conn) ask(t *testing.T, msg string) (host, peer string) {
	t.Helper()
	_, err := fmt.Fprintf(c, "%s\n", msg)
	require.NoError(t, err)
	line, err := c.r.ReadString('\n')
	require.NoError(t, err)
	f := strings.Fields(line)
	require.Len(t, f, 3, "answer %q", line)
	assert.Equal(t, msg, f[2])
	return f[0], f[1]
}

// dial connects from the client's given source port to vip:80.
func (b *bed) dial(t *testing.T, ctx context.Context, vip netip.Addr, port uint16) *conn {
	t.Helper()
	var c net.Conn
	err := b.client.Do(func() (err error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(b.clientAddr(vip), port))}
		c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
		return err
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	return &conn{Conn: c, r: bufio.NewReader(c)}
}

func (b *bed) clientAddr(vip netip.Addr) netip.Addr {
	if vip.Is4() {
		return b.client.Addr4
	}
	return b.client.Addr6
}

// backendOf returns the L7 host of a backend id.
func (b *bed) backendOf(id l4.BackendID) *l7Host {
	for _, l := range b.l7 {
		if l.id4 == id || l.id6 == id {
			return l
		}
	}
	return nil
}

// portFor finds a client source port (from start on) whose new flow the
// balancer sends to want; Lookup runs the real program.
func (b *bed) portFor(t *testing.T, ctx context.Context, vip netip.Addr, want l4.BackendID, start uint16) uint16 {
	t.Helper()
	for p := start; p < start+2000; p++ {
		id, _, err := b.dp.Lookup(ctx, l4.Flow{
			Src: netip.AddrPortFrom(b.clientAddr(vip), p), Dst: netip.AddrPortFrom(vip, 80), Proto: l4.TCP})
		require.NoError(t, err)
		if id == want {
			return p
		}
	}
	t.Fatalf("no source port in [%d, %d) maps to backend %d", start, start+2000, want)
	return 0
}

func TestVethDSR(t *testing.T) {
	// Native is what production NICs run; generic (skb) mode is the
	// fallback everywhere else and takes a different kernel path.
	for _, mode := range []xdplink.Mode{xdplink.ModeNative, xdplink.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) { testVethDSR(t, mode) })
	}
}

func testVethDSR(t *testing.T, mode xdplink.Mode) {
	b := newBed(t, mode)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	families := []struct {
		name      string
		vip       netip.Addr
		id        func(*l7Host) l4.BackendID
		decapped  func(decap.Stats) uint64
		portStart uint16
	}{
		{"ipv4", b.vip4, func(l *l7Host) l4.BackendID { return l.id4 },
			func(s decap.Stats) uint64 { return s.DecapV4.Packets }, 20000},
		{"ipv6", b.vip6, func(l *l7Host) l4.BackendID { return l.id6 },
			func(s decap.Stats) uint64 { return s.DecapV6.Packets }, 30000},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			vip := l4.VIP{Addr: fam.vip, Port: 80, Proto: l4.TCP}
			require.NoError(t, b.dp.UpsertVIP(vip))
			a, z := fam.id(b.l7[0]), fam.id(b.l7[1])
			table := make([]l4.BackendID, tableSize)
			for i := range table {
				table[i] = []l4.BackendID{a, z}[i%2]
			}
			require.NoError(t, b.dp.InstallTable(vip, table))
			clientAddr := b.clientAddr(fam.vip)

			t.Run("both L7 hosts get flows with the client's address", func(t *testing.T) {
				port := fam.portStart
				for _, l := range b.l7 {
					port = b.portFor(t, ctx, fam.vip, fam.id(l), port) + 1
					c := b.dial(t, ctx, fam.vip, port-1)
					for i := range 3 {
						host, peer := c.ask(t, "hello-"+strconv.Itoa(i))
						assert.Equal(t, l.host.Name, host, "answered by the chosen host")
						assert.Equal(t, netip.AddrPortFrom(clientAddr, port-1).String(), peer, "real client address")
					}
					st, err := l.decap.Stats()
					require.NoError(t, err)
					assert.Positive(t, fam.decapped(st), "%s decapsulated", l.host.Name)
					assert.Zero(t, st.Malformed.Packets)
				}
			})

			t.Run("full-size segments fit the tunnel", func(t *testing.T) {
				// A 256 KiB line goes up in MSS-sized segments: 1500-byte
				// inner packets, 1520/1540 bytes wrapped, which only pass
				// because the bridge and the L7 side have MTU 1600.
				port := b.portFor(t, ctx, fam.vip, z, fam.portStart+1000)
				c := b.dial(t, ctx, fam.vip, port)
				big := strings.Repeat("y", 256<<10)
				host, _ := c.ask(t, big)
				assert.Equal(t, b.backendOf(z).host.Name, host)
			})

			t.Run("replies go straight to the client", func(t *testing.T) {
				port := b.portFor(t, ctx, fam.vip, a, fam.portStart+3000)
				c := b.dial(t, ctx, fam.vip, port)
				lbBefore, _, err := b.lb.LinkStats()
				require.NoError(t, err)
				dpBefore, err := b.dp.Stats()
				require.NoError(t, err)

				const chunk, rounds = 256 << 10, 16 // 4 MiB down, a few hundred bytes up
				for range rounds {
					_, err := fmt.Fprintf(c, "get %d\n", chunk)
					require.NoError(t, err)
					buf := make([]byte, chunk+1)
					_, err = io.ReadFull(c.r, buf)
					require.NoError(t, err)
					require.Equal(t, byte('\n'), buf[chunk])
				}
				lbAfter, _, err := b.lb.LinkStats()
				require.NoError(t, err)
				dpAfter, err := b.dp.Stats()
				require.NoError(t, err)

				down := uint64(chunk * rounds)
				lbRx := lbAfter.RxBytes - lbBefore.RxBytes
				vipBytes := dpAfter.VIPs[vip].Bytes - dpBefore.VIPs[vip].Bytes
				t.Logf("downloaded %d bytes; LB interface received %d bytes, balancer saw %d VIP bytes", down, lbRx, vipBytes)
				// The LB sees only the client's ACKs and requests.
				assert.Less(t, lbRx, down/10, "LB received a fraction of the download")
				assert.Positive(t, vipBytes)
				assert.Less(t, vipBytes, down/10)
			})

			t.Run("connection survives a table swap that moves its slot", func(t *testing.T) {
				port := b.portFor(t, ctx, fam.vip, a, fam.portStart+6000)
				c := b.dial(t, ctx, fam.vip, port)
				host, _ := c.ask(t, "before")
				require.Equal(t, b.backendOf(a).host.Name, host)

				// Every slot now names the other host: the flow's slot moves.
				swapped := make([]l4.BackendID, tableSize)
				for i := range swapped {
					swapped[i] = []l4.BackendID{z, a}[i%2]
				}
				require.NoError(t, b.dp.InstallTable(vip, swapped))
				flow := l4.Flow{Src: netip.AddrPortFrom(clientAddr, port), Dst: netip.AddrPortFrom(fam.vip, 80), Proto: l4.TCP}
				id, _, err := b.dp.Lookup(ctx, flow)
				require.NoError(t, err)
				require.Equal(t, z, id, "a new flow from this port would now go to the other host")
				flow.Established = true
				id, _, err = b.dp.Lookup(ctx, flow)
				require.NoError(t, err)
				require.Equal(t, a, id, "the connection entry keeps the flow")

				for i := range 50 {
					host, _ := c.ask(t, "after-"+strconv.Itoa(i))
					require.Equal(t, b.backendOf(a).host.Name, host, "round %d", i)
				}

				// Keep talking while the table flips back and forth under
				// the connection: every answer still comes from its host.
				const exchanges, flips = 300, 20
				answers := make(chan string, exchanges)
				errc := make(chan error, 1)
				go func() {
					defer close(answers)
					for i := range exchanges {
						msg := "during-" + strconv.Itoa(i)
						if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
							errc <- err
							return
						}
						line, err := c.r.ReadString('\n')
						if err != nil {
							errc <- err
							return
						}
						answers <- line
					}
				}()
				for i := range flips {
					next := table
					if i%2 == 0 {
						next = swapped
					}
					require.NoError(t, b.dp.InstallTable(vip, next))
					time.Sleep(time.Millisecond) // spread the flips over the exchanges
				}
				n := 0
				for line := range answers {
					require.True(t, strings.HasPrefix(line, b.backendOf(a).host.Name+" "), "answer %q", line)
					n++
				}
				select {
				case err := <-errc:
					require.NoError(t, err)
				default:
				}
				assert.Equal(t, exchanges, n)
				require.NoError(t, b.dp.InstallTable(vip, swapped))
				// A new connection (SYN) from a port that used to map to
				// the first host takes the new table.
				port2 := b.portFor(t, ctx, fam.vip, z, fam.portStart+9000)
				c2 := b.dial(t, ctx, fam.vip, port2)
				host, _ = c2.ask(t, "new")
				assert.Equal(t, b.backendOf(z).host.Name, host)

				require.NoError(t, b.dp.InstallTable(vip, table))
			})
		})
	}

	t.Run("no checksum errors on the L7 hosts", func(t *testing.T) {
		for _, l := range b.l7 {
			snmp, err := l.host.ReadProcNet("snmp")
			require.NoError(t, err)
			assert.Equal(t, int64(0), snmpField(t, string(snmp), "Tcp", "InCsumErrors"), l.host.Name)
		}
	})
	st, err := b.dp.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Counters[l4.CounterNoBackend].Packets)
	assert.Zero(t, st.Counters[l4.CounterEncapFail].Packets)
	assert.Zero(t, st.Counters[l4.CounterTooBig].Packets)
	assert.Positive(t, st.Counters[l4.CounterXDPTx].Packets)
}

// snmpField reads one counter of /proc/net/snmp ("Tcp", "InCsumErrors").
func snmpField(t *testing.T, snmp, proto, field string) int64 {
	t.Helper()
	var names []string
	for _, line := range strings.Split(snmp, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, n := range names {
			if n == field && i+1 < len(f) {
				v, err := strconv.ParseInt(f[i+1], 10, 64)
				require.NoError(t, err)
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", proto, field)
	return 0
}
