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

sys.dont_write_bytecode = True  # no __pycache__ in the repository
import compare
import report


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


if __name__ == "__main__":
    unittest.main()
