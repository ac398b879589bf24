#!/usr/bin/env bash
# The feedback db's size under a sustained route load, with retention off
# and on. Each run starts triage serve on a new db and drives POST
# /v1/route with wrk (-t2 -c16, a ~2 KB prompt, a new generated id per
# request, so every route is a new record) for DURATION (default 60s),
# printing every SAMPLE seconds (default 10) the records routed, the file's
# size (ls), its allocated blocks (du; the file grows sparse in 128 MiB
# steps), and triage_db_used_bytes. The retention run sets
# retention.max_bytes to MAX_BYTES (default 64 MiB) and checks every
# second.
# Needs wrk (apt-get install -y wrk). Loopback only.
# Run: bash bench/serve/retention.sh
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-60}
SAMPLE=${SAMPLE:-10}
MAX_BYTES=${MAX_BYTES:-67108864}
PORT=${PORT:-18093}
need wrk "apt-get install -y wrk"
need python3 "apt-get install -y python3"
small_model "$WORK/router.json"
python3 -c 'import json; print(json.dumps({"prompt": ("Which organelle makes ATP in a eukaryotic cell, and why does it have its own DNA? " * 25)[:2000]}))' >"$WORK/body.json"
cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$WORK/body.json"):read("*a")
EOF

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {v = $2} END {printf "%.0f", v}'; }

run() {
  local name=$1 db="$WORK/$1.db"
  shift
  start_serve "$PORT" "$db" "$WORK/router.json" "$@"
  echo "== $name"
  printf '%8s %12s %14s %14s %14s\n' seconds records file_bytes allocated_bytes used_bytes
  wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/v1/route" >"$WORK/$name.wrk" &
  local w=$!
  for ((t = SAMPLE; t <= DURATION; t += SAMPLE)); do
    sleep "$SAMPLE"
    printf '%8d %12s %14s %14s %14s\n' "$t" "$(metric triage_decision_log_written_total)" \
      "$(stat -c %s "$db")" "$(du -B1 "$db" | cut -f1)" "$(metric triage_db_used_bytes)"
  done
  wait "$w"
  grep -E "Requests/sec" "$WORK/$name.wrk"
  echo "decision-log records dropped (queue full): $(metric triage_decision_log_dropped_total)"
  echo "retention removed: age $(metric 'triage_retention_removed_total{reason="age"}'), size $(metric 'triage_retention_removed_total{reason="size"}')"
  kill "$SERVE_PID"
  wait "$SERVE_PID" 2>/dev/null || true
}

run retention-off
printf 'retention:\n  max_bytes: %d\n  interval: 1s\n' "$MAX_BYTES" >"$WORK/retention.yaml"
run retention-on --config "$WORK/retention.yaml"
uptime
