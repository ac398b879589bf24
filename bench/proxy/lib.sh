# Shared helpers of the proxy benchmarks: build, start processes on
# 127.0.0.1:0 and read their bound address, stop them on exit.
# Source it after bench/errexit.sh (set -Eeuo pipefail, quiet). The work folder (binaries, logs,
# feedback dbs) is a new temporary one, removed on exit; set WORK=dir to
# use and keep one.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -n "${WORK:-}" ]; then
	mkdir -p "$WORK"
	OWN_WORK=0
else
	WORK=$(mktemp -d -t triage-proxy-bench.XXXXXX)
	OWN_WORK=1
fi
PIDS=()

cleanup() {
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	done
	if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

build() {
	(cd "$ROOT" && go build -o "$WORK/triage" ./cmd/triage &&
		go build -o "$WORK/loadgen" ./bench/proxy/loadgen &&
		go build -o "$WORK/predict" ./bench/proxy/predict)
}

# start NAME CMD...: runs CMD in the background with stderr in
# $WORK/NAME.err, waits (at most 20 s) for "listening on ADDR" and sets
# ADDR. The pid goes to PIDS and to LAST_PID.
start() {
	local name=$1
	shift
	"$@" 2>"$WORK/$name.err" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	for _ in $(seq 200); do
		ADDR=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/$name.err" | head -1)
		if [ -n "$ADDR" ]; then
			return 0
		fi
		if ! kill -0 "$LAST_PID" 2>/dev/null; then
			echo "$name exited:" >&2
			cat "$WORK/$name.err" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "$name did not print its address:" >&2
	cat "$WORK/$name.err" >&2
	return 1
}

# stop PID: SIGINT and wait.
stop() {
	kill -INT "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# write_config FILE FAST_ADDR FAST_MODEL STRONG_ADDR STRONG_MODEL
write_config() {
	cat >"$1" <<EOF
tiers:
  fast:
    base_url: http://$2/v1
    model: $3
    timeout: 30s
    price_in_per_1k: 0.0006
    price_out_per_1k: 0.0006
  strong:
    base_url: http://$4/v1
    model: $5
    timeout: 60s
    price_in_per_1k: 0.01
    price_out_per_1k: 0.03
record_responses: true
EOF
}
