#!/usr/bin/env bash
# Does an N-tier router learn from the traffic it serves? (docs/loop.md §8)
# The issue-11 replay, for three RouterDC tiers (the README's):
#   1. one RouterDC task file, imported without meta, split by id hash
#      20% base / 60% traffic / 20% test (loopctl split --test-share 0.2);
#   2. the starting router trained on the base (every tier's score);
#   3. the traffic replayed through its policy (triage score) with the
#      server's default exploration, ε = 0.02: a request the policy sends
#      to one tier alone is raced, with probability ε, with the next tier
#      up (the dearest with the one below), as serve does; only the
#      outcome(s) of the tier(s) that ran are kept, as an export holds
#      them when clients post every score they get;
#   4. routers trained on (a) the base alone, (b) base + served traffic
#      with train's defaults (which skip a record without every tier's
#      score: all the served ones), (c) base + served traffic with
#      --partial-records (each head on the records with its tier's score),
#      (d) base + the traffic with every outcome (the full-information
#      reference), and (e) base + the traffic with one tier's outcome per
#      request, the tier drawn uniformly, with --partial-records: as many
#      one-sided records as (c) without the policy choosing them, and (f)
#      base + every outcome of a third of the traffic (every third
#      request): as many outcomes as (e), each request's together. They
#      tell what (c) lacks: the policy's choice of tier, or outcomes of
#      one request side by side;
#   5. each measured on the test slice with `triage eval --json`: quality
#      at the policy (λ = 0, the tier predicted best), its mean price, the
#      AIQ of the λ sweep; (c) − (b) in quality, paired over the test
#      requests, with its standard error; and at the end, over every
#      file and seed, the mean differences from (b).
#
#   bash bench/loop/tiers.sh                                # arc_easy_train, SEED=1
#   FILES="arc_easy_train mmlu_train" SEEDS="1 2" WORK=/tmp/lt bash bench/loop/tiers.sh
#   FILES=gsm8k-train+arc_easy_train+cmmlu_train bash bench/loop/tiers.sh   # pooled
#   BASE_SHARE=0.05 bash bench/loop/tiers.sh    # a smaller base: 5% / 75% / 20%
#
# Needs ../shared/datasets (or $TRIAGE_DATASETS) and python3.
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
need python3 "apt-get install -y python3"
cd "$(dirname "$0")/../.."
DATA=${TRIAGE_DATASETS:-$(cd .. && pwd)/shared/datasets}
DC="$DATA/routerdc-7models"
[ -d "$DC" ] || { echo "no RouterDC files at $DC; set TRIAGE_DATASETS to the shared datasets folder" >&2; exit 2; }
FILES=${FILES:-arc_easy_train}
SEEDS=${SEEDS:-1}
EPSILON=${EPSILON:-0.02}
BASE_SHARE=${BASE_SHARE:-0.2}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
T="$WORK/triage"
L="$WORK/loopctl"
go build -o "$T" ./cmd/triage
go build -o "$L" ./bench/loop/loopctl
TIERS=meta-math/MetaMath-Mistral-7B=7.24,HuggingFaceH4/zephyr-7b-beta=7.24,cognitivecomputations/dolphin-2.9-llama3-8b=8.03
echo "work dir: $WORK; tiers $TIERS; ε = $EPSILON; base share $BASE_SHARE"

# serve.py BASE_SCORES TRAFFIC SEED EPSILON OUT: the served records.
cat >"$WORK/serve.py" <<'PY'
import json, random, sys
scores, traffic, seed, eps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
tiers = sys.argv[6].split(",")
names = [t.rsplit("=", 1)[0] for t in tiers]
chosen = {}
for line in open(scores):
    s = json.loads(line)
    ran = [s["model"]] + ([s["race_model"]] if s.get("race_model") else [])
    chosen[s["id"]] = ran
rnd = random.Random(seed)
uni = random.Random(seed + 1)
counts = {"records": 0, "explored": 0, "raced": 0}
with open(out, "w") as f, open(out.replace(".jsonl", "-uniform.jsonl"), "w") as fu, open(out.replace(".jsonl", "-third.jsonl"), "w") as ft:
    for line in open(traffic):
        r = json.loads(line)
        ran = chosen[r["id"]]
        u = rnd.random()  # drawn for every request, so the draws do not depend on the decisions
        if len(ran) == 1 and u < eps:
            k = names.index(ran[0])
            ran = [names[k], names[k + 1]] if k + 1 < len(names) else [names[k - 1], names[k]]
            counts["explored"] += 1
        if len(ran) == 2:
            counts["raced"] += 1
        if counts["records"] % 3 == 0:
            ft.write(json.dumps(r) + "\n")
        one = uni.choice(names)
        fu.write(json.dumps(dict(r, outcomes={one: r["outcomes"][one]})) + "\n")
        r["outcomes"] = {m: o for m, o in r["outcomes"].items() if m in ran}
        counts["records"] += 1
        f.write(json.dumps(r) + "\n")
print("served: %(records)d records, %(raced)d with two tiers' outcomes (%(explored)d explored)" % counts)
PY

# paired.py TEST SCORES_B SCORES_C: (c) − (b) in routed quality on the test
# slice, per request, with its standard error.
cat >"$WORK/paired.py" <<'PY'
import json, math, sys
test = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    test[r["id"]] = {m: o["score"] for m, o in r["outcomes"].items()}
def q(path):
    return {s["id"]: test[s["id"]][s["model"]] for s in map(json.loads, open(path))}
a, c = q(sys.argv[2]), q(sys.argv[3])
d = [100 * (c[i] - a[i]) for i in a]
n = len(d)
m = sum(d) / n
se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n)
print("(c) - (b): %+.2f points, SE %.2f, over %d test requests; %d routed differently" % (m, se, n, sum(1 for x in d if x != 0)))
PY

