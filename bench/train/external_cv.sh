#!/usr/bin/env bash
# Cross-validation with folds made outside Triage: split a JSONL log into K
# folds by line number (not Triage's id hash), train on K-1 with
# `triage train --holdout 0`, score the left-out fold with `triage score`,
# and compute APGR / CPT on the pooled scores with the anchors' metrics.py.
#   bash bench/train/external_cv.sh LOG.jsonl [K] [extra train flags...]
# e.g. bash bench/train/external_cv.sh mmlu.jsonl 5 --label gain --char-ngrams 3,5
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
LOG=$(realpath "${1:?usage: bash bench/train/external_cv.sh LOG.jsonl [K] [extra train flags...]}"); K=${2:-5}; shift $(( $# >= 2 ? 2 : 1 ))
FAST=${FAST:-mistralai/Mixtral-8x7B-Instruct-v0.1}
STRONG=${STRONG:-gpt-4-1106-preview}
DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
ANCHORS=$(cd "$DATA/.." && pwd)/anchors
# Checked first: metrics.py needs numpy only after all K trainings.
PY=""
for p in python3 /usr/bin/python3; do
  if $p -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "no python3 with numpy (apt-get install -y python3-numpy)"; exit 2; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
go build -o "$WORK/triage" ./cmd/triage
awk -v k="$K" -v dir="$WORK" '{ f = (NR-1) % k; print > (dir "/fold" f ".jsonl"); for (j = 0; j < k; j++) if (j != f) print > (dir "/train" j ".jsonl") }' "$LOG"
: > "$WORK/scores.jsonl"
for ((f = 0; f < K; f++)); do
  "$WORK/triage" train --data "$WORK/train$f.jsonl" --fast "$FAST" --strong "$STRONG" --holdout 0 "$@" -o "$WORK/router$f.json" 2>"$WORK/train$f.err" ||
    { echo "fold $f: triage train failed:"; cat "$WORK/train$f.err"; exit 1; }
  "$WORK/triage" score --model "$WORK/router$f.json" --data "$WORK/fold$f.jsonl" >> "$WORK/scores.jsonl"
done
"$PY" cmd/triage/testdata/parity.py "$ANCHORS" "$WORK/scores.jsonl" "$LOG" "$FAST" "$STRONG"
