package retrain

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/triage-router/triage/classifier"
)

// Metric names a held-out figure retrain can gate promotion on.
type Metric string

// The metrics a challenger can be compared on.
const (
	// MetricAPGR is the area under the PGR curve (higher is better).
	MetricAPGR Metric = "apgr"
	// MetricAUC is the ROC AUC of p_hard against the label (higher is
	// better).
	MetricAUC Metric = "auc"
	// MetricLogLoss is the mean log loss of p_hard against the label
	// (lower is better).
	MetricLogLoss Metric = "log_loss"
)

// Metrics lists every Metric, in the order reports print them.
var Metrics = []Metric{MetricAPGR, MetricAUC, MetricLogLoss}

// ParseMetric reads a metric name; "" is apgr.
func ParseMetric(s string) (Metric, error) {
	switch Metric(s) {
	case "":
		return MetricAPGR, nil
	case MetricAPGR, MetricAUC, MetricLogLoss:
		return Metric(s), nil
	}
	return "", fmt.Errorf("metric %q is not known; want apgr, auc or log_loss", s)
}

// HigherIsBetter says which way the metric improves.
func (m Metric) HigherIsBetter() bool { return m != MetricLogLoss }

// Eval computes the metric for probabilities p against labels y and the
// tiers' scores, with sample weights w (nil = all ones). Weights make it
// an estimate over the population the weights stand for (inverse
// propensity weights: all traffic, not only the requests observed).
func (m Metric) Eval(p, y, weak, strong, w []float64) float64 {
	switch m {
	case MetricAPGR:
		return WeightedAPGR(p, weak, strong, w)
	case MetricAUC:
		return classifier.AUC(p, y, w)
	case MetricLogLoss:
		return classifier.LogLoss(p, y, w)
	}
	panic("models: unknown metric " + string(m))
}

// WeightedAPGR is classifier.APGR with sample weights: each request counts
// for its weight on the traffic axis c and in the qualities. With w nil (or
// all equal) it equals classifier.APGR. It is NaN when the tiers' weighted
// mean scores are equal (PGR is undefined) or a score is NaN.
func WeightedAPGR(score, weak, strong, w []float64) float64 {
	order, ok := descending(score)
	if !ok {
		return math.NaN()
	}
	return apgrSorted(order, score, weak, strong, w, nil)
}

// descending returns the indices of score from highest to lowest, ties in
// index order; ok is false if a score is NaN.
func descending(score []float64) ([]int, bool) {
	order := make([]int, len(score))
	for i, v := range score {
		if math.IsNaN(v) {
			return nil, false
		}
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	return order, true
}

// apgrSorted is APGR from one pass over the requests in order (highest
// score first): the curve's quality-gain area divided by the tiers' gap,
// NaN when the gap is 0. See curveSorted.
func apgrSorted(order []int, score, weak, strong, w, count []float64) float64 {
	cs := curveSorted(order, score, weak, strong, w, count)
	if cs.Gap == 0 {
		return math.NaN()
	}
	return cs.Area / cs.Gap
}

// curve holds APGR's parts for one router on one (weighted) sample, all
// in the tiers' score units.
type curve struct {
	// Area is APGR's numerator, the quality-gain area
	// ∫₀¹ (r(c) − r_fast) dc: the router's quality minus the fast tier's,
	// averaged over every strong share c. Two routers on the same
	// requests differ in Area by the mean, over strong shares, of their
	// quality difference at the same share. NaN if there is no weight.
	Area float64
	// Gap is APGR's denominator r_strong − r_fast, the same for every
	// router on the sample.
	Gap float64
	// Disagreement is the mean |strong − fast|: how much quality routing
	// can move at all. It bounds Area (|Area| <= Disagreement), is at
	// least |Gap|, equals Gap when the strong tier never scores below the
	// fast one on a request, and stays positive when the tiers tie on
	// average but not request by request.
	Disagreement float64
}

// curveSorted integrates the weighted quality-gain curve over the
// requests in order (highest score first). Each request's weight is w[i]
// (1 if w is nil) times count[i] (1 if count is nil): a bootstrap
// resample passes its multiplicities as count, so the sort is done once
// for every resample.
//
// The curve is piecewise linear: a group of tied scores is routed as a
// random order would be on average, a straight line from the group's start
// to its end, which is what classifier.PGRCurve's per-request points give
// with unit weights. The integral is the sum of the groups' trapezoids.
func curveSorted(order []int, score, weak, strong, w, count []float64) curve {
	weight := func(i int) float64 {
		v := 1.0
		if w != nil {
			v = w[i]
		}
		if count != nil {
			v *= count[i]
		}
		return v
	}
	var total, gap, dis float64
	for _, i := range order {
		wi := weight(i)
		total += wi
		gap += wi * (strong[i] - weak[i])
		dis += wi * math.Abs(strong[i]-weak[i])
	}
	if !(total > 0) {
		return curve{Area: math.NaN(), Gap: math.NaN(), Disagreement: math.NaN()}
	}
	var area, cum float64 // area in (weight × gain) units; cum = gain routed so far
	for s := 0; s < len(order); {
		e := s + 1
		for e < len(order) && score[order[e]] == score[order[s]] {
			e++
		}
		var gw, gg float64
		for _, i := range order[s:e] {
			wi := weight(i)
			gw += wi
			gg += wi * (strong[i] - weak[i])
		}
		area += gw * (2*cum + gg) / 2
		cum += gg
		s = e
	}
	return curve{Area: area / (total * total), Gap: gap / total, Disagreement: dis / total}
}
