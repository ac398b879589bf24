package replay

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/triage-router/triage/models"
)

// TierRequest is one labelled request as an N-tier replay sees it: the
// router's predicted score per tier and what each tier actually did.
type TierRequest struct {
	// ID names the request in error messages; optional.
	ID string
	// Pred is the router's predicted score per tier, cheapest first.
	Pred []float64
	// Score, LatencyMS and CostUSD are each tier's actual score in [0,1],
	// full wall time and full cost for this request.
	Score, LatencyMS, CostUSD []float64
	// Confidence is each tier's calibrated confidence, P(its answer is
	// correct); NaN (or a nil slice) where there is none, in which case a
	// race never keeps that tier's answer on confidence.
	Confidence []float64
}

// TierPoint is the replay of a log under one TierPolicy.
type TierPoint struct {
	Policy models.TierPolicy
	N      int
	// Quality is the mean score of the kept answers, in [0,1].
	Quality float64
	// CostPer1k is the mean cost of every call made per request, times
	// 1000 (cancelled race calls billed per CancelBilling).
	CostPer1k float64
	// Latency of the kept answer: mean and nearest-rank percentiles.
	LatencyMeanMS, LatencyP50MS, LatencyP95MS, LatencyP99MS float64
	// Shares[k] is the share of requests whose kept answer is tier k's.
	Shares []float64
	// RaceShare is the share of requests that raced two tiers, and
	// AcceptedShare the share that raced and kept the lower tier's
	// answer on its confidence.
	RaceShare, AcceptedShare float64
}

// ReplayTierRequest applies policy p (choosing with the router's prices)
// to one request. A tier alone gives its score, latency and cost; a race
// of tier k with k+1 is a two-tier speculation (ReplayRequest) with k as
// the fast tier and k+1 as the strong one.
func ReplayTierRequest(r *TierRequest, prices []float64, p models.TierPolicy, billing CancelBilling) (tier, race int, out Replayed) {
	tier, race = p.Choose(r.Pred, prices)
	if race < 0 {
		return tier, race, Replayed{Decision: models.DecisionOf(tier, race), KeptStrong: tier > 0, Score: r.Score[tier], LatencyMS: r.LatencyMS[tier], CostUSD: r.CostUSD[tier]}
	}
	two := Request{
		FastScore: r.Score[tier], StrongScore: r.Score[race],
		FastLatencyMS: r.LatencyMS[tier], StrongLatencyMS: r.LatencyMS[race],
		FastCostUSD: r.CostUSD[tier], StrongCostUSD: r.CostUSD[race],
	}
	if r.Confidence != nil && !math.IsNaN(r.Confidence[tier]) {
		two.Confidence, two.HasConfidence = r.Confidence[tier], true
	}
	out = speculate(&two, two.HasConfidence && two.Confidence >= p.AcceptConfidence, billing)
	return tier, race, out
}

// ReplayTiers replays every request under p and sums up the operating
// point.
func ReplayTiers(reqs []TierRequest, prices []float64, p models.TierPolicy, billing CancelBilling) TierPoint {
	n, nt := len(reqs), len(prices)
	pt := TierPoint{Policy: p, N: n, Shares: make([]float64, nt)}
	if n == 0 {
		return pt
	}
	lat := make([]float64, n)
	var q, c, l float64
	for i := range reqs {
		tier, race, o := ReplayTierRequest(&reqs[i], prices, p, billing)
		kept := tier
		if race >= 0 {
			pt.RaceShare++
			if o.Accepted {
				pt.AcceptedShare++
			} else {
				kept = race
			}
		}
		pt.Shares[kept]++
		q += o.Score
		c += o.CostUSD
		l += o.LatencyMS
		lat[i] = o.LatencyMS
	}
	slices.Sort(lat)
	fn := float64(n)
	pt.Quality, pt.CostPer1k, pt.LatencyMeanMS = q/fn, 1000*c/fn, l/fn
	pt.LatencyP50MS, pt.LatencyP95MS, pt.LatencyP99MS = lat[nearestRank(0.50, n)], lat[nearestRank(0.95, n)], lat[nearestRank(0.99, n)]
	pt.RaceShare /= fn
	pt.AcceptedShare /= fn
	for k := range pt.Shares {
		pt.Shares[k] /= fn
	}
	return pt
}

