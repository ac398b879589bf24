#!/usr/bin/env bash
# Proxy overhead. Two upstream sims answer every request after a fixed
# 50 ms; CLIENTS (200) closed-loop clients send chat completions for
# DURATION, first straight to the fast sim, then through `triage serve`
# with the proxy (routed: fast, speculate and escalate, recorded to the
# bbolt feedback db as in production). Prints the p99 latency of both and
# the proxy's p99 minus the 50 ms upstream time (target: at most 2 ms).
#
#   bench/proxy/overhead.sh            # CLIENTS=200 DURATION=15s WARMUP=3s
#
# Everything listens on 127.0.0.1:0. The figure depends on the machine
# being otherwise idle: client, proxy and sims share its cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-200}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
LATENCY_MS=50
FAST=synthetic/fast-small
STRONG=synthetic/strong-large

build
"$WORK/triage" synth --n 2000 --latency --confidence -o "$WORK/log.jsonl" 2>/dev/null
"$WORK/triage" train --data "$WORK/log.jsonl" --fast $FAST --strong $STRONG -o "$WORK/router.json" >/dev/null 2>&1

start fast-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $FAST --fixed-latency ${LATENCY_MS}ms
FAST_ADDR=$ADDR FAST_PID=$LAST_PID
start strong-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $STRONG --fixed-latency ${LATENCY_MS}ms
STRONG_ADDR=$ADDR STRONG_PID=$LAST_PID
write_config "$WORK/proxy.yaml" "$FAST_ADDR" $FAST "$STRONG_ADDR" $STRONG
start serve "$WORK/triage" serve --model "$WORK/router.json" --db "$WORK/feedback.db" --config "$WORK/proxy.yaml" --addr 127.0.0.1:0
PROXY_ADDR=$ADDR SERVE_PID=$LAST_PID

# cpu PID: user+system CPU seconds of a process so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' "/proc/$1/stat"; }

echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $CLIENTS clients, $DURATION after a $WARMUP warm-up; sims at a fixed ${LATENCY_MS} ms"
"$WORK/loadgen" -url "http://$FAST_ADDR/v1/chat/completions" -c "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" \
	-data "$WORK/log.jsonl" -model $FAST -json >"$WORK/direct.json"
before="$(cpu $SERVE_PID) $(cpu $FAST_PID) $(cpu $STRONG_PID)"
"$WORK/loadgen" -url "http://$PROXY_ADDR/v1/chat/completions" -c "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" \
	-data "$WORK/log.jsonl" -json >"$WORK/proxy.json"
after="$(cpu $SERVE_PID) $(cpu $FAST_PID) $(cpu $STRONG_PID)"
curl -s "http://$PROXY_ADDR/metrics" >"$WORK/metrics.txt" || true

python3 - "$WORK/direct.json" "$WORK/proxy.json" "$LATENCY_MS" "$WORK/metrics.txt" "$before" "$after" <<'EOF'
import json, sys
d, p, lat = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
b, a = [float(x) for x in sys.argv[5].split()], [float(x) for x in sys.argv[6].split()]
for name, r in (("direct to the fast sim", d), ("through the proxy", p)):
    print(f"{name:24s} {r['requests']:7d} requests ({r['errors']} errors) {r['rps']:7.0f} req/s  "
          f"p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  p99 {r['p99_ms']:.2f}  p99.9 {r['p999_ms']:.2f} ms")
print("proxy decisions:", json.dumps(p.get("by_decision", {}), sort_keys=True), " answered by:", json.dumps(p.get("by_model", {}), sort_keys=True))
rec = [l for l in open(sys.argv[4]) if l.startswith("triage_proxy_recordings_total")]
print("recordings:", "; ".join(l.strip() for l in rec))
n = p["all_requests"]  # warm-up included, as in the CPU times
print(f"CPU per proxied request (us): serve+proxy {1e6*(a[0]-b[0])/n:.0f}, "
      f"sims {1e6*(a[1]-b[1]+a[2]-b[2])/n:.0f}, load generator {1e6*p['cpu_seconds']/n:.0f}")
over = p["p99_ms"] - lat
print(f"proxy p99 - {lat:.0f} ms = {over:.2f} ms (target <= 2 ms: {'PASS' if over <= 2 else 'FAIL'}); "
      f"direct p99 - {lat:.0f} ms = {d['p99_ms'] - lat:.2f} ms")
EOF
