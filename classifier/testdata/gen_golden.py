"""Generate golden.json: expected values for the classifier package's tests.

Run from anywhere with Debian's python3 (numpy, scipy, scikit-learn 1.2.1):

    /usr/bin/python3 classifier/testdata/gen_golden.py

Where the numbers come from:
  * pgr curves, APGR, CPT: the functions of ../shared/anchors/metrics.py
    (the project's reference), found via $TRIAGE_ANCHORS or relative to
    this file (<repo root>/../shared/anchors). Cases without tied scores
    are exact; the tie case records metrics.py's 8-draw approximation.
  * AUC, log loss, Brier: sklearn.metrics (roc_auc_score, log_loss,
    brier_score_loss) with sample_weight. log_loss gets eps=1e-15
    explicitly: scikit-learn 1.2's default ("auto") clips at 2.2e-16.
  * ECE: numpy, written here from the definition in docs/design.md (10
    equal-width bins, sum of |mean p - mean y| times bin share).
  * Logistic regression: sklearn LogisticRegression (newton-cg, tol 1e-8)
    on the same rows, with C = 1/(L2 * sum of weights), which is the same
    optimum as the package's mean-loss objective; duplicates within a row
    are summed by scipy.sparse. grad_norm is the 2-norm of the mean-loss
    gradient there. (lbfgs stops early on scipy's ftol: only ~1e-5.)
  * Platt: sklearn.calibration._sigmoid_calibration, polished with scipy
    BFGS to gtol 1e-12 on the same objective; the package uses
    p = sigmoid(A z + B), so A and B are sklearn's negated.
  * Isotonic: sklearn IsotonicRegression's fitted values (distinct levels).
"""
import json, os, sys
import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import expit, xlogy
from sklearn.calibration import _sigmoid_calibration
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.environ.get("TRIAGE_ANCHORS", os.path.join(HERE, "..", "..", "..", "shared", "anchors"))
sys.path.insert(0, ANCHORS)
import metrics  # noqa: E402

rng = np.random.default_rng(20261127)


def routing_case(name, score, weak, strong):
    c, q, pgr = metrics.pgr_curve(score, weak, strong)
    hard = (np.asarray(weak) < 0.5).astype(int)
    w = rng.uniform(0.2, 3.0, len(score)).round(3)
    return {
        "name": name,
        "score": list(map(float, score)), "weak": list(map(float, weak)), "strong": list(map(float, strong)),
        "c": c.tolist(), "quality": q.tolist(), "pgr": pgr.tolist(),
        "apgr": metrics.apgr(score, weak, strong),
        "cpt": {str(x): metrics.cpt(score, weak, strong, x) for x in (0.3, 0.5, 0.8, 0.95)},
        "auc_weak_fails": metrics.auc(score, hard),
        "auc_weights": w.tolist(),
        "auc_weak_fails_weighted": float(roc_auc_score(hard, score, sample_weight=w)),
    }


routing = []
n = 60
score = rng.normal(size=n)
weak = (rng.random(n) < 0.6 - 0.2 * np.tanh(score)).astype(float)
strong = np.maximum(weak, (rng.random(n) < 0.85).astype(float))
routing.append(routing_case("binary outcomes, continuous scores", score, weak, strong))
n = 200
score = rng.random(n)
weak = rng.random(n).round(2)
strong = np.clip(weak + rng.normal(0.15, 0.2, n), 0, 1).round(2)
routing.append(routing_case("fractional outcomes, continuous scores", score, weak, strong))
n = 40
score = rng.normal(size=n)
weak = (rng.random(n) < 0.5).astype(float)
strong = (rng.random(n) < 0.5).astype(float)  # strong sometimes worse than weak
routing.append(routing_case("strong sometimes worse", score, weak, strong))

# Ties: metrics.py breaks them at random over 8 draws; the package computes
# the exact expectation. Recorded for an approximate comparison only.
n = 400
tscore = rng.integers(0, 5, n).astype(float)
tweak = (rng.random(n) < 0.5 + 0.08 * (2 - tscore)).astype(float)
tstrong = np.maximum(tweak, (rng.random(n) < 0.8).astype(float))
ties = {"score": tscore.tolist(), "weak": tweak.tolist(), "strong": tstrong.tolist(),
        "apgr_8_draws": metrics.apgr(tscore, tweak, tstrong),
        "auc_weak_fails": metrics.auc(tscore, (tweak < 0.5).astype(int))}

