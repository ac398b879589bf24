package retrain

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DefaultMaxWeight caps inverse propensity weights: a request explored with
// probability 0.01 stands for at most 100 requests. Without a cap one rare
// request can dominate an estimate (and a fit); with it the estimate is
// slightly biased towards the well-sampled requests, and far less noisy.
const DefaultMaxWeight = 100

// InversePropensity returns the weight 1/propensity of a request observed
// with the given probability, capped at maxWeight (0 means
// DefaultMaxWeight). clipped says the cap applied. A propensity outside
// (0,1] is a programmer error in the caller's filtering; it panics.
func InversePropensity(propensity, maxWeight float64) (w float64, clipped bool) {
	if !(propensity > 0 && propensity <= 1) {
		panic(fmt.Sprintf("models: propensity %v outside (0,1]", propensity))
	}
	if maxWeight <= 0 {
		maxWeight = DefaultMaxWeight
	}
	w = 1 / propensity
	if w > maxWeight {
		return maxWeight, true
	}
	return w, false
}

// ESS is Kish's effective sample size of weights w over n requests,
// (Σw)²/Σw²: n for equal weights, less the more unequal they are. w nil is
// n equal weights.
func ESS(w []float64, n int) float64 {
	if w == nil {
		return float64(n)
	}
	var s, s2 float64
	for _, v := range w {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return 0
	}
	return s * s / s2
}

// WeightedMean is the self-normalised (Hájek) mean Σwx/Σw; w nil is the
// plain mean. Normalising by Σw rather than by n keeps the estimate inside
// the range of x whatever the weights, at the cost of a small bias that
// vanishes with n. NaN when Σw is 0.
func WeightedMean(x, w []float64) float64 {
	if w != nil && len(w) != len(x) {
		panic(fmt.Sprintf("models: weighted mean: %d values, %d weights", len(x), len(w)))
	}
	var num, den float64
	for i, v := range x {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		num += wi * v
		den += wi
	}
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

// BootstrapMean is WeightedMean with a percentile bootstrap interval
// (requests resampled with replacement, each keeping its weight).
func BootstrapMean(x, w []float64, opts BootstrapOptions) Interval {
	bo := opts.withDefaults()
	n := len(x)
	est := WeightedMean(x, w)
	if n == 0 {
		return Interval{Estimate: est, Lo: math.NaN(), Hi: math.NaN()}
	}
	r := rand.New(rand.NewPCG(bo.Seed, 0x6d65616e))
	reps := make([]float64, bo.Resamples)
	for b := range reps {
		var num, den float64
		for range n {
			i := r.IntN(n)
			wi := 1.0
			if w != nil {
				wi = w[i]
			}
			num += wi * x[i]
			den += wi
		}
		reps[b] = num / den
	}
	return percentile(est, reps, bo.Level)
}