// LambdaGrid returns up to n+1 values of λ, from 0 to past the last at
// which any request's choice changes, placed by the quantiles of the
// break-even λ of every request and every pair of tiers with different
// prices, (s_j − s_i)/(c_j − c_i) where positive, and one beyond the
// largest, where every request goes to the cheapest tier. So the sweep
// spends its points where the choices change, whatever the prices' unit.
// Each point is the midpoint between a quantile and the next larger
// break-even, never a break-even itself: there some request's two
// utilities are equal, its choice hangs on rounding, and a row's λ as
// printed (or passed back to train) would not give the row's figures.
func LambdaGrid(reqs []TierRequest, prices []float64, n int) []float64 {
	var bs []float64
	nt := len(prices)
	// A sample of requests bounds the work on large logs.
	step := max(1, len(reqs)/2000)
	for i := 0; i < len(reqs); i += step {
		s := reqs[i].Pred
		for a := range nt {
			for b := a + 1; b < nt; b++ {
				if dc := prices[b] - prices[a]; dc > 0 {
					if l := (s[b] - s[a]) / dc; l > 0 {
						bs = append(bs, l)
					}
				}
			}
		}
	}
	return betweenQuantiles(bs, n, 2)
}

// betweenQuantiles returns 0, then for up to n quantiles v of the values
// xs (all > 0) the midpoint of v and the next larger value (none for the
// largest), then beyond times the largest: one point inside each chosen
// interval between the values, where whatever they are the thresholds of
// stays put.
func betweenQuantiles(xs []float64, n int, beyond float64) []float64 {
	out := []float64{0}
	if len(xs) == 0 {
		return out
	}
	sort.Float64s(xs)
	for i := 1; i <= n; i++ {
		v := xs[min(len(xs)-1, i*len(xs)/n)]
		j := sort.Search(len(xs), func(j int) bool { return xs[j] > v })
		if j == len(xs) {
			continue // past the largest: the last point below
		}
		if m := v + (xs[j]-v)/2; m > out[len(out)-1] && m > v && m < xs[j] {
			out = append(out, m)
		}
	}
	return append(out, xs[len(xs)-1]*beyond)
}

// CurvePoint is a (cost, quality) point of a quality-cost curve.
type CurvePoint struct {
	Cost, Quality float64
}

// UpperHull returns the upper-left convex hull of pts: the points no mix
// of two others beats, sorted by cost, with quality rising. Mixing two
// operating points at random (a share of requests at each) reaches every
// point on the segment between them, so this is what a set of operating
// points can deliver (RouterBench's non-decreasing convex hull).
func UpperHull(pts []CurvePoint) []CurvePoint {
	s := slices.Clone(pts)
	sort.Slice(s, func(i, j int) bool {
		if s[i].Cost != s[j].Cost {
			return s[i].Cost < s[j].Cost
		}
		return s[i].Quality > s[j].Quality
	})
	var h []CurvePoint
	for _, p := range s {
		if len(h) > 0 && p.Quality <= h[len(h)-1].Quality {
			continue // costs more for no more quality
		}
		for len(h) >= 2 {
			a, b := h[len(h)-2], h[len(h)-1]
			// Drop b when it lies on or below the segment a–p.
			if (b.Quality-a.Quality)*(p.Cost-a.Cost) <= (p.Quality-a.Quality)*(b.Cost-a.Cost) {
				h = h[:len(h)-1]
				continue
			}
			break
		}
		h = append(h, p)
	}
	return h
}

// HullAt is the quality the hull delivers at cost c: linear between its
// points, its best quality past its dearest point, and 0 below its
// cheapest (no operating point costs that little).
func HullAt(h []CurvePoint, c float64) float64 {
	if len(h) == 0 || c < h[0].Cost {
		return 0
	}
	for i := 1; i < len(h); i++ {
		if c <= h[i].Cost {
			a, b := h[i-1], h[i]
			if b.Cost == a.Cost {
				return b.Quality
			}
			return a.Quality + (b.Quality-a.Quality)*(c-a.Cost)/(b.Cost-a.Cost)
		}
	}
	return h[len(h)-1].Quality
}

