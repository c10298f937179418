package gslb

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/xlbproject/xlb/internal/strictyaml"
)

// Locator finds a client's location in a MaxMind-format database (the
// GeoLite2/GeoIP2 City or Country layout: location.latitude/longitude,
// country.iso_code, continent.code).
// Lookups take a read lock so that Close (after a reload swapped in a
// new database) never unmaps a file a query is still reading.
type Locator struct {
	mu sync.RWMutex
	db *maxminddb.Reader // nil once closed
	// cache holds decoded records by their offset in the database: many
	// networks share one record, and decoding is most of a lookup.
	cacheMu sync.Mutex
	cache   map[uintptr]Location
}

// locatorCacheSize bounds the decoded records kept; the cache is emptied
// when full (a City database has about a million networks, far fewer
// distinct records).
const locatorCacheSize = 1 << 16

// OpenLocator opens the database at path.
func OpenLocator(path string) (*Locator, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geoip database %s: %w", path, err)
	}
	return &Locator{db: db, cache: map[uintptr]Location{}}, nil
}

// OpenGeoIP opens the configuration's GeoIP database (nil for none). A
// database that cannot be opened is a problem of the file, reported like
// the others: file:line: geoip: reason.
func (c *Config) OpenGeoIP() (*Locator, error) {
	if c.GeoIP == "" {
		return nil, nil
	}
	l, err := OpenLocator(c.GeoIP)
	if err == nil {
		return l, nil
	}
	reason := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		reason = fmt.Sprintf("GeoIP database %s does not exist (a MaxMind-format .mmdb file, e.g. GeoLite2-City.mmdb)", c.GeoIP)
	}
	return nil, &strictyaml.Error{File: c.File, Line: c.geoIPLine, Field: "geoip", Reason: reason}
}

// Close releases the database; later lookups find nothing.
func (l *Locator) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil
	}
	err := l.db.Close()
	l.db = nil
	return err
}

type geoRecord struct {
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
}

// Lookup returns the location of addr and the length of the database's
// network that holds it (the ECS scope of an answer based on it); an
// unknown location when the database has no entry.
func (l *Locator) Lookup(addr netip.Addr) (Location, int, error) {
	if l == nil {
		return Location{}, 0, nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.db == nil {
		return Location{}, 0, nil
	}
	res := l.db.Lookup(addr.Unmap())
	if err := res.Err(); err != nil {
		return Location{}, 0, fmt.Errorf("geoip lookup %s: %w", addr, err)
	}
	bits := res.Prefix().Bits()
	if !res.Found() {
		return Location{}, max(bits, 0), nil
	}
	off := res.Offset()
	l.cacheMu.Lock()
	loc, ok := l.cache[off]
	l.cacheMu.Unlock()
	if ok {
		return loc, max(bits, 0), nil
	}
	var r geoRecord
	if err := res.Decode(&r); err != nil {
		return Location{}, 0, fmt.Errorf("geoip decode %s: %w", addr, err)
	}
	loc = Location{Country: strings.ToUpper(r.Country.ISOCode), Continent: strings.ToUpper(r.Continent.Code)}
	if r.Location.Latitude != nil && r.Location.Longitude != nil {
		loc.HasCoords, loc.Lat, loc.Lon = true, *r.Location.Latitude, *r.Location.Longitude
	}
	l.cacheMu.Lock()
	if len(l.cache) >= locatorCacheSize {
		clear(l.cache)
	}
	l.cache[off] = loc
	l.cacheMu.Unlock()
	return loc, max(bits, 0), nil
}

// Distances used when one side has no coordinates: same country is
// nearest, then same continent, then anywhere (farther than any two
// points on Earth are apart, so a site with coordinates always wins
// over one known only to be elsewhere).
const (
	sameCountryKm   = 0
	sameContinentKm = 5000
	elsewhereKm     = 25000
)

// distanceKm is how far client is from site: the great-circle distance
// when both have coordinates, else by country and continent.
func distanceKm(client, site Location) float64 {
	if client.HasCoords && site.HasCoords {
		return haversineKm(client.Lat, client.Lon, site.Lat, site.Lon)
	}
	switch {
	case client.Country != "" && client.Country == site.Country:
		return sameCountryKm
	case client.Continent != "" && client.Continent == site.Continent:
		return sameContinentKm
	}
	return elsewhereKm
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Sqrt(a))
}
