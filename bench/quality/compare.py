"""Compares two quality-suite runs set by set (results files of run.sh).

usage: /usr/bin/python3 bench/quality/compare.py A.jsonl B.jsonl

Prints, for every set in both runs, Triage's APGR in A and B and the
difference B − A (with the baseline's APGR of each run, which is the same
when both ran on the same folds and scikit-learn), then the mean and the
worst of each run over the sets both have an APGR for, how many sets each is
below the baseline, and the largest gains and losses. Run B is usually a
variant (TRAIN_FLAGS=...) and A the defaults.
"""
import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
from report import ACCEPT_FLOOR, QUIET_SD


def load(path):
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                rows[r["set"]] = r
            except (ValueError, KeyError) as e:
                raise SystemExit(f"{path}:{n}: {e}; want a results line of bench/quality/run.sh")
    return rows


def f3(v):
    return "–" if v is None else f"{v:.3f}"


def label(rows):
    r = next(iter(rows.values()), {})
    return f"{r.get('commit', '?')} {r.get('train_flags') or '(defaults)'} {r.get('date', '')}"


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    a, b = load(sys.argv[1]), load(sys.argv[2])
    print(f"A: {sys.argv[1]}: {label(a)}")
    print(f"B: {sys.argv[2]}: {label(b)}")
    print()
    print("| set | n | A Triage | B Triage | B − A | A baseline | B baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    both = []
    for name in [s for s in a if s in b]:
        ra, rb = a[name], b[name]
        ta, tb = ra.get("triage_apgr"), rb.get("triage_apgr")
        d = None if ta is None or tb is None else tb - ta
        if d is not None:
            both.append((name, ra, rb, d))
        print(f"| {name} | {ra.get('n')} | {f3(ta)} | {f3(tb)} | {'–' if d is None else f'{d:+.3f}'} | "
              f"{f3(ra.get('baseline_apgr'))} | {f3(rb.get('baseline_apgr'))} |")
    print()
    if not both:
        print("No set has a Triage APGR in both runs.")
    else:
        n = len(both)
        for tag, i in (("A", 1), ("B", 2)):
            vals = [x[i]["triage_apgr"] for x in both]
            worst = min(both, key=lambda x: x[i]["triage_apgr"])
            below = sum(1 for x in both if x[i]["baseline_apgr"] is not None and x[i]["triage_apgr"] < x[i]["baseline_apgr"])
            base = [x[i]["baseline_apgr"] for x in both if x[i]["baseline_apgr"] is not None]
            bmean = f"{sum(base) / len(base):.3f}" if len(base) == n else "–"
            floor = sum(1 for v in vals if v < ACCEPT_FLOOR)
            quiet = [x[i]["triage_apgr"] for x in both if (x[1].get("noise_sd") or 1) <= QUIET_SD]
            qmean = f"; mean over the {len(quiet)} sets with noise sd ≤ {QUIET_SD}: {sum(quiet) / len(quiet):.3f}" if quiet else ""
            print(f"{tag}: mean Triage APGR {sum(vals) / n:.3f} over {n} sets (baseline {bmean}); "
                  f"worst {worst[i]['triage_apgr']:.3f} ({worst[0]}); below the baseline on {below} of {n}; "
                  f"below {ACCEPT_FLOOR} on {floor}{qmean}")
        d = [x[3] for x in both]
        print(f"B − A: mean {sum(d) / n:+.3f}; B better on {sum(1 for v in d if v > 0)}, worse on {sum(1 for v in d if v < 0)} of {n}")
        ranked = sorted(both, key=lambda x: x[3])
        print("largest losses: " + ", ".join(f"{x[0]} {x[3]:+.3f}" for x in ranked[:3]))
        print("largest gains: " + ", ".join(f"{x[0]} {x[3]:+.3f}" for x in ranked[::-1][:3]))
    # A set in both files but without a Triage APGR in one (a failed train or
    # score, or an undefined APGR) is left out of both runs' means: name it,
    # so that "over n sets" is not read as every set of the table.
    partial = [(name, tag, r) for name in a if name in b
               for tag, r in (("A", a[name]), ("B", b[name])) if r.get("triage_apgr") is None]
    if partial:
        print(f"left out of the means above ({len({p[0] for p in partial})}): "
              + ", ".join(f"{name} (no Triage APGR in {tag}: {r.get('status', '?')})" for name, tag, r in partial))
    only = sorted(set(a) ^ set(b))
    if only:
        shown = ", ".join(f"{s} ({'A' if s in a else 'B'})" for s in only[:6])
        print(f"in one run only ({len(only)}): {shown}" + (", ..." if len(only) > 6 else ""))


if __name__ == "__main__":
    main()
