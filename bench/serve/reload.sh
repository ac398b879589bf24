#!/usr/bin/env bash
# Hot reload under load: while wrk drives POST /v1/route (wrk -t2 -c32),
# reload the model 50 times through POST /admin/reload, alternating two
# valid artifacts (written atomically over the --model file), with one
# corrupt file in the middle that must be refused (422) while the old
# version keeps serving. Prints wrk's non-2xx count (must be 0), the reload
# results and the version served after the corrupt attempt.
# Needs wrk (apt-get install -y wrk). Loopback only.
# Run: bash bench/serve/reload.sh
source "$(dirname "$0")/common.sh"
need wrk "apt-get install -y wrk"
PORT=${PORT:-18093}
RELOADS=${RELOADS:-50}
small_model "$WORK/a.json"
# A second valid artifact: same data, another L2, so another version.
quiet "$T" train --data testdata/sample/log.jsonl --fast synthetic/fast-small \
  --strong synthetic/strong-large --l2 0.1 -o "$WORK/b.json" >/dev/null
cp "$WORK/a.json" "$WORK/model.json"
start_serve "$PORT" "$WORK/feedback.db" "$WORK/model.json"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt":"A train leaves at 3 pm at 60 km/h; another at 4 pm at 80 km/h. When does the second catch up?"}'
LUA
wrk -t2 -c32 -d20s -s "$WORK/post.lua" "http://127.0.0.1:$PORT/v1/route" >"$WORK/wrk.txt" &
WRK=$!
sleep 1
ok=0; refused=0; other=0
for i in $(seq "$RELOADS"); do
  if [ "$i" -eq $((RELOADS / 2)) ]; then
    before=$(curl -sS "http://127.0.0.1:$PORT/v1/model" | sed 's/.*"version":"\([^"]*\)".*/\1/')
    head -c 300 "$WORK/a.json" >"$WORK/tmp.json" && mv "$WORK/tmp.json" "$WORK/model.json"
    code=$(admin -o "$WORK/reload.json" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/admin/reload")
    after=$(curl -sS "http://127.0.0.1:$PORT/v1/model" | sed 's/.*"version":"\([^"]*\)".*/\1/')
    echo "corrupt artifact: reload answered $code: $(cat "$WORK/reload.json")"
    echo "version before $before, after $after ($([ "$before" = "$after" ] && echo unchanged || echo CHANGED))"
    [ "$code" = 422 ] && [ "$before" = "$after" ] && refused=$((refused + 1))
    continue
  fi
  src="$WORK/a.json"; [ $((i % 2)) -eq 0 ] && src="$WORK/b.json"
  cp "$src" "$WORK/tmp.json" && mv "$WORK/tmp.json" "$WORK/model.json"
  code=$(admin -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/admin/reload")
  if [ "$code" = 200 ]; then ok=$((ok + 1)); else other=$((other + 1)); fi
  sleep 0.3
done
wait "$WRK"
non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")
errors=$(awk '/Socket errors/ {print}' "$WORK/wrk.txt")
grep -E "Requests/sec|requests in" "$WORK/wrk.txt"
echo "reloads: $ok ok, $refused corrupt refused, $other failed"
echo "wrk non-2xx responses: ${non2xx:-0} ${errors:+($errors)}"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^triage_model_reloads_total'
[ "${non2xx:-0}" = 0 ] && [ -z "$errors" ] && [ "$refused" = 1 ] && [ "$other" = 0 ]
