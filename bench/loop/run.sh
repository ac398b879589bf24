#!/usr/bin/env bash
# The feedback loop end to end on RouteLLM MMLU, at full scale:
#   1. split MMLU: 20% base log, 80% traffic (SPLIT=id: by record, the
#      issue's setting; SPLIT=subject: by whole subjects, traffic that has
#      drifted away from what the router was trained on);
#   2. train the starting router on the base log;
#   3. start `triage serve --watch` with exploration (EPS, default 0.05)
#      and a speculate band (BAND, default 20% of traffic just below the
#      escalate threshold: MMLU has no confidences, so the router has no
#      band of its own, and a band is what yields paired outcomes);
#   4. replay the traffic through /v1/route with CONC clients, posting the
#      recorded outcome of each model the decision ran (both when it
#      speculates);
#   5. export the feedback through /admin/feedback/export, retrain with the
#      gate, move the new router over the served file and wait for --watch
#      to pick it up;
#   6. score the starting and the promoted router on the held-out period
#      (every traffic request routed after retrain's cut, with both tiers'
#      recorded outcomes).
# The drift gauges are printed after the replay.
# Run from the repository root:  bash bench/loop/run.sh
# Knobs (environment): SPLIT=id|subject EPS=0.05 BAND=0.2 CONC=16 SEED=1 WORK=dir
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
need jq "apt-get install -y jq"
need curl "apt-get install -y curl"
cd "$(dirname "$0")/../.."
DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
SPLIT=${SPLIT:-id}
EPS=${EPS:-0.05}
BAND=${BAND:-0.2}
CONC=${CONC:-16}
SEED=${SEED:-1}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
FAST=mistralai/Mixtral-8x7B-Instruct-v0.1
STRONG=gpt-4-1106-preview
TOKEN=loop-bench-$RANDOM$RANDOM
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
[ -d "$DATA/routellm" ] || { echo "no RouteLLM data in $DATA (set TRIAGE_DATASETS)"; exit 2; }

go build -o "$WORK/triage" ./cmd/triage
go build -o "$WORK/loopctl" ./bench/loop/loopctl
T="$WORK/triage"
L="$WORK/loopctl"
echo "work dir: $WORK (SPLIT=$SPLIT EPS=$EPS BAND=$BAND CONC=$CONC SEED=$SEED)"

echo "== 1. data =="
"$T" import routellm --bench mmlu --dir "$DATA/routellm" -o "$WORK/mmlu.jsonl"
"$L" split --data "$WORK/mmlu.jsonl" --by "$SPLIT" --base-share 0.2 --seed "$SEED" --base "$WORK/base.jsonl" --traffic "$WORK/traffic.jsonl"

echo "== 2. starting router =="
"$T" train --data "$WORK/base.jsonl" --fast "$FAST" --strong "$STRONG" --holdout 0 -o "$WORK/start.json"
cp "$WORK/start.json" "$WORK/serving.json"
SPEC=$("$L" band --model "$WORK/start.json" --data "$WORK/base.jsonl" --share "$BAND")
echo "speculate band: p_hard in ($SPEC, escalate_above]"

echo "== 3. serve =="
cat >"$WORK/serve.yaml" <<EOF
exploration:
  epsilon: $EPS
drift:
  window: 5000
  feedback_window: 2000
EOF
rm -f "$WORK/feedback.db"
TRIAGE_ADMIN_TOKEN=$TOKEN "$T" serve --model "$WORK/serving.json" --db "$WORK/feedback.db" --addr 127.0.0.1:0 \
  --config "$WORK/serve.yaml" --speculate-above "$SPEC" --watch 2>"$WORK/serve.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 100); do
  ADDR=$(sed -n 's/^triage serve: listening on //p' "$WORK/serve.log")
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "server did not start"; cat "$WORK/serve.log"; exit 1; }
URL=http://$ADDR
VERSION=$(curl -sS "$URL/v1/model" | jq -r .version)
echo "serving $VERSION on $URL"

echo "== 4. replay =="
"$L" replay --addr "$URL" --data "$WORK/traffic.jsonl" --fast "$FAST" --strong "$STRONG" --concurrency "$CONC"
echo "drift gauges after the replay (no expected shares: --speculate-above overrides the thresholds they were calibrated for):"
curl -sS "$URL/metrics" | grep -E '^triage_(drift|explored)' | sed 's/^/  /'

echo "== 5. export, retrain, pick-up =="
"$T" feedback export --from "$URL" --token "$TOKEN" -o "$WORK/export.jsonl"
set +e
"$T" retrain --model "$WORK/serving.json" --data "$WORK/base.jsonl" --feedback "$WORK/export.jsonl" -o "$WORK/new.json" | tee "$WORK/retrain.txt"
RC=${PIPESTATUS[0]}
set -e
case $RC in
  0) echo "retrain: promoted" ;;
  3) echo "retrain: refused (exit 3); the starting router keeps serving" ;;
  *) echo "retrain failed (exit $RC)"; exit 1 ;;
esac
SINCE=$(sed -n 's/^held out: .* newest since \([^ ]*\) .*/\1/p' "$WORK/retrain.txt")
if [ "$RC" = 0 ]; then
  NEW=$(jq -r .version "$WORK/new.json")
  # A rename in the watched directory, as a deploy would do it.
  mv "$WORK/new.json" "$WORK/serving.json"
  for _ in $(seq 100); do
    [ "$(curl -s "$URL/v1/model" | jq -r .version)" = "$NEW" ] && break
    sleep 0.1
  done
  GOT=$(curl -sS -XPOST "$URL/v1/route" -d '{"prompt":"What is the capital of France?"}' | jq -r .model_version)
  echo "--watch picked up $NEW; /v1/route now answers with model_version $GOT"
  [ "$GOT" = "$NEW" ] || { echo "reload did not happen"; exit 1; }
  cp "$WORK/serving.json" "$WORK/promoted.json"
fi

echo "== 6. figures on the held-out period (since $SINCE) =="
"$L" heldout --data "$WORK/traffic.jsonl" --export "$WORK/export.jsonl" --since "$SINCE" -o "$WORK/heldout.jsonl"
if [ "$RC" = 0 ]; then
  "$L" compare --a "$WORK/start.json" --b "$WORK/promoted.json" --data "$WORK/heldout.jsonl"
fi
