#!/usr/bin/env python3
"""Recompute `triage curves` (and `triage eval --model`) on an N-tier router, independently of
Triage's Go code.

Written from README.md ("More than two tiers") and docs/design.md ("More than two tiers",
"Replaying a log through a policy"), not from models/replay/tiers.go or models/tier_router.go.
For every row of tiers_curves.csv it replays the labelled log through the row's policy (λ,
margin, race) on the per-tier predicted scores that `triage score` printed, and compares
quality, cost, latency mean / p95, race_share, accepted_share, every share:<tier> and the
Pareto flag; it recomputes tiers_reference.csv (single tiers, the oracle, the convex hull of
single tiers) and the AIQ of the router's curve and of that hull; then prints the largest
absolute difference per column. Exit status 1 when a difference is above its tolerance.

    check_tiers.py --log test.jsonl --scores test.scores --model tiers.json \
        --curves report/tiers_curves.csv --reference report/tiers_reference.csv \
        [--curves-out curves.stdout] [--eval-json eval.json] \
        [--cancel-billing full] [--latency M=MS,...] [--cost M=USD,...]

--scores is `triage score --model tiers.json --data test.jsonl` (id, tier, model, decision,
predicted: one predicted score per tier, in the artifact's tier order); --model is the artifact
(tier_list: name, price, confidence_calibration; tier_policy: lambda, margin, race,
accept_confidence). --curves-out is what `curves` printed (its AIQ, oracle and current-policy
figures are printed with two decimals, so they are held to 0.005; tiers_metrics.json, which
curves has written since 418b326, holds them at full precision on [0,1] and is not read here). --eval-json is `triage eval --model tiers.json --data test.jsonl
--json`, held to --tol: eval's figures are quality and price only (SETTLED: the docs did not
say so), so they are recomputed with each tier's price as its cost, no latency and no
confidence; its router AIQ is held to the exact λ sweep's, to 1e-4 (its grid has 201 points).

The rules, as the docs give them (and, marked SETTLED, as the code settles what they leave open):
  utility u_k = s_k - λ·price_k (s_k the predicted score, price_k the artifact's price, not the
  log's cost); chosen = min { k : u_k >= max_j u_j - margin } (tiers are listed cheapest first,
  so the lowest index is the cheapest, and equal prices go to the one listed first).
  race: when race > 0, k+1 exists and u_{k+1} >= u_k - race, k and k+1 are a two-tier
  speculation (k fast, k+1 strong), replayed by docs/design.md's rules: the upper answer is kept
  if it arrives first (lower cancelled then); else the lower one if its calibrated confidence
  (tier_list[k].confidence_calibration on the log's raw confidence) is >= accept_confidence
  (upper cancelled then); else the upper one is awaited, both billed in full. A cancelled call
  costs the share of its latency it ran (prorata) or its whole cost (full); a log without
  latency takes the lower answer as first and bills a cancelled call in full.
  cost of a call: the log's cost_usd, else --cost, else the tier's price. Latency: the log's
  latency_ms, else --latency; none at all leaves the latency columns empty. p95 is nearest-rank.
  quality: mean score of the kept answers on [0,1] in the CSV (the printed figures are 0-100);
  cost: mean cost per request (not per 1,000); share:<tier>: the share of requests whose kept
  answer is that tier's (SETTLED: the docs do not say whether a race counts for the kept tier
  or the chosen one); race_share: raced requests; accepted_share: races whose lower answer was
  kept on confidence.
  pareto (SETTLED: the docs do not define it): no other row of the same router has cost <= and
  quality >= with one of them strict; equal points are all on the front.
  singles: each tier's mean score and mean cost; oracle: per request a tier with the highest
  score (SETTLED: ties to the lowest cost on that request, then to the first listed);
  hull: the vertices of the non-decreasing upper convex hull of the singles.
  AIQ: over [min, max] of the singles' mean costs, the mean of the router curve's upper convex
  hull (non-decreasing: flat after its best point, and after its dearest point), 0 below the
  curve's cheapest point. The curve is the rows of tiers_curves.csv (SETTLED: the λ grid is not
  every break-even value; --exact also prints the AIQ of the exact sweep, every λ where some
  request's choice changes, to show what the grid loses).
"""
import argparse
import csv
import importlib.util
import json
import math
import os
import re
import sys