// AIQ is the average improvement in quality of RouterBench: the mean
// over the cost range [lo, hi] of the quality the points' upper hull
// delivers (HullAt), exactly, as the hull is piecewise linear. lo == hi
// gives the hull's quality at lo.
func AIQ(pts []CurvePoint, lo, hi float64) float64 {
	h := UpperHull(pts)
	if hi <= lo {
		return HullAt(h, lo)
	}
	// Integrate piecewise-linear HullAt between its breakpoints.
	xs := []float64{lo, hi}
	for _, p := range h {
		if p.Cost > lo && p.Cost < hi {
			xs = append(xs, p.Cost)
		}
	}
	sort.Float64s(xs)
	var area float64
	for i := 1; i < len(xs); i++ {
		a, b := xs[i-1], xs[i]
		if b <= a {
			continue
		}
		// HullAt jumps from 0 to the first point's quality at its cost,
		// a breakpoint: take the values just inside each piece.
		ya, yb := HullAt(h, math.Nextafter(a, b)), HullAt(h, math.Nextafter(b, a))
		area += (ya + yb) / 2 * (b - a)
	}
	return area / (hi - lo)
}

// TierCurve is an N-tier router's quality-cost curve over a λ sweep, and
// the reference points it is judged against.
type TierCurve struct {
	// Points are the sweep's operating points, λ ascending; Pareto[i]
	// says no other point has lower cost and at least its quality (or
	// the same cost and higher quality).
	Points []TierPoint
	Pareto []bool
	// Singles[k] is every request sent to tier k: its mean cost and
	// quality. Oracle sends each request to its best-scoring tier (the
	// cheapest of equals).
	Singles []CurvePoint
	Oracle  CurvePoint
	// Lo and Hi are the cost range AIQ is taken over: the cheapest and
	// the dearest single tier's mean cost. AIQ is the router's (its
	// points' upper hull, RouterBench's "non-decreasing convex hull"),
	// HullAIQ the convex hull of the single tiers', which mixing models
	// at random without a router reaches. Both NaN when Lo == Hi.
	Lo, Hi       float64
	AIQ, HullAIQ float64
}

// SweepTiers replays reqs at every λ of LambdaGrid(reqs, prices, n) with
// the other knobs of base, and measures the reference points. Quality
// and cost are as in TierPoint (quality on [0,1], cost per request).
func SweepTiers(reqs []TierRequest, prices []float64, base models.TierPolicy, billing CancelBilling, n int) TierCurve {
	nt := len(prices)
	var c TierCurve
	for _, l := range LambdaGrid(reqs, prices, n) {
		p := base
		p.Lambda = l
		c.Points = append(c.Points, ReplayTiers(reqs, prices, p, billing))
	}
	c.Pareto = make([]bool, len(c.Points))
	for i, a := range c.Points {
		c.Pareto[i] = true
		for j, b := range c.Points {
			if j != i && b.CostPer1k <= a.CostPer1k && b.Quality >= a.Quality && (b.CostPer1k < a.CostPer1k || b.Quality > a.Quality) {
				c.Pareto[i] = false
				break
			}
		}
	}
	c.Singles = make([]CurvePoint, nt)
	var oq, oc float64
	for i := range reqs {
		r := &reqs[i]
		best := 0
		for k := range nt {
			c.Singles[k].Cost += r.CostUSD[k]
			c.Singles[k].Quality += r.Score[k]
			if r.Score[k] > r.Score[best] || r.Score[k] == r.Score[best] && r.CostUSD[k] < r.CostUSD[best] {
				best = k
			}
		}
		oq += r.Score[best]
		oc += r.CostUSD[best]
	}
	fn := float64(len(reqs))
	c.Lo, c.Hi = math.Inf(1), math.Inf(-1)
	for k := range c.Singles {
		c.Singles[k].Cost /= fn
		c.Singles[k].Quality /= fn
		c.Lo = math.Min(c.Lo, c.Singles[k].Cost)
		c.Hi = math.Max(c.Hi, c.Singles[k].Cost)
	}
	c.Oracle = CurvePoint{Cost: oc / fn, Quality: oq / fn}
	c.AIQ, c.HullAIQ = math.NaN(), math.NaN()
	if c.Hi > c.Lo {
		pts := make([]CurvePoint, len(c.Points))
		for i, p := range c.Points {
			pts[i] = CurvePoint{Cost: p.CostPer1k / 1000, Quality: p.Quality}
		}
		c.AIQ = AIQ(pts, c.Lo, c.Hi)
		c.HullAIQ = AIQ(c.Singles, c.Lo, c.Hi)
	}
	return c
}

