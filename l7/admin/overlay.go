package admin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xlbproject/xlb/l7/config"
)

// ServerSpec is what the runtime can set for one server.
type ServerSpec struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	Drain  bool   `json:"drain"`
}

func specOf(s config.Server) ServerSpec {
	return ServerSpec{Addr: s.Addr, Weight: s.Weight, Drain: s.Drain}
}

// Override is one runtime change to one server, as kept in the state file.
//
// Base is the config file's entry for the server when the change was made
// (nil: the file did not have it). Server is what the runtime wants (nil:
// deleted). The merge rule (see Merge) compares Base with the file's
// current entry to tell whether the file changed the server since.
type Override struct {
	Pool   string      `json:"pool"`
	Name   string      `json:"name"`
	Base   *ServerSpec `json:"base"`
	Server *ServerSpec `json:"server"`
}

// State is the runtime's changes, in the order they were first made.
type State struct {
	Version   int        `json:"version"`
	Overrides []Override `json:"overrides"`
}

const stateVersion = 1

// Note says how the merge resolved a server that both the file and the
// runtime changed, or an override the file made moot.
type Note struct {
	Pool   string `json:"pool"`
	Server string `json:"server"`
	Wins   string `json:"wins"` // "file" or "runtime"
	Reason string `json:"reason"`
}

func (n Note) String() string {
	return fmt.Sprintf("pool %s server %s: %s wins: %s", n.Pool, n.Server, n.Wins, n.Reason)
}

// Merge builds the running config from the file config and the runtime
// overrides. The rule:
//
//  1. The file is the base: its pools and servers, in file order.
//  2. The runtime's changes are laid over it: a server the runtime added is
//     appended to its pool (in the order added), a server it deleted is
//     left out, and its address, weight and drain replace the file's.
//  3. Where the file changed something since the runtime changed the same
//     server, the most recent change wins, field by field: a field (addr,
//     weight, drain) the file now sets differently from when the runtime
//     change was made takes the file's value; a server the file removed,
//     or now adds itself, is the file's; a pool the file removed takes its
//     overrides with it. Each such case is reported as a Note.
//
// Merge returns the config to run, the overrides rebased on this file (to
// save) and the notes. It never modifies file; the result is validated like
// any config before use.
func Merge(file *config.Config, st State) (*config.Config, []Override, []Note) {
	out := cloneConfig(file)
	pools := map[string]*config.Pool{}
	fileServers := map[string]map[string]config.Server{}
	for i := range out.Pools {
		p := &out.Pools[i]
		pools[p.Name] = p
		m := map[string]config.Server{}
		for _, s := range file.Pools[i].Servers {
			m[s.Name] = s
		}
		fileServers[p.Name] = m
	}
	var kept []Override
	var notes []Note
	for _, o := range st.Overrides {
		p := pools[o.Pool]
		if p == nil {
			notes = append(notes, Note{o.Pool, o.Name, "file", "the pool is no longer in the config file; the runtime change is dropped"})
			continue
		}
		var cur *ServerSpec
		if fs, ok := fileServers[o.Pool][o.Name]; ok {
			s := specOf(fs)
			cur = &s
		}
		want, note := rebase(o, cur)
		if note != "" {
			notes = append(notes, Note{o.Pool, o.Name, "file", note})
		}
		if sameSpec(want, cur) {
			continue // nothing left to override
		}
		kept = append(kept, Override{Pool: o.Pool, Name: o.Name, Base: cur, Server: want})
		i := slices.IndexFunc(p.Servers, func(s config.Server) bool { return s.Name == o.Name })
		switch {
		case want == nil && i >= 0:
			p.Servers = slices.Delete(p.Servers, i, i+1)
		case want == nil:
		case i >= 0:
			p.Servers[i].Addr, p.Servers[i].Weight, p.Servers[i].Drain = want.Addr, want.Weight, want.Drain
		default:
			p.Servers = append(p.Servers, config.Server{Name: o.Name, Addr: want.Addr, Weight: want.Weight, Drain: want.Drain})
		}
	}
	for i := range out.Pools {
		kept, notes = dropSameAddr(&out.Pools[i], fileServers[out.Pools[i].Name], kept, notes)
	}
	return out, kept, notes
}

