#!/usr/bin/env bash
# Proxy overhead against a floor and a peer, in one run. Two upstream sims
# answer every request after a fixed 50 ms; CLIENTS (50) closed-loop
# clients, each on its own keep-alive connection, send chat completions
# for DURATION through each path in turn, ROUNDS times (the order rotates
# each round, so no path always runs first):
#
#   direct    straight to the fast sim;
#   floor     Go's httputil.ReverseProxy alone in front of the fast sim
#             (bench/proxy/floorproxy): what any Go proxy pays;
#   portkey   the Portkey gateway (npx @portkey-ai/gateway --headless),
#             headers x-portkey-provider: openai and x-portkey-custom-host
#             pointing at the fast sim;
#   triage    triage serve's proxy, model "triage": routed (fast,
#             speculate, escalate over both sims), recorded to bbolt;
#   triage-1  triage serve's proxy, model "fast": still routed and
#             recorded, but one upstream call per request like the
#             others (a speculation calls both sims and cancels one).
#   triage-h2c  a second triage serve, model "triage" as above, whose
#             tiers set h2c: true (HTTP/2 cleartext to the sims): a
#             cancelled speculation call resets a stream instead of
#             closing its HTTP/1.1 connection (H2C=0 skips it).
#
# CPU per request is the proxy process's user+system CPU over the
# client's requests (warm-up included): a speculation's two upstream
# calls count as the one request the client made.
#
# For each path it prints every round's latencies and CPU per request of
# the proxy process (and the sims, and the load generator), then the
# medians over rounds of: p99, p99 added over direct, and the ratios to
# the floor measured in the same round. Targets: triage's CPU per request
# at most 1.25x the floor's, its added p99 within 2 ms of the floor's.
#
#   bench/proxy/overhead.sh   # CLIENTS=50 DURATION=10s WARMUP=2s RAMP=1s ROUNDS=3 PORTKEY=1 H2C=1
#
# PORTKEY=0 skips the gateway (it needs npm's registry the first time).
# Everything but the gateway listens on 127.0.0.1:0; the gateway listens
# on a free port on all interfaces (it has no flag for a host). Client,
# proxies and sims share the machine's cores: note its load.
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
. "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RAMP=${RAMP:-1s}
ROUNDS=${ROUNDS:-3}
PORTKEY=${PORTKEY:-1}
H2C=${H2C:-1}
LATENCY_MS=50
FAST=synthetic/fast-small
STRONG=synthetic/strong-large

# Checked first: python3 sums up the rounds only at the end, after
# minutes of load, and the work folder goes with the exit.
for tool in go python3 curl getconf; do
	command -v "$tool" >/dev/null || { echo "overhead.sh needs $tool" >&2; exit 2; }
done
if [ "$PORTKEY" = 1 ]; then
	for tool in npx setsid pgrep; do
		command -v "$tool" >/dev/null || { echo "overhead.sh needs $tool for the Portkey gateway (PORTKEY=0 skips it)" >&2; exit 2; }
	done
fi

build
(cd "$ROOT" && go build -o "$WORK/floorproxy" ./bench/proxy/floorproxy)
quiet "$WORK/triage" synth --n 2000 --latency --confidence -o "$WORK/log.jsonl"
quiet "$WORK/triage" train --data "$WORK/log.jsonl" --fast $FAST --strong $STRONG -o "$WORK/router.json" >/dev/null

start fast-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $FAST --fixed-latency ${LATENCY_MS}ms
FAST_ADDR=$ADDR FAST_PID=$LAST_PID
start strong-sim "$WORK/triage" upstream-sim --data "$WORK/log.jsonl" --model $STRONG --fixed-latency ${LATENCY_MS}ms
STRONG_ADDR=$ADDR STRONG_PID=$LAST_PID
start floor "$WORK/floorproxy" -upstream "http://$FAST_ADDR"
FLOOR_ADDR=$ADDR FLOOR_PID=$LAST_PID
write_config "$WORK/proxy.yaml" "$FAST_ADDR" $FAST "$STRONG_ADDR" $STRONG
start serve "$WORK/triage" serve --model "$WORK/router.json" --db "$WORK/feedback.db" --config "$WORK/proxy.yaml" --addr 127.0.0.1:0
PROXY_ADDR=$ADDR SERVE_PID=$LAST_PID

