package classifier

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Metric constants. The definitions follow ../shared/anchors/metrics.py and
// scikit-learn, which the tests check against.
const (
	// LogLossEps clips probabilities to [LogLossEps, 1−LogLossEps] in
	// LogLoss, as scikit-learn's log_loss does.
	LogLossEps = 1e-15
	// DefaultECEBins is the number of equal-width bins ECE uses when
	// asked for zero.
	DefaultECEBins = 10
)

func checkLen(what string, n int, xs ...[]float64) {
	for _, x := range xs {
		if x != nil && len(x) != n {
			panic(fmt.Sprintf("classifier: %s: slices of length %d and %d", what, n, len(x)))
		}
	}
}

func weightAt(w []float64, i int) float64 {
	if w == nil {
		return 1
	}
	return w[i]
}

// AUC returns the weighted area under the ROC curve of score against
// label: the probability that a random positive (label ≥ 0.5) scores above
// a random negative, pairs weighted by the product of their weights and
// ties counting half. w nil means all ones. It is NaN when either class
// has zero total weight or a score is NaN.
func AUC(score, label, w []float64) float64 {
	checkLen("auc", len(score), label, w)
	order, ok := sortedOrder(score, false)
	if !ok {
		return math.NaN()
	}
	var num, negBelow, pos float64
	for s := 0; s < len(order); {
		e := s
		var pg, ng float64
		for ; e < len(order) && score[order[e]] == score[order[s]]; e++ {
			i := order[e]
			if label[i] >= 0.5 {
				pg += weightAt(w, i)
			} else {
				ng += weightAt(w, i)
			}
		}
		num += pg*negBelow + 0.5*pg*ng
		negBelow += ng
		pos += pg
		s = e
	}
	if !(pos > 0) || !(negBelow > 0) {
		return math.NaN()
	}
	return num / (pos * negBelow)
}

// sortedOrder returns the indices of score sorted ascending (descending if
// desc), ties in index order; ok is false if a score is NaN.
func sortedOrder(score []float64, desc bool) ([]int, bool) {
	order := make([]int, len(score))
	for i, v := range score {
		if math.IsNaN(v) {
			return nil, false
		}
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if desc {
			return cmp.Compare(score[b], score[a])
		}
		return cmp.Compare(score[a], score[b])
	})
	return order, true
}

// clippedLoss is the log loss of probability p against label y in [0,1],
// with p clipped to [LogLossEps, 1−LogLossEps].
func clippedLoss(p, y float64) float64 {
	p = math.Min(math.Max(p, LogLossEps), 1-LogLossEps)
	return -(y*math.Log(p) + (1-y)*math.Log(1-p))
}

// LogLoss returns the weighted mean log loss (cross-entropy) of
// probabilities p against labels y in [0,1]:
// Σ w_i·−(y_i log p_i + (1−y_i) log(1−p_i)) / Σ w_i, with p clipped to
// [LogLossEps, 1−LogLossEps]. w nil means all ones. NaN for empty input.
func LogLoss(p, y, w []float64) float64 {
	checkLen("log loss", len(p), y, w)
	var num, den float64
	for i, v := range p {
		wi := weightAt(w, i)
		num += wi * clippedLoss(v, y[i])
		den += wi
	}
	return num / den
}

// logLossOfLogits is LogLoss of sigmoid(z).
func logLossOfLogits(z, y, w []float64) float64 {
	var num, den float64
	for i, v := range z {
		wi := weightAt(w, i)
		num += wi * clippedLoss(sigmoid(v), y[i])
		den += wi
	}
	return num / den
}

// Brier returns the weighted mean squared error Σ w_i (p_i − y_i)² / Σ w_i.
// w nil means all ones. NaN for empty input.
func Brier(p, y, w []float64) float64 {
	checkLen("brier", len(p), y, w)
	var num, den float64
	for i, v := range p {
		wi := weightAt(w, i)
		d := v - y[i]
		num += wi * d * d
		den += wi
	}
	return num / den
}

