package gslb

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/internal/statuspage"
)

// Status is the document xlb dns serves at /api/status on its metrics
// listener, and the status page renders (kind "dns"): every site's health
// and every GSLB name with how many of its sites can answer.
type Status struct {
	Kind    string      `json:"kind"` // always "dns"
	Time    time.Time   `json:"time"`
	Version string      `json:"version,omitempty"`
	Config  string      `json:"config,omitempty"`
	Listen  string      `json:"listen"`
	Summary Summary     `json:"summary"`
	Sites   []SiteState `json:"sites"`
	Names   []NameState `json:"names"`
}

// Summary counts what the top of the page shows.
type Summary struct {
	Sites     int `json:"sites"`
	Up        int `json:"up"`
	Down      int `json:"down"`
	Unchecked int `json:"unchecked"` // no first health round yet (counted down)
	Names     int `json:"names"`
	// NamesAllDown have no healthy site: they answer with all_down.
	NamesAllDown int `json:"namesAllDown"`
}

// SiteState is one site's health.
type SiteState struct {
	Name string       `json:"name"`
	VIPs []netip.Addr `json:"vips"`
	// Check is how the health is known: "daemons", "probe" or "none"
	// (always up); Targets are the daemons' URLs or the probe's.
	Check   string   `json:"check"`
	Targets []string `json:"targets,omitempty"`
	Up      bool     `json:"up"`
	Checked bool     `json:"checked"`
	// Reason is the round that decided the current state; LastRound the
	// latest round's result (a state flips only after rise/fall rounds).
	Reason    string    `json:"reason,omitempty"`
	LastRound string    `json:"lastRound,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	// Transitions counts the changes since the server started.
	Transitions uint64 `json:"transitions"`
}

// NameState is one GSLB name.
type NameState struct {
	Name    string   `json:"name"`
	Policy  string   `json:"policy"`
	Sites   []string `json:"sites"`
	Up      int      `json:"up"` // sites of the name that are up
	AllDown string   `json:"allDown"`
	TTL     uint32   `json:"ttl"`
}

// detailer is what a HealthView can tell beyond up or down (the Checker).
type detailer interface {
	detail(ss *SiteState)
}

// Status returns the server's status now, from the configuration it
// answers from.
func (s *Server) Status(version string) Status {
	st := s.state.Load()
	out := Status{Kind: statuspage.KindDNS, Time: time.Now(), Version: version, Config: st.cfg.File, Listen: st.cfg.Listen,
		Sites: []SiteState{}, Names: []NameState{}}
	up := map[string]bool{}
	for _, site := range st.cfg.Sites {
		ss := SiteState{Name: site.Name, VIPs: site.VIPs, Check: "none", Up: true, Checked: true}
		if h := site.Health; h != nil {
			ss.Check, ss.Targets = "daemons", h.Daemons
			if h.Probe != "" {
				ss.Check, ss.Targets = "probe", []string{h.Probe}
			}
			if st.health != nil {
				ss.Up = st.health.Up(site.Name)
			}
			if d, ok := st.health.(detailer); ok {
				d.detail(&ss)
			}
		}
		up[site.Name] = ss.Up
		out.Summary.Sites++
		switch {
		case !ss.Checked:
			out.Summary.Unchecked++
			out.Summary.Down++
		case ss.Up:
			out.Summary.Up++
		default:
			out.Summary.Down++
		}
		out.Sites = append(out.Sites, ss)
	}
	for _, n := range st.cfg.Names {
		ns := NameState{Name: n.FQDN, Policy: n.Policy, Sites: n.Sites, AllDown: n.AllDown, TTL: n.TTL}
		for _, site := range n.Sites {
			if up[site] {
				ns.Up++
			}
		}
		out.Summary.Names++
		if ns.Up == 0 {
			out.Summary.NamesAllDown++
		}
		out.Names = append(out.Names, ns)
	}
	return out
}

// StatusHandler serves GET /api/status: Status as JSON.
func (s *Server) StatusHandler(version string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		statuspage.WriteJSON(w, s.Status(version))
	})
}
