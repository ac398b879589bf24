#!/usr/bin/env bash
# Issue 15's acceptance figures for N-tier routing: every RouterDC file
# (routerdc-7models/*.json, 7 models, 18,928 questions) pooled into one
# log without meta (the task is a feature only where the prompt shows
# it), then `triage eval --cv 5` by id hash with the 7 models as tiers.
# Prints, per variant: the routed answer's mean score at λ=0 against the
# best single model on the same requests (0-100), the oracle, and the
# AIQ of the N-tier router's λ sweep against the convex hull of single
# models and the best two-tier router built from two of the models.
#
#   bench/tiers/run.sh                    # work files in a temporary folder
#   WORK=/tmp/tiers bench/tiers/run.sh    # keep (and reuse) them
#   VARIANTS="routed per-head platt isotonic" bench/tiers/run.sh   # also the comparisons
#   PRICES=spread bench/tiers/run.sh      # the sensitivity price set below
#
# Prices (per request, any unit; here the parameter count in billions, the
# usual driver of a hosted model's price): the four Mistral-7B fine-tunes
# 7.24, Chinese-Mistral-7B (vocabulary widened to 64k) 7.50, the two
# Llama-3-8B models 8.03. Tiers are listed cheapest first; equal prices
# keep this order, which is also how ties between equal-priced tiers go.
#
# Needs ../shared/datasets (or $TRIAGE_DATASETS). Takes about 4 minutes of
# wall time per variant on 2 busy cores.
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DATASETS=${TRIAGE_DATASETS:-$ROOT/../shared/datasets}
DC="$DATASETS/routerdc-7models"
[ -d "$DC" ] || { echo "no RouterDC files at $DC; set TRIAGE_DATASETS to the shared datasets folder" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d)}
VARIANTS=${VARIANTS:-routed}
mkdir -p "$WORK"
BIN="$WORK/triage"
go build -o "$BIN" ./cmd/triage

LOG="$WORK/routerdc-pooled.jsonl"
if [ ! -s "$LOG" ]; then
	: >"$LOG.tmp"
	for f in "$DC"/*.json; do
		quiet "$BIN" import routerdc --file "$f" --no-meta >>"$LOG.tmp"
	done
	mv "$LOG.tmp" "$LOG"
fi
echo "== pooled log: $(wc -l <"$LOG") records from $(ls "$DC"/*.json | wc -l) files"

case ${PRICES:-params} in
params) TIERS="mistralai/Mistral-7B-v0.1=7.24,HuggingFaceH4/zephyr-7b-beta=7.24,cognitivecomputations/dolphin-2.6-mistral-7b=7.24,meta-math/MetaMath-Mistral-7B=7.24,itpossible/Chinese-Mistral-7B-v0.1=7.50,meta-llama/Meta-Llama-3-8B=8.03,cognitivecomputations/dolphin-2.9-llama3-8b=8.03" ;;
# A sensitivity check, not a market: prices spread tenfold and rising with
# each model's mean score on the log, as a provider pricing by quality
# would, so that quality costs money at every step.
spread) TIERS="itpossible/Chinese-Mistral-7B-v0.1=0.1,mistralai/Mistral-7B-v0.1=0.15,meta-llama/Meta-Llama-3-8B=0.2,cognitivecomputations/dolphin-2.6-mistral-7b=0.3,HuggingFaceH4/zephyr-7b-beta=0.4,meta-math/MetaMath-Mistral-7B=0.6,cognitivecomputations/dolphin-2.9-llama3-8b=1" ;;
*) echo "PRICES is params or spread" >&2; exit 2 ;;
esac
echo "== tiers and prices: $TIERS"

for v in $VARIANTS; do
	case $v in
	routed) extra="--vs-two-tier" ; what="the defaults: one L2 for all heads, chosen by out-of-fold routed quality; predicted score σ(logit); also Triage's two-tier router on the best pair" ;;
	per-head) extra="--tier-l2 per-head" ; what="each head's L2 by its own log loss" ;;
	platt) extra="--tier-calibration platt" ; what="each head's logit mapped by Platt scaling fitted on its out-of-fold logits" ;;
	isotonic) extra="--tier-calibration isotonic" ; what="each head's logit mapped by isotonic regression fitted on its out-of-fold logits" ;;
	*) echo "unknown variant $v" >&2; exit 2 ;;
	esac
	echo "== variant $v: $what"
	echo "   command: triage eval --cv 5 --data $LOG --tiers \"\$TIERS\" $extra"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	nice "$BIN" eval --cv 5 --data "$LOG" --tiers "$TIERS" $extra
	echo "   wall time: $(($(date +%s) - t0)) s"
done
