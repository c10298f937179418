# Sourced by the L7 benchmark drivers (l7.sh, l7pg.sh, shopload.sh): picks a base for
# N consecutive loopback ports that no socket uses and that lie outside
# the kernel's ephemeral range.
#
# Why outside it: a listener cannot bind a port that an outgoing
# connection uses as its source port, and the port stays taken for the
# minute that connection spends in TIME_WAIT (SO_REUSEADDR does not help
# against a client socket). A benchmark makes thousands of connections
# (wrk, the proxies' connections to their backends, health checks), so a
# port picked from the ephemeral range at the start is likely taken by
# the time a later suite starts its listener on it: "did not come up".

# pick_ports N: sets BASE, or fails saying why.
pick_ports() {
	local n=$1 lo hi try off busy
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
	for try in $(seq 1 20); do
		if [ "$lo" -gt $((10000 + n + 1000)) ]; then
			BASE=$(( 10000 + RANDOM % (lo - 10000 - n) ))
		elif [ "$hi" -lt $((65535 - n - 1000)) ]; then
			BASE=$(( hi + 1 + RANDOM % (65535 - hi - n) ))
		else
			echo "pick_ports: the ephemeral range $lo-$hi leaves no room for $n fixed ports" >&2
			return 1
		fi
		busy=""
		for off in $(seq 0 $((n - 1))); do
			# Any socket on the port, listening or not (TIME_WAIT included).
			if ss -Htan "( sport = :$((BASE + off)) )" | grep -q .; then busy=1; break; fi
		done
		[ -z "$busy" ] && return 0
	done
	echo "pick_ports: no free run of $n ports found" >&2
	return 1
}
