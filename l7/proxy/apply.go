package proxy

import (
	"fmt"
	"reflect"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// Applied is what Apply did.
type Applied struct {
	// Restart lists changed settings that only take effect when the proxy
	// starts again (listeners and the client-facing server limits are
	// bound to the open sockets).
	Restart []string `json:"restart,omitempty"`
}

// Apply makes cfg, already validated, the running config: routes, pools,
// balancing, health, sticky keys, per-route limits and timeouts, trusted
// proxies and the access log switch at once for new requests. Requests in
// flight finish on the config they started with. Servers that keep their
// pool, name and address keep their health, ejection, drain and slow-start
// state, their health-check history and their upstream keep-alive
// connections. On error nothing changes.
func (p *Proxy) Apply(cfg *config.Config) (Applied, error) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	old := p.gen.Load()
	dir, err := director.New(cfg, director.WithPrevious(old.dir), director.WithLogger(p.log))
	if err != nil {
		return Applied{}, fmt.Errorf("apply config: %w", err)
	}
	g, err := p.newGeneration(cfg, dir, old)
	if err != nil {
		_ = dir.Close()
		return Applied{}, fmt.Errorf("apply config: %w", err)
	}
	g.owned = true
	p.gen.Store(g)
	old.series.deleteMissing(g.series)
	dir.TakeOver(old.dir)
	if old.owned {
		// Its checker moved to dir; this stops nothing still in use.
		_ = old.dir.Close()
	}
	// Clients of servers that are gone: in-flight requests keep their
	// connections, only idle ones are closed now.
	kept := make(map[any]bool, len(g.clients))
	for _, hc := range g.clients {
		kept[hc] = true
	}
	for _, hc := range old.clients {
		if !kept[hc] {
			hc.CloseIdleConnections()
		}
	}
	return Applied{Restart: restartOnly(p.boot, cfg)}, nil
}

// restartOnly names the settings of next that differ from what the
// sockets were opened with.
func restartOnly(boot, next *config.Config) []string {
	var out []string
	if !reflect.DeepEqual(listenerSockets(boot), listenerSockets(next)) {
		out = append(out, "listeners")
	}
	if boot.Admin != next.Admin {
		out = append(out, "admin")
	}
	// read_timeout is applied per request; the rest are the server's.
	a, b := boot.Limits, next.Limits
	a.ReadTimeout, b.ReadTimeout = 0, 0
	if a != b {
		out = append(out, "limits (except read_timeout)")
	}
	return out
}

// listenerSocket is what of a listener is bound to its socket: a TLS
// listener's certificates and policy are read per handshake from the
// running config, so they reload; turning TLS on or off does not.
type listenerSocket struct {
	name, addr, mode string
	tls              bool
}

func listenerSockets(c *config.Config) []listenerSocket {
	out := make([]listenerSocket, len(c.Listeners))
	for i, l := range c.Listeners {
		out[i] = listenerSocket{l.Name, l.Addr, l.Mode, l.TLS != nil}
	}
	return out
}
