"""Reads `triage score` output and a labelled JSONL log, and prints the
anchors' metrics.py APGR and CPT(50%) for those scores, as JSON.

usage: python3 parity.py METRICS_DIR SCORES.jsonl LOG.jsonl FAST STRONG
"""
import json, sys

sys.path.insert(0, sys.argv[1])
import metrics  # ../shared/anchors/metrics.py

scores = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    scores[r["id"]] = r["p_hard"]
fast, strong = sys.argv[4], sys.argv[5]
s, w, g = [], [], []
for line in open(sys.argv[3]):
    r = json.loads(line)
    o = r.get("outcomes", {})
    if fast in o and strong in o:
        s.append(scores[r["id"]]); w.append(o[fast]["score"]); g.append(o[strong]["score"])
# cpt50_below is CPT at 0.5 - 1e-9. Scores are 0/1, so PGR can be exactly 0.5
# at some c; metrics.py computes it in floating point (a mean over draws),
# which can land a hair below 0.5 there and move the first crossing on to
# the next one. Exact arithmetic takes the earlier c: cpt50_below says
# which c that is, so a test can tell this rounding from a disagreement.
print(json.dumps({"apgr": metrics.apgr(s, w, g), "cpt50": metrics.cpt(s, w, g, 0.5), "cpt50_below": metrics.cpt(s, w, g, 0.5 - 1e-9),
                  "cpt80": metrics.cpt(s, w, g, 0.8), "n": len(s)}))