PATHS="direct floor triage triage-1"
if [ "$H2C" = 1 ]; then
	sed 's|^\(    base_url: .*\)$|\1\n    h2c: true|' "$WORK/proxy.yaml" >"$WORK/proxy-h2c.yaml"
	start serve-h2c "$WORK/triage" serve --model "$WORK/router.json" --db "$WORK/feedback-h2c.db" --config "$WORK/proxy-h2c.yaml" --addr 127.0.0.1:0
	H2C_ADDR=$ADDR H2C_PID=$LAST_PID
	PATHS="$PATHS triage-h2c"
fi
if [ "$PORTKEY" = 1 ]; then
	PK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# setsid: the gateway runs under npm and sh; its own group is stopped
	# whole on exit.
	setsid npx -y @portkey-ai/gateway --port="$PK_PORT" --headless >"$WORK/portkey.err" 2>&1 &
	PK_PID=$!
	trap 'kill -TERM -- -$PK_PID 2>/dev/null || true; cleanup' EXIT
	for _ in $(seq 300); do
		if curl -s -o /dev/null "http://127.0.0.1:$PK_PORT/"; then break; fi
		sleep 0.2
	done
	curl -s -o /dev/null "http://127.0.0.1:$PK_PORT/" || { echo "portkey did not start:" >&2; cat "$WORK/portkey.err" >&2; exit 1; }
	PATHS="${PATHS/floor/floor portkey}"
fi

# cpu_of PID: user+system CPU seconds of a process so far; for the
# gateway, of its whole process group (node under npm and sh).
cpu_of() {
	local procs=$1
	if [ "$1" = "${PK_PID:-}" ]; then procs=$(pgrep -g "$1" | tr '\n' ' '); fi
	for q in $procs; do cat "/proc/$q/stat" 2>/dev/null || true; done |
		awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); t += $12 + $13} END {printf "%.3f", t / hz}'
}
# The proxy process of a path, and what a request to it looks like.
proc() { case $1 in direct) echo "" ;; floor) echo "$FLOOR_PID" ;; portkey) echo "$PK_PID" ;; triage-h2c) echo "$H2C_PID" ;; *) echo "$SERVE_PID" ;; esac; }
run_path() {
	local path=$1 out=$2 url model=$FAST extra=()
	case $path in
	direct) url="http://$FAST_ADDR/v1/chat/completions" ;;
	floor) url="http://$FLOOR_ADDR/v1/chat/completions" ;;
	portkey)
		url="http://127.0.0.1:$PK_PORT/v1/chat/completions"
		extra=(-H "x-portkey-provider: openai" -H "x-portkey-custom-host: http://$FAST_ADDR/v1" -H "Authorization: Bearer unused")
		;;
	triage) url="http://$PROXY_ADDR/v1/chat/completions" model=triage ;;
	triage-1) url="http://$PROXY_ADDR/v1/chat/completions" model=fast ;;
	triage-h2c) url="http://$H2C_ADDR/v1/chat/completions" model=triage ;;
	esac
	"$WORK/loadgen" -url "$url" -c "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" -ramp "$RAMP" \
		-data "$WORK/log.jsonl" -meta -model "$model" "${extra[@]}" -json >"$out"
}

