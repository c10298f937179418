// Package etcdtest runs a real etcd cluster inside a test process (the
// embedded server of go.etcd.io/etcd/server/v3/embed) on loopback ports,
// with its data in the test's temporary directory. Members can be stopped
// and started again on the same ports and data: that is how tests take the
// store away from a running daemon or proxy (all members stopped), leave a
// member without a leader (the others stopped), and give it back.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is an etcd cluster of one or more members.
type Cluster struct {
	t       testing.TB
	members []*member
	initial string
	// tls, when set, serves clients over TLS and requires a client
	// certificate signed by the same CA.
	tls *TLSFiles
}

type member struct {
	name         string
	dir          string
	client, peer url.URL
	mu           sync.Mutex
	e            *embed.Etcd
}

// Start runs a one-member cluster until the test ends.
func Start(t testing.TB) *Cluster { return start(t, 1, nil) }

// StartCluster runs an n-member cluster until the test ends.
func StartCluster(t testing.TB, n int) *Cluster { return start(t, n, nil) }

// StartTLS runs a one-member cluster whose clients must use TLS with a
// client certificate; the returned files are a client's.
func StartTLS(t testing.TB) (*Cluster, TLSFiles) {
	t.Helper()
	files := writeTLS(t, t.TempDir())
	return start(t, 1, &files), *files.Client
}

func start(t testing.TB, n int, tls *TLSFiles) *Cluster {
	t.Helper()
	c := &Cluster{t: t, tls: tls}
	dir := t.TempDir()
	var peers []string
	for i := range n {
		m := &member{name: fmt.Sprintf("m%d", i), dir: filepath.Join(dir, fmt.Sprintf("m%d", i)), client: freeURL(t), peer: freeURL(t)}
		if tls != nil {
			m.client.Scheme = "https"
		}
		c.members = append(c.members, m)
		peers = append(peers, m.name+"="+m.peer.String())
	}
	c.initial = strings.Join(peers, ",")
	t.Cleanup(func() { c.Stop() })
	c.Restart()
	return c
}

// Endpoint is member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client.String() }

// Endpoints are every member's client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for i := range c.members {
		out = append(out, c.Endpoint(i))
	}
	return out
}

func (c *Cluster) pick(idx []int) []*member {
	if len(idx) == 0 {
		return c.members
	}
	var out []*member
	for _, i := range idx {
		out = append(out, c.members[i])
	}
	return out
}

// Restart starts the given members (all when none is given) on their ports
// and data and waits until they serve, which needs a quorum running.
func (c *Cluster) Restart(idx ...int) {
	c.t.Helper()
	ms := c.pick(idx)
	for _, m := range ms {
		m.mu.Lock()
		if m.e != nil {
			m.mu.Unlock()
			continue
		}
		cfg := embed.NewConfig()
		cfg.Name = m.name
		cfg.Dir = m.dir
		// The server logs every closed listener at error level on stop.
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		if c.tls != nil {
			cfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.tls.Cert, KeyFile: c.tls.Key, TrustedCAFile: c.tls.CA, ClientCertAuth: true}
		}
		cfg.ListenClientUrls = []url.URL{m.client}
		cfg.AdvertiseClientUrls = []url.URL{m.client}
		cfg.ListenPeerUrls = []url.URL{m.peer}
		cfg.AdvertisePeerUrls = []url.URL{m.peer}
		cfg.InitialCluster = c.initial
		// etcd's own election timing (100 ms ticks, 1 s election): faster
		// elections lose their leader under -race on two busy cores.
		var err error
		// A stopped member's listeners may take a moment to be released.
		for attempt := 0; attempt < 40; attempt++ {
			m.e, err = embed.StartEtcd(cfg)
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		m.mu.Unlock()
		if err != nil {
			c.t.Fatalf("start embedded etcd %s: %v", m.name, err)
		}
	}
	for _, m := range ms {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			c.t.Fatalf("embedded etcd %s not ready after 30s", m.name)
		}
	}
}

// Stop stops the given members (all when none is given); their clients
// see connections refused until Restart.
func (c *Cluster) Stop(idx ...int) {
	for _, m := range c.pick(idx) {
		m.mu.Lock()
		if m.e != nil {
			m.e.Close()
			<-m.e.Server.StopNotify()
			m.e = nil
		}
		m.mu.Unlock()
	}
}

func freeURL(t testing.TB) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	u, err := url.Parse(fmt.Sprintf("http://%s", ln.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	return *u
}
