package config

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xlbproject/xlb/internal/strictyaml"
)

// TLS is a listener's TLS policy. Certificates are read when the config is
// loaded (and again on every reload), so that a missing, unreadable or
// mismatched file is a config error and a renewed certificate is picked up
// by a reload without restarting.
type TLS struct {
	// Certificates, chosen by the client's SNI name; the first is the
	// default for clients that send no name or a name none covers.
	Certificates []Certificate `yaml:"certificates"`
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// Ciphers are TLS 1.2 suite names (Go's names, e.g.
	// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); empty means the modern
	// defaults below. TLS 1.3 suites are fixed by Go.
	Ciphers []string `yaml:"ciphers"`
	// ALPN is the protocols offered, in preference order: "h2" and
	// "http/1.1" (the default is both, h2 first).
	ALPN []string `yaml:"alpn"`

	// Filled by Parse.
	MinVersionID uint16   `yaml:"-"`
	CipherIDs    []uint16 `yaml:"-"`
}

// Certificate is one certificate chain and its key, PEM files. OCSP, when
// set, is a DER OCSP response stapled to handshakes with this certificate
// (refreshed by whatever renews it, then picked up on reload).
type Certificate struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	OCSP string `yaml:"ocsp"`

	// Loaded is the parsed chain, key and staple; filled by Parse.
	Loaded *tls.Certificate `yaml:"-"`
}

// ALPN protocol names accepted in TLS.ALPN.
const (
	ALPNH2     = "h2"
	ALPNHTTP11 = "http/1.1"
)

// DefaultALPN is what a TLS listener offers unless alpn says otherwise.
var DefaultALPN = []string{ALPNH2, ALPNHTTP11}

// DefaultCiphers are the TLS 1.2 suites offered unless ciphers says
// otherwise: forward-secret AEAD suites only, ECDSA and RSA.
var DefaultCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func (v *validator) tls(li int, t *TLS) {
	base := func(p ...any) []any { return append([]any{"listeners", li, "tls"}, p...) }
	if len(t.Certificates) == 0 {
		v.errorf(base("certificates"), "listener tls needs at least one certificate")
	}
	dir := filepath.Dir(v.file)
	for i := range t.Certificates {
		c := &t.Certificates[i]
		at := base("certificates", i)
		if c.Cert == "" || c.Key == "" {
			v.errorf(at, "certificate needs both cert and key files")
			continue
		}
		c.Cert, c.Key = relTo(dir, c.Cert), relTo(dir, c.Key)
		kp, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			v.errorf(at, "certificate %s with key %s: %s", c.Cert, c.Key, certReason(err))
			continue
		}
		if kp.Leaf == nil {
			if kp.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
				v.errorf(append(at, "cert"), "certificate %s: %v", c.Cert, err)
				continue
			}
		}
		if c.OCSP != "" {
			c.OCSP = relTo(dir, c.OCSP)
			der, err := strictyaml.ReadNamed("OCSP staple", c.OCSP)
			switch {
			case err != nil:
				v.errorf(append(at, "ocsp"), "%v", err)
			case len(der) == 0:
				v.errorf(append(at, "ocsp"), "ocsp staple %s is empty", c.OCSP)
			default:
				kp.OCSPStaple = der
			}
		}
		c.Loaded = &kp
	}
	var ok bool
	if t.MinVersion, t.MinVersionID, ok = minVersion(t.MinVersion); !ok {
		v.errorf(base("min_version"), "tls min_version %q is not 1.2 or 1.3 (older versions are not offered)", t.MinVersion)
	}
	if len(t.Ciphers) == 0 {
		t.CipherIDs = DefaultCiphers
	}
	for i, name := range t.Ciphers {
		id, ok := cipherByName(name)
		if !ok {
			v.errorf(base("ciphers", i), "tls cipher %q is not a secure TLS 1.2 suite Go knows (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", name)
			continue
		}
		t.CipherIDs = append(t.CipherIDs, id)
	}
	if len(t.ALPN) == 0 {
		t.ALPN = slices.Clone(DefaultALPN)
	}
	for i, p := range t.ALPN {
		if p != ALPNH2 && p != ALPNHTTP11 {
			v.errorf(base("alpn", i), "tls alpn %q is not one of h2, http/1.1", p)
		}
	}
}

// minVersion reads a min_version setting: "" is 1.2.
func minVersion(s string) (string, uint16, bool) {
	switch s {
	case "", "1.2":
		return "1.2", tls.VersionTLS12, true
	case "1.3":
		return s, tls.VersionTLS13, true
	}
	return s, 0, false
}