import numpy as np

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "check_replay", os.path.join(_here, "..", "curves", "check_replay.py"))
check_replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_replay)
calibrate, parse_defaults, pct = check_replay.calibrate, check_replay.parse_defaults, check_replay.pct


def load(args):
    art = json.load(open(args.model))
    tl = art.get("tier_list")
    if not tl:
        sys.exit("check_tiers: the artifact has no tier_list (a two-tier router: use bench/curves/check_replay.py)")
    names = [t["name"] for t in tl]
    prices = np.array([float(t.get("price", 0)) for t in tl])
    n_t = len(names)
    pred = {}
    for line in open(args.scores):
        if line.strip():
            o = json.loads(line)
            pred[o["id"]] = o["predicted"]
    dlat = parse_defaults(args.latency, "latency")
    dcost = parse_defaults(args.cost, "cost")
    S, P, L, C, Q, ids = [], [], [], [], [], []
    for line in open(args.log):
        if not line.strip():
            continue
        r = json.loads(line)
        oc = r.get("outcomes") or {}
        if any(nm not in oc or oc[nm].get("score") is None for nm in names):
            continue
        if r["id"] not in pred:
            sys.exit(f"check_tiers: {r['id']} has every tier's score but no predicted scores")
        ids.append(r["id"])
        P.append(pred[r["id"]])
        S.append([oc[nm]["score"] for nm in names])
        L.append([oc[nm].get("latency_ms", dlat.get(nm, math.nan)) for nm in names])
        C.append([oc[nm].get("cost_usd", dcost.get(nm, prices[k])) for k, nm in enumerate(names)])
        Q.append([math.nan if oc[nm].get("confidence") is None else oc[nm]["confidence"] for nm in names])
    if not S:
        sys.exit("check_tiers: no record has every tier's score")
    f = lambda a: np.array([[math.nan if v is None else float(v) for v in row] for row in a])
    d = {"ids": ids, "names": names, "prices": prices, "s": f(S), "pred": f(P), "lat": f(L), "cost": f(C)}
    if d["pred"].shape[1] != n_t:
        sys.exit("check_tiers: predicted has another number of tiers than the artifact")
    raw = f(Q)
    q = np.full(raw.shape, math.nan)
    for k, t in enumerate(tl):
        cal = t.get("confidence_calibration")
        if cal:
            q[:, k] = calibrate(cal, raw[:, k])
    d["q"] = q
    d["has_lat"] = not np.all(np.isnan(d["lat"]))
    d["policy"] = art.get("tier_policy") or {}
    return d


def choose(pred, prices, lam, margin, race):
    """Per request: the chosen tier, and whether it races the next one up."""
    u = pred - lam * prices[None, :]
    best = u.max(axis=1)
    within = u >= (best - margin)[:, None]
    k = np.argmax(within, axis=1)  # the lowest index within the margin
    n, nt = pred.shape
    raced = np.zeros(n, bool)
    if race > 0:
        up = np.minimum(k + 1, nt - 1)
        ui = np.arange(n)
        raced = (k + 1 < nt) & (u[ui, up] >= u[ui, k] - race)
    return k, raced


