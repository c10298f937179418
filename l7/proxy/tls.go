package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/xlbproject/xlb/l7/config"
)

// TLS listeners terminate TLS themselves and hand each connection, once its
// handshake is done, to the engine for the protocol ALPN chose: HTTP/1.1
// (or no ALPN) to the fasthttp server, h2 to the net/http server of the h2
// path (h2.go). Both paths end in the same handler and director.
//
// The certificates and the policy come from the running generation: the
// listener's tls.Config asks for the current one on every ClientHello, so a
// reload changes what new handshakes get while open connections keep the
// session they negotiated.

// tlsConfigs builds the per-listener TLS configs of a generation, by
// listener name.
func tlsConfigs(cfg *config.Config) map[string]*tls.Config {
	out := map[string]*tls.Config{}
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		certs := make([]tls.Certificate, 0, len(l.TLS.Certificates))
		for _, c := range l.TLS.Certificates {
			if c.Loaded != nil {
				certs = append(certs, *c.Loaded)
			}
		}
		out[l.Name] = &tls.Config{
			// crypto/tls picks the first certificate whose names cover the
			// client's SNI name, and the first one when none does.
			Certificates: certs,
			MinVersion:   l.TLS.MinVersionID,
			CipherSuites: l.TLS.CipherIDs,
			NextProtos:   l.TLS.ALPN,
		}
	}
	return out
}

// listenerTLS is the tls.Config a TLS listener is opened with: it only
// defers to the running generation's config for the listener, and keeps the
// session ticket keys (which the returned configs inherit), so resumption
// survives reloads.
func (p *Proxy) listenerTLS(name string) *tls.Config {
	boot := tlsConfigs(p.boot)[name]
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if c := p.gen.Load().tls[name]; c != nil {
				return c, nil
			}
			// The listener lost its tls section in a reload; that change
			// takes effect at restart, so keep serving what it started with.
			return boot, nil
		},
	}
}

// ServeTLS serves client traffic over TLS on ln, with the TLS settings of
// the configured listener called name, until ln is closed or Close is
// called.
func (p *Proxy) ServeTLS(ln net.Listener, name string) error {
	if p.gen.Load().tls[name] == nil {
		return errors.New("serve tls: listener " + name + " has no tls section")
	}
	if err := p.trackTLS(ln); err != nil {
		return err
	}
	conf := p.listenerTLS(name)
	h1 := newConnQueue(ln.Addr())
	h2 := newConnQueue(ln.Addr())
	defer h1.Close()
	defer h2.Close()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer recoverTo(p.log)
		errc <- p.Serve(h1)
	}()
	go func() {
		defer wg.Done()
		defer recoverTo(p.log)
		errc <- p.serveH2(h2)
	}()

	p.acceptTLS(ln, conf, h1, h2)
	h1.Close()
	h2.Close()
	wg.Wait()
	close(errc)
	var err error
	for e := range errc {
		if err == nil {
			err = e
		}
	}
	return err
}

// acceptTLS accepts connections on ln until it is closed and shakes hands
// with each in its own goroutine, bounded by the header read timeout, so a
// slow client never holds up the others.
func (p *Proxy) acceptTLS(ln net.Listener, conf *tls.Config, h1, h2 *connQueue) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE, ENFILE, ECONNABORTED: transient; wait a little and
			// go on, like net/http, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Debug("tls accept", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case p.handshakes <- struct{}{}:
			go p.handshakeTLS(c, conf, h1, h2)
		default:
			// As many handshakes in progress as the proxy takes
			// connections: a flood of them must not grow without bound.
			p.tlsRefused.Add(1)
			_ = c.Close()
		}
	}
}

func (p *Proxy) handshakeTLS(c net.Conn, conf *tls.Config, h1, h2 *connQueue) {
	defer recoverTo(p.log)
	defer func() { <-p.handshakes }()
	bc := newBatchConn(c)
	tc := tls.Server(bc, conf)
	timeout := p.boot.Limits.ReadHeaderTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		p.tlsFailures.Add(1)
		_ = c.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == config.ALPNH2 {
		if p.h2Conns.Load() >= int64(p.boot.Limits.MaxConns) {
			p.tlsRefused.Add(1)
			_ = tc.Close()
			return
		}
		bc.startBatching()
		h2.put(tc)
		return
	}
	h1.put(tc)
}

// connQueue is a net.Listener fed by the TLS accept loop: the fasthttp and
// net/http servers serve it as if it were their own listener.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		_ = c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// trackTLS refuses to serve after Close and remembers a TLS listener, which
// shutdown closes before it stops the engines behind it.
func (p *Proxy) trackTLS(ln net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = ln.Close()
		return errors.New("serve tls: proxy closed")
	}
	p.tlsLns = append(p.tlsLns, ln)
	return nil
}
