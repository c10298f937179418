package gslb

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/strictyaml"
)

// Policies of a GSLB name.
const (
	PolicyFailover = "failover" // the first healthy site in the listed order
	PolicyGeo      = "geo"      // the healthy site nearest to the client
	PolicyWeighted = "weighted" // a healthy site drawn by weight
)

// How a daemon's BGP state counts in its site's health.
const (
	// BGPAuto: a daemon that runs BGP must have an established session
	// and announce the VIP; one without BGP (L2 sites) is judged on its
	// VIP alone.
	BGPAuto = "auto"
	// BGPRequired: as auto, and a daemon without BGP is bad.
	BGPRequired = "required"
	// BGPIgnore: the BGP state is not looked at.
	BGPIgnore = "ignore"
)

// AllDownAll is the all_down value that answers with every site's VIPs
// when no site of a name is healthy (the default); any other value names
// a sorry site.
const AllDownAll = "all"

// Defaults.
const (
	DefaultListen   = "127.0.0.1:53"
	DefaultGSLBTTL  = 30 * time.Second
	DefaultZoneTTL  = time.Hour
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 2
)

// Config is a validated `xlb dns` configuration.
type Config struct {
	File    string
	Listen  string // UDP and TCP address
	Metrics string // HTTP address of /metrics; "" = none
	GeoIP   string // path of a MaxMind-format database; "" = geo names use their default site
	// geoIPLine is the line of geoip in File, for OpenGeoIP's errors.
	geoIPLine int
	// RateLimit limits UDP answers per client network; zero Rate: off.
	RateLimit RateLimit
	Zones     []Zone
	Sites     []Site
	Names     []Name
}

// Zone is one zone served authoritatively; Records includes its SOA.
type Zone struct {
	Origin  string // FQDN, lower case
	SOA     *dns.SOA
	Records []dns.RR
}

// Site is one place serving the GSLB names' VIPs.
type Site struct {
	Name     string
	Location Location
	VIPs     []netip.Addr
	Health   *Health // nil: always considered up
}

// Location is where a site (or a client) is: coordinates when known, else
// country and continent codes.
type Location struct {
	HasCoords bool
	Lat, Lon  float64
	Country   string // ISO 3166-1 alpha-2, upper case
	Continent string // two-letter code (EU, NA, AS, ...), upper case
}

// Known reports whether the location says anything.
func (l Location) Known() bool { return l.HasCoords || l.Country != "" || l.Continent != "" }

// Health says how a site's health is known: its xlb daemons' status
// pages, or an HTTP probe of its VIP.
type Health struct {
	Daemons  []string   // base URLs of the daemons' metrics listeners
	VIP      netip.Addr // the VIP the daemons must report usable (default: the site's first VIP)
	MinHosts int        // daemons that must report it usable
	// BGP is how a daemon's BGP state counts: BGPAuto, BGPRequired or
	// BGPIgnore.
	BGP      string
	Probe    string // URL probed instead (sites not run by xlb)
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
}

// Name is one GSLB name and how its answers are chosen.
type Name struct {
	FQDN   string // lower case
	Policy string
	Sites  []string
	// Weights are per Sites entry (default 1): the shares of the sites
	// an answer is drawn among (all healthy sites for weighted, a tier
	// for failover, the nearby sites for geo).
	Weights []int
	// Priorities are per Sites entry (failover; default the list
	// position): the healthy sites of the lowest priority share the
	// answers by weight.
	Priorities []int
	// NearbyKm (geo): the healthy sites within this distance of the
	// nearest healthy one share the answers by weight; 0: the nearest
	// alone.
	NearbyKm float64
	Default  string
	AllDown  string
	TTL      uint32
}

type fileConfig struct {
	Listen    *string        `yaml:"listen"`
	Metrics   string         `yaml:"metrics"`
	GeoIP     string         `yaml:"geoip"`
	RateLimit *fileRateLimit `yaml:"rate_limit"`
	Zones     []fileZone     `yaml:"zones"`
	Sites     []fileSite     `yaml:"sites"`
	Names     []fileName     `yaml:"names"`
}

type fileRateLimit struct {
	ResponsesPerSecond float64 `yaml:"responses_per_second"`
	Burst              *int    `yaml:"burst"`
	Slip               *int    `yaml:"slip"`
}

type fileZone struct {
	Name    string        `yaml:"name"`
	TTL     time.Duration `yaml:"ttl"`
	Records []string      `yaml:"records"`
}

