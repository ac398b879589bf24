#!/usr/bin/env python3
"""Recompute `triage curves` rows from the log, independently of Triage's Go code.

Written from ../shared/DESIGN.md ("Metrics", "The policy and its replay") and docs/design.md
("Replaying a log through a policy"), not from models/replay. For every row of curves.csv it
replays the labelled log through the row's thresholds and compares strong_share, quality, pgr,
cost_per_1k and the latency mean / p50 / p95 / p99 (and the decision shares), then prints the
largest absolute difference per column. Exit status 1 when a difference is above --tol.

    check_replay.py --log held.jsonl --scores held.scores --model router.json \
        --curves report/curves.csv [--cancel-billing full] [--latency M=MS,...] [--cost M=USD,...]

--scores is the output of `triage score --model router.json --data held.jsonl` (id, p_hard);
--model is the artifact, for the tier names and the fast tier's confidence calibration
(`accept_confidence` is on the calibrated scale; the log carries the raw confidence).

The replay, per request (p = p_hard; speculate_above <= escalate_above):
  p <= speculate_above            fast: fast score, latency, cost
  p >  escalate_above             escalate: strong score, latency, cost
  otherwise                       speculate, both start at once:
    strong arrives first (ls < lf): strong kept, fast cancelled at ls
    else fast arrives (lf <= ls); calibrated confidence >= accept_confidence: fast kept,
         strong cancelled at lf
    else strong awaited: strong kept, both in full
  a cancelled call costs cost * (time it ran / its latency), or its whole cost with
  --cancel-billing full. A request without a confidence (or an artifact without a confidence
  calibration) never clears the gate. A log with no latency at all (and no --latency) takes the
  fast answer to arrive first and leaves the latency columns empty; cost is empty too unless the
  log (or --cost) has it, and then a cancelled call, whose share of its latency is unknown, is
  billed in full (what Triage does; its docs do not say).

With --metrics (the report's metrics.json) it also checks r_fast, r_strong, APGR and CPT 50/80/95
(ties in p_hard taken in random order: the exact expectation, as docs/design.md says) and AIQ
(area under the non-decreasing upper convex hull of quality against cost_per_1k, over the cost
range, of every row and of the fast-escalate rows); --anchors DIR adds metrics.py's APGR and CPT
as printed figures (its ties are 8 random draws, so they are shown, not held to --tol).

Percentiles: --percentile nearest-rank (default: the ceil(q*n)-th smallest value) or any
method numpy.percentile knows (linear, lower, higher, nearest, midpoint, ...).
"""
import argparse
import csv
import json
import math
import sys

import numpy as np

PROB_EPS = 1e-6


def sigmoid(z):
    z = np.asarray(z, float)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1 / (1 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1 + e)
    return out


