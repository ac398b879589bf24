#!/usr/bin/env bash
# Crash safety of acknowledged feedback: ROUNDS (default 10) times, start
# triage serve on one db, run 64 clients posting feedback (half carrying
# their prompt, half routed first), SIGKILL the server after a random
# 0.5-2 s, and keep every (request id, model, score) that got a 2xx. Then
# restart on the same db, export via /admin/feedback/export and check that
# every acknowledged feedback is there with its score. Prints the lost
# count (must be 0); exits 1 if any is lost.
# Loopback only. Run: bash bench/serve/crash.sh
source "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-10}
PORT=${PORT:-18092}
small_model "$WORK/router.json"
DB="$WORK/feedback.db"
: >"$WORK/acked.tsv"
for r in $(seq "$ROUNDS"); do
  start_serve "$PORT" "$DB" "$WORK/router.json" --config "$ANY_MODEL"
  "$WORK/feedbackload" -url "http://127.0.0.1:$PORT" -clients 64 -duration 5s -round "$r" -acked "$WORK/acked.tsv" &
  load=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { printf "%.2f", 0.5 + 1.5 * s / 32767 }')"
  kill -9 "$SERVE_PID"
  wait "$SERVE_PID" 2>/dev/null || true
  wait "$load"
done
start_serve "$PORT" "$DB" "$WORK/router.json" --config "$ANY_MODEL"
admin "http://127.0.0.1:$PORT/admin/feedback/export" -o "$WORK/export.jsonl"
"$WORK/feedbackload" -verify "$WORK/acked.tsv" -export "$WORK/export.jsonl"
