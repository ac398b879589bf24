package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Defaults for CompareOptions and BootstrapOptions.
const (
	// DefaultMargin is how much worse than the champion a challenger may
	// be on the gating metric and still be promoted.
	DefaultMargin = 0.01
	// DefaultResamples is the number of bootstrap resamples.
	DefaultResamples = 1000
	// DefaultLevel is the coverage of the bootstrap intervals.
	DefaultLevel = 0.95
	// DefaultBootstrapSeed fixes the resamples, so a comparison printed
	// twice prints the same intervals.
	DefaultBootstrapSeed = 1
)

// BootstrapOptions fixes how intervals are resampled. Zero values mean
// the defaults.
type BootstrapOptions struct {
	// Resamples is the number of bootstrap resamples; 0 means
	// DefaultResamples.
	Resamples int
	// Level is the interval's coverage in (0,1); 0 means DefaultLevel.
	Level float64
	// Seed of the resampling; 0 means DefaultBootstrapSeed.
	Seed uint64
}

func (o BootstrapOptions) withDefaults() BootstrapOptions {
	if o.Resamples <= 0 {
		o.Resamples = DefaultResamples
	}
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = DefaultLevel
	}
	if o.Seed == 0 {
		o.Seed = DefaultBootstrapSeed
	}
	return o
}

// Interval is a point estimate with a percentile bootstrap interval.
type Interval struct {
	Estimate float64 `json:"estimate"`
	Lo       float64 `json:"lo"`
	Hi       float64 `json:"hi"`
}

// Contains reports whether x lies in [Lo, Hi].
func (iv Interval) Contains(x float64) bool { return iv.Lo <= x && x <= iv.Hi }

// MarshalJSON writes a bound the resamples left undefined as null.
func (iv Interval) MarshalJSON() ([]byte, error) {
	f := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	return json.Marshal(map[string]any{"estimate": f(iv.Estimate), "lo": f(iv.Lo), "hi": f(iv.Hi)})
}

func (iv Interval) String() string {
	return fmt.Sprintf("%.4f [%.4f, %.4f]", iv.Estimate, iv.Lo, iv.Hi)
}

// CompareOptions configures Compare. Zero values mean the defaults, except
// Margin: zero is a valid margin, so callers pass DefaultMargin explicitly.
type CompareOptions struct {
	// Metric gates promotion; "" means apgr.
	Metric Metric
	// Margin is how much worse than the champion the challenger may be on
	// Metric (in the metric's own units) and still be promoted.
	Margin float64
	// Bootstrap fixes the intervals' resampling.
	Bootstrap BootstrapOptions
}

// MetricComparison is one metric for both routers on the same requests.
type MetricComparison struct {
	Metric     Metric   `json:"metric"`
	Champion   Interval `json:"champion"`
	Challenger Interval `json:"challenger"`
	// Gain is the challenger's advantage, signed so that positive is
	// better whichever way the metric improves: challenger − champion for
	// apgr and auc, champion − challenger for log loss. Its interval comes
	// from the same (paired) resamples, so it is much narrower than the
	// two routers' intervals suggest.
	Gain Interval `json:"gain"`
}

// Comparison is the champion against the challenger on one held-out slice.
type Comparison struct {
	// N is the number of held-out requests; ESS their effective number
	// under the weights, (Σw)²/Σw², which is what the intervals' width
	// reflects.
	N   int     `json:"n"`
	ESS float64 `json:"ess"`
	// Metrics holds every metric in Metrics order.
	Metrics []MetricComparison `json:"metrics"`
	// Gate is the metric promotion was decided on, and Margin the
	// tolerance.
	Gate   Metric  `json:"gate"`
	Margin float64 `json:"margin"`
	// Promote is true when the challenger's gain on Gate is at least
	// −Margin.
	Promote bool `json:"promote"`
	// Verdict says why, in a sentence that reads after "promoted: " or
	// "refused: ".
	Verdict string `json:"verdict"`
}

// Of returns the comparison of metric m.
func (c *Comparison) Of(m Metric) MetricComparison {
	for _, mc := range c.Metrics {
		if mc.Metric == m {
			return mc
		}
	}
	return MetricComparison{Metric: m}
}

// ErrNoHeldOut is returned when there is nothing to compare on.
var ErrNoHeldOut = errors.New("no held-out requests to compare on")

