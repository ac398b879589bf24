#!/usr/bin/env bash
# Does the proxy do what `triage curves` predicts?
#
# 1. RouteLLM GSM8K (both models' responses): a router trained on it,
#    fast/escalate-only thresholds taken from its curves.csv (strong
#    shares near 0.2, 0.5 and 0.8); every record replayed through
#    `triage serve` + two `triage upstream-sim --reply placeholder`, each
#    answer naming the recorded score of the model that gave it.
# 2. A synthetic log with latency and confidence (`triage synth --n 2000
#    --latency --confidence`): speculating thresholds from its curves.csv,
#    the sims waiting the recorded latencies scaled by SCALE (0.1).
#
# Each run prints predicted and observed strong share and quality and
# fails past 2 points. Logs are deduplicated by prompt first (a sim
# answers a prompt with its first record). Loopback only.
#
#   bench/proxy/predict.sh    # DATASETS=../shared/datasets by default
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
. "$(dirname "$0")/lib.sh"

DATASETS=${DATASETS:-${TRIAGE_DATASETS:-$ROOT/../shared/datasets}}
SCALE=${SCALE:-0.1}
CLIENTS=${CLIENTS:-32}
status=0

build
T=$WORK/triage

# replay LOG ROUTER CURVES FAST STRONG KIND SHARE SIMFLAGS... : one
# operating point through a fresh serve.
replay() {
	local log=$1 router=$2 curves=$3 fast=$4 strong=$5 kind=$6 share=$7 scale=$8
	shift 8
	local th
	th=$("$WORK/predict" pick -curves "$curves" -kind "$kind" -share "$share" 2>"$WORK/pick.err") ||
		{ echo "no $kind operating point near strong share $share:" >&2; cat "$WORK/pick.err" >&2; exit 1; }
	read -r spec esc acc <<<"$th"
	start serve "$T" serve --model "$router" --db "$WORK/fb-$kind-$share.db" --config "$WORK/proxy.yaml" \
		--addr 127.0.0.1:0 --speculate-above "$spec" --escalate-above "$esc" --accept-confidence "$acc"
	local pid=$LAST_PID
	echo "\$ predict run -url http://$ADDR/v1/chat/completions -data $(basename "$log") -thresholds \"$th\" ..."
	"$WORK/predict" run -url "http://$ADDR/v1/chat/completions" -data "$log" -curves "$curves" \
		-thresholds "$th" -strong "$strong" -c "$CLIENTS" -latency-scale "$scale" || status=1
	stop "$pid"
}

# sims LOG FAST STRONG FLAGS...: start both sims and write the proxy config.
sims() {
	local log=$1 fast=$2 strong=$3
	shift 3
	start fast-sim "$T" upstream-sim --data "$log" --model "$fast" --reply placeholder "$@"
	local fa=$ADDR fp=$LAST_PID
	start strong-sim "$T" upstream-sim --data "$log" --model "$strong" --reply placeholder "$@"
	local sa=$ADDR
	SIM_PIDS="$fp $LAST_PID"
	write_config "$WORK/proxy.yaml" "$fa" "$fast" "$sa" "$strong"
}

echo "== RouteLLM GSM8K, fast/escalate thresholds"
if [ -d "$DATASETS/routellm" ]; then
	F=mistralai/Mixtral-8x7B-Instruct-v0.1
	S=gpt-4-1106-preview
	quiet "$T" import routellm --bench gsm8k --dir "$DATASETS/routellm" -o "$WORK/gsm8k-all.jsonl"
	"$WORK/predict" dedupe -data "$WORK/gsm8k-all.jsonl" -o "$WORK/gsm8k.jsonl"
	quiet "$T" train --data "$WORK/gsm8k.jsonl" --fast $F --strong $S -o "$WORK/gsm8k-router.json" >/dev/null
	# The log has no latency or cost; curves needs defaults, which do not
	# move quality or strong share without speculation.
	quiet "$T" curves --model "$WORK/gsm8k-router.json" --data "$WORK/gsm8k.jsonl" --latency $F=300,$S=900 \
		--cost $F=0.0006,$S=0.01 --resamples 100 -o "$WORK/curves-gsm8k" >/dev/null
	# No recorded latency: the sims answer after a fixed 5 ms.
	sims "$WORK/gsm8k.jsonl" $F $S --fixed-latency 5ms
	for share in 0.2 0.5 0.8; do
		replay "$WORK/gsm8k.jsonl" "$WORK/gsm8k-router.json" "$WORK/curves-gsm8k/curves.csv" $F $S fast-escalate $share 1
	done
	for p in $SIM_PIDS; do stop "$p"; done
else
	echo "skipped: $DATASETS/routellm is absent (set DATASETS)"
fi

echo "== synthetic log with latency and confidence, speculate band"
F=synthetic/fast-small
S=synthetic/strong-large
quiet "$T" synth --n 2000 --latency --confidence -o "$WORK/synth-all.jsonl"
"$WORK/predict" dedupe -data "$WORK/synth-all.jsonl" -o "$WORK/synth.jsonl"
quiet "$T" train --data "$WORK/synth.jsonl" --fast $F --strong $S -o "$WORK/synth-router.json" >/dev/null
quiet "$T" curves --model "$WORK/synth-router.json" --data "$WORK/synth.jsonl" --resamples 100 -o "$WORK/curves-synth" >/dev/null
sims "$WORK/synth.jsonl" $F $S --latency-scale "$SCALE"
replay "$WORK/synth.jsonl" "$WORK/synth-router.json" "$WORK/curves-synth/curves.csv" $F $S speculate 0.15 "$SCALE"
replay "$WORK/synth.jsonl" "$WORK/synth-router.json" "$WORK/curves-synth/curves.csv" $F $S combined 0.4 "$SCALE"
for p in $SIM_PIDS; do stop "$p"; done
exit $status