def calibrate(cal, z):
    """The artifact's calibration (classifier.Calibration.Apply) on raw scores z (NaN stays NaN)."""
    z = np.asarray(z, float)
    m = cal.get("method", "identity")
    if m == "platt":
        p = sigmoid(cal["a"] * z + cal["b"])
    elif m == "isotonic":
        x, y = np.asarray(cal["x"], float), np.asarray(cal["y"], float)
        iso = np.interp(z, x, y)
        if cal.get("linear_tails") and len(x) > 1:
            lo = z < x[0]
            iso[lo] = np.maximum(y[0] + (z[lo] - x[0]) * (y[1] - y[0]) / (x[1] - x[0]), 0)
            hi = z > x[-1]
            iso[hi] = np.minimum(y[-1] + (z[hi] - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2]), 1)
        q = np.clip(iso, 2 * PROB_EPS, 1 - 2 * PROB_EPS)
        p = q + PROB_EPS / 2 * np.tanh(z - x[(len(x) - 1) // 2])
    else:
        p = sigmoid(z)
    p = np.clip(p, PROB_EPS, 1 - PROB_EPS)
    return np.where(np.isnan(z), np.nan, p)


def parse_defaults(s, what):
    out = {}
    for part in (s or "").split(","):
        if not part.strip():
            continue
        k, _, v = part.rpartition("=")
        if not k:
            sys.exit(f"check_replay: bad --{what} {part!r}: want MODEL=VALUE")
        out[k.strip()] = float(v)
    return out


def load(args):
    art = json.load(open(args.model)) if args.model else {}
    fast = args.fast or art.get("tiers", {}).get("fast")
    strong = args.strong or art.get("tiers", {}).get("strong")
    if not fast or not strong:
        sys.exit("check_replay: name the tiers (--fast/--strong) or give --model")
    cal = art.get("confidence_calibration")
    p_hard = {}
    for line in open(args.scores):
        if line.strip():
            o = json.loads(line)
            p_hard[o["id"]] = o["p_hard"]
    dlat = parse_defaults(args.latency, "latency")
    dcost = parse_defaults(args.cost, "cost")
    rows = []
    for line in open(args.log):
        if not line.strip():
            continue
        r = json.loads(line)
        oc = r.get("outcomes") or {}
        if fast not in oc or strong not in oc:
            continue
        f, s = oc[fast], oc[strong]
        if r["id"] not in p_hard:
            sys.exit(f"check_replay: {r['id']} has both outcomes but no score")
        conf = f.get("confidence")
        rows.append((p_hard[r["id"]], f["score"], s["score"],
                     f.get("latency_ms", dlat.get(fast)), s.get("latency_ms", dlat.get(strong)),
                     f.get("cost_usd", dcost.get(fast)), s.get("cost_usd", dcost.get(strong)),
                     math.nan if conf is None else conf))
    if not rows:
        sys.exit("check_replay: no record has both outcomes")
    nan = lambda v: math.nan if v is None else float(v)
    cols = list(zip(*rows))
    d = {k: np.array([nan(v) for v in cols[i]]) for i, k in
         enumerate(["p", "f", "s", "lf", "ls", "cf", "cs", "conf"])}
    d["q"] = calibrate(cal, d["conf"]) if cal else np.full(len(rows), np.nan)
    return d


def pct(sorted_vals, q, method):
    n = len(sorted_vals)
    if method == "nearest-rank":
        k = max(1, math.ceil(q * n - 1e-9))
        return sorted_vals[k - 1]
    return float(np.percentile(sorted_vals, 100 * q, method=method))


def replay(d, sa, ea, ac, billing, method, snap):
    p, f, s, lf, ls, cf, cs, q = (d[k] for k in ("p", "f", "s", "lf", "ls", "cf", "cs", "q"))
    n = len(p)
    has_lat = not np.all(np.isnan(lf) & np.isnan(ls))
    fast = p <= sa
    esc = p > ea
    spec = ~fast & ~esc
    # The gate: a calibrated confidence that equals the threshold up to rounding (the threshold is
    # a quantile of these same values, computed by another exp) counts as equal.
    clears = (q >= ac) | (np.abs(q - ac) <= snap * max(1.0, abs(ac)))
    clears &= ~np.isnan(q)
    if has_lat:
        strong_first = ls < lf
    else:
        strong_first = np.zeros(n, bool)
    accepted = spec & ~strong_first & clears
    keep_strong = esc | (spec & ~accepted)
    score = np.where(keep_strong, s, f)
    res = {
        "strong_share": keep_strong.mean(),
        "quality": score.mean(),
        "fast_share": fast.mean(),
        "speculate_share": spec.mean(),
        "escalate_share": esc.mean(),
        "accepted_share": accepted.mean(),
    }
    gap = s.mean() - f.mean()
    res["pgr"] = (res["quality"] - f.mean()) / gap if gap != 0 else math.nan
    if has_lat:
        lat = np.where(fast, lf, np.where(esc, ls, np.where(accepted, lf, ls)))
        # cost: cancelled fast call (strong first) and cancelled strong call (fast accepted)
        if billing == "full":
            cf_spec_sf, cs_spec_acc = cf, cs
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                cf_spec_sf = cf * np.where(lf > 0, ls / lf, 1.0)
                cs_spec_acc = cs * np.where(ls > 0, lf / ls, 1.0)
        spec_cost = np.where(strong_first, cs + cf_spec_sf,
                             np.where(accepted, cf + cs_spec_acc, cf + cs))
        cost = np.where(fast, cf, np.where(esc, cs, spec_cost))
        res["cost_per_1k"] = 1000 * cost.mean()
        srt = np.sort(lat)
        res["latency_mean_ms"] = lat.mean()
        res["latency_p50_ms"] = pct(srt, 0.50, method)
        res["latency_p95_ms"] = pct(srt, 0.95, method)
        res["latency_p99_ms"] = pct(srt, 0.99, method)
    else:
        # No latency: the fast answer counts as first, and a cancelled strong call is billed
        # in full (its share of the latency is unknown).
        cost = np.where(fast, cf, np.where(esc, cs, np.where(accepted, cf + cs, cf + cs)))
        res["cost_per_1k"] = 1000 * cost.mean()
        for k in ("latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
            res[k] = math.nan
    return res


def exact_pgr(p, f, s):
    """PGR(c) on c = 0, 1/n, ..., 1, highest p_hard first, ties as the expectation over orders."""
    order = np.argsort(-p, kind="stable")
    g, x = (s - f)[order], p[order]
    n = len(p)
    cum = np.zeros(n + 1)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and x[j + 1] == x[i]:
            j += 1
        m = j - i + 1
        cum[i + 1:j + 2] = cum[i] + g[i:j + 1].sum() * np.arange(1, m + 1) / m
        i = j + 1
    # cum / (sum s - sum f) rather than (cum / n) / (mean s - mean f): with 0/1 scores PGR can be
    # exactly x at some c, and the quotient of the sums keeps it exact where the means would not.
    return np.arange(n + 1) / n, cum / (s.sum() - f.sum())


def cpt(c, pgr, x):
    hit = np.nonzero(pgr >= x)[0]
    return float(c[hit[0]]) if len(hit) else 1.0


def aiq(pts):
    """Area under the non-decreasing upper convex hull of (cost, quality), over the cost range."""
    pts = sorted(set(pts))
    lo, hi = pts[0][0], pts[-1][0]
    if hi <= lo:
        return math.nan
    hull = []
    for pt in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(pt)
    k = max(range(len(hull)), key=lambda i: (hull[i][1], -i))
    h = hull[:k + 1] + [(hi, hull[k][1])]
    return sum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in zip(h, h[1:])) / (hi - lo)


def check_metrics(d, rows, path, anchors):
    """The report's metrics.json figures against this file's own; returns {name: (triage, mine)}."""
    m = json.load(open(path))
    p, f, s = d["p"], d["f"], d["s"]
    c, pgr = exact_pgr(p, f, s)
    _trapz = getattr(np, "trapezoid", None) or np.trapz
    mine = {"r_fast": f.mean(), "r_strong": s.mean(), "apgr": float(_trapz(pgr, c)),
            "cpt50": cpt(c, pgr, 0.5), "cpt80": cpt(c, pgr, 0.8), "cpt95": cpt(c, pgr, 0.95)}
    pts = [(float(r["cost_per_1k"]), float(r["quality"])) for r in rows if r["cost_per_1k"]]
    if pts:
        mine["aiq"] = aiq(pts)
        fe = [(float(r["cost_per_1k"]), float(r["quality"])) for r in rows
              if r["cost_per_1k"] and r.get("kind") == "fast-escalate"]
        if fe:
            mine["aiq_fast_escalate"] = aiq(fe)
    out = {k: (m.get(k), v) for k, v in mine.items()}
    if anchors:
        sys.path.insert(0, anchors)
        import metrics as ref
        for k, v in [("apgr", ref.apgr(p, f, s)), ("cpt50", ref.cpt(p, f, s, 0.5)),
                     ("cpt80", ref.cpt(p, f, s, 0.8)), ("cpt95", ref.cpt(p, f, s, 0.95))]:
            print(f"  metrics.py {k:6s} {v:.6f}  triage {m.get(k)}")
    return out


COLS = ["strong_share", "quality", "pgr", "cost_per_1k", "latency_mean_ms", "latency_p50_ms",
        "latency_p95_ms", "latency_p99_ms"]
EXTRA = ["fast_share", "speculate_share", "escalate_share", "accepted_share"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--curves", required=True)
    ap.add_argument("--model")
    ap.add_argument("--fast")
    ap.add_argument("--strong")
    ap.add_argument("--latency", default="")
    ap.add_argument("--cost", default="")
    ap.add_argument("--cancel-billing", choices=["prorata", "full"], default="prorata")
    ap.add_argument("--percentile", default="nearest-rank")
    ap.add_argument("--snap", type=float, default=1e-12,
                    help="relative gap under which a confidence counts as equal to the gate")
    ap.add_argument("--tol", type=float, default=1e-9, help="relative tolerance per figure")
    ap.add_argument("--show", type=int, default=3, help="rows to print per mismatching column")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ap.add_argument("--metrics", help="the report's metrics.json, to check APGR, CPT and AIQ")
    ap.add_argument("--anchors", help="folder of metrics.py, to print its APGR and CPT too")
    args = ap.parse_args()

    d = load(args)
    rdr = csv.DictReader(open(args.curves))
    head = rdr.fieldnames
    want = ["speculate_above", "escalate_above", "accept_confidence"] + COLS
    if head[:len(want)] != want:
        print(f"column order differs from DESIGN.md: {head[:len(want)]}", file=sys.stderr)
    maxdiff = {c: 0.0 for c in COLS + EXTRA}
    bad = {c: [] for c in COLS + EXTRA}
    nrows = 0
    rows = list(rdr)
    for i, row in enumerate(rows):
        nrows += 1
        sa, ea, ac = (float(row[k]) for k in ("speculate_above", "escalate_above", "accept_confidence"))
        got = replay(d, sa, ea, ac, args.cancel_billing, args.percentile, args.snap)
        for c in COLS + EXTRA:
            if c not in row:
                continue
            tri = math.nan if row[c] == "" else float(row[c])
            mine = got[c]
            if math.isnan(tri) or math.isnan(mine):
                diff = 0.0 if math.isnan(tri) and math.isnan(mine) else math.inf
            else:
                diff = abs(tri - mine)
            maxdiff[c] = max(maxdiff[c], diff)
            if diff > args.tol * max(1.0, abs(mine)):
                bad[c].append((i + 2, sa, ea, ac, tri, mine))
    mets = check_metrics(d, rows, args.metrics, args.anchors) if args.metrics else {}
    for k, (tri, mine) in mets.items():
        diff = math.inf if tri is None or math.isnan(mine) else abs(tri - mine)
        maxdiff[k] = diff
        if diff > args.tol * max(1.0, abs(mine)):
            bad[k] = [(0, math.nan, math.nan, math.nan, tri, mine)]
        else:
            bad[k] = []
    nbad = sum(len(v) for v in bad.values())
    if args.json:
        print(json.dumps({"rows": nrows, "requests": len(d["p"]), "max_abs_diff": maxdiff,
                          "mismatches": {c: len(v) for c, v in bad.items()}}))
    else:
        print(f"{nrows} rows, {len(d['p'])} requests; max abs difference per column "
              f"(percentile {args.percentile}, cancel billing {args.cancel_billing}):")
        for c in COLS + EXTRA:
            print(f"  {c:16s} {maxdiff[c]:.3g}  ({len(bad[c])} rows off)")
        for k, (tri, mine) in mets.items():
            print(f"  {k:16s} {maxdiff[k]:.3g}  (triage {tri}, check {mine})")
        for c, v in bad.items():
            for line, sa, ea, ac, tri, mine in v[:args.show]:
                if line == 0:  # a metrics.json figure, printed above
                    continue
                print(f"  {c} line {line} (spec {sa!r}, esc {ea!r}, accept {ac!r}): "
                      f"triage {tri!r}, check {mine!r}")
    return 1 if nbad else 0


if __name__ == "__main__":
    sys.exit(main())
