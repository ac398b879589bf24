"""The anchors' scikit-learn router on the quality suite's logs and folds.

The model is ../shared/anchors/sklearn_baseline.py's, unchanged:
TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True) and
LogisticRegression(C=1.0, max_iter=2000), on the label strong-wins (the strong
tier's score is above the fast tier's). What differs from that script is only
where the data comes from: the project's JSONL log (any set the suite builds)
and the suite's folds (folds.tsv, written by bench/quality/folds from the id
hash datasets.Fold(id, 1, 5)), so the baseline and Triage are scored on
exactly the same split.

Only records with a score for both tiers take part, as in `triage train`.
A training fold whose labels are all one class cannot fit a classifier: that
fold predicts the fold's base rate (a constant, so a random order within the
fold) and the note says so. So does a fold whose vocabulary is empty after
min_df=2 (possible on the smallest sets).

Run alone on one set (report.py calls it for every set):
    /usr/bin/python3 bench/quality/baseline.py LOG FOLDS.tsv FAST STRONG
It prints the set's size, the tiers' means and the baseline's APGR.
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression


def record_text(rec):
    """The prompt as Triage sees it (datasets.Record.Text): the prompt
    field, else the messages' contents joined by newlines."""
    if rec.get("prompt") or not rec.get("messages"):
        return rec.get("prompt", "")
    return "\n".join(m.get("content", "") for m in rec["messages"])


def read_folds(path):
    folds = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            rid, k = line.rstrip("\n").rsplit("\t", 1)
            folds[rid] = int(k)
    return folds


def load(log, folds_path, fast, strong):
    """The records of log with both tiers' scores, as parallel arrays:
    ids, prompts, fast scores, strong scores and folds."""
    folds = read_folds(folds_path)
    ids, prompts, wf, ws, fk = [], [], [], [], []
    with open(log, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            rec = json.loads(line)
            o = rec.get("outcomes") or {}
            if fast not in o or strong not in o:
                continue
            if rec["id"] not in folds:
                raise SystemExit(f"{log}:{n}: id {rec['id']!r} is not in {folds_path}; rebuild the folds")
            ids.append(rec["id"])
            prompts.append(record_text(rec))
            wf.append(float(o[fast]["score"]))
            ws.append(float(o[strong]["score"]))
            fk.append(folds[rec["id"]])
    return ids, prompts, np.array(wf), np.array(ws), np.array(fk, dtype=int)


def oof_scores(prompts, label, fold, k=5):
    """Out-of-fold P(label) for every row, and notes on folds that had to
    predict a constant."""
    score = np.zeros(len(prompts))
    notes = []
    for f in range(k):
        test = np.nonzero(fold == f)[0]
        train = np.nonzero(fold != f)[0]
        if len(test) == 0:
            continue
        y = label[train]
        if len(train) == 0 or y.min() == y.max():
            rate = float(y.mean()) if len(train) else 0.5
            score[test] = rate
            notes.append(f"fold {f}: training labels are all {int(y[0]) if len(train) else '-'}; predicted the base rate {rate:.3f}")
            continue
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        try:
            x = vec.fit_transform([prompts[i] for i in train])
        except ValueError as e:  # no term in two or more training prompts
            rate = float(y.mean())
            score[test] = rate
            notes.append(f"fold {f}: {e}; predicted the base rate {rate:.3f}")
            continue
        clf = LogisticRegression(C=1.0, max_iter=2000)
        clf.fit(x, y)
        score[test] = clf.predict_proba(vec.transform([prompts[i] for i in test]))[:, 1]
    return score, notes


def run(log, folds_path, fast, strong):
    """Loads a set and scores it out of fold. Returns the data, the scores,
    the notes and the seconds spent (reading the log and the five fits, as
    `triage train` and `triage score` read theirs)."""
    t = time.perf_counter()
    ids, prompts, wf, ws, fold = load(log, folds_path, fast, strong)
    score, notes = oof_scores(prompts, (ws > wf).astype(int), fold)
    return {"ids": ids, "fast": wf, "strong": ws, "score": score, "notes": notes,
            "seconds": time.perf_counter() - t}


def anchors_metrics():
    """Imports ../shared/anchors/metrics.py (or $ANCHORS/metrics.py) in place."""
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.environ.get("TRIAGE_DATASETS", os.path.join(here, "..", "..", "..", "shared", "datasets"))
    anchors = os.environ.get("ANCHORS", os.path.join(data, "..", "anchors"))
    if not os.path.exists(os.path.join(anchors, "metrics.py")):
        raise SystemExit(f"no metrics.py in {anchors}; set ANCHORS to the anchors folder")
    sys.path.insert(0, os.path.abspath(anchors))
    import metrics
    return metrics


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__.split("Run alone")[1])
    metrics = anchors_metrics()
    r = run(*sys.argv[1:])
    print(json.dumps({"n": len(r["ids"]), "r_fast": r["fast"].mean(), "r_strong": r["strong"].mean(),
                      "apgr": metrics.apgr(r["score"], r["fast"], r["strong"]),
                      "seconds": round(r["seconds"], 2), "notes": r["notes"]}))
