package models

import (
	"encoding/json"
	"math"

	"github.com/triage-router/triage/classifier"
)

// Report holds the routing metrics of docs/design.md for one router on one set
// of requests. Pointer fields are nil where the figure is not defined
// (a random router has no probabilities, so no log loss).
type Report struct {
	N       int      `json:"n"`
	APGR    float64  `json:"apgr"`
	CPT50   float64  `json:"cpt50"`
	CPT80   float64  `json:"cpt80"`
	CPT95   float64  `json:"cpt95"`
	AUC     *float64 `json:"auc,omitempty"`
	LogLoss *float64 `json:"log_loss,omitempty"`
	Brier   *float64 `json:"brier,omitempty"`
	ECE     *float64 `json:"ece,omitempty"`
	// InSample, where the caller knows it, counts the N requests the
	// router was trained on: 0 for out-of-fold and held-out figures, more
	// when eval measures a router on its own training log. The table's
	// reader is warned on stderr; a script reading --json finds it here.
	InSample *int `json:"in_sample,omitempty"`
	// APGRLo and APGRHi, where the caller computed them (eval, train
	// --holdout), are APGR's 95% bootstrap interval over the N requests,
	// named as Signal names its interval.
	APGRLo *float64 `json:"apgr_lo,omitempty"`
	APGRHi *float64 `json:"apgr_hi,omitempty"`
}

// reportJSON is Report on the wire, its fields in Report's order: a
// figure undefined on the data (NaN: APGR where the tiers' mean scores
// are equal; CPT is then 1, as in metrics.py) is null there, as JSON has
// no NaN.
type reportJSON struct {
	N        int      `json:"n"`
	APGR     *float64 `json:"apgr"`
	CPT50    *float64 `json:"cpt50"`
	CPT80    *float64 `json:"cpt80"`
	CPT95    *float64 `json:"cpt95"`
	AUC      *float64 `json:"auc,omitempty"`
	LogLoss  *float64 `json:"log_loss,omitempty"`
	Brier    *float64 `json:"brier,omitempty"`
	ECE      *float64 `json:"ece,omitempty"`
	InSample *int     `json:"in_sample,omitempty"`
	APGRLo   *float64 `json:"apgr_lo,omitempty"`
	APGRHi   *float64 `json:"apgr_hi,omitempty"`
}

// finiteOrNil is x, or nil for NaN and infinities.
func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// nilToNaN is *x, or NaN for nil.
func nilToNaN(x *float64) float64 {
	if x == nil {
		return math.NaN()
	}
	return *x
}

// optional is x unless it points to an undefined figure, which is left
// out.
func optional(x *float64) *float64 {
	if x == nil {
		return nil
	}
	return finiteOrNil(*x)
}

// MarshalJSON writes an undefined figure as null, and leaves an undefined
// optional one (AUC and the probability figures) out.
func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(reportJSON{
		N: r.N, APGR: finiteOrNil(r.APGR), CPT50: finiteOrNil(r.CPT50), CPT80: finiteOrNil(r.CPT80), CPT95: finiteOrNil(r.CPT95),
		AUC: optional(r.AUC), LogLoss: optional(r.LogLoss), Brier: optional(r.Brier), ECE: optional(r.ECE),
		InSample: r.InSample, APGRLo: optional(r.APGRLo), APGRHi: optional(r.APGRHi),
	})
}

// UnmarshalJSON reads a null figure as NaN.
func (r *Report) UnmarshalJSON(b []byte) error {
	var w reportJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Report{N: w.N, APGR: nilToNaN(w.APGR), CPT50: nilToNaN(w.CPT50), CPT80: nilToNaN(w.CPT80), CPT95: nilToNaN(w.CPT95),
		AUC: w.AUC, LogLoss: w.LogLoss, Brier: w.Brier, ECE: w.ECE, InSample: w.InSample, APGRLo: w.APGRLo, APGRHi: w.APGRHi}
	return nil
}

// Map flattens the report for the artifact's metrics.
func (r Report) Map() map[string]float64 {
	m := map[string]float64{"n": float64(r.N)}
	for k, v := range map[string]*float64{"apgr": &r.APGR, "cpt50": &r.CPT50, "cpt80": &r.CPT80, "cpt95": &r.CPT95,
		"auc": r.AUC, "log_loss": r.LogLoss, "brier": r.Brier, "ece": r.ECE} {
		// A figure undefined on this data (NaN: a held-out set of one
		// class, tiers that tie) is left out; JSON cannot carry it.
		if v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
			m[k] = *v
		}
	}
	return m
}

// ECEBins is the number of equal-width bins for the expected calibration
// error.
const ECEBins = 10

// Evaluate scores a router's probabilities p against labels y and the
// tiers' scores. The routing metrics rank by p; the probability metrics
// judge p as a forecast of y.
func Evaluate(p, y, weak, strong []float64) Report {
	r := rankMetrics(p, weak, strong)
	if len(p) == 0 {
		return r
	}
	// AUC needs classes; a soft label (gain) counts as positive when the
	// strong tier wins (y > 0.5), which leaves 0/1 labels unchanged.
	auc := classifier.AUC(p, binarize(y), nil)
	ll := classifier.LogLoss(p, y, nil)
	br := classifier.Brier(p, y, nil)
	ece := classifier.ECE(p, y, ECEBins)
	r.AUC, r.LogLoss, r.Brier, r.ECE = &auc, &ll, &br, &ece
	return r
}

func rankMetrics(score, weak, strong []float64) Report {
	r := Report{N: len(score)}
	if len(score) == 0 {
		return r
	}
	r.APGR = classifier.APGR(score, weak, strong)
	r.CPT50 = classifier.CPT(score, weak, strong, 0.5)
	r.CPT80 = classifier.CPT(score, weak, strong, 0.8)
	r.CPT95 = classifier.CPT(score, weak, strong, 0.95)
	return r
}

// EvaluateRandom is the random router on the same requests: a constant
// score, whose ties count as a random order (APGR 0.5, AUC 0.5).
func EvaluateRandom(y, weak, strong []float64) Report {
	c := make([]float64, len(weak))
	r := rankMetrics(c, weak, strong)
	if len(c) > 0 {
		auc := classifier.AUC(c, binarize(y), nil)
		r.AUC = &auc
	}
	return r
}

// EvaluateOracle is the router that knows the outcomes: it sends first the
// requests where the strong tier gains, preferring those the fast tier
// fails (the same score as the anchors' sklearn_baseline.py).
func EvaluateOracle(y, weak, strong []float64) Report {
	s := make([]float64, len(weak))
	for i := range s {
		s[i] = (strong[i] - weak[i]) + 1e-3*(1-weak[i])
	}
	r := rankMetrics(s, weak, strong)
	if len(s) > 0 {
		auc := classifier.AUC(s, binarize(y), nil)
		r.AUC = &auc
	}
	return r
}

func binarize(y []float64) []float64 {
	out := make([]float64, len(y))
	for i, v := range y {
		if v > 0.5 {
			out[i] = 1
		}
	}
	return out
}
