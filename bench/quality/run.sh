#!/usr/bin/env bash
# The quality suite: Triage against the scikit-learn baseline on every public
# set and tier pair we can build, with 5-fold cross-validation on the same
# folds, judged on the mean and the worst set (issue 10; table in
# docs/quality.md).
#
# Sets (printed with how each was built):
#   - RouteLLM MMLU, GSM8K, MT-Bench: Mixtral-8x7B (fast) vs GPT-4-1106 (strong);
#   - Arena-Hard v1 (scores_wide.csv, grades / 10): four pairs, from a wide gap
#     to a close one;
#   - every routerdc-7models file, three pairs each, picked from the file's
#     mean scores: weakest→strongest (lo-hi), median→strongest (mid-hi),
#     weakest→median (lo-mid); the fast tier is the one with the lower mean.
# Folds: datasets.Fold(id, seed 1, 5), the id hash of `triage eval --cv`,
# written by bench/quality/folds (train_k / test_k files and folds.tsv);
# FOLD_SEED picks another split of the same logs.
# Triage, as a user ships it: for each fold k,
#   triage train --data train_k.jsonl --fast F --strong S -o router_k.json   (defaults)
#   triage score --model router_k.json --data test_k.jsonl
# then APGR of the pooled p_hard with ../shared/anchors/metrics.py.
# Baseline: the anchors' TF-IDF + logistic regression on strong-wins,
# refitted on the same folds (bench/quality/baseline.py).
#
# Run from anywhere (needs go, and /usr/bin/python3 with numpy and
# scikit-learn: apt-get install -y python3-sklearn):
#   bash bench/quality/run.sh                          # every set, defaults
#   SETS='^routellm/' bash bench/quality/run.sh        # sets whose name matches an ERE
#   TRAIN_FLAGS='--scorer label' bash bench/quality/run.sh   # a variant
# Environment:
#   WORK         work folder (default out/quality). The logs are imported
#                and split into folds afresh on every run; the baseline's
#                out-of-fold scores are cached there (keyed by the log, folds,
#                tiers, baseline.py and the Python, scikit-learn, scipy and
#                numpy versions), so a rerun only retrains Triage.
#                Delete WORK to start clean; run one suite per WORK at a time.
#   SETS         extended regex on set names (default: all). Names are
#                routellm/mmlu, routellm/gsm8k, routellm/mt-bench, arena/...,
#                dc/<file>/lo-hi, dc/<file>/mid-hi, dc/<file>/lo-mid.
#   TRAIN_FLAGS  extra flags for every `triage train` (default: none).
#   FOLD_SEED    the folds' seed (default 1, the suite's split and `triage
#                eval --cv`'s). Another seed is another split of the same
#                logs: how much a mean moves from split to split. Use one
#                WORK per seed (the Triage folders are not keyed by it).
#   RESULTS      JSON-lines results file (default WORK/results/<UTC time>.jsonl).
#   TRIAGE_DATASETS, ANCHORS   the shared data and anchors folders (default
#                ../shared/datasets and ../shared/anchors beside the repository).
#
# Comparing a variant with the defaults, on the same folds:
#   bash bench/quality/run.sh                                  # prints "Results: A.jsonl"
#   TRAIN_FLAGS='--holdout 0' bash bench/quality/run.sh        # prints "Results: B.jsonl"
#   /usr/bin/python3 bench/quality/compare.py A.jsonl B.jsonl  # per-set Δ, mean, worst
# The folds depend only on the ids, and the baseline is cached, so both runs
# see identical splits and baseline scores. For a change to the code rather
# than a flag, run the suite on each commit with the same WORK.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
ROOT=$PWD
WALL0=$EPOCHREALTIME

DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
[ -d "$DATA" ] || { echo "no shared datasets at $DATA; set TRIAGE_DATASETS to the folder" >&2; exit 2; }
DATA=$(cd "$DATA" && pwd)
ANCHORS=${ANCHORS:-$(cd "$DATA/.." && pwd)/anchors}
[ -f "$ANCHORS/metrics.py" ] || { echo "no metrics.py in $ANCHORS; set ANCHORS to the anchors folder" >&2; exit 2; }
export TRIAGE_DATASETS=$DATA ANCHORS
WORK=${WORK:-$ROOT/out/quality}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
SETS=${SETS:-.}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
FOLD_SEED=${FOLD_SEED:-1}
[[ $FOLD_SEED =~ ^[0-9]+$ ]] || { echo "FOLD_SEED=$FOLD_SEED: want a non-negative integer" >&2; exit 2; }
read -ra TF <<<"$TRAIN_FLAGS"
RESULTS=$(realpath -m "${RESULTS:-$WORK/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}")

PY=""
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import numpy, sklearn' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "no python3 with numpy and scikit-learn (apt-get install -y python3-sklearn)" >&2; exit 2; }

echo "# quality suite: $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "# WORK=$WORK SETS=$SETS TRAIN_FLAGS=${TRAIN_FLAGS:-(defaults)} FOLD_SEED=$FOLD_SEED"
mkdir -p "$WORK/bin" "$WORK/logs" "$WORK/folds" "$WORK/triage"
go build -o "$WORK/bin/triage" ./cmd/triage
go build -o "$WORK/bin/folds" ./bench/quality/folds
T=$WORK/bin/triage
MANIFEST=$WORK/manifest.$$.tsv
: >"$MANIFEST"
trap 'rm -f "$MANIFEST"' EXIT

want() { grep -Eq -- "$SETS" <<<"$1"; }

# prepare LOG IMPORT-ARGS...: imports WORK/logs/LOG.jsonl and splits it
# into WORK/folds/LOG, on every run. Both take under a second per log, and a
# log or folds kept from an earlier run would go stale without notice when
# the data, the importer or datasets.Fold change (the baseline's cache is
# keyed by their contents, so rebuilding them costs no refit).
prepare() {
  local log=$1 out=$WORK/logs/$1.jsonl
  shift
  # Into a temporary file first: a failed import stops the suite and leaves
  # no partial log behind.
  "$T" import "$@" -o "$out.tmp" 2>&1 | sed 's/^/  /'
  mv -f "$out.tmp" "$out"
  "$WORK/bin/folds" -log "$out" -dir "$WORK/folds/$log" -seed "$FOLD_SEED" 2>&1 | sed 's/^/  /'
}

# mean LOG MODEL: the model's mean score over the log (from means.tsv).
mean() { awk -F'\t' -v m="$2" '$1 == m { printf "%.3f", $3 }' "$WORK/folds/$1/means.tsv"; }

