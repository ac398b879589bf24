#!/usr/bin/env bash
# Training speed and quality, each against a peer measured in the same run:
#   1. `triage eval --cv 5` on RouteLLM MMLU vs the anchors' scikit-learn
#      baseline (TF-IDF + LR, 5-fold CV) on the same data: wall time, ratio.
#   2. Training on N synthetic records (default 1,000,000) vs liblinear
#      `train -s 0` on the same features (exported with export-libsvm):
#      time, peak memory, held-out AUC, ratio.
#   3. The Go benchmark of one route decision on a 2 KB prompt.
# Needs: python3 with scikit-learn (apt-get install python3-sklearn),
# liblinear-tools, GNU time. Run from the repository root:
#   bash bench/train/run.sh [N]
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
cd "$(dirname "$0")/../.."
N=${1:-1000000}
DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
ANCHORS=$(cd "$DATA/.." && pwd)/anchors
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAST=mistralai/Mixtral-8x7B-Instruct-v0.1
STRONG=gpt-4-1106-preview

command -v liblinear-train >/dev/null || { echo "install liblinear-tools (apt-get install -y liblinear-tools)"; exit 2; }
[ -x /usr/bin/time ] || { echo "install GNU time (apt-get install -y time)"; exit 2; }
PY=""
for p in python3 /usr/bin/python3; do
  if $p -c 'import sklearn' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "no python3 with scikit-learn (apt-get install -y python3-sklearn)"; exit 2; }

go build -o "$WORK/triage" ./cmd/triage
T="$WORK/triage"

# measure OUT CMD...: run CMD with stdout to OUT; print "SECONDS PEAK_MIB
# CPU_SECONDS" (wall time, peak RSS, user + system time). On a shared
# machine the CPU time is the steadier figure.
measure() {
  local out=$1; shift
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >"$out"
  awk '{printf "%s %.0f %.1f\n", $1, $2/1024, $3+$4}' "$WORK/time"
}

echo "== 1. eval --cv 5 on RouteLLM MMLU vs scikit-learn (same run) =="
quiet "$T" import routellm --bench mmlu --dir "$DATA/routellm" -o "$WORK/mmlu.jsonl"
read -r tt tm tc < <(measure "$WORK/triage-cv.json" "$T" eval --cv 5 --data "$WORK/mmlu.jsonl" --fast "$FAST" --strong "$STRONG" --json)
read -r st sm sc < <(cd "$ANCHORS" && SHARED_DATASETS="$DATA" measure "$WORK/sk.json" "$PY" sklearn_baseline.py mmlu)
echo "triage  eval --cv 5 ($(nproc) cores; outer folds train concurrently, one goroutine each): ${tt}s (CPU ${tc}s), peak ${tm} MiB, $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["router"]; print("APGR %.4f CPT50 %.4f CPT80 %.4f" % (r["apgr"], r["cpt50"], r["cpt80"]))' "$WORK/triage-cv.json")"
echo "sklearn baseline (2 labels x 5 folds, single-threaded): ${st}s (CPU ${sc}s), peak ${sm} MiB"
grep sklearn "$WORK/sk.json" | sed 's/^/  /'
# The baseline trains two labels; its own cv_seconds split the time.
skone=$(python3 -c 'import json,sys; print(max(json.loads(l)["cv_seconds"] for l in open(sys.argv[1]) if "cv_seconds" in l))' "$WORK/sk.json")
echo "ratio: triage / sklearn (one label, 5 folds, ${skone}s) = $(python3 -c "print(round($tt/$skone, 2))")"

