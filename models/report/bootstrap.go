package report

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/triage-router/triage/models/replay"
)

// Bootstrap defaults: enough resamples for stable 2.5% and 97.5%
// percentiles, and a fixed seed so a report is reproducible.
const (
	DefaultResamples = 1000
	DefaultSeed      = 20240601
)

// Interval is a two-sided 95% bootstrap percentile interval.
type Interval struct {
	Lo, Hi float64
}

// Valid says whether the interval was computed.
func (iv Interval) Valid() bool { return !math.IsNaN(iv.Lo) && !math.IsNaN(iv.Hi) }

var noInterval = Interval{math.NaN(), math.NaN()}

// percentileInterval returns the 2.5% and 97.5% nearest-rank percentiles
// of xs (reordered), ignoring NaNs.
func percentileInterval(xs []float64) Interval {
	xs = slices.DeleteFunc(xs, math.IsNaN)
	if len(xs) == 0 {
		return noInterval
	}
	slices.Sort(xs)
	at := func(p float64) float64 {
		k := int(math.Ceil(p*float64(len(xs)))) - 1
		return xs[max(0, min(len(xs)-1, k))]
	}
	return Interval{at(0.025), at(0.975)}
}

// resampler draws bootstrap resamples of n items as multiplicities.
type resampler struct {
	rng *rand.Rand
	w   []int32
}

func newResampler(n int, seed uint64) *resampler {
	return &resampler{rng: rand.New(rand.NewPCG(seed, 0x5eed)), w: make([]int32, n)}
}

// next fills w with the counts of n draws with replacement.
func (r *resampler) next() []int32 {
	drawCounts(r.rng, r.w)
	return r.w
}

// apgrSorted is the APGR of a (weighted) sample whose items are sorted by
// descending score, with group[i] true where item i starts a new run of
// equal scores. Ties count as a random order: within a run the expected
// gain grows linearly, so the curve is linear there and the trapezoid over
// run boundaries is the exact integral (the definition of docs/design.md, as
// classifier.APGR computes it).
func apgrSorted(gain []float64, start []bool, w []int32) float64 {
	var n, total float64
	for i, g := range gain {
		c := float64(w[i])
		n += c
		total += c * g
	}
	if n == 0 || total == 0 {
		return math.NaN()
	}
	var area, cum, runN, runG float64
	flush := func() {
		// Trapezoid over the run: width runN/n, PGR from cum to cum+runG.
		area += runN / n * (2*cum + runG) / 2
		cum += runG
		runN, runG = 0, 0
	}
	for i, g := range gain {
		if start[i] && runN > 0 {
			flush()
		}
		c := float64(w[i])
		runN += c
		runG += c * g
	}
	flush()
	return area / total
}

// sortedGains orders the per-request gains (strong - fast) by descending
// score and marks where runs of equal scores start.
func sortedGains(score, weak, strong []float64) (gain []float64, start []bool, order []int) {
	n := len(score)
	order = make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpFloat(score[b], score[a]) })
	gain = make([]float64, n)
	start = make([]bool, n)
	for k, i := range order {
		gain[k] = strong[i] - weak[i]
		start[k] = k == 0 || score[i] != score[order[k-1]]
	}
	return gain, start, order
}