# run_set NAME LOG FAST STRONG BUILT: Triage's five folds, then a manifest line.
run_set() {
  local name=$1 log=$2 fast=$3 strong=$4 built=$5
  local d=$WORK/triage/${name//\//_} f=$WORK/folds/$2 status=ok k
  rm -rf "$d" && mkdir -p "$d"
  local t0=$EPOCHREALTIME
  for k in 0 1 2 3 4; do
    if ! "$T" train --data "$f/train_$k.jsonl" --fast "$fast" --strong "$strong" "${TF[@]}" -o "$d/router_$k.json" 2>>"$d/train.log" >>"$d/train.log"; then
      status="triage train failed on fold $k: $(tail -1 "$d/train.log")"; break
    fi
    if ! "$T" score --model "$d/router_$k.json" --data "$f/test_$k.jsonl" >>"$d/scores.jsonl" 2>>"$d/score.log"; then
      status="triage score failed on fold $k: $(tail -1 "$d/score.log")"; break
    fi
  done
  local secs
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  printf '%s: triage %s s%s\n' "$name" "$secs" "$([ "$status" = ok ] || echo "; $status")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$WORK/logs/$log.jsonl" "$f/folds.tsv" "$fast" "$strong" \
    "$d/scores.jsonl" "$secs" "${status//$'\t'/ }" "$built" >>"$MANIFEST"
}

# pair LOG NAME FAST STRONG HOW: one set on a prepared log.
pair() {
  want "$2" || return 0
  run_set "$2" "$1" "$3" "$4" "$5: $3 ($(mean "$1" "$3")) → $4 ($(mean "$1" "$4"))"
}

# RouteLLM: the published pair.
MIXTRAL=mistralai/Mixtral-8x7B-Instruct-v0.1
GPT4=gpt-4-1106-preview
for b in mmlu gsm8k mt-bench; do
  want "routellm/$b" || continue
  prepare "routellm-$b" routellm --bench "$b" --dir "$DATA/routellm"
  pair "routellm-$b" "routellm/$b" "$MIXTRAL" "$GPT4" "triage import routellm --bench $b"
done

# Arena-Hard v1: a weak open model and GPT-3.5 against GPT-4, an open model
# against GPT-3.5, and two Claude models close together (means over the
# whole file: Mistral-7B 0.357, Llama-2-70b 0.435, claude-instant-1 0.649,
# claude-2 0.672, gpt-3.5-turbo 0.676, gpt-4-0314 0.855).
ARENA_PAIRS=(
  "arena/mistral7b-gpt4 mistralai/Mistral-7B-Instruct-v0.1 gpt-4-0314"
  "arena/gpt35-gpt4 gpt-3.5-turbo gpt-4-0314"
  "arena/llama2-70b-gpt35 Llama-2-70b-chat gpt-3.5-turbo"
  "arena/claude-instant-claude2 claude-instant-1 claude-2"
)
if want "$(printf '%s\n' "${ARENA_PAIRS[@]}" | cut -d' ' -f1)"; then
  prepare arena wide-csv --file "$DATA/arena-bench-v1/scores_wide.csv" --prompt-col prompt --id-col question_id --score-scale 10
  for p in "${ARENA_PAIRS[@]}"; do
    read -r name fast strong <<<"$p"
    pair arena "$name" "$fast" "$strong" "triage import wide-csv --file scores_wide.csv --prompt-col prompt --id-col question_id --score-scale 10"
  done
fi

# RouterDC: three pairs per file from its models ranked by mean score (ties
# by name): weakest, median and strongest.
for file in "$DATA"/routerdc-7models/*.json; do
  stem=$(basename "$file" .json)
  want "$(printf 'dc/%s/lo-hi\ndc/%s/mid-hi\ndc/%s/lo-mid' "$stem" "$stem" "$stem")" || continue
  prepare "dc-$stem" routerdc --file "$file"
  mapfile -t ranked < <(sort -t$'\t' -k3,3g -k1,1 "$WORK/folds/dc-$stem/means.tsv" | cut -f1)
  lo=${ranked[0]} mid=${ranked[$(((${#ranked[@]} - 1) / 2))]} hi=${ranked[-1]}
  how="triage import routerdc --file routerdc-7models/$stem.json"
  pair "dc-$stem" "dc/$stem/lo-hi" "$lo" "$hi" "$how, weakest → strongest"
  pair "dc-$stem" "dc/$stem/mid-hi" "$mid" "$hi" "$how, median → strongest"
  pair "dc-$stem" "dc/$stem/lo-mid" "$lo" "$mid" "$how, weakest → median"
done

[ -s "$MANIFEST" ] || { echo "no set matches SETS=$SETS" >&2; exit 2; }
# report.py exits 1 when a set failed (it still prints the table, leaving
# that set out of the means): the suite then fails too.
rc=0
(cd bench/quality && "$PY" report.py --manifest "$MANIFEST" --results "$RESULTS" --work "$WORK" \
  --train-flags="$TRAIN_FLAGS" --fold-seed "$FOLD_SEED" --go-version "$(go env GOVERSION)") || rc=$?
echo
echo "Total wall time: $(awk -v a="$WALL0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s (imports, folds, Triage and baseline; load now $(cut -d' ' -f1-3 /proc/loadavg))"
if [ "$rc" != 0 ]; then
  echo "quality suite FAILED (report.py exit $rc): the table above is incomplete; see the sets left out of the means" >&2
  exit "$rc"
fi