def replay(d, lam, margin, race, ac, billing, snap=1e-12):
    s, lat, cost, q, prices = d["s"], d["lat"], d["cost"], d["q"], d["prices"]
    n, nt = s.shape
    k, raced = choose(d["pred"], prices, lam, margin, race)
    ui = np.arange(n)
    up = np.minimum(k + 1, nt - 1)
    lo_s, up_s = s[ui, k], s[ui, up]
    lo_l, up_l = lat[ui, k], lat[ui, up]
    lo_c, up_c = cost[ui, k], cost[ui, up]
    conf = q[ui, k]
    clears = ((conf >= ac) | (np.abs(conf - ac) <= snap * max(1.0, abs(ac)))) & ~np.isnan(conf)
    upper_first = (up_l < lo_l) if d["has_lat"] else np.zeros(n, bool)
    accepted = raced & ~upper_first & clears
    keep_up = raced & ~accepted
    kept = np.where(keep_up, up, k)
    res = {"quality": float(np.where(keep_up, up_s, lo_s).mean()),
           "race_share": float(raced.mean()), "accepted_share": float(accepted.mean())}
    if d["has_lat"] and billing == "prorata":
        with np.errstate(invalid="ignore", divide="ignore"):
            lo_cancel = lo_c * np.where(lo_l > 0, up_l / lo_l, 1.0)
            up_cancel = up_c * np.where(up_l > 0, lo_l / up_l, 1.0)
    else:
        lo_cancel, up_cancel = lo_c, up_c
    race_cost = np.where(upper_first, up_c + lo_cancel, np.where(accepted, lo_c + up_cancel, lo_c + up_c))
    res["cost"] = float(np.where(raced, race_cost, lo_c).mean())
    if d["has_lat"]:
        lt = np.where(raced, np.where(accepted, lo_l, np.where(upper_first, up_l, up_l)), lo_l)
        res["latency_mean_ms"] = float(lt.mean())
        res["latency_p95_ms"] = float(pct(np.sort(lt), 0.95, "nearest-rank"))
    else:
        res["latency_mean_ms"] = res["latency_p95_ms"] = math.nan
    for j, nm in enumerate(d["names"]):
        res["share:" + nm] = float((kept == j).mean())
    res["_kept"] = kept
    return res


def upper_hull(pts):
    """The non-decreasing upper convex hull of (cost, quality) points, cheapest first."""
    pts = sorted(set(pts), key=lambda p: (p[0], -p[1]))
    # at equal cost only the best quality counts
    dedup = []
    for p in pts:
        if not dedup or dedup[-1][0] != p[0]:
            dedup.append(p)
    hull = []
    for pt in dedup:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(pt)
    kbest = max(range(len(hull)), key=lambda i: (hull[i][1], -i))
    return hull[:kbest + 1]


def aiq(pts, lo, hi):
    """Mean over [lo, hi] of the curve's non-decreasing upper hull; 0 below its cheapest point."""
    if hi <= lo:
        return math.nan
    h = upper_hull(pts)

    def f(x):
        if x < h[0][0]:
            return 0.0
        if x >= h[-1][0]:
            return h[-1][1]
        for (x1, y1), (x2, y2) in zip(h, h[1:]):
            if x1 <= x <= x2:
                return y1 + (y2 - y1) * (x - x1) / (x2 - x1)
        return h[-1][1]

    xs = sorted({lo, hi} | {x for x, _ in h if lo < x < hi})
    x0 = h[0][0]
    # piecewise linear on each [a, b]; 0 on the pieces below the curve's cheapest point
    area = sum((b - a) * (f(a) + f(b)) / 2 for a, b in zip(xs, xs[1:]) if a >= x0)
    return area / (hi - lo)


def exact_sweep(d, margin, race, ac, billing):
    """Every λ where some request's choice changes, from the candidates (s_j − s_k ± m)/(c_j − c_k);
    the replay at one λ inside each interval (and at 0). Returns [(λ, quality, cost)]."""
    pred, prices = d["pred"], d["prices"]
    nt = len(prices)
    cands = set()
    offs = [0.0, margin, -margin, race, -race]
    for j in range(nt):
        for k in range(nt):
            if prices[j] == prices[k]:
                continue
            for o in offs:
                v = (pred[:, j] - pred[:, k] + o) / (prices[j] - prices[k])
                cands.update(v[v > 0].tolist())
    cands = np.array(sorted(cands))
    # evaluate the choice at midpoints and keep where something changes
    mids = [0.0] + list((cands[:-1] + cands[1:]) / 2) + ([cands[-1] * 2 + 1] if len(cands) else [])
    out, prev = [], None
    for lam in mids:
        k, raced = choose(pred, prices, lam, margin, race)
        key = (k.tobytes(), raced.tobytes())
        if key == prev:
            continue
        prev = key
        r = replay(d, lam, margin, race, ac, billing)
        out.append((lam, r["quality"], r["cost"]))
    return out


