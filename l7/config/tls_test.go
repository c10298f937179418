package config_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/testcert"
	"github.com/xlbproject/xlb/l7/config"
)

// tlsConfig is minimal with its listener's tls section replaced by tlsYAML
// (indented under the listener).
func tlsConfig(tlsYAML string) string {
	return strings.Replace(minimal, `  - addr: ":8080"
`, `  - addr: ":8443"
    tls:
`+tlsYAML, 1)
}

func TestParseTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	_, _, err = ca.Leaf(dir, "shop", "shop.example.com")
	require.NoError(t, err)
	_, _, err = ca.Leaf(dir, "api", "api.example.com")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "api.ocsp"), []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, 0o600))

	t.Run("defaults, relative paths, two certificates, a staple", func(t *testing.T) {
		file := filepath.Join(dir, "proxy.yaml")
		cfg, err := config.Parse(file, []byte(tlsConfig(`      certificates:
        - {cert: shop.crt, key: shop.key}
        - {cert: api.crt, key: api.key, ocsp: api.ocsp}
`)))
		require.NoError(t, err)
		tc := cfg.Listeners[0].TLS
		require.NotNil(t, tc)
		assert.Equal(t, "1.2", tc.MinVersion)
		assert.Equal(t, uint16(tls.VersionTLS12), tc.MinVersionID)
		assert.Equal(t, config.DefaultCiphers, tc.CipherIDs)
		assert.Equal(t, []string{"h2", "http/1.1"}, tc.ALPN)
		require.Len(t, tc.Certificates, 2)
		assert.Equal(t, filepath.Join(dir, "shop.crt"), tc.Certificates[0].Cert)
		require.NotNil(t, tc.Certificates[0].Loaded)
		assert.Equal(t, []string{"shop.example.com"}, tc.Certificates[0].Loaded.Leaf.DNSNames)
		assert.Nil(t, tc.Certificates[0].Loaded.OCSPStaple)
		assert.Equal(t, []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, tc.Certificates[1].Loaded.OCSPStaple)
	})

	t.Run("policy", func(t *testing.T) {
		cfg, err := config.Parse(filepath.Join(dir, "p.yaml"), []byte(tlsConfig(`      certificates: [{cert: shop.crt, key: shop.key}]
      min_version: "1.3"
      ciphers: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
      alpn: [http/1.1]
`)))
		require.NoError(t, err)
		tc := cfg.Listeners[0].TLS
		assert.Equal(t, uint16(tls.VersionTLS13), tc.MinVersionID)
		assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, tc.CipherIDs)
		assert.False(t, tc.HasH2())
	})

	cases := []struct{ name, yaml, want string }{
		{"missing cert file", `      certificates: [{cert: nope.crt, key: shop.key}]
`, "p.yaml:4: certificate " + filepath.Join(dir, "nope.crt") + " with key " + filepath.Join(dir, "shop.key") + ": " + filepath.Join(dir, "nope.crt") + " does not exist"},
		{"key of another certificate", `      certificates:
        - {cert: shop.crt, key: api.key}
`, "p.yaml:5: certificate " + filepath.Join(dir, "shop.crt") + " with key " + filepath.Join(dir, "api.key") + ": the key does not match the certificate"},
		{"not PEM", `      certificates: [{cert: api.ocsp, key: shop.key}]
`, "not a PEM file"},
		{"no key", `      certificates: [{cert: shop.crt}]
`, "p.yaml:4: certificate needs both cert and key files"},
		{"no certificates", `      min_version: "1.2"
`, "p.yaml:3: listener tls needs at least one certificate"},
		{"missing staple", `      certificates: [{cert: shop.crt, key: shop.key, ocsp: gone.ocsp}]
`, "p.yaml:4: OCSP staple " + filepath.Join(dir, "gone.ocsp") + " does not exist"},
		{"old version", `      certificates: [{cert: shop.crt, key: shop.key}]
      min_version: "1.1"
`, `p.yaml:5: tls min_version "1.1" is not 1.2 or 1.3 (older versions are not offered)`},
		{"weak cipher", `      certificates: [{cert: shop.crt, key: shop.key}]
      ciphers: [TLS_RSA_WITH_RC4_128_SHA]
`, `p.yaml:5: tls cipher "TLS_RSA_WITH_RC4_128_SHA" is not a secure TLS 1.2 suite`},
		{"unknown alpn", `      certificates: [{cert: shop.crt, key: shop.key}]
      alpn: [h3]
`, `p.yaml:5: tls alpn "h3" is not one of h2, http/1.1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse(filepath.Join(dir, "p.yaml"), []byte(tlsConfig(c.yaml)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), strings.ReplaceAll(c.want, "p.yaml", filepath.Join(dir, "p.yaml")))
		})
	}
}

func TestParseUpstreamProtocol(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, config.UpstreamHTTP1, cfg.Pools[0].UpstreamProtocol)
	cfg, err = config.Parse("x.yaml", []byte(minimal+"    upstream_protocol: h2c\n"))
	require.NoError(t, err)
	assert.Equal(t, config.UpstreamH2C, cfg.Pools[0].UpstreamProtocol)
	_, err = config.Parse("x.yaml", []byte(minimal+"    upstream_protocol: h3\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `x.yaml:17: pool "checkout" upstream_protocol "h3" is not one of http1, h2c, h2`)
}

func TestParseUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o600))
	_, _, err = ca.Leaf(dir, "proxy", "proxy.internal")
	require.NoError(t, err)
	_, _, err = ca.Leaf(dir, "other", "other.internal")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate\n"), 0o600))
	file := filepath.Join(dir, "p.yaml")

	cfg, err := config.Parse(file, []byte(minimal+"    tls: {ca_file: ca.pem, cert_file: proxy.crt, key_file: proxy.key}\n"))
	require.NoError(t, err)
	ut := cfg.Pools[0].TLS
	require.NotNil(t, ut)
	assert.Equal(t, filepath.Join(dir, "ca.pem"), ut.CAFile, "relative to the config file")
	assert.Equal(t, "1.2", ut.MinVersion)
	require.NotNil(t, ut.Loaded)
	assert.Len(t, ut.Loaded.Certificates, 1, "the client certificate")
	assert.NotEmpty(t, ut.Digest)
	cc := ut.ClientConfig("127.0.0.1:9001", "h2")
	assert.Equal(t, "127.0.0.1", cc.ServerName, "each server's own host when server_name is not set")
	assert.Equal(t, []string{"h2"}, cc.NextProtos)
	assert.Empty(t, ut.Loaded.ServerName, "ClientConfig works on a copy")

	named, err := config.Parse(file, []byte(minimal+"    upstream_protocol: h2\n    tls: {ca_file: ca.pem, server_name: app.internal, min_version: \"1.3\"}\n"))
	require.NoError(t, err)
	assert.Equal(t, "app.internal", named.Pools[0].TLS.ClientConfig("127.0.0.1:9001").ServerName)
	assert.Equal(t, uint16(tls.VersionTLS13), named.Pools[0].TLS.Loaded.MinVersion)
	assert.NotEqual(t, ut.Digest, named.Pools[0].TLS.Digest, "another setting, another digest")
	again, err := config.Parse(file, []byte(minimal+"    tls: {ca_file: ca.pem, cert_file: proxy.crt, key_file: proxy.key}\n"))
	require.NoError(t, err)
	assert.Equal(t, ut.Digest, again.Pools[0].TLS.Digest, "the same files, the same digest")

	tcp := strings.Replace(minimal, "  - addr: \":8080\"\n", "  - addr: \":8080\"\n  - {addr: \":5432\", mode: tcp, pool: checkout}\n", 1)
	for _, c := range []struct{ name, yaml, want string }{
		{"missing ca", minimal + "    tls: {ca_file: nope.pem}\n", `p.yaml:17: pool "checkout" tls ca_file: CA file ` + filepath.Join(dir, "nope.pem") + " does not exist"},
		{"ca not pem", minimal + "    tls: {ca_file: junk.pem}\n", `p.yaml:17: pool "checkout" tls ca_file ` + filepath.Join(dir, "junk.pem") + " holds no PEM certificate"},
		{"ca and skip verify", minimal + "    tls: {ca_file: ca.pem, insecure_skip_verify: true}\n", `p.yaml:17: pool "checkout" tls sets ca_file and insecure_skip_verify`},
		{"cert without key", minimal + "    tls: {cert_file: proxy.crt}\n", `p.yaml:17: pool "checkout" tls needs both cert_file and key_file`},
		{"key of another cert", minimal + "    tls: {cert_file: proxy.crt, key_file: other.key}\n", `p.yaml:17: pool "checkout" tls client certificate ` + filepath.Join(dir, "proxy.crt") + ` with key ` + filepath.Join(dir, "other.key") + `: the key does not match the certificate`},
		{"key not pem", minimal + "    tls: {cert_file: proxy.crt, key_file: junk.pem}\n", `p.yaml:17: pool "checkout" tls client certificate ` + filepath.Join(dir, "proxy.crt") + ` with key ` + filepath.Join(dir, "junk.pem") + `: not a PEM file`},
		{"old version", minimal + "    tls: {min_version: \"1.0\"}\n", `p.yaml:17: pool "checkout" tls min_version "1.0" is not 1.2 or 1.3`},
		{"h2 without tls", minimal + "    upstream_protocol: h2\n", `p.yaml:17: pool "checkout" upstream_protocol h2 is HTTP/2 over TLS and needs tls`},
		{"h2c with tls", minimal + "    upstream_protocol: h2c\n    tls: {}\n", `p.yaml:17: pool "checkout" upstream_protocol h2c is cleartext HTTP/2, but the pool sets tls`},
		{"tcp listener", tcp + "    tls: {}\n", `p.yaml:3: tcp listener ":5432" uses pool "checkout", which sets tls`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse(file, []byte(c.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), strings.ReplaceAll(c.want, "p.yaml", file))
		})
	}
}
