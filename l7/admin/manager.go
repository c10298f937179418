package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xlbproject/xlb/internal/atomicfile"
	"github.com/xlbproject/xlb/internal/opsmetrics"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/proxy"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// Sentinels the API maps to status codes and the client maps back.
var (
	ErrNotFound = adminsock.ErrNotFound
	ErrInvalid  = adminsock.ErrInvalid
	ErrConflict = adminsock.ErrConflict
	// ErrUnavailable: the fleet's store (etcd) cannot take a change now.
	ErrUnavailable = adminsock.ErrUnavailable
)

func errorf(kind error, format string, a ...any) error {
	return adminsock.Errorf(kind, format, a...)
}

// StatePathFor is the default state file of a config file: next to it,
// named after it (proxy.yaml → proxy.state.json).
func StatePathFor(configPath string) string {
	ext := filepath.Ext(configPath)
	return strings.TrimSuffix(configPath, ext) + ".state.json"
}

// Manager owns the running config: the file, the runtime overrides, and
// the proxy they are applied to. Its methods are safe for concurrent use;
// changes are serialised.
type Manager struct {
	configPath string
	statePath  string
	log        *slog.Logger

	mu    sync.Mutex
	file  *config.Config // the config file as last loaded
	state State
	run   *config.Config // file ⊕ state, what the proxy runs
	proxy *proxy.Proxy
	// reloads, when set, records each Reload (xlb_config_reloads_total).
	reloads *opsmetrics.Config
	// fleet holds the runtime overlay in etcd (store.etcd), nil with the
	// state file alone.
	fleet *fleet
}

// Open loads the config file and the runtime state file and merges them.
// Build the proxy from Config, then hand it over with Attach.
func Open(configPath string, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	file, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	return OpenConfig(configPath, file, log)
}

// OpenConfig is Open with the config file at configPath already loaded
// (file): a process that opens its admin socket first, before the state
// file and the store are touched, has read the file for the socket's path.
func OpenConfig(configPath string, file *config.Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{configPath: configPath, log: log, file: file}
	m.statePath = file.Admin.StateFile
	if m.statePath == "" {
		m.statePath = StatePathFor(configPath)
	}
	st, err := loadState(m.statePath)
	if err != nil {
		return nil, err
	}
	run, kept, notes := Merge(file, st)
	m.logNotes(notes)
	m.state = State{Version: stateVersion, Overrides: kept}
	m.run = run
	if len(st.Overrides) > 0 {
		log.Info("runtime pool changes restored", "state_file", m.statePath, "overrides", len(kept))
	}
	if file.Store.Etcd != nil {
		if err := m.openFleet(st); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Config is the running config (file with runtime changes).
func (m *Manager) Config() *config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.run
}

// StatePath is where runtime changes are kept.
func (m *Manager) StatePath() string { return m.statePath }

// Attach hands the manager the proxy built from Config.
func (m *Manager) Attach(p *proxy.Proxy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proxy = p
}

// RecordReloads makes every later Reload count in c.
func (m *Manager) RecordReloads(c *opsmetrics.Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloads = c
}

func (m *Manager) logNotes(notes []Note) {
	for _, n := range notes {
		m.log.Warn("runtime change and config file disagree", "pool", n.Pool, "server", n.Server, "wins", n.Wins, "reason", n.Reason)
	}
}

func loadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: stateVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read runtime state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("read runtime state %s: not valid JSON (%v); move it away to start from the config file alone", path, err)
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("read runtime state %s: version %d, this xlb reads version %d", path, st.Version, stateVersion)
	}
	return st, nil
}

func (m *Manager) saveLocked(st State) error {
	st.Version = stateVersion
	if st.Overrides == nil {
		st.Overrides = []Override{}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode runtime state: %w", err)
	}
	if err := atomicfile.Write(m.statePath, append(b, '\n'), atomicfile.Options{}); err != nil {
		return fmt.Errorf("save runtime state: %w", err)
	}
	return nil
}

// ReloadResult is what a reload did.
type ReloadResult struct {
	// Restart lists changed settings that need a restart to take effect.
	Restart []string `json:"restart,omitempty"`
	// Notes say, per server, where the file and the runtime disagreed and
	// which won.
	Notes []Note `json:"notes,omitempty"`
	// Overrides is how many runtime changes stay in force.
	Overrides int `json:"overrides"`
}

// Reload reads the config file again, validates it completely, merges the
// runtime changes and applies the result in one swap. An invalid file is
// rejected with every problem (an error wrapping ErrInvalid) and the
// running config stays.
func (m *Manager) Reload() (ReloadResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.file
	res, err := m.reloadLocked()
	applied := err
	if m.file != prev {
		// The file runs; only saving the runtime state failed.
		applied = nil
	}
	m.reloads.Observe(applied, time.Now())
	return res, err
}

