# Helpers for the targets (targets/*.sh) and the scenarios, shared by compare.sh and the A/B
# scripts that start a target's servers themselves (filter-ab.sh). The caller sets COMPARE
# (the petrel-compare binary) and PORTS (a file that lists the ports handed out so far).

# free_port prints a free loopback port not handed out before in this run: the kernel may
# hand out a port again once its probe socket is closed.
free_port() {
	local p
	while :; do
		p=$("$COMPARE" port)
		grep -qx "$p" "$PORTS" 2>/dev/null || { echo "$p" >>"$PORTS"; echo "$p"; return; }
	done
}

# wait_port HOST PORT waits up to 2 minutes for a listener: a server starts in well under a
# second on a quiet machine, but the CI smoke test (smoke_test.go) runs at a load average of
# 30, beside every other package's tests.
wait_port() {
	local i
	for i in $(seq 1200); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: nothing listens on $1:$2" >&2
	return 1
}

# wait_gone PID waits up to a minute for the process to end.
wait_gone() {
	local i
	for i in $(seq 600); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
