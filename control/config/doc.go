// Package config reads the xlb daemon's YAML configuration file: the
// interfaces the balancer attaches to, the host's outer source addresses, the
// VIPs with their L7 backends, health-check settings, conntrack sizes, and
// where the API socket, the metrics listener, the state file and the bpffs
// pins live.
//
// Unknown fields are rejected and every error names the file, the line and
// the reason ("xlb.yaml:12: vips[0].port: 70000 is out of range 0..65535"),
// because an SRE editing the file during an incident must not have to guess.
package config
