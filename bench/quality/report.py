"""Scores the quality suite's sets and prints its table (run.sh calls this).

For every set run.sh built (one line of the manifest), it pools Triage's
out-of-fold p_hard from `triage score`, runs the scikit-learn baseline on the
same folds (baseline.py; its out-of-fold scores are cached in WORK/baseline
and reused while the log, the folds, the tiers, baseline.py and the versions
of Python, scikit-learn, scipy and numpy are unchanged), and computes with
the anchors' metrics.py:
  - Triage's and the baseline's APGR;
  - the random router's (a constant score, so a random order: 0.5 up to the
    noise of metrics.py's eight tie-breaking draws) and the oracle's.
The noise sd column is the spread of APGR over random orders of the set:
a difference well inside it is chance. It prints one markdown table, the summary (mean, worst, sets below the
baseline, times), how each set was built, and writes one JSON line per set
to the results file for compare.py.

A set whose tiers have equal mean scores has no APGR (PGR divides by the
difference): it is listed as undefined and left out of the means. So is a set
where `triage train` or `triage score` failed, or that has no record with
both tiers' scores, with the error; the table and the results file are still
written, but report.py then exits with status 1, so that run.sh fails rather
than end on means over fewer sets than it was asked for.

usage: report.py --manifest M --results R --work WORK [--train-flags F] [--fold-seed N] [--wall S]
manifest: one tab-separated line per set:
  name, log, folds.tsv, fast, strong, Triage scores, Triage seconds, status, how built
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import scipy
import sklearn

sys.dont_write_bytecode = True  # no __pycache__ in the repository
import baseline

# Issue 10's floor: no set's APGR below this.
ACCEPT_FLOOR = 0.48
# Sets whose APGR strays from 0.5 by at most this much under random orders
# (noise sd) can show a 0.02 difference; the summary repeats the mean and
# worst over them, since the worst over all sets is mostly the noisiest set.
QUIET_SD = 0.03

FIELDS = ["name", "log", "folds", "fast", "strong", "scores", "triage_seconds", "status", "built"]


def sha256_file(path, h):
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def baseline_key(s):
    """The cache key of set s's baseline scores: every input they depend on.
    Each file is hashed on its own, so bytes moved from the end of one file
    to the start of the next change the key. scipy is in it because
    LogisticRegression's default solver (lbfgs) is scipy.optimize.minimize."""
    h = hashlib.sha256()
    for p in (baseline.__file__, s["log"], s["folds"]):
        f = hashlib.sha256()
        sha256_file(p, f)
        h.update(f.digest())
    h.update("\0".join([s["fast"], s["strong"], sklearn.__version__, np.__version__, scipy.__version__,
                        platform.python_version()]).encode())
    return h.hexdigest()


def cached_baseline(work, s):
    """The baseline's out-of-fold scores for set s, from the cache when its
    inputs are unchanged, else computed and cached."""
    key = baseline_key(s)
    path = os.path.join(work, "baseline", s["name"].replace("/", "_") + ".json")
    try:
        with open(path) as f:
            c = json.load(f)
        if c["key"] == key:
            return {"ids": c["ids"], "fast": np.array(c["fast"]), "strong": np.array(c["strong"]),
                    "score": np.array(c["score"]), "notes": c["notes"], "seconds": c["seconds"], "cached": True}
    except (OSError, ValueError, KeyError):
        pass
    r = baseline.run(s["log"], s["folds"], s["fast"], s["strong"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"key": key, "ids": r["ids"], "fast": r["fast"].tolist(), "strong": r["strong"].tolist(),
                   "score": r["score"].tolist(), "notes": r["notes"], "seconds": r["seconds"]}, f)
    os.replace(tmp, path)
    r["cached"] = False
    return r


def triage_scores(path, ids):
    """Triage's pooled p_hard in the order of ids."""
    p = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            p[r["id"]] = r["p_hard"]
    missing = [i for i in ids if i not in p]
    if missing:
        raise ValueError(f"{path} has no p_hard for {len(missing)} records (first {missing[0]!r})")
    return np.array([p[i] for i in ids])


def noise_sd(metrics, wf, ws, draws=16):
    """The standard deviation of APGR over random orders of the set: how far a
    router with no skill strays from 0.5 by chance on this set, and so the
    size of a difference that means nothing here."""
    rng = np.random.default_rng(7)
    return float(np.std([metrics.apgr(rng.random(len(wf)), wf, ws) for _ in range(draws)], ddof=1))


def lift(apgr, oracle):
    """The share of the oracle's lift over random, (APGR - 0.5) / (oracle - 0.5):
    1 is the oracle, 0 random. Unlike APGR it does not scale with
    1 / (r_strong - r_fast), so a close pair does not outweigh the others."""
    if apgr is None or oracle is None or oracle <= 0.5:
        return None
    return (apgr - 0.5) / (oracle - 0.5)