SUMMARY="$WORK/summary.tsv"
: >"$SUMMARY"
fig() { # fig NAME MODEL TEST SPLIT: one row of the table from eval --json
	"$T" eval --model "$2" --data "$3" --json 2>/dev/null | python3 -c '
import json, sys
f = json.load(sys.stdin)
aiq = f.get("aiq") or {}
print("| %s | %.2f | %.4g | %.2f | %.2f |" % (sys.argv[1], f["routed"]["quality"], f["routed"]["cost"], aiq.get("router", float("nan")), f["best_single"]["quality"]))
with open(sys.argv[3], "a") as s:
    s.write("%s\t%s\t%r\t%r\t%r\n" % (sys.argv[2], sys.argv[1][:3], f["routed"]["quality"], f["routed"]["cost"], aiq.get("router", float("nan"))))' "$1" "$4" "$SUMMARY"
}

for file in $FILES; do
	for seed in $SEEDS; do
		W="$WORK/$file-$seed"
		mkdir -p "$W"
		# A+B+C pools the files, as the README's N-tier example does.
		: >"$W/all.jsonl"
		for f in ${file//+/ }; do
			quiet "$T" import routerdc --file "$DC/$f.json" --no-meta >>"$W/all.jsonl"
		done
		"$L" split --data "$W/all.jsonl" --base-share "$BASE_SHARE" --test-share 0.2 --seed "$seed" --base "$W/base.jsonl" --traffic "$W/traffic.jsonl" --test "$W/test.jsonl"
		logged "$W/train-a.log" "$T" train --data "$W/base.jsonl" --tiers "$TIERS" -o "$W/a.json"
		quiet "$T" score --model "$W/a.json" --data "$W/traffic.jsonl" -o "$W/traffic-scores.jsonl"
		python3 "$W/../serve.py" "$W/traffic-scores.jsonl" "$W/traffic.jsonl" "$seed" "$EPSILON" "$W/served.jsonl" "$TIERS"
		logged "$W/train-b.log" "$T" train --data "$W/base.jsonl,$W/served.jsonl" --tiers "$TIERS" -o "$W/b.json"
		logged "$W/train-c.log" "$T" train --data "$W/base.jsonl,$W/served.jsonl" --tiers "$TIERS" --partial-records -o "$W/c.json"
		logged "$W/train-d.log" "$T" train --data "$W/base.jsonl,$W/traffic.jsonl" --tiers "$TIERS" -o "$W/d.json"
		logged "$W/train-e.log" "$T" train --data "$W/base.jsonl,$W/served-uniform.jsonl" --tiers "$TIERS" --partial-records -o "$W/e.json"
		logged "$W/train-f.log" "$T" train --data "$W/base.jsonl,$W/served-third.jsonl" --tiers "$TIERS" -o "$W/f.json"
		grep -h "records per head" "$W/train-c.log" || true
		echo "== $file, SEED=$seed: test slice $(wc -l <"$W/test.jsonl") requests"
		echo "| router | quality (0-100) | mean price | AIQ | best single |"
		echo "|---|---:|---:|---:|---:|"
		fig "(a) base" "$W/a.json" "$W/test.jsonl" "$file-$seed"
		fig "(b) base + served, defaults" "$W/b.json" "$W/test.jsonl" "$file-$seed"
		fig "(c) base + served, --partial-records" "$W/c.json" "$W/test.jsonl" "$file-$seed"
		fig "(d) base + traffic, every outcome" "$W/d.json" "$W/test.jsonl" "$file-$seed"
		fig "(e) base + one uniform tier per request, --partial-records" "$W/e.json" "$W/test.jsonl" "$file-$seed"
		fig "(f) base + every outcome of a third of the traffic" "$W/f.json" "$W/test.jsonl" "$file-$seed"
		quiet "$T" score --model "$W/b.json" --data "$W/test.jsonl" -o "$W/test-b.jsonl"
		quiet "$T" score --model "$W/c.json" --data "$W/test.jsonl" -o "$W/test-c.jsonl"
		python3 "$W/../paired.py" "$W/test.jsonl" "$W/test-b.jsonl" "$W/test-c.jsonl"
	done
done
python3 - "$SUMMARY" <<'PY'
import collections, math, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    split, r, q, c, aiq = line.rstrip("\n").split("\t")
    rows.setdefault(split, {})[r] = (float(q), float(c), float(aiq))
n = len(rows)
others = ("(c)", "(d)", "(e)", "(f)")
print("== quality on the test slice (0-100): (b), and each router's difference from it")
print("| split | (b) | (c) − (b) | (d) − (b) | (e) − (b) | (f) − (b) |")
print("|---|---:|---:|---:|---:|---:|")
for split, r in rows.items():
    print("| %s | %.2f | %s |" % (split, r["(b)"][0], " | ".join("%+.2f" % (r[o][0] - r["(b)"][0]) for o in others)))
def mean_se(d):
    m = sum(d) / len(d)
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d)) if len(d) > 1 else float("nan")
    return m, se
print("== over %d splits, mean difference from (b) ± its standard error over the splits (quality and AIQ in points on 0-100; price per request):" % n)
for o in others:
    d = [[rows[s][o][j] - rows[s]["(b)"][j] for s in rows] for j in range(3)]
    (mq, sq), (mc, _), (ma, sa) = mean_se(d[0]), mean_se(d[1]), mean_se(d[2])
    print("%s: quality %+.2f ± %.2f (better on %d of %d), price %+.4f, AIQ %+.2f ± %.2f (better on %d of %d)" % (
        o, mq, sq, sum(x > 0 for x in d[0]), n, mc, ma, sa, sum(x > 0 for x in d[2]), n))
PY
