package etcdstore

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"
)

// Settings is the YAML shape of an etcd section, the same in the daemon's
// and the proxy's configuration files.
type Settings struct {
	// Endpoints are client URLs (http:// or https://host:port).
	Endpoints []string `yaml:"endpoints"`
	// Prefix is where this tier's keys live; every host of the tier uses
	// the same one.
	Prefix   string `yaml:"prefix"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// DialTimeout and RequestTimeout are durations ("2s").
	DialTimeout    string `yaml:"dial_timeout"`
	RequestTimeout string `yaml:"request_timeout"`
}

// Problem is one invalid setting: Field is the key inside the section
// ("endpoints", "cert_file"), for the caller to turn into file:line.
type Problem struct {
	Field  string
	Index  int // position in endpoints, -1 otherwise
	Reason string
}

// Check validates the settings and returns the store's Config (Log unset).
// defaultPrefix applies when prefix is empty.
func (s Settings) Check(defaultPrefix string) (Config, []Problem) {
	var probs []Problem
	bad := func(field string, i int, format string, a ...any) {
		probs = append(probs, Problem{Field: field, Index: i, Reason: fmt.Sprintf(format, a...)})
	}
	cfg := Config{Endpoints: s.Endpoints, Prefix: s.Prefix, CertFile: s.CertFile, KeyFile: s.KeyFile, CAFile: s.CAFile}
	if len(s.Endpoints) == 0 {
		bad("endpoints", -1, "at least one etcd endpoint is required (e.g. https://10.0.0.5:2379)")
	}
	tls := s.CertFile != "" || s.KeyFile != "" || s.CAFile != ""
	for i, e := range s.Endpoints {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad("endpoints", i, "%q is not an etcd client URL (http://host:port or https://host:port)", e)
		case u.Port() == "":
			bad("endpoints", i, "%q has no port (etcd's client port is usually 2379)", e)
		case u.Scheme == "http" && tls:
			bad("endpoints", i, "%q is plain http but TLS files are set: use https://", e)
		}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		bad("prefix", -1, "%q must start and end with / (keys are <prefix><name>)", cfg.Prefix)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		bad("cert_file", -1, "cert_file and key_file go together (a client certificate and its key)")
	}
	for _, f := range []struct{ field, path string }{{"cert_file", s.CertFile}, {"key_file", s.KeyFile}, {"ca_file", s.CAFile}} {
		if f.path == "" {
			continue
		}
		switch fi, err := os.Stat(f.path); {
		case errors.Is(err, fs.ErrNotExist):
			bad(f.field, -1, "%s does not exist", f.path)
		case err != nil:
			bad(f.field, -1, "cannot read %s: %v", f.path, errors.Unwrap(err))
		case fi.IsDir():
			bad(f.field, -1, "%s is a directory, not a PEM file", f.path)
		}
	}
	for _, d := range []struct {
		field string
		val   string
		out   *time.Duration
	}{{"dial_timeout", s.DialTimeout, &cfg.DialTimeout}, {"request_timeout", s.RequestTimeout, &cfg.RequestTimeout}} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v < 10*time.Millisecond || v > time.Minute {
			bad(d.field, -1, "%q is not a duration between 10ms and 1m", d.val)
			continue
		}
		*d.out = v
	}
	return cfg, probs
}