def fmt(v, nd=3):
    return "–" if v is None else f"{v:.{nd}f}"


def signed(v):
    return "–" if v is None else f"{v:+.3f}"


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--train-flags", default="")
    ap.add_argument("--go-version", default="")
    ap.add_argument("--fold-seed", type=int, default=1)
    args = ap.parse_args()
    metrics = baseline.anchors_metrics()

    sets = []
    with open(args.manifest) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(FIELDS):
                raise SystemExit(f"{args.manifest}: want {len(FIELDS)} tab-separated fields, got {len(parts)}: {line!r}")
            s = dict(zip(FIELDS, parts))
            s["triage_seconds"] = float(s["triage_seconds"])
            sets.append(s)
    if not sets:
        raise SystemExit("no sets to report (does SETS match any set name?)")

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    rows = []
    for s in sets:
        print(f"baseline {s['name']} ...", file=sys.stderr, flush=True)
        b = cached_baseline(args.work, s)
        wf, ws, n = b["fast"], b["strong"], len(b["ids"])
        row = {"set": s["name"], "n": n, "fast": s["fast"], "strong": s["strong"],
               "r_fast": float(wf.mean()) if n else None, "r_strong": float(ws.mean()) if n else None,
               "triage_apgr": None, "baseline_apgr": None, "random_apgr": None, "oracle_apgr": None,
               "triage_seconds": round(s["triage_seconds"], 2), "baseline_seconds": round(b["seconds"], 2),
               "baseline_cached": b["cached"], "baseline_notes": b["notes"], "status": s["status"],
               "built": s["built"], "train_flags": args.train_flags, "fold_seed": args.fold_seed, "date": date,
               "commit": commit + ("+dirty" if dirty else ""), "go_version": args.go_version,
               "triage_lift": None, "baseline_lift": None, "noise_sd": None,
               "failed": s["status"] != "ok" or n == 0}
        if n == 0:
            row["status"] = "no record has both tiers' scores" + ("" if s["status"] == "ok" else f"; and {s['status']}")
        elif abs(row["r_strong"] - row["r_fast"]) < 1e-12:
            row["status"] = f"APGR undefined: both tiers' mean score is {row['r_fast']:.4f}" + (
                "" if s["status"] == "ok" else f"; and {s['status']}")
        else:
            row["random_apgr"] = metrics.apgr(np.zeros(n), wf, ws)
            row["noise_sd"] = noise_sd(metrics, wf, ws)
            row["oracle_apgr"] = metrics.apgr((ws - wf) + 1e-3 * (1 - wf), wf, ws)
            row["baseline_apgr"] = metrics.apgr(b["score"], wf, ws)
            if s["status"] == "ok":
                try:
                    row["triage_apgr"] = metrics.apgr(triage_scores(s["scores"], b["ids"]), wf, ws)
                except (OSError, ValueError) as e:
                    row["status"] = f"triage scores unusable: {e}"
                    row["failed"] = True
            row["baseline_lift"] = lift(row["baseline_apgr"], row["oracle_apgr"])
            row["triage_lift"] = lift(row["triage_apgr"], row["oracle_apgr"])
        rows.append(row)

    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    print()
    print("| set | n | fast mean | strong mean | Triage APGR | baseline APGR | Δ (Triage − baseline) | random | noise sd | oracle | Triage s | baseline s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        d = None if r["triage_apgr"] is None or r["baseline_apgr"] is None else r["triage_apgr"] - r["baseline_apgr"]
        bs = fmt(r["baseline_seconds"], 1) + (" (cached)" if r["baseline_cached"] else "")
        print(f"| {r['set']} | {r['n']} | {fmt(r['r_fast'])} | {fmt(r['r_strong'])} | {fmt(r['triage_apgr'])} | "
              f"{fmt(r['baseline_apgr'])} | {signed(d)} | {fmt(r['random_apgr'])} | {fmt(r['noise_sd'])} | {fmt(r['oracle_apgr'])} | "
              f"{fmt(r['triage_seconds'], 1)} | {bs} |")
    print()
    print(summary(rows))
    print()
    print("How each set was built (fast → strong, with each model's mean score over the log):")
    for s, r in zip(sets, rows):
        print(f"- {r['set']}: {s['built']}")
    notes = [(r["set"], n) for r in rows for n in r["baseline_notes"]]
    if notes:
        print()
        print("Baseline folds that predicted a constant:")
        for name, n in notes:
            print(f"- {name}: {n}")
    print()
    print(f"Versions: triage at commit {commit}{' (with uncommitted changes)' if dirty else ''}, {args.go_version}; "
          f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, numpy {np.__version__}. "
          f"TRAIN_FLAGS: {args.train_flags or '(none: the defaults)'}; folds of seed {args.fold_seed}.")
    print(f"Results: {args.results}")
    failed = [r for r in rows if r["failed"]]
    if failed:
        print(f"report: {len(failed)} of {len(rows)} sets failed and are left out of the means: "
              + "; ".join(f"{r['set']}: {r['status']}" for r in failed), file=sys.stderr)
        sys.exit(1)


def summary(rows):
    ok = [r for r in rows if r["triage_apgr"] is not None and r["baseline_apgr"] is not None]
    out = []
    if ok:
        t = np.array([r["triage_apgr"] for r in ok])
        b = np.array([r["baseline_apgr"] for r in ok])
        wt, wb = ok[int(t.argmin())], ok[int(b.argmin())]
        below = sum(1 for r in ok if r["triage_apgr"] < r["baseline_apgr"])
        out.append(f"**Mean APGR over {len(ok)} sets: Triage {t.mean():.3f}, baseline {b.mean():.3f} "
                   f"(Δ {t.mean() - b.mean():+.3f}).**")
        out.append(f"Worst set: Triage {wt['triage_apgr']:.3f} ({wt['set']}), baseline {wb['baseline_apgr']:.3f} ({wb['set']}).")
        out.append(f"Triage is below the baseline on {below} of {len(ok)} sets.")
        lt = [r["triage_lift"] for r in ok if r["triage_lift"] is not None and r["baseline_lift"] is not None]
        lb = [r["baseline_lift"] for r in ok if r["triage_lift"] is not None and r["baseline_lift"] is not None]
        if lt:
            out.append(f"Scale-free check, the share of the oracle's lift over random ((APGR − 0.5) / (oracle − 0.5), "
                       f"which does not weigh close pairs up): mean Triage {np.mean(lt):.3f}, baseline {np.mean(lb):.3f} "
                       f"(Δ {np.mean(lt) - np.mean(lb):+.3f}); worst Triage {min(lt):.3f}, baseline {min(lb):.3f}.")
        floor = [r["set"] for r in ok if r["triage_apgr"] < ACCEPT_FLOOR]
        out.append(f"Issue 10's acceptance: mean at least the baseline's + 0.02: {'yes' if t.mean() >= b.mean() + 0.02 else 'no'} "
                   f"(Δ {t.mean() - b.mean():+.3f}); no set below {ACCEPT_FLOOR}: "
                   + ("yes" if not floor else f"no ({len(floor)}: {', '.join(floor)})")
                   + f"; at most a quarter of the sets below the baseline: {'yes' if 4 * below <= len(ok) else 'no'} ({below} of {len(ok)}).")
        quiet = [r for r in ok if r["noise_sd"] is not None and r["noise_sd"] <= QUIET_SD]
        if quiet:
            qt = np.array([r["triage_apgr"] for r in quiet])
            qb = np.array([r["baseline_apgr"] for r in quiet])
            qwt, qwb = quiet[int(qt.argmin())], quiet[int(qb.argmin())]
            out.append(f"Over the {len(quiet)} sets whose noise sd is at most {QUIET_SD} (where a difference of 0.02 "
                       f"stands out from chance): mean Triage {qt.mean():.3f}, baseline {qb.mean():.3f} "
                       f"(Δ {qt.mean() - qb.mean():+.3f}); worst Triage {qwt['triage_apgr']:.3f} ({qwt['set']}), "
                       f"baseline {qwb['baseline_apgr']:.3f} ({qwb['set']}); Triage below the baseline on "
                       f"{sum(1 for r in quiet if r['triage_apgr'] < r['baseline_apgr'])}.")
        close = [r for r in ok if r["oracle_apgr"] is not None and r["oracle_apgr"] > 2]
        if close:
            out.append("Close pairs (oracle APGR above 2: APGR is scaled by 1 / (strong − fast), and so is its noise; "
                       "see the random column): " + ", ".join(f"{r['set']} ({r['oracle_apgr']:.1f})" for r in close) + ".")
    else:
        out.append("No set has both a Triage and a baseline APGR.")
    for r in rows:
        if r not in ok:
            out.append(f"Left out of the means: {r['set']}: {r['status']}.")
    # Over the sets in the means only: a set whose Triage run stopped at a
    # failed fold has a Triage time of a fraction of its five folds beside a
    # baseline time of all five.
    timed = ok
    tt = sum(r["triage_seconds"] for r in timed)
    bt = sum(r["baseline_seconds"] for r in timed)
    cached = sum(1 for r in timed if r["baseline_cached"])
    ratio = f" ({tt / bt:.2f}× the baseline)" if bt > 0 else ""
    over = "" if len(timed) == len(rows) else f" over the {len(timed)} sets in the means"
    out.append(f"Time{over}: Triage {tt:.1f} s (5 × train + score per set){ratio}, baseline {bt:.1f} s (read + 5 fits per set"
               + (f"; {cached} of {len(timed)} sets' baseline times are from the cached run that computed them" if cached else "")
               + ").")
    return "\n".join(out)


if __name__ == "__main__":
    main()