// dropSameAddr leaves out of p a server the runtime added whose address
// another server of p has: the file's server when the file now has one
// there (the file wins), else the one added first. AddServers refuses such
// a server, but the file may have gained one since.
func dropSameAddr(p *config.Pool, inFile map[string]config.Server, kept []Override, notes []Note) ([]Override, []Note) {
	owner := map[string]string{} // config.AddrKey -> server name
	for _, s := range p.Servers {
		if _, ok := inFile[s.Name]; ok {
			owner[config.AddrKey(s.Addr)] = s.Name
		}
	}
	p.Servers = slices.DeleteFunc(p.Servers, func(s config.Server) bool {
		if _, ok := inFile[s.Name]; ok {
			return false
		}
		k := config.AddrKey(s.Addr)
		other, taken := owner[k]
		if !taken {
			owner[k] = s.Name
			return false
		}
		wins := "runtime"
		if _, ok := inFile[other]; ok {
			wins = "file"
		}
		notes = append(notes, Note{p.Name, s.Name, wins, fmt.Sprintf("server %s has its addr %s; the runtime-added server is dropped (each app server once per pool)", other, s.Addr)})
		kept = slices.DeleteFunc(kept, func(o Override) bool { return o.Pool == p.Name && o.Name == s.Name })
		return true
	})
	return kept, notes
}

// rebase resolves override o against the file's current entry cur: what
// the server should be, and why the file won where it did ("" when the
// file did not touch the server since o was made).
func rebase(o Override, cur *ServerSpec) (*ServerSpec, string) {
	switch {
	case sameSpec(cur, o.Base):
		return o.Server, ""
	case cur == nil:
		return nil, "the config file no longer has this server; the runtime change is dropped"
	case o.Base == nil:
		return cur, "the config file now has this server itself; its entry replaces the runtime's"
	case o.Server == nil:
		return cur, "the config file changed this server since the runtime deleted it; the file's entry is back"
	}
	want := *o.Server
	var won []string
	if cur.Addr != o.Base.Addr {
		if want.Addr != cur.Addr {
			won = append(won, fmt.Sprintf("addr %s over the runtime's %s", cur.Addr, want.Addr))
		}
		want.Addr = cur.Addr
	}
	if cur.Weight != o.Base.Weight {
		if want.Weight != cur.Weight {
			won = append(won, fmt.Sprintf("weight %d over the runtime's %d", cur.Weight, want.Weight))
		}
		want.Weight = cur.Weight
	}
	if cur.Drain != o.Base.Drain {
		if want.Drain != cur.Drain {
			won = append(won, fmt.Sprintf("drain %t over the runtime's %t", cur.Drain, want.Drain))
		}
		want.Drain = cur.Drain
	}
	if len(won) == 0 {
		return &want, ""
	}
	return &want, "the config file changed it since the runtime did: the file's " + strings.Join(won, ", ") + "; the runtime's other changes stay"
}

func sameSpec(a, b *ServerSpec) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// cloneConfig copies what Merge changes (the pools' server lists) so the
// file config stays untouched; everything else is shared read-only.
func cloneConfig(c *config.Config) *config.Config {
	out := *c
	out.Pools = slices.Clone(c.Pools)
	for i := range out.Pools {
		out.Pools[i].Servers = slices.Clone(c.Pools[i].Servers)
	}
	return &out
}

// set records that the runtime wants server name of pool to be spec (nil:
// deleted), against the file's current entry base. An override that would
// leave the server as the file has it is removed instead.
func (st *State) set(pool, name string, base, spec *ServerSpec) {
	i := slices.IndexFunc(st.Overrides, func(o Override) bool { return o.Pool == pool && o.Name == name })
	if sameSpec(base, spec) {
		if i >= 0 {
			st.Overrides = slices.Delete(st.Overrides, i, i+1)
		}
		return
	}
	o := Override{Pool: pool, Name: name, Base: base, Server: spec}
	if i >= 0 {
		st.Overrides[i] = o
		return
	}
	st.Overrides = append(st.Overrides, o)
}