# Probability metrics.
n = 300
p = rng.random(n)
p[:5] = [0.0, 1.0, 1e-17, 1 - 1e-17, 0.5]  # exercise the clipping
y = (rng.random(n) < p).astype(float)
y[:2] = [1.0, 0.0]  # confident mistakes hit the clip
w = rng.uniform(0.1, 2.0, n).round(3)


def ece(p, y, bins=10):
    b = np.minimum((np.clip(p, 0, 1) * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        m = b == k
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


prob = {"p": p.tolist(), "y": y.tolist(), "w": w.tolist(),
        "log_loss": float(log_loss(y, p, eps=1e-15, labels=[0, 1])),
        "log_loss_weighted": float(log_loss(y, p, eps=1e-15, sample_weight=w, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "brier_weighted": float(brier_score_loss(y, p, sample_weight=w)),
        "ece10": ece(p, y)}

# Logistic regression reference fit.
n, dim = 400, 12
rows = []
for i in range(n):
    k = rng.integers(2, 7)
    idx = rng.integers(0, dim, k)  # repeats allowed: summed
    val = rng.normal(size=k).round(4)
    rows.append((idx.tolist(), val.tolist()))
true_w = rng.normal(size=dim)
ind = [j for r in rows for j in r[0]]
data = [v for r in rows for v in r[1]]
indptr = np.cumsum([0] + [len(r[0]) for r in rows])
X = scipy.sparse.csr_matrix((data, ind, indptr), shape=(n, dim))
X.sum_duplicates()
z = X @ true_w + 0.4
ylr = (rng.random(n) < expit(z)).astype(float)
wlr = rng.choice([0.5, 1.0, 2.0], n)
lr_cases = []
for l2, use_w in ((1e-2, False), (1e-3, True)):
    sw = wlr if use_w else np.ones(n)
    C = 1.0 / (l2 * sw.sum())
    clf = LogisticRegression(C=C, tol=1e-8, max_iter=100000, solver="newton-cg")
    clf.fit(X, ylr, sample_weight=sw)
    coef, b = clf.coef_[0], float(clf.intercept_[0])
    r = sw * (expit(X @ coef + b) - ylr) / sw.sum()
    gnorm = float(np.linalg.norm(np.concatenate([X.T @ r + l2 * coef, [r.sum()]])))
    lr_cases.append({"l2": l2, "weighted": use_w, "w": coef.tolist(), "b": b, "grad_norm": gnorm})
lr = {"dim": dim, "idx": [r[0] for r in rows], "val": [r[1] for r in rows], "y": ylr.tolist(),
      "weights": wlr.tolist(), "fits": lr_cases}

# Calibration references.
n = 500
zc = rng.normal(0, 2, n)
yc = (rng.random(n) < expit(1.7 * zc - 0.6)).astype(float)
wc = rng.uniform(0.2, 2.0, n).round(3)


def platt(z, y, sw):
    a, b = _sigmoid_calibration(z, y, sample_weight=sw)
    sw1 = np.ones_like(z) if sw is None else sw
    prior0, prior1 = sw1[y <= 0].sum(), sw1[y > 0].sum()
    T = np.where(y > 0, (prior1 + 1) / (prior1 + 2), 1 / (prior0 + 2))

    def f(ab):
        P = expit(-(ab[0] * z + ab[1]))
        return (sw1 * -(xlogy(T, P) + xlogy(1 - T, 1 - P))).sum() / sw1.sum()

    def g(ab):
        P = expit(-(ab[0] * z + ab[1]))
        r = sw1 * (T - P) / sw1.sum()
        return np.array([r @ z, r.sum()])

    res = scipy.optimize.minimize(f, [a, b], jac=g, method="BFGS", options={"gtol": 1e-12})
    return {"sklearn_a": float(-a), "sklearn_b": float(-b), "a": float(-res.x[0]), "b": float(-res.x[1])}


def iso_levels(z, y, sw):
    ir = IsotonicRegression(out_of_bounds="clip").fit(z, y, sample_weight=sw)
    return sorted(set(np.round(ir.predict(z), 12).tolist()))


calib = {"z": zc.tolist(), "y": yc.tolist(), "w": wc.tolist(),
         "platt": platt(zc, yc, None), "platt_weighted": platt(zc, yc, wc),
         "isotonic_levels": iso_levels(zc, yc, None), "isotonic_levels_weighted": iso_levels(zc, yc, wc)}

out = {"generator": "classifier/testdata/gen_golden.py", "routing": routing, "ties": ties,
       "prob": prob, "lr": lr, "calibration": calib}
with open(os.path.join(HERE, "golden.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