def fnum(x):
    return math.nan if x == "" else float(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--curves", required=True)
    ap.add_argument("--reference")
    ap.add_argument("--router", help="the router column's value (default: the only one in the file)")
    ap.add_argument("--curves-out", help="what `triage curves` printed, for its AIQ, oracle and current policy")
    ap.add_argument("--eval-json", help="`triage eval --model ... --json` output")
    ap.add_argument("--latency", default="")
    ap.add_argument("--cost", default="")
    ap.add_argument("--cancel-billing", choices=["prorata", "full"], default="prorata")
    ap.add_argument("--tol", type=float, default=1e-6,
                    help="relative tolerance per figure (the CSV has 8 significant digits)")
    ap.add_argument("--exact", action="store_true", help="also the AIQ of the exact λ sweep")
    ap.add_argument("--show", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    d = load(args)
    pol = d["policy"]
    ac = float(pol.get("accept_confidence", 0.8))
    rows = list(csv.DictReader(open(args.curves)))
    routers = sorted({r["router"] for r in rows})
    router = args.router or (routers[0] if len(routers) == 1 else None)
    if router is None:
        sys.exit(f"check_tiers: several routers in {args.curves} ({routers}): name one with --router")
    rows = [r for r in rows if r["router"] == router]
    cols = ["quality", "cost", "latency_mean_ms", "latency_p95_ms", "race_share", "accepted_share"] + \
        ["share:" + nm for nm in d["names"]]
    maxdiff, bad = {}, {}

    def cmp(col, tri, mine, tol, where):
        if math.isnan(tri) or math.isnan(mine):
            diff = 0.0 if (math.isnan(tri) and math.isnan(mine)) else math.inf
        else:
            diff = abs(tri - mine)
        maxdiff[col] = max(maxdiff.get(col, 0.0), diff)
        bad.setdefault(col, [])
        if diff > tol * max(1.0, abs(mine)):
            bad[col].append((where, tri, mine))

    mine_rows = []
    for i, row in enumerate(rows):
        lam, m, rc = fnum(row["lambda"]), fnum(row["margin"]), fnum(row["race"])
        got = replay(d, lam, m, rc, ac, args.cancel_billing)
        mine_rows.append(got)
        for c in cols:
            if c not in row:
                bad.setdefault(c, []).append((f"line {i + 2}", "missing", ""))
                continue
            cmp(c, fnum(row[c]), got[c], args.tol, f"line {i + 2} λ={row['lambda']} margin={m} race={rc}")
    # Pareto, on the recomputed figures (equal up to rounding counts as equal)
    eps = 1e-9
    pts = [(g["cost"], g["quality"]) for g in mine_rows]
    for i, (row, (c, q)) in enumerate(zip(rows, pts)):
        dom = any((c2 <= c + eps and q2 >= q - eps) and (c2 < c - eps or q2 > q + eps) for c2, q2 in pts)
        tri = row["pareto"].strip().lower() == "true"
        cmp("pareto", float(tri), float(not dom), 0, f"line {i + 2} λ={row['lambda']} cost={c:.6g} quality={q:.6g}")
    # references
    s, cost = d["s"], d["cost"]
    n, nt = s.shape
    singles = [(float(cost[:, k].mean()), float(s[:, k].mean())) for k in range(nt)]
    best = s.max(axis=1, keepdims=True)
    # ties to the lowest cost on that request, then to the first listed
    ok = np.array([min(np.nonzero(s[i] == best[i, 0])[0], key=lambda k: (cost[i, k], k)) for i in range(n)])
    oracle = (float(cost[np.arange(n), ok].mean()), float(best.mean()))
    hull = upper_hull(singles)
    lo, hi = min(c for c, _ in singles), max(c for c, _ in singles)
    router_aiq = aiq(pts, lo, hi) if pts else math.nan
    hull_aiq = aiq(singles, lo, hi)
    if args.reference:
        ref = [r for r in csv.DictReader(open(args.reference)) if r["router"] == router]
        sg = {r["name"]: r for r in ref if r["kind"] == "single"}
        for k, nm in enumerate(d["names"]):
            r = sg.get(nm)
            if r is None:
                bad.setdefault("single", []).append((nm, "missing", ""))
                continue
            cmp("single cost", fnum(r["cost"]), singles[k][0], args.tol, nm)
            cmp("single quality", fnum(r["quality"]), singles[k][1], args.tol, nm)
        orc = [r for r in ref if r["kind"] == "oracle"]
        if len(orc) != 1:
            bad.setdefault("oracle", []).append(("oracle rows", len(orc), 1))
        else:
            cmp("oracle cost", fnum(orc[0]["cost"]), oracle[0], args.tol, "oracle")
            cmp("oracle quality", fnum(orc[0]["quality"]), oracle[1], args.tol, "oracle")
        hr = [(fnum(r["cost"]), fnum(r["quality"])) for r in ref if r["kind"] == "hull"]
        if len(hr) != len(hull):
            bad.setdefault("hull", []).append(("vertices", hr, hull))
        else:
            for (c1, q1), (c2, q2) in zip(sorted(hr), hull):
                cmp("hull cost", c1, c2, args.tol, "hull")
                cmp("hull quality", q1, q2, args.tol, "hull")
    # λ = 0 at the artifact's margin and race: "the current policy"
    cur = replay(d, float(pol.get("lambda", 0)), float(pol.get("margin", 0)), float(pol.get("race", 0)),
                 ac, args.cancel_billing)
    lam0 = replay(d, 0.0, 0.0, 0.0, ac, args.cancel_billing)
    printed = {}
    if args.curves_out:
        txt = open(args.curves_out).read()
        m = re.search(re.escape(router) + r": \d+ requests, \d+ operating points; AIQ ([\d.]+|n/a), convex hull of "
                      r"single tiers ([\d.]+|n/a).*?; oracle ([\d.]+); current policy \(.*?\): quality ([\d.]+), "
                      r"cost ([\d.]+)", txt)
        if not m:
            bad.setdefault("printed", []).append(("curves output", "no AIQ line", ""))
        else:
            f = lambda v: math.nan if v == "n/a" else float(v)
            for name, tri, mine in [("printed AIQ", f(m.group(1)), 100 * router_aiq),
                                    ("printed hull AIQ", f(m.group(2)), 100 * hull_aiq),
                                    ("printed oracle", f(m.group(3)), 100 * oracle[1]),
                                    ("printed quality", f(m.group(4)), 100 * cur["quality"]),
                                    ("printed cost", f(m.group(5)), cur["cost"])]:
                cmp(name, tri, mine, 0.005 + 1e-9, "curves output")
                printed[name] = (tri, mine)
    d_log, lo_log, hi_log = d, lo, hi
    if args.eval_json:
        # eval's figures are quality and price only: cost is each tier's price, there is no
        # latency (a race's lower answer counts as first, a cancelled call is billed in full) and
        # no confidence (a race always keeps the upper answer).
        de = dict(d, cost=np.tile(d["prices"], (n, 1)), lat=np.full(s.shape, math.nan),
                  q=np.full(s.shape, math.nan), has_lat=False)
        cur = replay(de, float(pol.get("lambda", 0)), float(pol.get("margin", 0)), float(pol.get("race", 0)),
                     ac, "full")
        lam0 = replay(de, 0.0, 0.0, 0.0, ac, "full")
        singles = [(float(d["prices"][k]), sq) for k, (_, sq) in enumerate(singles)]
        lo, hi = float(d["prices"][0]), float(d["prices"][-1])
        e_hull_aiq = aiq(singles, lo, hi)
        d = de
        e = json.load(open(args.eval_json))
        tol = args.tol
        cmp("eval routed quality", e["routed"]["quality"], 100 * cur["quality"], tol, "eval")
        cmp("eval routed cost", e["routed"]["cost"], cur["cost"], tol, "eval")
        cmp("eval λ=0 quality", e["lambda0"]["quality"], 100 * lam0["quality"], tol, "eval")
        cmp("eval λ=0 cost", e["lambda0"]["cost"], lam0["cost"], tol, "eval")
        for k, sgl in enumerate(e["singles"]):
            cmp("eval single quality", sgl["quality"], 100 * singles[k][1], tol, sgl["name"])
        kb = max(range(nt), key=lambda k: (singles[k][1], -k))
        cmp("eval best single", e["best_single"]["quality"], 100 * singles[kb][1], tol, e["best_single"]["name"])
        if e["best_single"]["name"] != d["names"][kb]:
            bad.setdefault("eval best single name", []).append(("eval", e["best_single"]["name"], d["names"][kb]))
        cmp("eval gain", e["gain_over_best_single"], 100 * (lam0["quality"] - singles[kb][1]), tol, "eval")
        cmp("eval oracle", e["oracle"], 100 * oracle[1], tol, "eval")
        cmp("eval cost range", e["cost_lo"], lo, tol, "lo")
        cmp("eval cost range", e["cost_hi"], hi, tol, "hi")
        for k, sh in enumerate(e["shares_lambda0"]):
            cmp("eval shares λ=0", sh["share"], lam0["share:" + d["names"][k]], tol, sh["name"])
        cmp("eval hull AIQ", e["aiq"]["hull_of_singles"], 100 * e_hull_aiq, tol, "eval")
        # eval's own λ grid: its AIQ is held to the AIQ of the exact sweep's curve
        ex = exact_sweep(d, 0.0, 0.0, ac, args.cancel_billing)
        ex_aiq = aiq([(c, q) for _, q, c in ex], lo, hi)
        cmp("eval router AIQ vs exact sweep", e["aiq"]["router"], 100 * ex_aiq, 1e-4, "eval")
        printed["eval router AIQ (exact sweep)"] = (e["aiq"]["router"], 100 * ex_aiq)
    exact = None
    if args.exact:
        m0, r0 = (float(rows[0]["margin"]), float(rows[0]["race"])) if rows else (0.0, 0.0)
        ex = exact_sweep(d_log, m0, r0, ac, args.cancel_billing)
        exact = (len(ex), 100 * aiq([(c, q) for _, q, c in ex], lo_log, hi_log))
    nbad = sum(len(v) for v in bad.values())
    if args.json:
        print(json.dumps({"rows": len(rows), "requests": n, "max_abs_diff": maxdiff,
                          "mismatches": {c: len(v) for c, v in bad.items()}}))
    else:
        print(f"{router}: {len(rows)} rows, {n} requests, {nt} tiers; cancel billing {args.cancel_billing}; "
              f"AIQ {100 * router_aiq:.4f}, hull of singles {100 * hull_aiq:.4f} (cost {lo_log:.6g}..{hi_log:.6g}); "
              f"oracle {100 * oracle[1]:.4f}")
        if exact:
            print(f"  exact λ sweep: {exact[0]} operating points, AIQ {exact[1]:.4f}")
        print("max abs difference per column:")
        for c in maxdiff:
            print(f"  {c:32s} {maxdiff[c]:.3g}  ({len(bad.get(c, []))} off)")
        for k, (tri, mine) in printed.items():
            print(f"  {k}: triage {tri}, check {mine:.6f}")
        for c, v in bad.items():
            for where, tri, mine in v[:args.show]:
                print(f"  OFF {c} {where}: triage {tri!r}, check {mine!r}")
    return 1 if nbad else 0


if __name__ == "__main__":
    sys.exit(main())