// MarginGrid returns up to n+1 quality-floor margins, from 0 to past the
// largest gap between a request's best predicted score and another
// tier's, placed by the quantiles of those gaps and, like LambdaGrid's,
// each between two gaps rather than on one.
func MarginGrid(reqs []TierRequest, n int) []float64 {
	var gaps []float64
	step := max(1, len(reqs)/2000)
	for i := 0; i < len(reqs); i += step {
		best := slices.Max(reqs[i].Pred)
		for _, s := range reqs[i].Pred {
			if g := best - s; g > 0 {
				gaps = append(gaps, g)
			}
		}
	}
	return betweenQuantiles(gaps, n, 1.01)
}

// SolveTiers picks, among pts, the point that meets every target of s
// and is best on its objective (ties to higher quality), as Solver does
// for two-tier operating points. A quality target is relative to
// s.StrongQuality, which for N tiers is the best single tier's quality.
// A strong-share target has no meaning over N tiers and is refused.
// It returns the index of the point, or an error naming the closest; as
// in DescribePoint, a latency that is NaN (the log has none) is said to be
// unknown.
func SolveTiers(s *Solver, pts []TierPoint) (int, error) {
	for _, t := range s.Targets {
		if t.Kind == TargetStrongShare {
			return -1, fmt.Errorf("target %s: an N-tier router has no single strong tier; use cost-per-1k, p95-latency or quality", t)
		}
	}
	if len(pts) == 0 {
		return -1, ErrNoRequests
	}
	op := func(p *TierPoint) OperatingPoint {
		return OperatingPoint{Quality: p.Quality, CostPer1k: p.CostPer1k, LatencyMeanMS: p.LatencyMeanMS, LatencyP95MS: p.LatencyP95MS, N: p.N}
	}
	best, closest := -1, -1
	var bestOp, closestOp OperatingPoint
	closestV := math.Inf(1)
	for i := range pts {
		o := op(&pts[i])
		v := s.violation(&o)
		if v == 0 {
			if best < 0 || s.better(&o, &bestOp) {
				best, bestOp = i, o
			}
			continue
		}
		if closest < 0 || v < closestV || v == closestV && s.better(&o, &closestOp) {
			closest, closestOp, closestV = i, o, v
		}
	}
	if best >= 0 {
		return best, nil
	}
	c := pts[closest]
	ts := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		ts[i] = t.String()
	}
	rel := fmt.Sprintf("%.3f of the best single tier", c.Quality/s.StrongQuality)
	if s.StrongQuality == 0 {
		rel = "the best single tier scores 0"
	}
	p95 := fmt.Sprintf("p95 latency %.0f ms", c.LatencyP95MS)
	if math.IsNaN(c.LatencyP95MS) {
		p95 = "latency unknown"
	}
	// Quality on 0-100, as the N-tier figures are printed everywhere
	// else; the target's own Q is relative, and rel gives that.
	return -1, fmt.Errorf("%w: no policy meets %s on this data; the closest is λ=%.4g margin=%.4g with quality %.2f on 0-100 (%s), cost per 1k %.4g, %s; relax a target",
		ErrInfeasible, strings.Join(ts, " and "), c.Policy.Lambda, c.Policy.Margin, 100*c.Quality, rel, c.CostPer1k, p95)
}