// BootstrapAPGR is the 95% bootstrap interval of APGR: requests are
// resampled with replacement, and each resample's APGR (with its own
// r_fast and r_strong) is computed in O(n) over the score order found once.
func BootstrapAPGR(score, weak, strong []float64, resamples int, seed uint64) Interval {
	if len(score) == 0 {
		return noInterval
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	gain, start, order := sortedGains(score, weak, strong)
	rs := newResampler(len(score), seed)
	wSorted := make([]int32, len(score))
	stats := make([]float64, resamples)
	for b := range stats {
		w := rs.next()
		for k, i := range order {
			wSorted[k] = w[i]
		}
		stats[b] = apgrSorted(gain, start, wSorted)
	}
	return percentileInterval(stats)
}

// PointIntervals are the 95% bootstrap intervals of an operating point's
// figures with its thresholds held fixed.
type PointIntervals struct {
	StrongShare Interval
	Quality     Interval
	// RelQuality is quality / always-strong's quality, both resampled.
	RelQuality   Interval
	CostPer1k    Interval
	LatencyP95MS Interval
}

// BootstrapPoint resamples the replayed requests (out, from
// replay.Replayer.Outcomes) with strong[i] the strong tier's score of
// out[i]. Requests are visited in latency order, so each resample's p95
// is read off the running count of its draws in one pass, without
// copying latencies.
func BootstrapPoint(out []replay.Replayed, strong []float64, resamples int, seed uint64) PointIntervals {
	n := len(out)
	if n == 0 {
		return PointIntervals{noInterval, noInterval, noInterval, noInterval, noInterval}
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	ps := newPointSampler(out, strong, seed)
	return pointIntervals(resamples, func(int) []int32 { return ps.rs.next() }, ps)
}

// pointIntervals are BootstrapPoint's intervals over the resamples whose
// counts counts(b) gives, b = 0, 1, ... in turn.
func pointIntervals(resamples int, counts func(b int) []int32, ps *pointSampler) PointIntervals {
	share := make([]float64, resamples)
	q := make([]float64, resamples)
	rel := make([]float64, resamples)
	cost := make([]float64, resamples)
	p95 := make([]float64, resamples)
	for b := 0; b < resamples; b++ {
		share[b], q[b], rel[b], cost[b], p95[b] = ps.figures(counts(b))
	}
	return PointIntervals{
		StrongShare: percentileInterval(share), Quality: percentileInterval(q), RelQuality: percentileInterval(rel),
		CostPer1k: percentileInterval(cost), LatencyP95MS: percentileInterval(p95),
	}
}

// RelQualityLoAtLeast reports whether BootstrapPoint(out, strong,
// resamples, seed).RelQuality.Lo is at least q, without always drawing
// every resample. It draws the same resamples, in the same order, with
// the same arithmetic (pointSampler), so its answer is the one the
// printed interval gives; and it stops as soon as more of them fall
// below q than the interval's lower end allows. calibrate --meet ci95
// asks this of every policy cheaper than the one it picks, most of which
// fail within a few dozen resamples, through a RelQualityChecker, which
// gives the same answers without drawing the resamples again for each.
func RelQualityLoAtLeast(out []replay.Replayed, strong []float64, resamples int, seed uint64, q float64) bool {
	if len(out) == 0 || math.IsNaN(q) {
		return false
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	// percentileInterval reads the lower end at rank ceil(0.025·m) of the
	// m resamples that are not NaN (m <= resamples): it is at least q
	// exactly when no more than ceil(0.025·m)−1 of them are below q.
	allowed := func(m int) int { return max(0, int(math.Ceil(0.025*float64(m)))-1) }
	most := allowed(resamples)
	ps := newPointSampler(out, strong, seed)
	below, m := 0, 0
	for b := 0; b < resamples; b++ {
		_, _, rel, _, _ := ps.next()
		if math.IsNaN(rel) {
			continue
		}
		m++
		if rel < q {
			if below++; below > most {
				return false
			}
		}
	}
	return m > 0 && below <= allowed(m)
}

// pointSampler draws BootstrapPoint's resamples one at a time.
type pointSampler struct {
	out    []replay.Replayed
	strong []float64
	order  []int
	k95    int32
	rs     *resampler
}

func newPointSampler(out []replay.Replayed, strong []float64, seed uint64) *pointSampler {
	n := len(out)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpFloat(out[a].LatencyMS, out[b].LatencyMS) })
	return &pointSampler{out: out, strong: strong, order: order,
		k95: int32(math.Ceil(0.95 * float64(n))), // nearest rank, as replay.Percentile
		rs:  newResampler(n, seed)}
}

// next draws one resample and returns its strong share, quality,
// quality relative to always-strong's (NaN when the resample's strong
// scores sum to 0), cost per 1k and p95 latency.
func (ps *pointSampler) next() (share, q, rel, cost, p95 float64) {
	return ps.figures(ps.rs.next())
}

// figures are next's for the resample whose counts are w. The one
// arithmetic of every resample: RelQualityChecker falls back on it where
// rounding could decide its answer.
func (ps *pointSampler) figures(w []int32) (share, q, rel, cost, p95 float64) {
	out, strong := ps.out, ps.strong
	fn := float64(len(out))
	var s, sc, c, st float64
	var seen int32
	p95 = math.NaN()
	for _, i := range ps.order {
		k := w[i]
		if k == 0 {
			continue
		}
		f := float64(k)
		if out[i].KeptStrong {
			st += f
		}
		s += f * out[i].Score
		sc += f * strong[i]
		c += f * out[i].CostUSD
		if seen < ps.k95 && seen+k >= ps.k95 {
			p95 = out[i].LatencyMS
		}
		seen += k
	}
	rel = math.NaN()
	if sc > 0 {
		rel = s / sc
	}
	return st / fn, s / fn, rel, 1000 * c / fn, p95
}