func (m *Manager) reloadLocked() (ReloadResult, error) {
	file, err := config.Load(m.configPath)
	if err != nil {
		// A file that does not parse, or that cannot be read (moved
		// away, its permissions changed), is rejected alike: nothing
		// was applied, and the CLI says the running config stays.
		return ReloadResult{}, adminsock.Tag(err, ErrInvalid)
	}
	run, kept, notes := Merge(file, m.state)
	applied, err := m.proxy.Apply(run)
	if err != nil {
		return ReloadResult{}, adminsock.Tag(err, ErrInvalid)
	}
	m.file, m.run = file, run
	if m.fleet != nil {
		// etcd's overlay is shared: each host merges it with its own file
		// and only a runtime change rewrites it.
		if !storeEqual(m.fleet.settings, file.Store) {
			applied.Restart = append(applied.Restart, "store")
		}
		m.logNotes(notes)
		return ReloadResult{Restart: applied.Restart, Notes: notes, Overrides: len(kept)}, nil
	}
	changed := !slices.EqualFunc(kept, m.state.Overrides, overrideEqual)
	m.state.Overrides = kept
	m.logNotes(notes)
	res := ReloadResult{Restart: applied.Restart, Notes: notes, Overrides: len(kept)}
	m.log.Info("config reloaded", "config", m.configPath, "overrides", len(kept), "restart_needed", applied.Restart)
	if changed {
		if err := m.saveLocked(m.state); err != nil {
			return res, fmt.Errorf("config reloaded, but %w", err)
		}
	}
	return res, nil
}

func overrideEqual(a, b Override) bool {
	return a.Pool == b.Pool && a.Name == b.Name && sameSpec(a.Base, b.Base) && sameSpec(a.Server, b.Server)
}

// change runs one runtime change: edit computes the next state from the
// running config; the state is saved, then applied. A failed apply puts
// the saved state back.
func (m *Manager) change(what string, edit func(run *config.Config, st *State) error) error {
	if m.fleet != nil {
		return m.fleetChange(what, edit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := State{Version: stateVersion, Overrides: slices.Clone(m.state.Overrides)}
	if err := edit(m.run, &next); err != nil {
		return err
	}
	run, kept, _ := Merge(m.file, next)
	next.Overrides = kept
	if err := m.saveLocked(next); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := m.proxy.Apply(run); err != nil {
		if serr := m.saveLocked(m.state); serr != nil {
			m.log.Error("restore runtime state after a failed change", "err", serr)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	m.state, m.run = next, run
	m.log.Info("pool changed at runtime", "change", what)
	return nil
}

// NewServer is one server to add.
type NewServer struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight,omitempty"`
}

// AddServers adds servers to a pool, all or none. Each starts taking new
// clients at once, ramping up over the pool's slow_start.
func (m *Manager) AddServers(poolName string, servers []NewServer) error {
	if len(servers) == 0 {
		return errorf(ErrInvalid, "add servers to pool %s: no servers given", poolName)
	}
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	return m.change(fmt.Sprintf("add %s to pool %s", strings.Join(names, ", "), poolName), func(run *config.Config, st *State) error {
		p, err := findPool(run, poolName)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		addrs := map[string]string{} // config.AddrKey -> the server with it
		for _, x := range p.Servers {
			addrs[config.AddrKey(x.Addr)] = x.Name
		}
		for _, s := range servers {
			if err := checkServer(s); err != nil {
				return fmt.Errorf("add to pool %s: %w", poolName, err)
			}
			if seen[s.Name] {
				return errorf(ErrInvalid, "add to pool %s: server %s is given twice (each server once, with its own name)", poolName, s.Name)
			}
			if slices.ContainsFunc(p.Servers, func(x config.Server) bool { return x.Name == s.Name }) {
				return errorf(ErrConflict, "add to pool %s: server %s already exists (change it with `xlb pool server weight`, or delete it first)", poolName, s.Name)
			}
			// The same app server under a second name would double its
			// share and split its health and ejection state in two.
			k := config.AddrKey(s.Addr)
			if other, ok := addrs[k]; ok {
				if seen[other] {
					return errorf(ErrInvalid, "add to pool %s: servers %s and %s have the same addr %s (each app server once per pool)", poolName, other, s.Name, s.Addr)
				}
				return errorf(ErrConflict, "add to pool %s: server %s already has addr %s (each app server once per pool; give it a larger share with `xlb pool server weight %s %s N`)", poolName, other, s.Addr, poolName, other)
			}
			seen[s.Name] = true
			addrs[k] = s.Name
			w := s.Weight
			if w == 0 {
				w = 1
			}
			st.set(poolName, s.Name, m.fileSpec(poolName, s.Name), &ServerSpec{Addr: s.Addr, Weight: w})
		}
		return nil
	})
}

func checkServer(s NewServer) error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/ \t\n") {
		return errorf(ErrInvalid, "server name %q must be non-empty, without spaces or slashes", s.Name)
	}
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
		return errorf(ErrInvalid, "server %s: addr %q is not host:port", s.Name, s.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errorf(ErrInvalid, "server %s: addr %q has no valid port", s.Name, s.Addr)
	}
	if s.Weight < 0 || s.Weight > 1000 {
		return errorf(ErrInvalid, "server %s: weight %d is not within 1..1000", s.Name, s.Weight)
	}
	return nil
}

// fileSpec is the config file's entry for a server, nil when it has none.
func (m *Manager) fileSpec(poolName, name string) *ServerSpec {
	for _, p := range m.file.Pools {
		if p.Name != poolName {
			continue
		}
		for _, s := range p.Servers {
			if s.Name == name {
				sp := specOf(s)
				return &sp
			}
		}
	}
	return nil
}

func findPool(c *config.Config, name string) (*config.Pool, error) {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i], nil
		}
	}
	return nil, errorf(ErrNotFound, "pool %s does not exist (list pools with `xlb pool list`)", name)
}

