#!/usr/bin/env bash
# A CPU profile of triage serve's proxy under the load of overhead.sh:
# two sims at a fixed 50 ms, CLIENTS (50) closed-loop clients sending
# chat completions with MODEL ("triage": routed; "fast": one call) for
# DURATION; H2C=1 sets h2c: true on both tiers. Prints the top functions
# by cumulative CPU and keeps the profile:
#
#   bench/proxy/profile.sh   # CLIENTS=50 DURATION=15s MODEL=triage H2C=0 PROFILE=/tmp/triage-proxy.prof
#   go tool pprof -http=: $PROFILE
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
. "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-15s}
MODEL=${MODEL:-triage}
H2C=${H2C:-0}
# Outside $WORK, which is removed on exit.
PROFILE=${PROFILE:-${TMPDIR:-/tmp}/triage-proxy.prof}
FAST=synthetic/fast-small
STRONG=synthetic/strong-large

build
quiet "$WORK/triage" synth --n 2000 --latency --confidence -o "$WORK/log.jsonl"
quiet "$WORK/triage" train --data "$WORK/log.jsonl" --fast $FAST --strong $STRONG -o "$WORK/router.json" >/dev/null
start fast-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $FAST --fixed-latency 50ms
FAST_ADDR=$ADDR
start strong-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $STRONG --fixed-latency 50ms
STRONG_ADDR=$ADDR
write_config "$WORK/proxy.yaml" "$FAST_ADDR" $FAST "$STRONG_ADDR" $STRONG
if [ "$H2C" = 1 ]; then
	sed -i 's|^\(    base_url: .*\)$|\1\n    h2c: true|' "$WORK/proxy.yaml"
fi
start serve "$WORK/triage" serve --model "$WORK/router.json" --db "$WORK/feedback.db" --config "$WORK/proxy.yaml" \
	--addr 127.0.0.1:0 --cpuprofile "$PROFILE"
SERVE_PID=$LAST_PID
"$WORK/loadgen" -url "http://$ADDR/v1/chat/completions" -c "$CLIENTS" -duration "$DURATION" -warmup 1s -ramp 1s \
	-data "$WORK/log.jsonl" -meta -model "$MODEL"
stop "$SERVE_PID"
echo "# profile: $PROFILE"
quiet go tool pprof -top -cum -nodecount=45 "$WORK/triage" "$PROFILE"