echo "# $(nproc) cores; uptime before: $(uptime)"
echo "# $CLIENTS clients, $ROUNDS rounds of $DURATION per path after a $WARMUP warm-up (clients started over $RAMP); sims at a fixed ${LATENCY_MS} ms"
read -r -a order <<<"$PATHS"
n=${#order[@]}
for round in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		path=${order[$(((i + round - 1) % n))]}
		p=$(proc "$path")
		b_proxy=0
		[ -n "$p" ] && b_proxy=$(cpu_of "$p")
		b_sims="$(cpu_of "$FAST_PID") $(cpu_of "$STRONG_PID")"
		run_path "$path" "$WORK/$path.$round.json"
		a_proxy=0
		[ -n "$p" ] && a_proxy=$(cpu_of "$p")
		echo "$b_proxy $a_proxy $b_sims $(cpu_of "$FAST_PID") $(cpu_of "$STRONG_PID")" >"$WORK/$path.$round.cpu"
	done
done
curl -s "http://$PROXY_ADDR/metrics" >"$WORK/metrics.txt" || true
echo "# uptime after: $(uptime)"

python3 - "$WORK" "$ROUNDS" "$LATENCY_MS" $PATHS <<'EOF'
import json, statistics, sys
work, rounds, lat, paths = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def load(path, i):
    r = json.load(open(f"{work}/{path}.{i}.json"))
    c = [float(x) for x in open(f"{work}/{path}.{i}.cpu").read().split()]
    n = r["all_requests"]  # warm-up included, as in the CPU times
    r["cpu_proxy"] = 1e6 * (c[1] - c[0]) / n
    r["cpu_sims"] = 1e6 * (c[4] - c[2] + c[5] - c[3]) / n
    r["cpu_loadgen"] = 1e6 * r["cpu_seconds"] / n
    return r
res = {p: [load(p, i) for i in range(1, rounds + 1)] for p in paths}
for i in range(rounds):
    for p in paths:
        r = res[p][i]
        print(f"round {i+1} {p:10s} {r['requests']:6d} requests ({r['errors']} errors) {r['rps']:5.0f} req/s  p50 {r['p50_ms']:6.2f}  "
              f"p99 {r['p99_ms']:7.2f}  p99.9 {r['p999_ms']:7.2f} ms; CPU us/request: proxy {r['cpu_proxy']:5.0f}, sims {r['cpu_sims']:4.0f}, "
              f"load generator {r['cpu_loadgen']:3.0f}")
t = res["triage"][-1]
print("triage decisions (last round):", json.dumps(t.get("by_decision", {}), sort_keys=True),
      " answered by:", json.dumps(t.get("by_model", {}), sort_keys=True))
rec = [l.strip() for l in open(f"{work}/metrics.txt") if l.startswith("triage_proxy_recordings_total")]
print("recordings:", "; ".join(rec))
med = statistics.median
print()
print(f"medians of {rounds} rounds    p50 ms   p99 ms  added p99 ms  proxy CPU us/req  CPU / floor  added p99 - floor's (ms)")
for p in paths:
    rs = res[p]
    added = [rs[i]["p99_ms"] - res["direct"][i]["p99_ms"] for i in range(rounds)]
    line = f"{p:24s} {med(r['p50_ms'] for r in rs):7.2f} {med(r['p99_ms'] for r in rs):8.2f} {med(added):12.2f}"
    if p != "direct":
        ratio = [rs[i]["cpu_proxy"] / res["floor"][i]["cpu_proxy"] for i in range(rounds)]
        vs = [rs[i]["p99_ms"] - res["floor"][i]["p99_ms"] for i in range(rounds)]
        line += f" {med(r['cpu_proxy'] for r in rs):17.0f} {med(ratio):12.2f} {med(vs):14.2f}"
    print(line)
print()
for p in [q for q in ("triage", "triage-1", "triage-h2c") if q in paths]:
    rs = res[p]
    ratio = med(rs[i]["cpu_proxy"] / res["floor"][i]["cpu_proxy"] for i in range(rounds))
    vs = med(rs[i]["p99_ms"] - res["floor"][i]["p99_ms"] for i in range(rounds))
    print(f"{p}: CPU per request {ratio:.2f}x the floor's (target <= 1.25: {'PASS' if ratio <= 1.25 else 'FAIL'}); "
          f"added p99 {vs:+.2f} ms from the floor's (target within 2 ms: {'PASS' if vs <= 2 else 'FAIL'})")
# A round with failed requests measured something else than the path: its
# figures above are of the successful requests only. Say so and fail.
bad = [f"{p} round {i+1}: {res[p][i]['errors']} errors {json.dumps(res[p][i].get('status', {}), sort_keys=True)}"
       for p in paths for i in range(rounds) if res[p][i]["errors"]]
if bad:
    print("\nFAILED REQUESTS (the figures of these rounds do not describe a working path):\n  " + "\n  ".join(bad))
    sys.exit(1)
EOF