type fileSite struct {
	Name     string       `yaml:"name"`
	Location fileLocation `yaml:"location"`
	VIPs     []string     `yaml:"vips"`
	Health   *fileHealth  `yaml:"health"`
}

type fileLocation struct {
	Lat       *float64 `yaml:"lat"`
	Lon       *float64 `yaml:"lon"`
	Country   string   `yaml:"country"`
	Continent string   `yaml:"continent"`
}

type fileHealth struct {
	Daemons  []string      `yaml:"daemons"`
	VIP      string        `yaml:"vip"`
	MinHosts int           `yaml:"min_hosts"`
	BGP      string        `yaml:"bgp"`
	Probe    string        `yaml:"probe"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Rise     int           `yaml:"rise"`
	Fall     int           `yaml:"fall"`
}

type fileName struct {
	Name       string         `yaml:"name"`
	Policy     string         `yaml:"policy"`
	Sites      []string       `yaml:"sites"`
	Weights    map[string]int `yaml:"weights"`
	Priorities map[string]int `yaml:"priorities"`
	NearbyKm   *float64       `yaml:"nearby_km"`
	Default    string         `yaml:"default"`
	AllDown    string         `yaml:"all_down"`
	TTL        time.Duration  `yaml:"ttl"`
}

// allowedTypes are the record types a zone may hold.
var allowedTypes = []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeTXT, dns.TypeMX}

// Load reads and validates the configuration at path.
func Load(path string) (*Config, error) {
	data, err := strictyaml.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates a configuration; name is used in error messages. Every
// problem is returned (errors.Join of *strictyaml.Error with file:line,
// the type control/config.Error names).
func Parse(name string, data []byte) (*Config, error) {
	var fc fileConfig
	doc, err := strictyaml.NewDoc(name, data, &fc)
	if err != nil {
		return nil, err
	}
	v := &validator{doc}
	cfg := v.config(&fc)
	if err := v.Err(); err != nil {
		return nil, err
	}
	cfg.File = name
	return cfg, nil
}

// validator checks a decoded file; every problem goes to its Doc.
type validator struct{ *strictyaml.Doc }

func p(elems ...any) []any { return elems }

func (v *validator) config(fc *fileConfig) *Config {
	cfg := &Config{Listen: DefaultListen, Metrics: fc.Metrics, GeoIP: fc.GeoIP, geoIPLine: strictyaml.LineOf(v.Root, p("geoip"))}
	if fc.Listen != nil {
		cfg.Listen = *fc.Listen
	}
	if _, _, err := splitListen(cfg.Listen); err != nil {
		v.Errorf(p("listen"), "%v", err)
	}
	if rl := fc.RateLimit; rl != nil {
		cfg.RateLimit = RateLimit{Rate: rl.ResponsesPerSecond, Burst: int(2 * rl.ResponsesPerSecond), Slip: 2}
		if rl.Burst != nil {
			cfg.RateLimit.Burst = *rl.Burst
		}
		if rl.Slip != nil {
			cfg.RateLimit.Slip = *rl.Slip
		}
		if rl.ResponsesPerSecond <= 0 || cfg.RateLimit.Burst < 1 || cfg.RateLimit.Slip < 0 {
			v.Errorf(p("rate_limit"), "responses_per_second must be more than 0, burst at least 1 and slip 0 or more")
		}
	}
	if len(fc.Zones) == 0 {
		v.Errorf(p("zones"), "at least one zone is required")
	}
	for i, fz := range fc.Zones {
		if z, ok := v.zone(i, fz); ok {
			for _, o := range cfg.Zones {
				if o.Origin == z.Origin {
					v.Errorf(p("zones", i, "name"), "zone %s is given twice", z.Origin)
				}
			}
			cfg.Zones = append(cfg.Zones, z)
		}
	}
	sites := map[string]bool{}
	for i, fs := range fc.Sites {
		s := v.site(i, fs)
		if sites[s.Name] {
			v.Errorf(p("sites", i, "name"), "site %q is given twice", s.Name)
		}
		sites[s.Name] = true
		cfg.Sites = append(cfg.Sites, s)
	}
	seen := map[string]bool{}
	for i, fn := range fc.Names {
		n := v.name(i, fn, sites)
		if n.FQDN == "" {
			continue
		}
		if seen[n.FQDN] {
			v.Errorf(p("names", i, "name"), "name %s is given twice", n.FQDN)
		}
		seen[n.FQDN] = true
		if zoneOf(cfg.Zones, n.FQDN) == nil && len(cfg.Zones) > 0 {
			v.Errorf(p("names", i, "name"), "%s is in none of the zones", n.FQDN)
		}
		if z := zoneOf(cfg.Zones, n.FQDN); z != nil {
			for _, rr := range z.Records {
				if strings.EqualFold(rr.Header().Name, n.FQDN) {
					v.Errorf(p("names", i, "name"), "%s also has records in zone %s: a GSLB name has only its GSLB answers", n.FQDN, z.Origin)
					break
				}
			}
		}
		if n.Policy == PolicyGeo && cfg.GeoIP == "" {
			v.Errorf(p("names", i, "policy"), "policy geo needs geoip (a MaxMind-format database) at the top level")
		}
		cfg.Names = append(cfg.Names, n)
	}
	return cfg
}

// recordWords put the zone parser's terse phrases in an operator's.
var recordWords = []struct{ raw, words string }{
	{"bad A A", "not an IPv4 address"},
	{"bad AAAA AAAA", "not an IPv6 address"},
	{"bad MX Pref", "not an MX preference (a number)"},
	{"not a TTL", "not a TTL, class or record type (or the record's data is missing)"},
}

// recordProblem is the zone parser's error about one record without its
// "dns: " prefix and its position in the one-line text ("at line: 1:18"),
// which the entry's own file:line replaces.
func recordProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "dns: ")
	if i := strings.LastIndex(msg, " at line: "); i >= 0 {
		msg = msg[:i]
	}
	for _, w := range recordWords {
		if rest, ok := strings.CutPrefix(msg, w.raw); ok {
			return w.words + rest
		}
	}
	return msg
}

func (v *validator) zone(i int, fz fileZone) (Zone, bool) {
	if fz.Name == "" {
		v.Errorf(p("zones", i), "name is required")
		return Zone{}, false
	}
	origin, ok := fqdn(fz.Name)
	if !ok {
		v.Errorf(p("zones", i, "name"), "%q is not a domain name", fz.Name)
		return Zone{}, false
	}
	ttl := DefaultZoneTTL
	if fz.TTL != 0 {
		ttl = fz.TTL
	}
	if ttl < time.Second {
		v.Errorf(p("zones", i, "ttl"), "must be at least 1s")
	}
	z := Zone{Origin: origin}
	for j, text := range fz.Records {
		path := p("zones", i, "records", j)
		zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
		zp.SetDefaultTTL(uint32(ttl / time.Second))
		rr, ok := zp.Next()
		if err := zp.Err(); err != nil {
			v.Errorf(path, "%q: %s (zone-file syntax: NAME [TTL] [IN] TYPE DATA, e.g. \"www 300 IN A 192.0.2.1\")", text, recordProblem(err))
			continue
		}
		if !ok || rr == nil {
			v.Errorf(path, "%q: no record (want zone-file syntax, e.g. \"www IN A 192.0.2.1\")", text)
			continue
		}
		if _, more := zp.Next(); more {
			v.Errorf(path, "%q: one record per entry", text)
			continue
		}
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		if !dns.IsSubDomain(origin, h.Name) {
			v.Errorf(path, "%s is outside zone %s", h.Name, origin)
			continue
		}
		if !slices.Contains(allowedTypes, h.Rrtype) {
			v.Errorf(path, "type %s is not served (SOA, NS, A, AAAA, CNAME, TXT, MX)", dns.TypeToString[h.Rrtype])
			continue
		}
		if soa, ok := rr.(*dns.SOA); ok {
			switch {
			case h.Name != origin:
				v.Errorf(path, "the SOA must be at the zone apex %s", origin)
			case z.SOA != nil:
				v.Errorf(path, "zone %s has a second SOA", origin)
			default:
				z.SOA = soa
			}
		}
		z.Records = append(z.Records, rr)
	}
	if z.SOA == nil {
		v.Errorf(p("zones", i, "records"), "zone %s needs an SOA record, e.g. \"@ IN SOA ns1.%s hostmaster.%s 1 7200 3600 1209600 60\"", origin, origin, origin)
	}
	v.cnames(i, z)
	return z, true
}

// cnames rejects a CNAME that shares its owner with other data (RFC 1034).
func (v *validator) cnames(i int, z Zone) {
	owners := map[string][]uint16{}
	for _, rr := range z.Records {
		owners[rr.Header().Name] = append(owners[rr.Header().Name], rr.Header().Rrtype)
	}
	for name, types := range owners {
		if slices.Contains(types, dns.TypeCNAME) && len(types) > 1 {
			v.Errorf(p("zones", i, "records"), "%s has a CNAME and other records: a CNAME must stand alone", name)
		}
	}
}

func (v *validator) site(i int, fs fileSite) Site {
	s := Site{Name: fs.Name}
	if fs.Name == "" {
		v.Errorf(p("sites", i), "name is required")
	}
	loc := fs.Location
	if (loc.Lat == nil) != (loc.Lon == nil) {
		v.Errorf(p("sites", i, "location"), "give both lat and lon, or neither")
	}
	if loc.Lat != nil && loc.Lon != nil {
		if *loc.Lat < -90 || *loc.Lat > 90 || *loc.Lon < -180 || *loc.Lon > 180 {
			v.Errorf(p("sites", i, "location"), "lat must be -90..90 and lon -180..180")
		}
		s.Location.HasCoords, s.Location.Lat, s.Location.Lon = true, *loc.Lat, *loc.Lon
	}
	s.Location.Country = strings.ToUpper(loc.Country)
	s.Location.Continent = strings.ToUpper(loc.Continent)
	if len(fs.VIPs) == 0 {
		v.Errorf(p("sites", i, "vips"), "at least one VIP address is required")
	}
	for j, a := range fs.VIPs {
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" {
			v.Errorf(p("sites", i, "vips", j), "%q is not an IP address", a)
			continue
		}
		s.VIPs = append(s.VIPs, addr.Unmap())
	}
	if fs.Health != nil {
		s.Health = v.health(i, fs.Health, s.VIPs)
	}
	return s
}

func (v *validator) health(i int, fh *fileHealth, vips []netip.Addr) *Health {
	path := p("sites", i, "health")
	h := &Health{MinHosts: fh.MinHosts, BGP: fh.BGP, Probe: fh.Probe, Interval: fh.Interval, Timeout: fh.Timeout, Rise: fh.Rise, Fall: fh.Fall}
	switch {
	case len(fh.Daemons) > 0 && fh.Probe != "":
		v.Errorf(path, "give daemons or probe, not both")
	case len(fh.Daemons) == 0 && fh.Probe == "":
		v.Errorf(path, "give daemons (the sites' xlb daemons' metrics listeners) or probe (a URL)")
	}
	for j, d := range fh.Daemons {
		if !strings.Contains(d, "://") {
			d = "http://" + d
		}
		if u, err := url.Parse(d); err != nil || u.Host == "" {
			v.Errorf(append(path, "daemons", j), "%q is not a URL or host:port", fh.Daemons[j])
			continue
		}
		h.Daemons = append(h.Daemons, strings.TrimSuffix(d, "/"))
	}
	if fh.Probe != "" {
		if u, err := url.Parse(fh.Probe); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			v.Errorf(append(path, "probe"), "%q is not an http(s) URL", fh.Probe)
		}
	}
	if fh.VIP != "" {
		a, err := netip.ParseAddr(fh.VIP)
		if err != nil {
			// Also accept the daemon's VIP key form, ADDR:PORT/PROTO.
			k, kerr := api.ParseVIPKey(fh.VIP)
			if kerr != nil {
				v.Errorf(append(path, "vip"), "%q is not an IP address", fh.VIP)
			}
			a = k.Addr
		}
		h.VIP = a.Unmap()
	} else if len(vips) > 0 {
		h.VIP = vips[0]
	}
	if h.MinHosts == 0 {
		h.MinHosts = 1
	}
	switch {
	case h.BGP == "":
		h.BGP = BGPAuto
	case fh.Probe != "":
		v.Errorf(append(path, "bgp"), "bgp applies to daemons only")
	case !slices.Contains([]string{BGPAuto, BGPRequired, BGPIgnore}, h.BGP):
		v.Errorf(append(path, "bgp"), "unknown value %q (want auto, required or ignore)", h.BGP)
	}
	if len(h.Daemons) > 0 && (h.MinHosts < 1 || h.MinHosts > len(h.Daemons)) {
		v.Errorf(append(path, "min_hosts"), "must be 1..%d (the number of daemons)", len(h.Daemons))
	}
	if h.Interval == 0 {
		h.Interval = DefaultInterval
	}
	if h.Timeout == 0 {
		h.Timeout = min(DefaultTimeout, h.Interval)
	}
	// Rounds run one after the other: a timeout longer than the interval
	// only delays the next round.
	if h.Interval < 10*time.Millisecond || h.Timeout <= 0 {
		v.Errorf(path, "interval must be at least 10ms and timeout more than 0")
	}
	if h.Rise == 0 {
		h.Rise = DefaultRise
	}
	if h.Fall == 0 {
		h.Fall = DefaultFall
	}
	if h.Rise < 1 || h.Fall < 1 {
		v.Errorf(path, "rise and fall must be at least 1")
	}
	return h
}

func (v *validator) name(i int, fn fileName, sites map[string]bool) Name {
	path := p("names", i)
	n := Name{Policy: fn.Policy, Sites: fn.Sites, Default: fn.Default, AllDown: fn.AllDown, TTL: uint32(DefaultGSLBTTL / time.Second)}
	if fn.Name == "" {
		v.Errorf(path, "name is required")
	} else if f, ok := fqdn(fn.Name); ok {
		n.FQDN = f
	} else {
		v.Errorf(append(path, "name"), "%q is not a domain name", fn.Name)
	}
	if n.Policy == "" {
		n.Policy = PolicyFailover
	}
	if !slices.Contains([]string{PolicyFailover, PolicyGeo, PolicyWeighted}, n.Policy) {
		v.Errorf(append(path, "policy"), "unknown policy %q (want failover, geo or weighted)", fn.Policy)
	}
	if len(n.Sites) == 0 {
		v.Errorf(append(path, "sites"), "at least one site is required")
	}
	for j, s := range n.Sites {
		if !sites[s] {
			v.Errorf(p("names", i, "sites", j), "unknown site %q", s)
		}
		if slices.Index(n.Sites, s) != j {
			v.Errorf(p("names", i, "sites", j), "site %q is listed twice", s)
		}
	}
	for j, s := range n.Sites {
		w, ok := fn.Weights[s]
		if !ok {
			w = 1
		}
		if w < 0 {
			v.Errorf(append(path, "weights", s), "weight must be 0 or more")
		}
		n.Weights = append(n.Weights, w)
		pr, ok := fn.Priorities[s]
		if !ok {
			pr = j
		}
		n.Priorities = append(n.Priorities, pr)
	}
	for s := range fn.Weights {
		if !slices.Contains(n.Sites, s) {
			v.Errorf(append(path, "weights", s), "site %q is not in sites", s)
		}
	}
	for s := range fn.Priorities {
		if n.Policy != PolicyFailover {
			v.Errorf(append(path, "priorities"), "priorities apply to policy failover only")
			break
		}
		if !slices.Contains(n.Sites, s) {
			v.Errorf(append(path, "priorities", s), "site %q is not in sites", s)
		}
	}
	if fn.NearbyKm != nil {
		switch {
		case n.Policy != PolicyGeo:
			v.Errorf(append(path, "nearby_km"), "nearby_km applies to policy geo only")
		case *fn.NearbyKm < 0:
			v.Errorf(append(path, "nearby_km"), "must be 0 or more")
		default:
			n.NearbyKm = *fn.NearbyKm
		}
	}
	if n.Default != "" && !slices.Contains(n.Sites, n.Default) {
		v.Errorf(append(path, "default"), "default site %q is not in sites", n.Default)
	}
	if n.Default == "" && len(n.Sites) > 0 {
		n.Default = n.Sites[0]
	}
	if n.AllDown == "" {
		n.AllDown = AllDownAll
	}
	if n.AllDown != AllDownAll && !sites[n.AllDown] {
		v.Errorf(append(path, "all_down"), "want %q or a site name, not %q", AllDownAll, n.AllDown)
	}
	if fn.TTL != 0 {
		if fn.TTL < time.Second {
			v.Errorf(append(path, "ttl"), "must be at least 1s")
		}
		n.TTL = uint32(fn.TTL / time.Second)
	}
	return n
}

// fqdn returns s as a lower-case fully qualified domain name.
func fqdn(s string) (string, bool) {
	f := dns.Fqdn(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := dns.IsDomainName(f); !ok || f == "." && s != "." {
		return "", false
	}
	return f, true
}

// zoneOf returns the zone with the longest origin containing name.
func zoneOf(zones []Zone, name string) *Zone {
	var best *Zone
	for i := range zones {
		z := &zones[i]
		if dns.IsSubDomain(z.Origin, name) && (best == nil || len(z.Origin) > len(best.Origin)) {
			best = z
		}
	}
	return best
}

// splitListen checks a listen address host:port.
func splitListen(addr string) (netip.Addr, uint16, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q is not ADDR:PORT (e.g. 0.0.0.0:53 or [::]:53)", addr)
	}
	return ap.Addr(), ap.Port(), nil
}
