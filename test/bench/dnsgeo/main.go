// Command dnsgeo writes the small GeoIP2-City database the DNS benchmark
// (test/bench/dns.sh) gives xlb dns and gdnsd: three networks, one per
// region, so that both servers place the same clients in the same place.
// It is a benchmark tool, not a database builder to reuse.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// regions are the benchmark's client networks (ECS subnets) and where
// the database puts them.
var regions = []struct {
	cidr, country, continent string
	lat, lon                 float64
}{
	{"192.0.2.0/24", "US", "NA", 38.9, -77.0},     // Virginia
	{"198.51.100.0/24", "FR", "EU", 48.85, 2.35},  // Paris
	{"203.0.113.0/24", "JP", "AS", 35.68, 139.69}, // Tokyo
}

func main() {
	out := flag.String("o", "", "path of the database to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "dnsgeo:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	if path == "" {
		return fmt.Errorf("-o PATH is required")
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		return fmt.Errorf("new database: %w", err)
	}
	for _, r := range regions {
		_, ipnet, err := net.ParseCIDR(r.cidr)
		if err != nil {
			return fmt.Errorf("parse %s: %w", r.cidr, err)
		}
		rec := mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(r.country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(r.continent)},
			"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(r.lat), "longitude": mmdbtype.Float64(r.lon)},
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			return fmt.Errorf("insert %s: %w", r.cidr, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