// Compare evaluates a champion's and a challenger's p_hard on the same
// held-out requests (labels y, tier scores weak and strong, weights w; w
// nil = all ones) and decides whether the challenger may replace the
// champion: it must not be worse on opts.Metric by more than opts.Margin.
// The decision uses the point estimates; the intervals (a paired
// bootstrap over the requests, with a fixed seed) say how far to trust
// them.
func Compare(champion, challenger, y, weak, strong, w []float64, opts CompareOptions) (*Comparison, error) {
	n := len(y)
	for _, s := range [][]float64{champion, challenger, weak, strong} {
		if len(s) != n {
			panic(fmt.Sprintf("models: compare: slices of length %d and %d", n, len(s)))
		}
	}
	if w != nil && len(w) != n {
		panic(fmt.Sprintf("models: compare: %d weights for %d requests", len(w), n))
	}
	if n == 0 {
		return nil, ErrNoHeldOut
	}
	if opts.Metric == "" {
		opts.Metric = MetricAPGR
	}
	if _, err := ParseMetric(string(opts.Metric)); err != nil {
		return nil, err
	}
	if opts.Margin < 0 || math.IsNaN(opts.Margin) {
		return nil, fmt.Errorf("margin is %v, want 0 or more", opts.Margin)
	}
	bo := opts.Bootstrap.withDefaults()

	c := &Comparison{N: n, ESS: ESS(w, n), Gate: opts.Metric, Margin: opts.Margin}
	type pair struct{ champ, chall []float64 }
	reps := make(map[Metric]*pair, len(Metrics))
	for _, m := range Metrics {
		reps[m] = &pair{}
	}
	// Sorting dominates APGR; each router's order is fixed across
	// resamples, which only change the weights.
	ordChamp, okA := descending(champion)
	ordChall, okB := descending(challenger)
	eval := func(m Metric, p []float64, ord []int, ok bool, count []float64) float64 {
		if m == MetricAPGR {
			if !ok {
				return math.NaN()
			}
			return apgrSorted(ord, p, weak, strong, w, count)
		}
		return m.Eval(p, y, weak, strong, scaled(w, count, n))
	}
	r := rand.New(rand.NewPCG(bo.Seed, 0x626f6f74))
	count := make([]float64, n)
	for b := 0; b < bo.Resamples; b++ {
		clear(count)
		for range n {
			count[r.IntN(n)]++
		}
		for _, m := range Metrics {
			p := reps[m]
			p.champ = append(p.champ, eval(m, champion, ordChamp, okA, count))
			p.chall = append(p.chall, eval(m, challenger, ordChall, okB, count))
		}
	}
	for _, m := range Metrics {
		p := reps[m]
		gain := make([]float64, len(p.champ))
		for i := range gain {
			gain[i] = signedGain(m, p.champ[i], p.chall[i])
		}
		ea := eval(m, champion, ordChamp, okA, nil)
		eb := eval(m, challenger, ordChall, okB, nil)
		c.Metrics = append(c.Metrics, MetricComparison{
			Metric:     m,
			Champion:   percentile(ea, p.champ, bo.Level),
			Challenger: percentile(eb, p.chall, bo.Level),
			Gain:       percentile(signedGain(m, ea, eb), gain, bo.Level),
		})
	}

	g := c.Of(opts.Metric)
	switch gain := g.Gain.Estimate; {
	case math.IsNaN(gain):
		return nil, fmt.Errorf("%s is undefined on the %d held-out requests (one label only, or the tiers score the same on average); hold out more or choose another --metric", opts.Metric, n)
	case gain >= -opts.Margin:
		c.Promote = true
		c.Verdict = fmt.Sprintf("challenger %s %.4f vs champion %.4f (better by %.4f)",
			opts.Metric, g.Challenger.Estimate, g.Champion.Estimate, gain)
		if gain < 0 {
			c.Verdict = fmt.Sprintf("challenger %s %.4f vs champion %.4f (worse by %.4f, within the margin %.4f)",
				opts.Metric, g.Challenger.Estimate, g.Champion.Estimate, -gain, opts.Margin)
		}
	default:
		c.Verdict = fmt.Sprintf("challenger %s %.4f vs champion %.4f is worse by %.4f, more than the margin %.4f",
			opts.Metric, g.Challenger.Estimate, g.Champion.Estimate, -gain, opts.Margin)
	}
	return c, nil
}

func signedGain(m Metric, champ, chall float64) float64 {
	if m.HigherIsBetter() {
		return chall - champ
	}
	return champ - chall
}

// scaled returns w×count (either may be nil, meaning ones).
func scaled(w, count []float64, n int) []float64 {
	if count == nil {
		return w
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = count[i]
		if w != nil {
			out[i] *= w[i]
		}
	}
	return out
}

// percentile returns est with the central level interval of reps,
// ignoring NaN resamples (a resample may draw a single label).
func percentile(est float64, reps []float64, level float64) Interval {
	s := make([]float64, 0, len(reps))
	for _, v := range reps {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return Interval{Estimate: est, Lo: math.NaN(), Hi: math.NaN()}
	}
	slices.Sort(s)
	a := (1 - level) / 2
	return Interval{Estimate: est, Lo: quantileSorted(s, a), Hi: quantileSorted(s, 1-a)}
}

// quantileSorted interpolates linearly between order statistics (the
// numpy default), so intervals do not jump as the resample count changes.
func quantileSorted(s []float64, q float64) float64 {
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (h-float64(lo))*(s[hi]-s[lo])
}