echo
echo "== 2. training on $N synthetic records vs liblinear -s 0 =="
quiet "$T" synth --n "$N" --seed 11 -o "$WORK/big.jsonl"
quiet "$T" synth --n 100000 --seed 12 -o "$WORK/test.jsonl"
SF=synthetic/fast-small; SS=synthetic/strong-large
quiet "$T" export-libsvm --data "$WORK/big.jsonl" --fast $SF --strong $SS -o "$WORK/big.svm"
quiet "$T" export-libsvm --data "$WORK/test.jsonl" --fast $SF --strong $SS -o "$WORK/test.svm"
# liblinear minimises C*sum(loss) + |w|^2/2; triage minimises
# mean(loss) + L2/2 |w|^2, so C=1 is L2 = 1/N.
L2=$(python3 -c "print(1/$N)")
read -r lt lm lc < <(measure /dev/null liblinear-train -s 0 -c 1 -B 1 -q "$WORK/big.svm" "$WORK/big.model")
liblinear-predict -b 1 "$WORK/test.svm" "$WORK/big.model" "$WORK/pred.txt" >/dev/null
lauc=$("$PY" - "$WORK/test.svm" "$WORK/pred.txt" <<'PY'
import sys
from sklearn.metrics import roc_auc_score
y=[int(float(l.split()[0])) for l in open(sys.argv[1])]
lines=open(sys.argv[2]).read().split("\n")
hdr=lines[0].split(); col=hdr.index("1")
p=[float(l.split()[col]) for l in lines[1:] if l.strip()]
print("%.4f" % roc_auc_score(y,p))
PY
)
# `--scorer label` fits what liblinear fits: one logistic regression on the
# label. The default scorer (auto) is shown after it: it cross-validates
# three heads (each tier's score and the gain) and fits the scorer their
# out-of-fold APGR chooses (gain, per-tier or blend).
read -r gt gm gc < <(measure /dev/null "$T" train --scorer label --data "$WORK/big.jsonl" --fast $SF --strong $SS --l2 "$L2" --folds 2 --holdout 0 -o "$WORK/big-router.json")
gauc=$("$T" eval --model "$WORK/big-router.json" --data "$WORK/test.jsonl" --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["router"]["auc"])')
read -r pt pm pc < <(measure /dev/null "$T" train --data "$WORK/big.jsonl" --fast $SF --strong $SS --l2 "$L2" --folds 2 --holdout 0 -o "$WORK/big-default.json")
pauc=$("$T" eval --model "$WORK/big-default.json" --data "$WORK/test.jsonl" --json | python3 -c 'import json,sys; r=json.load(sys.stdin)["router"]; print("%.4f, APGR %.4f" % (r["auc"], r["apgr"]))')
# The same fit as liblinear's, on the same libsvm file: classifier.Fit
# alone (Go benchmark; it reads the file first, outside the timing).
fitout=$(CLASSIFIER_BENCH_SVM_IN="$WORK/big.svm" CLASSIFIER_BENCH_C=1 go test -run '^$' -bench BenchmarkFitSVM -benchtime 1x -v ./classifier 2>&1) ||
  { echo "BenchmarkFitSVM failed:"; echo "$fitout"; exit 1; }
fitline=$(grep -m1 "Fit: wall" <<<"$fitout") || { echo "BenchmarkFitSVM printed no 'Fit: wall' line:"; echo "$fitout"; exit 1; }
echo "liblinear -s 0 (fit only, from libsvm file): ${lt}s (CPU ${lc}s), peak ${lm} MiB, held-out AUC ${lauc}"
echo "triage classifier.Fit on the same libsvm file: ${fitline#*Fit: }"
echo "triage train --scorer label (JSONL in, features, 2-fold calibration CV + final fit): ${gt}s (CPU ${gc}s), peak ${gm} MiB, held-out AUC ${gauc}"
echo "ratio: triage / liblinear time = $(python3 -c "print(round($gt/$lt, 2))"), CPU time = $(python3 -c "print(round($gc/$lc, 2))"), peak memory = $(python3 -c "print(round($gm/$lm, 2))")"
echo "triage train, default scorer (auto: three heads cross-validated, then gain, per-tier or blend fitted): ${pt}s (CPU ${pc}s), peak ${pm} MiB, held-out AUC ${pauc}, scorer $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scorer"])' "$WORK/big-default.json"); ratio to liblinear $(python3 -c "print(round($pt/$lt, 2))")"

echo
echo "== 3. one route decision on a 2 KB prompt =="
go test -run '^$' -bench 'BenchmarkRoute2KB' -benchmem -count 5 ./models | grep Benchmark
