package retrain

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/stat"

	"github.com/triage-router/triage/internal/plural"
)

// Defaults for CompareOptions and BootstrapOptions.
const (
	// DefaultMargin is how much worse than the champion a challenger may
	// be on the gating metric and still be promoted.
	DefaultMargin = 0.01
	// DefaultGateSE is how many standard errors of the gated gain widen
	// the margin: a challenger is refused only when it is worse than the
	// margin by more than the held-out slice's own noise. docs/loop.md
	// (§3, the gate) has the runs that chose it: on the ~35 explored
	// records an ε = 0.02 loop leaves to judge on, the point-estimate gate
	// (0) refused five of seven challengers that were better on the test
	// slice. At that size neither gate reliably refuses a worse one (of
	// seven trained on shuffled outcomes, the point estimate refused four,
	// this one one); only a larger slice does, and there the standard
	// error shrinks as 1/√n.
	DefaultGateSE = 1.0
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

// String prints "undefined" for a NaN estimate (see
// MetricComparison.Undefined) rather than NaN.
func (iv Interval) String() string {
	if math.IsNaN(iv.Estimate) {
		return "undefined"
	}
	return fmt.Sprintf("%.4f [%.4f, %.4f]", iv.Estimate, iv.Lo, iv.Hi)
}

// CompareOptions configures Compare. Zero values mean the defaults, except
// Margin: zero is a valid margin, so callers pass DefaultMargin explicitly.
type CompareOptions struct {
	// Metric gates promotion; "" means apgr.
	Metric Metric
	// Margin is how much worse than the champion the challenger may be on
	// Metric and still be promoted: in the metric's own units for auc and
	// log loss; for apgr, a share of the tiers' mean disagreement
	// |strong − fast|, so the gate on the quality-gain area is the APGR
	// gate when the strong tier never scores below the fast one (see
	// Comparison.GateMargin).
	Margin float64
	// SE is how many standard errors of the gated gain (the standard
	// deviation of its paired bootstrap resamples) are added to the
	// margin before a challenger is refused; 0 gates on the point
	// estimate alone. Like Margin, zero is valid, so callers pass
	// DefaultGateSE explicitly.
	SE float64
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
	// Undefined, when set, says why the metric has no value on these
	// requests; the estimates are then NaN (null in JSON). APGR is
	// undefined when the tiers' gap, its denominator, is within noise.
	Undefined string `json:"undefined,omitempty"`
}

// AreaComparison is APGR's parts for both routers on the same requests,
// in the tiers' score units, each with its paired bootstrap interval.
// Gating on the area rather than on APGR avoids dividing by the tiers'
// gap: both routers share that denominator, so when it is positive the
// area gain has APGR's gain's sign (and equals it times the gap); when it
// is within noise APGR is a ratio of noise, and when it is negative
// APGR's order is reversed, while the area still says which router keeps
// the better answers.
type AreaComparison struct {
	// Champion and Challenger are the quality-gain areas
	// ∫₀¹ (r(c) − r_fast) dc, and Gain is challenger − champion: the
	// challenger's quality minus the champion's at the same strong share,
	// averaged over every share.
	Champion   Interval `json:"champion"`
	Challenger Interval `json:"challenger"`
	Gain       Interval `json:"gain"`
	// Gap is the strong tier's mean score minus the fast tier's, APGR's
	// denominator; APGR is reported only when its interval excludes 0.
	Gap Interval `json:"gap"`
	// Disagreement is the mean |strong − fast|, the quality routing can
	// move at all; the apgr gate's margin is a share of it.
	Disagreement Interval `json:"disagreement"`
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
	// Area is APGR's numerator and denominator for both routers, whatever
	// the gate.
	Area AreaComparison `json:"quality_area"`
	// Gate is the metric promotion was decided on, and Margin the
	// tolerance as given (CompareOptions.Margin).
	Gate   Metric  `json:"gate"`
	Margin float64 `json:"margin"`
	// GateGain is the statistic the verdict compares, with its interval:
	// for apgr the quality-gain area's gain (Area.Gain), else the
	// metric's Gain. GateMargin is Margin in GateGain's units: for apgr
	// Margin × Area.Disagreement, else Margin.
	GateGain   Interval `json:"gate_gain"`
	GateMargin float64  `json:"gate_margin"`
	// GateSE is GateGain's standard error (the standard deviation of its
	// resamples), GateSEs the multiple of it the gate allows
	// (CompareOptions.SE), and GateAllowance = GateMargin + GateSEs ×
	// GateSE, the loss beyond which the challenger is refused.
	GateSE        float64 `json:"gate_se"`
	GateSEs       float64 `json:"gate_ses"`
	GateAllowance float64 `json:"gate_allowance"`
	// Promote is true when GateGain's estimate is at least −GateAllowance.
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
// champion: it must not be worse on opts.Metric by more than opts.Margin
// plus opts.SE standard errors of the paired difference, so a slice too
// small to tell the two apart does not refuse a challenger (see gate).
// The standard error and the intervals come from a paired bootstrap over
// the requests, with a fixed seed.
//
// The apgr gate compares the quality-gain areas (APGR's numerators), not
// APGR itself: see AreaComparison for why, and CompareOptions.Margin for
// the margin's units. APGR is still reported, or marked undefined when
// the tiers' gap is within noise.
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
	if opts.SE < 0 || math.IsNaN(opts.SE) || math.IsInf(opts.SE, 0) {
		return nil, fmt.Errorf("standard errors of the gate are %v, want 0 or more", opts.SE)
	}
	bo := opts.Bootstrap.withDefaults()

	c := &Comparison{N: n, ESS: ESS(w, n), Gate: opts.Metric, Margin: opts.Margin}
	// Sorting dominates APGR; each router's order is fixed across
	// resamples, which only change the weights. A router with a NaN score
	// has no order and so no area; the gap does not depend on the order.
	ordChamp, okA := descending(champion)
	ordChall, okB := descending(challenger)
	identity := make([]int, n)
	for i := range identity {
		identity[i] = i
	}
	curveOf := func(p []float64, ord []int, ok bool, count []float64) curve {
		if !ok {
			cv := curveSorted(identity, p, weak, strong, w, count)
			cv.Area = math.NaN()
			return cv
		}
		return curveSorted(ord, p, weak, strong, w, count)
	}
	apgr := func(cv curve) float64 {
		if cv.Gap == 0 {
			return math.NaN()
		}
		return cv.Area / cv.Gap
	}
	others := []Metric{MetricAUC, MetricLogLoss}

	// One row of statistics per resample, champion and challenger side
	// by side; every interval below is a percentile of one column.
	type pair struct{ champ, chall []float64 }
	reps := make(map[Metric]*pair, len(Metrics))
	for _, m := range Metrics {
		reps[m] = &pair{}
	}
	var area pair
	var gaps, dis []float64
	r := rand.New(rand.NewPCG(bo.Seed, 0x626f6f74))
	count := make([]float64, n)
	for b := 0; b < bo.Resamples; b++ {
		clear(count)
		for range n {
			count[r.IntN(n)]++
		}
		ca, cb := curveOf(champion, ordChamp, okA, count), curveOf(challenger, ordChall, okB, count)
		area.champ, area.chall = append(area.champ, ca.Area), append(area.chall, cb.Area)
		gaps, dis = append(gaps, ca.Gap), append(dis, ca.Disagreement)
		reps[MetricAPGR].champ = append(reps[MetricAPGR].champ, apgr(ca))
		reps[MetricAPGR].chall = append(reps[MetricAPGR].chall, apgr(cb))
		sw := scaled(w, count, n)
		for _, m := range others {
			p := reps[m]
			p.champ = append(p.champ, m.Eval(champion, y, weak, strong, sw))
			p.chall = append(p.chall, m.Eval(challenger, y, weak, strong, sw))
		}
	}

	ca, cb := curveOf(champion, ordChamp, okA, nil), curveOf(challenger, ordChall, okB, nil)
	// gainReps keeps each gated statistic's resampled gains for the
	// gate's standard error.
	gainReps := map[Metric][]float64{MetricAPGR: diff(area.chall, area.champ)}
	c.Area = AreaComparison{
		Champion:     percentile(ca.Area, area.champ, bo.Level),
		Challenger:   percentile(cb.Area, area.chall, bo.Level),
		Gain:         percentile(cb.Area-ca.Area, gainReps[MetricAPGR], bo.Level),
		Gap:          percentile(ca.Gap, gaps, bo.Level),
		Disagreement: percentile(ca.Disagreement, dis, bo.Level),
	}
	for _, m := range Metrics {
		p := reps[m]
		var ea, eb float64
		if m == MetricAPGR {
			ea, eb = apgr(ca), apgr(cb)
		} else {
			ea, eb = m.Eval(champion, y, weak, strong, w), m.Eval(challenger, y, weak, strong, w)
		}
		gain := make([]float64, len(p.champ))
		for i := range gain {
			gain[i] = signedGain(m, p.champ[i], p.chall[i])
		}
		if m != MetricAPGR {
			gainReps[m] = gain
		}
		mc := MetricComparison{
			Metric:     m,
			Champion:   percentile(ea, p.champ, bo.Level),
			Challenger: percentile(eb, p.chall, bo.Level),
			Gain:       percentile(signedGain(m, ea, eb), gain, bo.Level),
		}
		if m == MetricAPGR && !resolved(c.Area.Gap) {
			// A ratio whose denominator's interval straddles 0 takes any
			// value, e.g. −71 and −80 for two good routers; printing it
			// would only mislead.
			g := c.Area.Gap
			mc.Undefined = fmt.Sprintf("the tiers' gap (strong − fast) %+.4f [%+.4f, %+.4f] is within noise, and APGR divides by it", g.Estimate, g.Lo, g.Hi)
			undef := Interval{Estimate: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
			mc.Champion, mc.Challenger, mc.Gain = undef, undef, undef
		}
		c.Metrics = append(c.Metrics, mc)
	}

	if err := c.gate(opts, gainReps[opts.Metric]); err != nil {
		return nil, err
	}
	return c, nil
}

// resolved reports whether the gap's interval excludes 0, the condition
// for APGR to be a figure rather than a ratio of noise.
func resolved(gap Interval) bool {
	return gap.Estimate != 0 && (gap.Lo > 0 || gap.Hi < 0)
}

// gate decides c.Promote and c.Verdict: the challenger is refused when
// the gated gain's point estimate is below −(margin + opts.SE standard
// errors), the standard error being the spread of reps, the gain's paired
// resamples. The margin is the loss a user accepts; the standard errors
// keep the verdict from turning on the held-out slice's noise, which on
// the few explored records a loop judges on is several times the margin
// (docs/loop.md, §3).
func (c *Comparison) gate(opts CompareOptions, reps []float64) error {
	m := opts.Metric
	g := c.Of(m)
	var head, what string // what the verdict compares, in words
	switch m {
	case MetricAPGR:
		a := c.Area
		switch {
		case math.IsNaN(a.Gain.Estimate):
			return fmt.Errorf("apgr is undefined on the %s (a p_hard is NaN); choose another --metric", plural.Count(c.N, "held-out request"))
		case a.Disagreement.Estimate == 0:
			return fmt.Errorf("apgr cannot tell the routers apart on the %s: the tiers score the same on every one, so routing changes nothing; hold out more or choose another --metric", plural.Count(c.N, "held-out request"))
		}
		c.GateGain = a.Gain
		// The margin scales with what routing can move at all, so it
		// keeps its meaning when the tiers tie on average. When the
		// strong tier never scores below the fast one, Disagreement is
		// the gap and this is exactly the APGR gate with the same margin.
		c.GateMargin = opts.Margin * a.Disagreement.Estimate
		head = fmt.Sprintf("challenger apgr %.4f vs champion %.4f", g.Challenger.Estimate, g.Champion.Estimate)
		if g.Undefined != "" {
			head = fmt.Sprintf("challenger apgr undefined (the tiers' gap %+.4f is within noise)", a.Gap.Estimate)
		}
		what = fmt.Sprintf("; quality-gain area %.4f vs %.4f", a.Challenger.Estimate, a.Champion.Estimate)
	default:
		if math.IsNaN(g.Gain.Estimate) {
			return fmt.Errorf("%s is undefined on the %s (one label only); hold out more or choose another --metric", m, plural.Count(c.N, "held-out request"))
		}
		c.GateGain, c.GateMargin = g.Gain, opts.Margin
		head = fmt.Sprintf("challenger %s %.4f vs champion %.4f", m, g.Challenger.Estimate, g.Champion.Estimate)
	}
	c.GateSE, c.GateSEs = stddev(reps), opts.SE
	c.GateAllowance = c.GateMargin + c.GateSEs*c.GateSE
	margin := fmt.Sprintf("the margin %.4f", c.GateMargin)
	if m == MetricAPGR {
		margin = fmt.Sprintf("the margin %.4f (%.4f × mean |strong − fast| %.4f)", c.GateMargin, opts.Margin, c.Area.Disagreement.Estimate)
	}
	allowance := margin
	if c.GateSEs > 0 {
		allowance += fmt.Sprintf(" plus %s of the %d-request slice (%.4f)", countFloat(c.GateSEs, "standard error"), c.N, c.GateSEs*c.GateSE)
	}
	switch gain := c.GateGain.Estimate; {
	case gain >= 0:
		c.Promote = true
		c.Verdict = fmt.Sprintf("%s%s (better by %.4f)", head, what, gain)
	case gain >= -c.GateMargin:
		c.Promote = true
		c.Verdict = fmt.Sprintf("%s%s (worse by %.4f, within %s)", head, what, -gain, margin)
	case gain >= -c.GateAllowance:
		c.Promote = true
		c.Verdict = fmt.Sprintf("%s%s (worse by %.4f, within %s: the slice cannot tell them apart)", head, what, -gain, allowance)
	default:
		sep := " is"
		if what != "" {
			sep = ","
		}
		c.Verdict = fmt.Sprintf("%s%s%s worse by %.4f, more than %s", head, what, sep, -gain, allowance)
	}
	return nil
}

// stddev is the sample standard deviation of the finite values of xs, 0
// when fewer than two are finite (a resample can leave a metric
// undefined).
func stddev(xs []float64) float64 {
	fin := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			fin = append(fin, x)
		}
	}
	if len(fin) < 2 {
		return 0
	}
	return stat.StdDev(fin, nil)
}

// countFloat says "1 standard error" or "1.5 standard errors".
func countFloat(k float64, unit string) string {
	if k == 1 {
		return "1 " + unit
	}
	return strconv.FormatFloat(k, 'g', -1, 64) + " " + unit + "s"
}

// diff returns a − b elementwise.
func diff(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range out {
		out[i] = a[i] - b[i]
	}
	return out
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
