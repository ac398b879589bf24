#!/usr/bin/env bash
# Issue 11's confidence-only acceptance run: the proxy's traffic, with no
# score posted by anyone, retrains the router; the gate must never promote
# a worse one.
#   1. `triage synth --scenario speculation --latency --confidence`, split
#      by id hash 20% base / 60% traffic / 20% test;
#   2. train the starting router on the base log with --holdout 0.2 (the
#      fifth of it the gate can judge on: records neither router trained on);
#   3. two `triage upstream-sim`s answer for the tiers, `triage serve`
#      proxies the traffic's prompts (default exploration), nothing posts
#      feedback;
#   4. `feedback export --from`, `retrain` with its defaults;
#   5. test-slice APGR of the starting and the retrained router from
#      `triage score`; "promoted and worse" fails the run.
# Run from the repository root:  bash bench/loop/confidence.sh
# Knobs: N=3000 SEED=1 CONC=8 WORK=dir
. "$(dirname "$0")/../errexit.sh" # set -Eeuo pipefail, and name a failing step
need python3 "apt-get install -y python3"
need curl "apt-get install -y curl"
cd "$(dirname "$0")/../.."
N=${N:-3000}
SEED=${SEED:-1}
CONC=${CONC:-8}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
FAST=synthetic/fast-small
STRONG=synthetic/strong-large
TOKEN=loop-conf-$RANDOM$RANDOM
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
go build -o "$WORK/triage" ./cmd/triage
go build -o "$WORK/loopctl" ./bench/loop/loopctl
T="$WORK/triage"
L="$WORK/loopctl"
echo "work dir: $WORK (N=$N SEED=$SEED)"

"$T" synth --scenario speculation --latency --confidence --n "$N" --seed "$SEED" -o "$WORK/log.jsonl"
"$L" split --data "$WORK/log.jsonl" --by id --base-share 0.2 --test-share 0.2 --seed "$SEED" \
  --base "$WORK/base.jsonl" --traffic "$WORK/traffic.jsonl" --test "$WORK/test.jsonl"
logged "$WORK/start.txt" "$T" train --data "$WORK/base.jsonl" --fast "$FAST" --strong "$STRONG" --holdout 0.2 -o "$WORK/start.json"
sed -n 1,2p "$WORK/start.txt"

listen() { # file -> address printed as "...listening on ADDR"
  for _ in $(seq 100); do
    a=$(sed -n 's/.*listening on //p' "$1" | head -1)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "no address in $1" >&2; cat "$1" >&2; exit 1
}
"$T" upstream-sim --data "$WORK/log.jsonl" --model "$FAST" --latency-scale 0.01 2>"$WORK/fast.log" & PIDS+=($!)
"$T" upstream-sim --data "$WORK/log.jsonl" --model "$STRONG" --latency-scale 0.01 2>"$WORK/strong.log" & PIDS+=($!)
FA=$(listen "$WORK/fast.log"); SA=$(listen "$WORK/strong.log")
cat >"$WORK/proxy.yaml" <<YAML
tiers:
  fast: {base_url: "http://$FA/v1", model: $FAST, timeout: 30s, price_in_per_1k: 0.0006, price_out_per_1k: 0.0006}
  strong: {base_url: "http://$SA/v1", model: $STRONG, timeout: 60s, price_in_per_1k: 0.01, price_out_per_1k: 0.03}
YAML
TRIAGE_ADMIN_TOKEN=$TOKEN "$T" serve --model "$WORK/start.json" --db "$WORK/proxy.db" --config "$WORK/proxy.yaml" --addr 127.0.0.1:0 2>"$WORK/serve.log" & PIDS+=($!)
URL=http://$(listen "$WORK/serve.log")
python3 - "$WORK/traffic.jsonl" "$URL" "$CONC" <<'PY'
import json, sys, urllib.request, concurrent.futures, collections
recs = [json.loads(l) for l in open(sys.argv[1])]
url = sys.argv[2] + "/v1/chat/completions"
def send(r):
    body = json.dumps({"model": "triage", "messages": [{"role": "user", "content": r["prompt"]}], "metadata": r.get("meta") or {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
        return resp.headers.get("X-Triage-Decision"), resp.headers.get("X-Triage-Explored") == "true"
with concurrent.futures.ThreadPoolExecutor(int(sys.argv[3])) as ex:
    got = list(ex.map(send, recs))
c = collections.Counter(d for d, _ in got)
print(f"proxied {len(got)} requests: {dict(c)}, explored {sum(e for _, e in got)}; no score posted")
PY
curl -sS "$URL/metrics" | grep -E '^triage_proxy_(explored_total|exploration_cost_usd_total|cost_usd_total)' | sed 's/^/  /'
"$T" feedback export --from "$URL" --token "$TOKEN" -o "$WORK/export.jsonl"

set +e
"$T" retrain --model "$WORK/start.json" --data "$WORK/base.jsonl" --feedback "$WORK/export.jsonl" -o "$WORK/new.json" >"$WORK/retrain.txt" 2>"$WORK/retrain.err"
RC=$?
set -e
grep -E '^(data|one tier|train|not judged|held out)' "$WORK/retrain.txt" | sed 's/^/  retrain: /'
tail -1 "$WORK/retrain.txt" | sed 's/^/  retrain: /'
case $RC in
  0) ;;
  3) echo "retrain: refused (exit 3)"; ;;
  *) echo "retrain failed (exit $RC)"; cat "$WORK/retrain.err"; exit 1 ;;
esac
"$T" score --model "$WORK/start.json" --data "$WORK/test.jsonl" >"$WORK/score-start.jsonl"
if [ "$RC" = 0 ]; then
  "$T" score --model "$WORK/new.json" --data "$WORK/test.jsonl" >"$WORK/score-new.jsonl"
  "$L" apgr --data "$WORK/test.jsonl" --fast "$FAST" --strong "$STRONG" "$WORK/score-start.jsonl" "$WORK/score-new.jsonl" | tee "$WORK/apgr.txt"
  python3 - "$WORK/apgr.txt" <<'PY'
import re, sys
start, new = [float(m) for m in re.findall(r"apgr ([-0-9.]+)", open(sys.argv[1]).read())]
print(f"test APGR: start {start:.4f}, promoted {new:.4f} ({new - start:+.4f})")
print("check, never promotes a worse router:", "yes" if new >= start else "NO (promoted a worse router)")
sys.exit(0 if new >= start else 1)
PY
else
  "$L" apgr --data "$WORK/test.jsonl" --fast "$FAST" --strong "$STRONG" "$WORK/score-start.jsonl"
  echo "check, never promotes a worse router: yes (refused)"
fi
