#!/usr/bin/env bash
# What retrain does with a `gain` champion (docs/loop.md §3), on the work
# folder of an accept.sh run (base, export, traffic and test slices):
#   a gain starting router trained on the base, then three forced retrains
#   on the same base and export: keeping gain (--keep-scorer), the default
#   (a per-tier challenger), and with every traffic outcome (the reference);
#   prints each router's test-slice APGR from `triage score`.
# Run from the repository root:
#   SEED=2 WORK=/tmp/acc-2 bash bench/loop/accept.sh
#   bash bench/loop/gain_champion.sh /tmp/acc-2
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
D=${1:?usage: bench/loop/gain_champion.sh ACCEPT_WORK_DIR}
[ -f "$D/export.jsonl" ] || { echo "$D has no export.jsonl: run bench/loop/accept.sh with WORK=$D first"; exit 2; }
go build -o "$D/triage" ./cmd/triage
go build -o "$D/loopctl" ./bench/loop/loopctl
T=$D/triage L=$D/loopctl
FAST=mistralai/Mixtral-8x7B-Instruct-v0.1 STRONG=gpt-4-1106-preview
logged "$D/gstart.txt" "$T" train --data "$D/base.jsonl" --fast "$FAST" --strong "$STRONG" --holdout 0 --scorer gain -o "$D/gstart.json"
sed -n 1p "$D/gstart.txt"
retrain() { # OUT FLAGS...
  local out=$1; shift
  "$T" retrain --model "$D/gstart.json" --data "$D/base.jsonl" --feedback "$D/export.jsonl" --force -o "$D/$out.json" "$@" >"$D/$out.txt" 2>&1 || { cat "$D/$out.txt"; exit 1; }
  grep -h '^challenger scorer\|^gate' "$D/$out.txt" | sed "s/^/  $out: /"
}
retrain gkeep --keep-scorer
retrain gswitch
retrain gfull --feedback "$D/traffic.jsonl"
for r in gstart gkeep gswitch gfull; do "$T" score --model "$D/$r.json" --data "$D/test.jsonl" >"$D/score-$r.jsonl"; done
"$L" apgr --data "$D/test.jsonl" --fast "$FAST" --strong "$STRONG" "$D/score-gstart.jsonl" "$D/score-gkeep.jsonl" "$D/score-gswitch.jsonl" "$D/score-gfull.jsonl"
