"""Replays other "cannot route" rules on the pooled scores of a harness dump.

usage: /usr/bin/python3 bench/quality/signal_rules.py DUMP.jsonl...

A dump comes from `bench/quality/exp -route -dump DUMP.jsonl`: every fold
router routes (its p_hard is kept even where the signal check says it cannot
route), and each set's line carries the pooled p_hard, the outer fold of each
request, both tiers' scores and each fold's signal (out-of-fold APGR with its
95% interval, the strong tier's mean gain with its interval). A rule decides
per fold whether that router routes; where it does not, its requests get the
constant 1/2, as `train` ships a router that cannot route. So every rule is
judged on the same fitted routers, with the anchors' metrics.py, and only
the decision differs.

The rules:
  current   the shipped one (models/signal.go, since docs/quality.md item
            21): the gain's interval lies above 0 (keep any ranking);
  apgr-half the one before item 21: the gain's interval lies above 0 and the
            out-of-fold APGR is above 0.5;
  k1        the gain's interval lies above 0 and the APGR is above 0.5 minus
            one standard error ("not worse than random by more than noise").
A fold whose figures are undefined (null in the dump: the tiers' means tie)
does not route under any rule.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.environ.get("TRIAGE_ANCHORS", os.path.join(HERE, "..", "..", "..", "shared", "anchors"))
sys.path.insert(0, ANCHORS)
try:
    import numpy as np
    import metrics
except ImportError as e:
    raise SystemExit(f"signal_rules: {e}; it needs numpy and the anchors' metrics.py in {ANCHORS} (set TRIAGE_ANCHORS)")


def se(s):
    return (s["apgr_hi"] - s["apgr"]) / 1.959963984540054


RULES = {
    "current": lambda s: s["gain_lo"] > 0,
    "apgr-half": lambda s: s["gain_lo"] > 0 and s["apgr"] > 0.5,
    "k1": lambda s: s["gain_lo"] > 0 and s["apgr"] > 0.5 - se(s),
}


def routes(rule, s):
    """Whether a fold routes under rule; never where a figure is undefined."""
    if any(s.get(k) is None for k in ("gain_lo", "apgr", "apgr_hi")):
        return False
    return rule(s)


def main(paths):
    if not paths:
        raise SystemExit(__doc__)
    for path in paths:
        got = {k: [] for k in RULES}
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    p, fold = np.array(d["p"], float), np.array(d["fold"])
                    weak, strong = np.array(d["weak"], float), np.array(d["strong"], float)
                    sig = d["signal"]
                except (ValueError, KeyError) as e:
                    raise SystemExit(f"{path}:{n}: {e}; want a line of bench/quality/exp -route -dump")
                for name, rule in RULES.items():
                    q = p.copy()
                    for k, s in enumerate(sig):
                        if not routes(rule, s):
                            q[fold == k] = 0.5
                    got[name].append(metrics.apgr(q, weak, strong))
        base = np.array(got["current"])
        for name, v in got.items():
            v = np.array(v)
            print(f"{path}  {name:9s}  mean {v.mean():.4f} ({v.mean() - base.mean():+.4f})  "
                  f"up/down {(v > base + 1e-9).sum()}/{(v < base - 1e-9).sum()}  "
                  f"below 0.48 {(v < 0.48).sum()}  worst {v.min():.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
