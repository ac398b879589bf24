package report

import (
	"math"
	"math/rand/v2"

	"github.com/triage-router/triage/models/replay"
)

// relCheckBudget bounds the resamples' counts a RelQualityChecker keeps,
// one byte per request and resample: all 1,000 of a log of 64k requests.
// Past it, the later resamples are drawn again for each policy that gets
// that far (few do: most fail within a few dozen).
var relCheckBudget = 64 << 20

// narrowMax is the largest count a kept resample holds in a byte; a
// variable so that a test can send resamples to the wide path.
var narrowMax int32 = math.MaxUint8

// RelQualityChecker answers RelQualityLoAtLeast for many policies replayed
// on one log with the same strong scores, resamples and seed, as
// calibrate --meet ci95 asks it of hundreds of them. RelQualityLoAtLeast
// draws every policy's resamples again, sorts its requests by latency and
// sums its scores in that order; the answers here are the same, to the
// last bit of the interval they stand for, at a fraction of the time:
//
//   - each resample's counts are drawn once (the same draws, in the same
//     order) and kept, with the sum of the strong scores they weigh;
//   - a policy's resampled quality is that sum plus the counts times the
//     difference between its kept score and the strong one, over the
//     requests where the two differ (the fast answers kept that the
//     strong tier scores otherwise);
//   - when every score is a whole number (a log scored 0 or 1) every one
//     of these sums is exact, in any order, so the ratio is the one the
//     interval's arithmetic gives; otherwise the ratio's side of q is
//     taken only when it is further from q than the sums' rounding can
//     reach (a bound, below), and a resample closer than that is summed
//     as the interval sums it (pointSampler.figures).
//
// It is not safe for concurrent use.
type RelQualityChecker struct {
	strong    []float64
	resamples int
	seed      uint64
	// valid: every strong score is in [0,1] (what the bounds assume);
	// whole: each is 0 or 1.
	valid, whole bool

	// rows[b] are resample b's counts; wide[b] holds them instead when
	// one is above 255. sc[b] is the sum of the strong scores they weigh.
	rows [][]uint8
	wide map[int][]int32
	sc   []float64
	// pcg draws the kept resamples; at is its state after the last of
	// the maxRows that may be kept, for the ones past them.
	pcg     *rand.PCG
	rng     *rand.Rand
	maxRows int
	at      rand.PCG

	// Scratch, per policy: the requests whose kept score differs from
	// the strong one, and by how much.
	idx []int32
	d   []float64
	w   []int32

	// closeCalls counts the resamples summed as the interval sums them.
	closeCalls int
}

// NewRelQualityChecker prepares the checks of policies replayed on the
// requests whose strong scores are strong, with BootstrapPoint's
// resamples and seed.
func NewRelQualityChecker(strong []float64, resamples int, seed uint64) *RelQualityChecker {
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	c := &RelQualityChecker{strong: strong, resamples: resamples, seed: seed, valid: true, whole: true}
	for _, x := range strong {
		if !(x >= 0 && x <= 1) {
			c.valid = false
		}
		if x != 0 && x != 1 {
			c.whole = false
		}
	}
	n := len(strong)
	c.maxRows = resamples
	if n > 0 {
		c.maxRows = min(resamples, max(1, relCheckBudget/n))
	}
	c.pcg = rand.NewPCG(seed, 0x5eed) // as newResampler's
	c.rng = rand.New(c.pcg)
	c.w = make([]int32, n)
	return c
}

// drawCounts fills w with the counts of len(w) draws with replacement:
// every bootstrap resample (resampler.next) is drawn here.
func drawCounts(rng *rand.Rand, w []int32) {
	clear(w)
	n := len(w)
	for i := 0; i < n; i++ {
		w[rng.IntN(n)]++
	}
}

// strongSum is the sum of the strong scores the counts w weigh.
func (c *RelQualityChecker) strongSum(w []int32) float64 {
	var sc float64
	for i, k := range w {
		sc += float64(k) * c.strong[i]
	}
	return sc
}

// row returns resample b's counts (b < maxRows), drawing the resamples
// up to it the first time.
func (c *RelQualityChecker) row(b int) (u8 []uint8, w32 []int32, sc float64) {
	for len(c.rows) <= b {
		drawCounts(c.rng, c.w)
		r := make([]uint8, len(c.w))
		for i, k := range c.w {
			if k > narrowMax {
				if c.wide == nil {
					c.wide = map[int][]int32{}
				}
				c.wide[len(c.rows)] = append([]int32(nil), c.w...)
				r = nil
				break
			}
			r[i] = uint8(k)
		}
		c.rows = append(c.rows, r)
		c.sc = append(c.sc, c.strongSum(c.w))
		if len(c.rows) == c.maxRows {
			c.at = *c.pcg
		}
	}
	if w := c.wide[b]; w != nil {
		return nil, w, c.sc[b]
	}
	return c.rows[b], nil, c.sc[b]
}

// prepare lists the requests where out keeps another score than the
// strong tier's, and by how much (idx, d). ok is false when a score is
// outside [0,1], where the bounds below do not hold; whole is true when
// every score, out's and the strong tier's, is 0 or 1.
func (c *RelQualityChecker) prepare(out []replay.Replayed) (whole, ok bool) {
	if len(out) != len(c.strong) || !c.valid {
		return false, false
	}
	whole = c.whole
	c.idx, c.d = c.idx[:0], c.d[:0]
	for i := range out {
		x := out[i].Score
		if !(x >= 0 && x <= 1) {
			return false, false
		}
		if x != 0 && x != 1 {
			whole = false
		}
		if x != c.strong[i] {
			c.idx = append(c.idx, int32(i))
			c.d = append(c.d, x-c.strong[i])
		}
	}
	return whole, true
}