// cipherByName finds a secure TLS 1.2 suite; TLS 1.3 suites cannot be
// configured in Go and insecure ones are refused.
func cipherByName(name string) (uint16, bool) {
	for _, s := range tls.CipherSuites() {
		if s.Name == name && slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			return s.ID, true
		}
	}
	return 0, false
}

func relTo(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// certReason words crypto/tls's key-pair errors for an operator.
func certReason(err error) string {
	msg := err.Error()
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist):
		return pe.Path + " does not exist"
	case errors.As(err, &pe):
		return fmt.Sprintf("cannot read %s: %v", pe.Path, pe.Err)
	case strings.Contains(msg, "does not match"):
		return "the key does not match the certificate"
	case strings.Contains(msg, "failed to find any PEM data"):
		return "not a PEM file: " + strings.TrimPrefix(msg, "tls: ")
	}
	return strings.TrimPrefix(msg, "tls: ")
}

// HasH2 reports whether the listener offers HTTP/2 by ALPN.
func (t *TLS) HasH2() bool { return t != nil && slices.Contains(t.ALPN, ALPNH2) }

// UpstreamTLS is how the proxy speaks TLS to a pool's servers: their
// certificates verified against ca_file (or the system's roots), a client
// certificate for servers that demand one (mutual TLS). The files are read
// when the config is loaded and again on every reload.
type UpstreamTLS struct {
	// CAFile holds the PEM certificates a server's chain must lead to;
	// empty means the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name sent by SNI and required in every server's
	// certificate; empty means each server's own host from its addr (an
	// IP address is then checked against the certificate's IP names).
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are the client certificate and key, PEM, for
	// servers that ask for one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify encrypts without checking who answers: for a
	// test bed only; the proxy logs a warning for every pool that sets it.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`

	// Filled by Parse: the client configuration every server's is made
	// from (ClientConfig), and a digest of everything it was built from, so
	// that a reload keeps the open connections only while nothing changed.
	Loaded *tls.Config `yaml:"-"`
	Digest string      `yaml:"-"`
}

// ClientConfig is the TLS configuration for a connection to the server at
// addr (host:port), alpn the protocols to offer.
func (t *UpstreamTLS) ClientConfig(addr string, alpn ...string) *tls.Config {
	c := t.Loaded.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	c.NextProtos = alpn
	return c
}

func (v *validator) upstreamTLS(at []any, pool string, t *UpstreamTLS) {
	dir := filepath.Dir(v.file)
	sum := sha256.New()
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	var ok bool
	if t.MinVersion, c.MinVersion, ok = minVersion(t.MinVersion); !ok {
		v.errorf(append(at, "min_version"), "pool %q tls min_version %q is not 1.2 or 1.3 (older versions are not offered)", pool, t.MinVersion)
	}
	if t.CAFile != "" {
		if t.InsecureSkipVerify {
			v.errorf(append(at, "ca_file"), "pool %q tls sets ca_file and insecure_skip_verify: nothing would be verified against it", pool)
		}
		t.CAFile = relTo(dir, t.CAFile)
		pem, err := strictyaml.ReadNamed("CA file", t.CAFile)
		c.RootCAs = x509.NewCertPool()
		switch {
		case err != nil:
			v.errorf(append(at, "ca_file"), "pool %q tls ca_file: %v", pool, err)
		case !c.RootCAs.AppendCertsFromPEM(pem):
			v.errorf(append(at, "ca_file"), "pool %q tls ca_file %s holds no PEM certificate", pool, t.CAFile)
		}
		sum.Write(pem)
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		v.errorf(at, "pool %q tls needs both cert_file and key_file for a client certificate", pool)
	default:
		t.CertFile, t.KeyFile = relTo(dir, t.CertFile), relTo(dir, t.KeyFile)
		kp, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			v.errorf(append(at, "cert_file"), "pool %q tls client certificate %s with key %s: %s", pool, t.CertFile, t.KeyFile, certReason(err))
			break
		}
		if kp.Leaf == nil {
			if kp.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
				v.errorf(append(at, "cert_file"), "pool %q tls client certificate %s: %v", pool, t.CertFile, err)
				break
			}
		}
		c.Certificates = []tls.Certificate{kp}
		for _, der := range kp.Certificate {
			sum.Write(der)
		}
	}
	fmt.Fprintf(sum, "\x00%s\x00%t\x00%d", t.ServerName, t.InsecureSkipVerify, c.MinVersion)
	t.Loaded, t.Digest = c, hex.EncodeToString(sum.Sum(nil))
}
