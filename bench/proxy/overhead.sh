#!/usr/bin/env bash
# Proxy overhead. Two upstream sims answer every request after a fixed
# 50 ms; CLIENTS (200) closed-loop clients send chat completions for
# DURATION, first straight to the fast sim, then through `triage serve`
# with the proxy (routed: fast, speculate and escalate, recorded to the
# bbolt feedback db as in production), ROUNDS times. Prints each round's
# latencies and every process's CPU per request, then the medians of the
# p99s and the proxy's p99 minus the 50 ms upstream time (target: at most
# 2 ms).
#
#   bench/proxy/overhead.sh   # CLIENTS=200 DURATION=15s WARMUP=3s RAMP=1s ROUNDS=3
#
# RAMP spreads the clients' start over that time. Clients that start
# together stay in step behind a fixed 50 ms upstream and arrive in
# bursts of all 200 for the whole run; RAMP=0 measures that case.
#
# Everything listens on 127.0.0.1:0. The figure depends on the machine
# being otherwise idle: client, proxy and sims share its cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-200}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
RAMP=${RAMP:-1s}
ROUNDS=${ROUNDS:-3}
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

echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $CLIENTS clients, $ROUNDS rounds of $DURATION after a $WARMUP warm-up (clients started over $RAMP); sims at a fixed ${LATENCY_MS} ms"
# Each round loads the fast sim directly, then the proxy, so both see the
# same machine within a minute of each other.
for round in $(seq "$ROUNDS"); do
	before="$(cpu $FAST_PID)"
	"$WORK/loadgen" -url "http://$FAST_ADDR/v1/chat/completions" -c "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" -ramp "$RAMP" \
		-data "$WORK/log.jsonl" -model $FAST -json >"$WORK/direct$round.json"
	echo "$before $(cpu $FAST_PID)" >"$WORK/direct$round.cpu"
	before="$(cpu $SERVE_PID) $(cpu $FAST_PID) $(cpu $STRONG_PID)"
	"$WORK/loadgen" -url "http://$PROXY_ADDR/v1/chat/completions" -c "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" -ramp "$RAMP" \
		-data "$WORK/log.jsonl" -json >"$WORK/proxy$round.json"
	echo "$before $(cpu $SERVE_PID) $(cpu $FAST_PID) $(cpu $STRONG_PID)" >"$WORK/proxy$round.cpu"
done
curl -s "http://$PROXY_ADDR/metrics" >"$WORK/metrics.txt" || true
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK" "$ROUNDS" "$LATENCY_MS" <<'EOF'
import json, statistics, sys
work, rounds, lat = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def load(name, i):
    r = json.load(open(f"{work}/{name}{i}.json"))
    c = [float(x) for x in open(f"{work}/{name}{i}.cpu").read().split()]
    n = r["all_requests"]  # warm-up included, as in the CPU times
    if name == "direct":
        r["cpu"] = {"sim": 1e6 * (c[1] - c[0]) / n}
    else:
        r["cpu"] = {"serve+proxy": 1e6 * (c[3] - c[0]) / n, "sims": 1e6 * (c[4] - c[1] + c[5] - c[2]) / n}
    r["cpu"]["load generator"] = 1e6 * r["cpu_seconds"] / n
    return r
d = [load("direct", i) for i in range(1, rounds + 1)]
p = [load("proxy", i) for i in range(1, rounds + 1)]
for i in range(rounds):
    for name, r in (("direct to the fast sim", d[i]), ("through the proxy", p[i])):
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items())
        print(f"round {i+1} {name:22s} {r['requests']:6d} requests ({r['errors']} errors) {r['rps']:5.0f} req/s  "
              f"p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  p99 {r['p99_ms']:6.2f}  p99.9 {r['p999_ms']:6.2f} ms; CPU us/request: {cpu}")
last = p[-1]
print("proxy decisions (last round):", json.dumps(last.get("by_decision", {}), sort_keys=True),
      " p99 ms by decision:", json.dumps(last.get("p99_ms_by_decision", {}), sort_keys=True),
      " answered by:", json.dumps(last.get("by_model", {}), sort_keys=True))
rec = [l for l in open(f"{work}/metrics.txt") if l.startswith("triage_proxy_recordings_total")]
print("recordings:", "; ".join(l.strip() for l in rec))
for name, rs in (("direct", d), ("proxied", p)):
    print(f"median CPU per {name} request (us): " +
          ", ".join(f"{k} {statistics.median(r['cpu'][k] for r in rs):.0f}" for k in rs[0]["cpu"]))
dp, pp = statistics.median(r["p99_ms"] for r in d), statistics.median(r["p99_ms"] for r in p)
over = pp - lat
print(f"median of {rounds} rounds: direct p99 {dp:.2f} ms, proxy p99 {pp:.2f} ms; the proxy adds {pp - dp:.2f} ms at p99")
print(f"proxy p99 - {lat:.0f} ms = {over:.2f} ms (target <= 2 ms: {'PASS' if over <= 2 else 'FAIL'}); "
      f"direct p99 - {lat:.0f} ms = {dp - lat:.2f} ms")
EOF