// ECE returns the expected calibration error over equal-width bins of
// [0,1]: Σ_b (n_b/n)·|mean p in b − mean y in b|. Bin b holds
// b/bins ≤ p < (b+1)/bins (p = 1 goes in the last bin; p is clamped to
// [0,1] first). bins ≤ 0 means DefaultECEBins. NaN for empty input or a
// NaN probability.
func ECE(p, y []float64, bins int) float64 {
	checkLen("ece", len(p), y)
	if bins <= 0 {
		bins = DefaultECEBins
	}
	if len(p) == 0 {
		return math.NaN()
	}
	sumP := make([]float64, bins)
	sumY := make([]float64, bins)
	count := make([]int, bins)
	for i, v := range p {
		if math.IsNaN(v) {
			return math.NaN()
		}
		v = math.Min(math.Max(v, 0), 1)
		b := min(int(v*float64(bins)), bins-1)
		sumP[b] += v
		sumY[b] += y[i]
		count[b]++
	}
	var ece float64
	n := float64(len(p))
	for b, c := range count {
		if c == 0 {
			continue
		}
		ece += float64(c) / n * math.Abs(sumP[b]/float64(c)-sumY[b]/float64(c))
	}
	return ece
}

// PGRCurve returns the routing curve of score: sending the fraction c of
// prompts with the highest scores to the strong model (quality strong[i],
// in [0,1]) and the rest to the weak one (weak[i]) gives mean quality
// quality(c), and the performance gap recovered
// pgr(c) = (quality(c) − mean(weak)) / (mean(strong) − mean(weak)).
// c runs over 0, 1/n, …, 1 (n+1 points).
//
// Tied scores are in random order, so the curve is the expectation over
// that order: inside a group of tied scores each prompt routed contributes
// the group's mean gain (strong − weak), and the curve is linear across the
// group. metrics.py approximates the same expectation by averaging 8
// random tie-breaks. A constant score is therefore the random router, with
// APGR 0.5.
//
// pgr is NaN when mean(strong) = mean(weak); all three are nil for empty
// input, and quality and pgr are all NaN if a score is NaN.
func PGRCurve(score, weak, strong []float64) (c, quality, pgr []float64) {
	n := len(score)
	checkLen("pgr curve", n, weak, strong)
	if n == 0 {
		return nil, nil, nil
	}
	c = make([]float64, n+1)
	quality = make([]float64, n+1)
	pgr = make([]float64, n+1)
	for k := range c {
		c[k] = float64(k) / float64(n)
	}
	order, ok := sortedOrder(score, true)
	if !ok {
		for k := range quality {
			quality[k], pgr[k] = math.NaN(), math.NaN()
		}
		return c, quality, pgr
	}
	var sw, ss float64
	for i := range weak {
		sw += weak[i]
		ss += strong[i]
	}
	rw, rs := sw/float64(n), ss/float64(n)
	var cum float64 // gain of the prompts routed so far
	for s := 0; s < n; {
		e := s + 1
		for e < n && score[order[e]] == score[order[s]] {
			e++
		}
		var g float64
		for _, i := range order[s:e] {
			g += strong[i] - weak[i]
		}
		m := float64(e - s)
		for k := s + 1; k <= e; k++ {
			// k == e gives g·1 exactly, so the group's end is exact.
			quality[k] = rw + (cum+g*(float64(k-s)/m))/float64(n)
		}
		cum += g
		s = e
	}
	quality[0] = rw
	gap := rs - rw
	for k, q := range quality {
		if gap == 0 {
			pgr[k] = math.NaN()
		} else {
			pgr[k] = (q - rw) / gap
		}
	}
	return c, quality, pgr
}

// APGR returns the area under the PGR curve over c in [0,1] by the
// trapezoid rule (RouteLLM's average performance gap recovered). 0.5 is a
// random router. NaN for empty input or when PGR is undefined.
func APGR(score, weak, strong []float64) float64 {
	c, _, pgr := PGRCurve(score, weak, strong)
	if c == nil {
		return math.NaN()
	}
	var a float64
	for k := 1; k < len(c); k++ {
		a += (c[k] - c[k-1]) * (pgr[k] + pgr[k-1]) / 2
	}
	return a
}

// CPT returns the call-performance threshold: the smallest fraction c
// routed to the strong model with pgr(c) ≥ x, or 1 if there is none (as in
// metrics.py).
func CPT(score, weak, strong []float64, x float64) float64 {
	c, _, pgr := PGRCurve(score, weak, strong)
	for k, v := range pgr {
		if v >= x {
			return c[k]
		}
	}
	return 1
}
