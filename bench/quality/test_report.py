"""Tests of the quality suite's report and compare scripts.

Run: cd bench/quality && /usr/bin/python3 -B -m unittest test_report
(needs numpy and scikit-learn, as report.py does; no data).
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the repository
import compare
import report
import splits


def row(name, t, b, ts=10.0, bs=2.0, sd=0.01, oracle=1.2, failed=False, status="ok"):
    return {"set": name, "n": 100, "triage_apgr": t, "baseline_apgr": b, "random_apgr": 0.5,
            "oracle_apgr": oracle, "noise_sd": sd, "triage_seconds": ts, "baseline_seconds": bs,
            "baseline_cached": False, "status": status, "failed": failed,
            "triage_lift": report.lift(t, oracle), "baseline_lift": report.lift(b, oracle)}


class Summary(unittest.TestCase):
    def test_time_is_over_the_sets_in_the_means(self):
        rows = [row("a", 0.6, 0.55, ts=10, bs=2), row("b", 0.5, 0.52, ts=10, bs=2),
                # Triage stopped at fold 0: 0.05 s of Triage beside 2 s of baseline.
                row("c", None, 0.5, ts=0.05, bs=2, failed=True, status="triage train failed on fold 0: x")]
        s = report.summary(rows)
        self.assertIn("Mean APGR over 2 sets: Triage 0.550, baseline 0.535", s)
        self.assertIn("Left out of the means: c: triage train failed on fold 0: x.", s)
        self.assertIn("Time over the 2 sets in the means: Triage 20.0 s", s)
        self.assertIn("(5.00× the baseline), baseline 4.0 s", s)

    def test_time_over_all_sets_when_none_failed(self):
        s = report.summary([row("a", 0.6, 0.55), row("b", 0.5, 0.52)])
        self.assertIn("Time: Triage 20.0 s (5 × train + score per set) (5.00× the baseline), baseline 4.0 s", s)


class BaselineCache(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        self.set = {"name": "t/x", "log": os.path.join(d, "log.jsonl"), "folds": os.path.join(d, "folds.tsv"),
                    "fast": "f", "strong": "s"}
        with open(self.set["log"], "w") as f:
            f.write('{"id":"a","prompt":"p","outcomes":{"f":{"score":0},"s":{"score":1}}}\n')
        with open(self.set["folds"], "w") as f:
            f.write("a\t0\n")
        self.fits = 0
        self.real_run = report.baseline.run

        def fake_run(log, folds, fast, strong):
            self.fits += 1
            return {"ids": ["a"], "fast": np.zeros(1), "strong": np.ones(1), "score": np.full(1, self.fits / 10),
                    "notes": [], "seconds": 0.1}
        report.baseline.run = fake_run

    def tearDown(self):
        report.baseline.run = self.real_run
        self.dir.cleanup()

    def test_reused_while_inputs_are_unchanged(self):
        w = os.path.join(self.dir.name, "work")
        self.assertFalse(report.cached_baseline(w, self.set)["cached"])
        self.assertTrue(report.cached_baseline(w, self.set)["cached"])
        self.assertEqual(self.fits, 1)

    def test_refitted_when_the_folds_or_scipy_change(self):
        w = os.path.join(self.dir.name, "work")
        report.cached_baseline(w, self.set)
        with open(self.set["folds"], "w") as f:
            f.write("a\t1\n")
        self.assertFalse(report.cached_baseline(w, self.set)["cached"])
        real = report.scipy.__version__
        report.scipy.__version__ = real + ".other"
        try:
            r = report.cached_baseline(w, self.set)
        finally:
            report.scipy.__version__ = real
        self.assertFalse(r["cached"], "a scipy upgrade served the old fit (lbfgs is scipy.optimize.minimize)")
        self.assertEqual(self.fits, 3)


class Compare(unittest.TestCase):
    def run_compare(self, a, b):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for tag, rows in (("A", a), ("B", b)):
                p = os.path.join(d, tag + ".jsonl")
                with open(p, "w") as f:
                    for r in rows:
                        f.write(json.dumps(r) + "\n")
                paths.append(p)
            out = io.StringIO()
            argv = sys.argv
            sys.argv = ["compare.py", *paths]
            try:
                with contextlib.redirect_stdout(out):
                    compare.main()
            finally:
                sys.argv = argv
            return out.getvalue()

    def test_a_set_without_an_apgr_in_one_run_is_named(self):
        a = [row("x", 0.6, 0.55), row("y", 0.5, 0.52)]
        b = [row("x", 0.62, 0.55), row("y", None, 0.52, failed=True, status="triage score failed on fold 2: z")]
        out = self.run_compare(a, b)
        self.assertIn("B − A: mean +0.020", out)
        self.assertIn("left out of the means above (1): y (no Triage APGR in B: triage score failed on fold 2: z)", out)


class Splits(unittest.TestCase):
    @staticmethod
    def run_of(seed, rows):
        return (f"seed{seed}.jsonl", {r["set"]: dict(r, fold_seed=seed) for r in rows})

    def test_averages_per_set_and_over_splits(self):
        # x: below on both splits; y: below on one, above on average.
        s1 = [row("x", 0.50, 0.52), row("y", 0.60, 0.61), row("z", 0.47, 0.40), row("w", 0.6, 0.5)]
        s3 = [row("x", 0.51, 0.53), row("y", 0.64, 0.60), row("z", 0.55, 0.50), row("w", 0.6, 0.5)]
        out = "\n".join(splits.summarise([self.run_of(1, s1), self.run_of(3, s3)]))
        self.assertIn("| 1 | 0.5425 | 0.5075 | +0.0350 | 2 of 4 | 1 / 1 |", out)
        self.assertIn("| 3 | 0.5750 | 0.5325 | +0.0425 | 1 of 4 |", out)
        self.assertIn("mean +0.0387, standard deviation 0.0053, from +0.0350 to +0.0425", out)
        self.assertIn("below the baseline on 1 of 4 sets: x -0.020 (issue 10 asks at most a quarter, 1)", out)
        self.assertIn("Below the baseline on every split: 1 (x).", out)
        self.assertIn("averaged per set over the splits is below 0.48 on 0.", out)
        out = "\n".join(splits.summarise([self.run_of(1, s1), self.run_of(3, [row("x", 0.4, 0.5), *s3[1:]])]))
        self.assertIn("below 0.48 on 1: x 0.450.", out)

    def test_refuses_runs_it_cannot_compare(self):
        a = [row("x", 0.5, 0.52), row("y", 0.6, 0.61)]
        for runs, want in (
                ([self.run_of(1, a), self.run_of(1, a)], "both on the folds of seed 1"),
                ([self.run_of(1, a), self.run_of(3, a[:1])], "its sets differ from the first run's (y)"),
                ([self.run_of(1, a), self.run_of(3, [a[0], row("y", None, 0.6, failed=True, status="boom")])],
                 "set y has no Triage APGR (boom)")):
            with self.assertRaises(SystemExit) as e:
                splits.summarise(runs)
            self.assertIn(want, str(e.exception))


if __name__ == "__main__":
    unittest.main()