func findServer(c *config.Config, poolName, name string) (*config.Pool, config.Server, error) {
	p, err := findPool(c, poolName)
	if err != nil {
		return nil, config.Server{}, err
	}
	for _, s := range p.Servers {
		if s.Name == name {
			return p, s, nil
		}
	}
	return nil, config.Server{}, errorf(ErrNotFound, "pool %s has no server %s (list them with `xlb pool show %s`)", poolName, name, poolName)
}

// lastActive reports whether name is the only server of p not drained.
func lastActive(p *config.Pool, name string) bool {
	for _, s := range p.Servers {
		if s.Name != name && !s.Drain {
			return false
		}
	}
	return true
}

// SetDrain drains (no new clients; sticky clients stay until the pool's
// sticky drain_timeout) or undrains a server. Draining the last server of
// a pool that is not drained needs force.
func (m *Manager) SetDrain(poolName, name string, drain, force bool) error {
	verb := "undrain"
	if drain {
		verb = "drain"
	}
	return m.change(fmt.Sprintf("%s %s/%s", verb, poolName, name), func(run *config.Config, st *State) error {
		p, s, err := findServer(run, poolName, name)
		if err != nil {
			return err
		}
		if drain && !s.Drain && !force && lastActive(p, name) {
			return errorf(ErrConflict, "drain %s/%s: it is the last server of pool %s that takes new clients; its routes would answer 503 (add another server first, or use --force)", poolName, name, poolName)
		}
		spec := specOf(s)
		spec.Drain = drain
		st.set(poolName, name, m.fileSpec(poolName, name), &spec)
		return nil
	})
}

// SetWeight changes a server's weight (1..1000).
func (m *Manager) SetWeight(poolName, name string, weight int) error {
	return m.change(fmt.Sprintf("weight %s/%s %d", poolName, name, weight), func(run *config.Config, st *State) error {
		_, s, err := findServer(run, poolName, name)
		if err != nil {
			return err
		}
		if weight < 1 || weight > 1000 {
			return errorf(ErrInvalid, "weight %d is not within 1..1000 (to stop new clients, drain the server)", weight)
		}
		spec := specOf(s)
		spec.Weight = weight
		st.set(poolName, name, m.fileSpec(poolName, name), &spec)
		return nil
	})
}

// DeleteServer removes a server. Its in-flight requests finish; its sticky
// clients are re-pinned at their next request. Deleting the last server of
// a pool that is not drained needs force.
func (m *Manager) DeleteServer(poolName, name string, force bool) error {
	return m.change(fmt.Sprintf("delete %s/%s", poolName, name), func(run *config.Config, st *State) error {
		p, s, err := findServer(run, poolName, name)
		if err != nil {
			return err
		}
		if !s.Drain && !force && lastActive(p, name) {
			return errorf(ErrConflict, "delete %s/%s: it is the last server of pool %s that takes new clients; its routes would answer 503 (add another server first, or use --force)", poolName, name, poolName)
		}
		st.set(poolName, name, m.fileSpec(poolName, name), nil)
		return nil
	})
}

// Pools describes every pool as it runs now.
func (m *Manager) Pools(quiet time.Duration) []Pool {
	m.mu.Lock()
	p, st := m.proxy, m.state
	m.mu.Unlock()
	return describe(p, st, time.Now(), quiet)
}

// Pool describes one pool.
func (m *Manager) Pool(name string, quiet time.Duration) (Pool, error) {
	for _, p := range m.Pools(quiet) {
		if p.Name == name {
			return p, nil
		}
	}
	return Pool{}, errorf(ErrNotFound, "pool %s does not exist (list pools with `xlb pool list`)", name)
}

// Server describes one server of a pool.
func (m *Manager) Server(poolName, name string, quiet time.Duration) (Server, error) {
	p, err := m.Pool(poolName, quiet)
	if err != nil {
		return Server{}, err
	}
	for _, s := range p.Servers {
		if s.Name == name {
			return s, nil
		}
	}
	return Server{}, errorf(ErrNotFound, "pool %s has no server %s (list them with `xlb pool show %s`)", poolName, name, poolName)
}
