#!/usr/bin/env bash
# Times `triage curves` and `triage calibrate` on RouteLLM MMLU (14,042
# records, two models) and on the synthetic latency/confidence log
# (`triage synth --scenario speculation`), and runs the replay's Go
# benchmark. Prints wall times; asserts nothing.
#
#   bench/curves/run.sh            # work files in a temporary folder
#   WORK=/tmp/curves bench/curves/run.sh   # keep (and reuse) them
#
# Needs ../shared/datasets (or $TRIAGE_DATASETS) for MMLU; the rest runs
# without it. Latency and cost of MMLU are per-model defaults (RouteLLM's
# files have neither): Mixtral 400 ms / $0.0003, GPT-4 1800 ms / $0.006
# a call.
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DATASETS=${TRIAGE_DATASETS:-$ROOT/../shared/datasets}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
BIN="$WORK/triage"
FAST=mistralai/Mixtral-8x7B-Instruct-v0.1
STRONG=gpt-4-1106-preview

go build -o "$BIN" ./cmd/triage

# now prints seconds since the epoch with nanoseconds.
now() { date +%s.%N; }
elapsed() { echo "$1 $2" | awk '{printf "%.2f", $2 - $1}'; }

echo "== replay sweep (Go benchmark: 14,042 requests, per-request latencies, 101 thresholds x 10 accept values)"
go test -run '^$' -bench 'BenchmarkSweep' -benchtime 5x ./models/replay/ | grep -E '^Benchmark'

if [ -d "$DATASETS/routellm/mmlu" ]; then
	if [ ! -s "$WORK/mmlu.jsonl" ]; then
		"$BIN" import routellm --bench mmlu --dir "$DATASETS/routellm" -o "$WORK/mmlu.jsonl"
	fi
	if [ ! -s "$WORK/mmlu.model.json" ]; then
		echo "== training the MMLU router (not timed; fixed L2 to skip the search). It sees 80% of the"
		echo "   records the curves below replay, so their APGR is optimistic: these runs are for timing."
		"$BIN" train --data "$WORK/mmlu.jsonl" --fast "$FAST" --strong "$STRONG" --l2 1e-4 -o "$WORK/mmlu.model.json" >/dev/null
	fi
	DEF="--latency $FAST=400,$STRONG=1800 --cost $FAST=0.0003,$STRONG=0.006"
	for grid in 50 100; do
		echo "== triage curves on MMLU (14,042 records), --grid $grid ($((grid + 1)) thresholds, all pairs speculate_above <= escalate_above)"
		t0=$(now)
		# shellcheck disable=SC2086
		"$BIN" curves --model "$WORK/mmlu.model.json" --data "$WORK/mmlu.jsonl" $DEF --grid "$grid" -o "$WORK/mmlu-report-$grid" | tail -2
		echo "wall time: $(elapsed "$t0" "$(now)") s  (rows in curves.csv: $(($(wc -l <"$WORK/mmlu-report-$grid/curves.csv") - 1)))"
	done
	echo "== triage calibrate on MMLU: --target strong-share=0.3 (201 thresholds)"
	t0=$(now)
	# shellcheck disable=SC2086
	"$BIN" calibrate --model "$WORK/mmlu.model.json" --data "$WORK/mmlu.jsonl" $DEF --target strong-share=0.3 -o "$WORK/mmlu.calibrated.json" | sed -n '2,5p'
	echo "wall time: $(elapsed "$t0" "$(now)") s"
else
	echo "== $DATASETS/routellm/mmlu is absent: skipping the MMLU timings (set TRIAGE_DATASETS)"
fi

echo "== synthetic latency/confidence log: 20,000 records to train on, 20,000 held out"
if [ ! -s "$WORK/synth-test.jsonl" ]; then
	"$BIN" synth --scenario speculation --latency --confidence --n 20000 --seed 1 --id-prefix synth-train -o "$WORK/synth-train.jsonl"
	"$BIN" synth --scenario speculation --latency --confidence --n 20000 --seed 2 --id-prefix synth-test -o "$WORK/synth-test.jsonl"
fi
if [ ! -s "$WORK/synth.model.json" ]; then
	"$BIN" train --data "$WORK/synth-train.jsonl" --fast synthetic/fast-small --strong synthetic/strong-large --holdout 0 --l2 1e-4 -o "$WORK/synth.model.json" >/dev/null
fi
t0=$(now)
"$BIN" curves --model "$WORK/synth.model.json" --data "$WORK/synth-test.jsonl" -o "$WORK/synth-report" | tail -2
echo "wall time: $(elapsed "$t0" "$(now)") s  (rows in curves.csv: $(($(wc -l <"$WORK/synth-report/curves.csv") - 1)))"
if command -v python3 >/dev/null; then
	python3 - "$WORK/synth-report/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("confidence gate ECE on held-out data: %.4f (n=%d)" % (m["confidence_ece"], m["confidence_n"]))
for g in m["gains"]:
    fe, an = g["p95_fast_escalate"], g["p95_any"]
    if fe and an:
        print("PGR %.2f (quality %.4f): p95 %5.0f ms fast/escalate, %5.0f ms best with speculation (%s), %+.0f%%"
              % (g["pgr"], g["quality"], fe["latency_p95_ms"], an["latency_p95_ms"], an["kind"],
                 100 * (an["latency_p95_ms"] / fe["latency_p95_ms"] - 1)))
PY
fi
echo "reports: $WORK/*/index.html"
