package gslb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A listener on the wildcard address answers from the address the query
// was sent to: a client's connected socket takes no answer from another.
func TestUDPWildcardAnswersFromTheAddressAsked(t *testing.T) {
	cfg, err := Parse("test.yaml", []byte(zoneConfig))
	require.NoError(t, err)
	srv := NewServer(cfg, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx, pc, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
		m := ask(t, "udp", net.JoinHostPort(a, port), "www.example.com", dns.TypeA)
		assert.Equal(t, []string{"192.0.2.80"}, addrs(m), "asked at %s", a)
	}
}

// Many queries in flight from several clients at once (read and answered
// in batches) each get their own answer.
func TestUDPQueriesInFlightEachAnswered(t *testing.T) {
	r := start(t, zoneConfig)
	const clients, perClient = 8, 200
	var wg sync.WaitGroup
	answered := make([]int, clients)
	for c := range clients {
		wg.Go(func() {
			conn, err := net.Dial("udp", r.addr)
			if !assert.NoError(t, err) {
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			// A window of queries in flight per client: the server sees a
			// queue, and no socket buffer overflows on a slow machine.
			const window = 8
			names := map[uint16]string{}
			send := func(i int) bool {
				name := "www.example.com."
				if i%2 == 1 {
					name = "nosuch.example.com."
				}
				m := new(dns.Msg).SetQuestion(name, dns.TypeA)
				m.Id = uint16(i)
				names[m.Id] = name
				b, err := m.Pack()
				if !assert.NoError(t, err) {
					return false
				}
				_, err = conn.Write(b)
				return assert.NoError(t, err)
			}
			sent := 0
			for ; sent < window; sent++ {
				if !send(sent) {
					return
				}
			}
			buf := make([]byte, 1500)
			for range perClient {
				n, err := conn.Read(buf)
				if !assert.NoError(t, err, "client %d after %d answers", c, answered[c]) {
					return
				}
				var resp dns.Msg
				if !assert.NoError(t, resp.Unpack(buf[:n])) {
					return
				}
				want := dns.RcodeSuccess
				if names[resp.Id] == "nosuch.example.com." {
					want = dns.RcodeNameError
				}
				assert.Equal(t, names[resp.Id], resp.Question[0].Name)
				assert.Equal(t, want, resp.Rcode)
				delete(names, resp.Id)
				answered[c]++
				if sent < perClient {
					if !send(sent) {
						return
					}
					sent++
				}
			}
		})
	}
	wg.Wait()
	for c := range clients {
		assert.Equal(t, perClient, answered[c], "client %d", c)
	}
}
