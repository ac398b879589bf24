#!/usr/bin/env bash
# Route throughput of `triage serve` against the plain net/http floor
# (../shared/bench/floor), both driven by wrk in the same run with the same
# ~2 KB prompt body: wrk -t2 -c32 -d10s on POST /v1/route, alternating
# floor / triage ROUNDS times after a warm-up. Prints requests/s, p50 and
# p99 of each run and the ratio triage/floor of the mean requests/s (the
# acceptance figure wants >= 0.85).
#
# The router is trained on RouteLLM MMLU (triage import routellm + triage
# train, a few minutes); set MODEL=path to reuse one. The decision log is on
# (every route is written to the bbolt db), as in production.
#
# Needs wrk (apt-get install -y wrk) and python3 (to JSON-encode the body).
# Loopback only. Run from anywhere:
#   bash bench/serve/throughput.sh            # ROUNDS=2 DURATION=10s
. "$(dirname "$0")/../errexit.sh"  # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
FLOOR_SRC=${FLOOR_SRC:-$(cd .. && pwd)/shared/bench/floor}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need wrk "apt-get install -y wrk"
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl"
# Free loopback ports unless given: a fixed port another run (or any
# server) holds would make the floor fail to bind, and the floor's runs
# would measure whatever answers there.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FLOOR_PORT=${FLOOR_PORT:-$(free_port)}
TRIAGE_PORT=${TRIAGE_PORT:-$(free_port)}

go build -o "$WORK/triage" ./cmd/triage
(cd "$FLOOR_SRC" && go build -o "$WORK/floor" .)

MODEL=${MODEL:-}
if [ -z "$MODEL" ]; then
  echo "training a router on RouteLLM MMLU (set MODEL=path to skip) ..."
  quiet "$WORK/triage" import routellm --bench mmlu --dir "$DATA/routellm" -o "$WORK/mmlu.jsonl"
  logged "$WORK/train.log" "$WORK/triage" train --data "$WORK/mmlu.jsonl" --fast mistralai/Mixtral-8x7B-Instruct-v0.1 \
    --strong gpt-4-1106-preview -o "$WORK/router.json"
  grep -E "^triage train" "$WORK/train.log" || true
  MODEL="$WORK/router.json"
fi

# A ~2 KB prompt: consecutive MMLU high-school biology questions.
python3 - "$DATA/routellm/mmlu/mmlu_high_school_biology.csv" "$WORK/body.json" <<'EOF'
import csv, json, sys
ps, n = [], 0
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f):
        p = row.get("prompt") or next(iter(row.values()))
        ps.append(p); n += len(p)
        if n > 2000: break
body = json.dumps({"prompt": "\n\n".join(ps)[:2000]})
open(sys.argv[2], "w").write(body)
print(f"body: {len(body)} bytes")
EOF
cat > "$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.body = f:read("*a")
f:close()
EOF
export BODY_FILE="$WORK/body.json"

"$WORK/floor" -addr "127.0.0.1:$FLOOR_PORT" 2>"$WORK/floor.log" &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
"$WORK/triage" serve --model "$MODEL" --db "$WORK/feedback.db" --addr "127.0.0.1:$TRIAGE_PORT" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
  kill -0 "${PIDS[1]}" 2>/dev/null || break
  sleep 0.1
done
grep -q "listening on" "$WORK/serve.log" || { echo "triage serve did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
curl -sSf -X POST --data-binary @"$BODY_FILE" "http://127.0.0.1:$TRIAGE_PORT/v1/route" >/dev/null
# The floor prints nothing when it listens: wait until it answers, and
# make sure the process answering is ours (one that failed to bind exits).
for _ in $(seq 50); do
  kill -0 "$FLOOR_PID" 2>/dev/null || { echo "the floor exited:"; cat "$WORK/floor.log"; exit 1; }
  curl -sf -X POST --data-binary @"$BODY_FILE" "http://127.0.0.1:$FLOOR_PORT/v1/route" >/dev/null && break
  sleep 0.1
done
curl -sSf -X POST --data-binary @"$BODY_FILE" "http://127.0.0.1:$FLOOR_PORT/v1/route" >/dev/null
sleep 0.2
kill -0 "$FLOOR_PID" 2>/dev/null || { echo "the floor exited:"; cat "$WORK/floor.log"; exit 1; }

# run NAME PORT: one wrk run; appends "NAME rps p50 p99 non2xx
# socket_errors" to results.
run() {
  local out
  out=$(wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$2/v1/route")
  local rps p50 p99 bad sock
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  # "Socket errors: connect 0, read 0, write 0, timeout 0": their sum.
  sock=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
  echo "$1 ${rps} ${p50} ${p99} ${bad:-0} ${sock:-0}" | tee -a "$WORK/results"
}

echo "warm-up ..."
DURATION=2s run floor "$FLOOR_PORT" >/dev/null
DURATION=2s run triage "$TRIAGE_PORT" >/dev/null
: >"$WORK/results"
echo "target  req/s  p50  p99  non-2xx  socket-errors   (wrk -t2 -c32 -d$DURATION, $(wc -c <"$BODY_FILE") byte body)"
for _ in $(seq "$ROUNDS"); do
  run floor "$FLOOR_PORT"
  run triage "$TRIAGE_PORT"
done
awk '{s[$1]+=$2; n[$1]++} END {f=s["floor"]/n["floor"]; t=s["triage"]/n["triage"];
  printf "mean req/s: floor %.0f, triage %.0f; ratio triage/floor %.3f\n", f, t, t/f}' "$WORK/results"
curl -s "http://127.0.0.1:$TRIAGE_PORT/metrics" | grep -E "^triage_decision_log_(written|dropped)_total" || true
# serve runs with GOGC 400 unless GOGC is set; its peak memory is the cost.
echo "peak RSS: triage $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/${PIDS[1]}/status"), floor $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/${PIDS[0]}/status")"
# wrk counts an error answer as a request: a run with non-2xx answers or
# socket errors did not measure routing, so the ratio above is not one.
if awk '$5 > 0 || $6 > 0 {bad = 1} END {exit !bad}' "$WORK/results"; then
  echo "FAILED: runs with non-2xx answers or socket errors (columns 5 and 6 above); the ratio does not measure routing"
  exit 1
fi
