"""Summarises quality-suite runs of one commit on several fold splits.

usage: /usr/bin/python3 bench/quality/splits.py A.jsonl B.jsonl ...

Each file is the results of one run of bench/quality/run.sh with its own
FOLD_SEED (and its own WORK). One split's mean APGR moves by about 0.01
with the fold assignment, for Triage and the baseline alike, which is the
size of the differences a change to training is judged on; this prints how
much the comparison with the baseline moves from split to split:

- one line per run: its fold seed, Triage's and the baseline's mean APGR,
  their difference, the sets below the baseline and below 0.48, the worst
  set of each;
- the difference's mean and standard deviation over the runs;
- per set, Triage − baseline averaged over the runs, with issue 10's
  criteria read on those averages (a set's average over splits is a less
  noisy estimate of where it stands than any one split), and the sets
  below the baseline on every split.

Every run must hold the same sets, each with both APGRs, and the runs must
be on different splits; a run with a failed set is refused, since its
means would be over fewer sets than the others'.
"""
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
from compare import load
from report import ACCEPT_FLOOR


def check(runs):
    """Refuses runs that cannot be compared: a set without both APGRs, sets
    that differ between runs, two runs on the same split."""
    names = None
    seeds = {}
    for path, rows in runs:
        for r in rows.values():
            if r.get("triage_apgr") is None or r.get("baseline_apgr") is None:
                raise SystemExit(f"{path}: set {r['set']} has no {'Triage' if r.get('triage_apgr') is None else 'baseline'} "
                                 f"APGR ({r.get('status')}); rerun it so every split has every set")
        if names is None:
            names = set(rows)
        elif set(rows) != names:
            diff = sorted(set(rows) ^ names)
            raise SystemExit(f"{path}: its sets differ from the first run's ({', '.join(diff[:4])}"
                             f"{', ...' if len(diff) > 4 else ''}); run every split on the same SETS")
        seed = next(iter(rows.values())).get("fold_seed", 1)
        if seed in seeds:
            raise SystemExit(f"{path} and {seeds[seed]} are both on the folds of seed {seed}: "
                             "run each split once (FOLD_SEED=N bash bench/quality/run.sh)")
        seeds[seed] = path


def summarise(runs):
    """The lines splits.py prints, for runs [(path, {set: row})]."""
    check(runs)
    out = ["| fold seed | Triage mean | baseline mean | Δ | below the baseline | below "
           f"{ACCEPT_FLOOR} (Triage / baseline) | worst Triage | worst baseline |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    deltas, per, tri = [], {}, {}
    for _, rows in runs:
        rs = list(rows.values())
        t = statistics.fmean(r["triage_apgr"] for r in rs)
        b = statistics.fmean(r["baseline_apgr"] for r in rs)
        deltas.append(t - b)
        wt = min(rs, key=lambda r: r["triage_apgr"])
        wb = min(rs, key=lambda r: r["baseline_apgr"])
        for r in rs:
            per.setdefault(r["set"], []).append(r["triage_apgr"] - r["baseline_apgr"])
            tri.setdefault(r["set"], []).append(r["triage_apgr"])
        out.append(f"| {rs[0].get('fold_seed', 1)} | {t:.4f} | {b:.4f} | {t - b:+.4f} | "
                   f"{sum(r['triage_apgr'] < r['baseline_apgr'] for r in rs)} of {len(rs)} | "
                   f"{sum(r['triage_apgr'] < ACCEPT_FLOOR for r in rs)} / {sum(r['baseline_apgr'] < ACCEPT_FLOOR for r in rs)} | "
                   f"{wt['triage_apgr']:.3f} ({wt['set']}) | {wb['baseline_apgr']:.3f} ({wb['set']}) |")
    n = len(runs)
    sd = f", standard deviation {statistics.stdev(deltas):.4f}" if n > 1 else ""
    out.append("")
    out.append(f"Triage − baseline over the {n} splits: mean {statistics.fmean(deltas):+.4f}{sd}, "
               f"from {min(deltas):+.4f} to {max(deltas):+.4f}.")
    avg = {name: statistics.fmean(d) for name, d in per.items()}
    below = sorted((d, name) for name, d in avg.items() if d < 0)
    out.append(f"Averaged per set over the splits, Triage is below the baseline on {len(below)} of {len(avg)} sets"
               + (": " + ", ".join(f"{name} {d:+.3f}" for d, name in below) if below else "")
               + f" (issue 10 asks at most a quarter, {len(avg) // 4}).")
    low = sorted((statistics.fmean(v), name) for name, v in tri.items() if statistics.fmean(v) < ACCEPT_FLOOR)
    out.append(f"Triage's APGR averaged per set over the splits is below {ACCEPT_FLOOR} on {len(low)}"
               + (": " + ", ".join(f"{name} {v:.3f}" for v, name in low) if low else "") + ".")
    every = sorted(name for name, d in per.items() if all(x < 0 for x in d))
    out.append(f"Below the baseline on every split: {len(every)}" + (f" ({', '.join(every)})." if every else "."))
    return out


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    runs = [(p, load(p)) for p in sys.argv[1:]]
    print("\n".join(summarise(runs)))


if __name__ == "__main__":
    main()