// sum is the resampled quality total of the policy prepared: the strong
// total sc of the resample whose counts are u8 (or w32) plus its counts
// times the differences.
func (c *RelQualityChecker) sum(u8 []uint8, w32 []int32, sc float64) float64 {
	s := sc
	if u8 != nil {
		for j, i := range c.idx {
			s += float64(u8[i]) * c.d[j]
		}
	} else {
		for j, i := range c.idx {
			s += float64(w32[i]) * c.d[j]
		}
	}
	return s
}

// LoAtLeast is RelQualityLoAtLeast(out, strong, resamples, seed, q).
func (c *RelQualityChecker) LoAtLeast(out []replay.Replayed, q float64) bool {
	n := len(out)
	if n == 0 || math.IsNaN(q) {
		return false
	}
	whole, ok := c.prepare(out)
	if !ok {
		return RelQualityLoAtLeast(out, c.strong, c.resamples, c.seed, q)
	}
	// The sums here and the interval's (pointSampler.figures) are each
	// within n·γ(n+2)·(2 or 4) of the exact ones (every term lies in
	// [0, count], the counts add up to n, and the difference's terms to
	// at most n more), so the interval's ratio is on the side of q that
	// s − q·sc is on when that is further from 0 than bound. With whole
	// scores every sum is an exact integer and the ratio is the same.
	const u = 0x1p-53
	fn := float64(n)
	g := (fn + 2) * u / (1 - (fn+2)*u)
	bound := 16 * fn * g * (1 + math.Abs(q))
	var ps *pointSampler // the interval's arithmetic, for close calls
	side := func(u8 []uint8, w32 []int32, sc float64) (isNaN, isBelow bool) {
		if !(sc > 0) {
			return true, false // no strong score drawn: the ratio is NaN
		}
		s := c.sum(u8, w32, sc)
		if whole {
			return false, s/sc < q
		}
		switch d := s - q*sc; {
		case d < -bound:
			return false, true
		case d > bound:
			return false, false
		}
		c.closeCalls++
		if ps == nil {
			ps = newPointSampler(out, c.strong, 0)
		}
		if w32 == nil {
			w32 = ps.rs.w
			for i, k := range u8 {
				w32[i] = int32(k)
			}
		}
		_, _, rel, _, _ := ps.figures(w32)
		return math.IsNaN(rel), rel < q
	}
	allowed := func(m int) int { return max(0, int(math.Ceil(0.025*float64(m)))-1) }
	most := allowed(c.resamples)
	below, m := 0, 0
	var tail *rand.Rand
	var tailW []int32
	for b := 0; b < c.resamples; b++ {
		var isNaN, isBelow bool
		if b < c.maxRows {
			u8, w32, sc := c.row(b)
			isNaN, isBelow = side(u8, w32, sc)
		} else {
			// Past the kept resamples: draw them again from where
			// the kept ones end.
			if tail == nil {
				at := c.at
				tail, tailW = rand.New(&at), make([]int32, n)
			}
			drawCounts(tail, tailW)
			isNaN, isBelow = side(nil, tailW, c.strongSum(tailW))
		}
		if isNaN {
			continue
		}
		m++
		if isBelow {
			if below++; below > most {
				return false
			}
		}
	}
	return m > 0 && below <= allowed(m)
}

// BootstrapPoint is BootstrapPoint(out, strong, resamples, seed), from
// the kept resamples' counts rather than drawn again: the same counts,
// summed by the same code (pointSampler.figures).
func (c *RelQualityChecker) BootstrapPoint(out []replay.Replayed) PointIntervals {
	if len(out) == 0 || len(out) != len(c.strong) {
		return BootstrapPoint(out, c.strong, c.resamples, c.seed)
	}
	ps := newPointSampler(out, c.strong, 0)
	w := ps.rs.w // scratch: ps draws nothing
	var tail *rand.Rand
	counts := func(b int) []int32 {
		if b >= c.maxRows {
			if tail == nil {
				at := c.at
				tail = rand.New(&at)
			}
			drawCounts(tail, w)
			return w
		}
		u8, w32, _ := c.row(b)
		if w32 != nil {
			return w32
		}
		for i, k := range u8 {
			w[i] = int32(k)
		}
		return w
	}
	return pointIntervals(c.resamples, counts, ps)
}

// RelQuality is BootstrapPoint(out, strong, resamples, seed).RelQuality.
// With every score 0 or 1 each resample's ratio is the exact totals'
// (see RelQualityChecker), read without a pass over every request;
// otherwise it is BootstrapPoint's.
func (c *RelQualityChecker) RelQuality(out []replay.Replayed) Interval {
	if whole, ok := c.prepare(out); !ok || !whole || len(out) == 0 {
		return c.BootstrapPoint(out).RelQuality
	}
	rel := make([]float64, c.resamples)
	var tail *rand.Rand
	for b := range rel {
		var (
			u8  []uint8
			w32 []int32
			sc  float64
		)
		if b < c.maxRows {
			u8, w32, sc = c.row(b)
		} else {
			if tail == nil {
				at := c.at
				tail = rand.New(&at)
			}
			drawCounts(tail, c.w)
			w32, sc = c.w, c.strongSum(c.w)
		}
		rel[b] = math.NaN() // as pointSampler.figures: no strong score drawn
		if sc > 0 {
			rel[b] = c.sum(u8, w32, sc) / sc
		}
	}
	return percentileInterval(rel)
}
