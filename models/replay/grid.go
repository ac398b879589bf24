package replay

import (
	"math"
	"slices"

	"github.com/triage-router/triage/models"
)

// FastEscalateAccept is the accept_confidence written for policies with no
// speculate band, where the gate is never consulted: 1 keeps the gate
// strict should someone later widen the band by hand.
const FastEscalateAccept = 1.0

// Grid is a set of policies: every pair of Thresholds with speculate_above
// <= escalate_above, and for the pairs with a speculate band, every Accept
// value. Thresholds (or accept values) that select the same requests as a
// smaller one give the same operating point and are dropped.
type Grid struct {
	Thresholds []float64
	Accept     []float64
}

// QuantileGrid returns thresholds that cut the sorted p_hard into n
// (near-)equal parts, snapped so a tie group is never split, with 0 below
// every p_hard and 1 above (so "all fast" and "all strong" are in the
// grid); interior thresholds lie midway between neighbouring p_hard values,
// which makes them robust when applied to new data. Accept values cut the
// calibrated confidences present into nAccept parts (the lowest accepts
// every fast answer that has one); there are none when no request has a
// confidence, since the gate then never accepts.
func (rp *Replayer) QuantileGrid(n, nAccept int) Grid {
	n = max(1, n)
	N := len(rp.p)
	var g Grid
	last := -1
	for k := 0; k <= n; k++ {
		b := int(math.Round(float64(k) * float64(N) / float64(n)))
		if b > 0 {
			b = rp.boundary(rp.p[b-1]) // end of the tie group
		}
		if b == last {
			continue
		}
		last = b
		g.Thresholds = append(g.Thresholds, rp.thresholdAt(b))
	}
	var conf []float64
	for i := range rp.req {
		if rp.req[i].HasConfidence {
			conf = append(conf, rp.req[i].Confidence)
		}
	}
	if len(conf) == 0 || nAccept <= 0 {
		return g
	}
	slices.Sort(conf)
	for k := 0; k < nAccept; k++ {
		a := math.Max(0, math.Min(1, conf[k*len(conf)/nAccept]))
		if len(g.Accept) == 0 || a != g.Accept[len(g.Accept)-1] {
			g.Accept = append(g.Accept, a)
		}
	}
	return g
}

// thresholdAt returns a threshold t with exactly b requests at p_hard <= t;
// b must be 0, len, or the end of a tie group.
func (rp *Replayer) thresholdAt(b int) float64 {
	N := len(rp.p)
	switch {
	case b == 0:
		if rp.p[0] > 0 {
			return 0
		}
		return math.Nextafter(rp.p[0], math.Inf(-1))
	case b == N:
		return math.Max(1, rp.p[N-1])
	}
	lo, hi := rp.p[b-1], rp.p[b]
	mid := lo + (hi-lo)/2
	if mid >= hi {
		mid = lo
	}
	return mid
}

// Size is an upper bound on the number of operating points of the grid.
func (g Grid) Size() int {
	nt, na := len(g.Thresholds), max(1, len(g.Accept))
	return nt + na*nt*max(0, nt-1)/2
}

// SweepOptions tunes Sweep.
type SweepOptions struct {
	// NoPercentiles skips the latency percentiles (left NaN): with
	// per-request latencies they are most of the sweep's work.
	NoPercentiles bool
}

// cum holds running sums at each grid boundary.
type cum struct {
	score, cost, lat, strong, acc []float64
}

func newCum(t int) cum {
	return cum{score: make([]float64, t), cost: make([]float64, t), lat: make([]float64, t), strong: make([]float64, t), acc: make([]float64, t)}
}

// Sweep replays the log under every policy of g and returns the operating
// points: first the fast/escalate policies (speculate_above ==
// escalate_above, accept_confidence FastEscalateAccept) in threshold order,
// then for each accept value the policies with a speculate band. Its
// figures equal Point's for the same policy (up to float summation order):
// the requests are sorted by p_hard, so a policy's fast, speculate and
// escalate requests are three contiguous runs, summed from running totals,
// and latency percentiles are exact order statistics kept in a Fenwick
// tree over the distinct latencies while the speculate band grows.
func (rp *Replayer) Sweep(g Grid, opts SweepOptions) []OperatingPoint {
	out := make([]OperatingPoint, 0, g.Size())
	rp.SweepFunc(g, opts, func(op *OperatingPoint) { out = append(out, *op) })
	return out
}

// SweepFunc is Sweep without collecting: fn sees each operating point in
// Sweep's order (the pointer is valid during the call only), so a search
// over a fine grid needs no memory per point.
func (rp *Replayer) SweepFunc(g Grid, opts SweepOptions, visit func(*OperatingPoint)) {
	N := len(rp.req)
	fn := float64(N)

	// Unique boundaries, with the smallest threshold giving each.
	th := slices.Clone(g.Thresholds)
	slices.Sort(th)
	var B []int
	var T []float64
	for _, t := range th {
		if math.IsNaN(t) {
			continue
		}
		b := rp.boundary(t)
		if len(B) > 0 && B[len(B)-1] == b {
			continue
		}
		B, T = append(B, b), append(T, t)
	}
	nt := len(B)
	if nt == 0 {
		return
	}

	// Accept values, dropping those that accept the same requests.
	acc := slices.Clone(g.Accept)
	slices.Sort(acc)
	var A []float64
	lastCount := -1
	for _, a := range acc {
		if math.IsNaN(a) {
			continue
		}
		c := 0
		for i := range rp.req {
			if rp.req[i].HasConfidence && rp.req[i].Confidence >= a {
				c++
			}
		}
		if c == lastCount {
			continue
		}
		lastCount = c
		A = append(A, a)
	}
	if len(A) == 0 {
		// No accept values given: speculations are replayed once, with
		// the gate at its strictest.
		A = []float64{FastEscalateAccept}
	}

	// Running sums of the fast and escalate outcomes at each boundary.
	fast, esc := newCum(nt), newCum(nt)
	var fs, fc, fl, es, ec, el float64
	j := 0
	for i := 0; i <= N; i++ {
		for j < nt && B[j] == i {
			fast.score[j], fast.cost[j], fast.lat[j] = fs, fc, fl
			esc.score[j], esc.cost[j], esc.lat[j], esc.strong[j] = es, ec, el, float64(i)
			j++
		}
		if i == N {
			break
		}
		r := &rp.req[i]
		fs, fc, fl = fs+r.FastScore, fc+r.FastCostUSD, fl+r.FastLatencyMS
		es, ec, el = es+r.StrongScore, ec+r.StrongCostUSD, el+r.StrongLatencyMS
	}
	escTot := [3]float64{es, ec, el}

	// Latency ranks for the percentiles.
	var fw *fenwick
	var rankF, rankS []int32
	if !opts.NoPercentiles {
		vals := make([]float64, 0, 2*N)
		for i := range rp.req {
			vals = append(vals, rp.req[i].FastLatencyMS, rp.req[i].StrongLatencyMS)
		}
		slices.Sort(vals)
		vals = slices.Compact(vals)
		rank := func(x float64) int32 {
			k, _ := slices.BinarySearch(vals, x)
			return int32(k)
		}
		rankF, rankS = make([]int32, N), make([]int32, N)
		for i := range rp.req {
			rankF[i], rankS[i] = rank(rp.req[i].FastLatencyMS), rank(rp.req[i].StrongLatencyMS)
		}
		fw = newFenwick(vals)
	}
	kth := [3]int32{int32(nearestRank(0.50, N) + 1), int32(nearestRank(0.95, N) + 1), int32(nearestRank(0.99, N) + 1)}
	percentiles := func(op *OperatingPoint) {
		if fw == nil {
			op.LatencyP50MS, op.LatencyP95MS, op.LatencyP99MS = math.NaN(), math.NaN(), math.NaN()
			return
		}
		op.LatencyP50MS = fw.kth(kth[0])
		op.LatencyP95MS = fw.kth(kth[1])
		op.LatencyP99MS = fw.kth(kth[2])
	}
	// reset puts requests below b on the fast tier and the rest on the
	// strong one.
	reset := func(b int) {
		fw.clear()
		for i := 0; i < b; i++ {
			fw.cnt[rankF[i]]++
		}
		for i := b; i < N; i++ {
			fw.cnt[rankS[i]]++
		}
		fw.build()
	}

	// One point, reused: fn must not keep the pointer.
	var op OperatingPoint

	// Fast/escalate: the escalate run shrinks as the threshold rises.
	if fw != nil {
		reset(B[0])
	}
	for j := 0; j < nt; j++ {
		if fw != nil && j > 0 {
			for i := B[j-1]; i < B[j]; i++ {
				if rankF[i] != rankS[i] {
					fw.add(rankS[i], -1)
					fw.add(rankF[i], 1)
				}
			}
		}
		s := fast.score[j] + escTot[0] - esc.score[j]
		op = OperatingPoint{
			Policy: models.Policy{SpeculateAbove: T[j], EscalateAbove: T[j], AcceptConfidence: FastEscalateAccept},
			Kind:   KindFastEscalate, N: N,
			StrongShare:   float64(N-B[j]) / fn,
			Quality:       s / fn,
			CostPer1k:     1000 * (fast.cost[j] + escTot[1] - esc.cost[j]) / fn,
			LatencyMeanMS: (fast.lat[j] + escTot[2] - esc.lat[j]) / fn,
			FastShare:     float64(B[j]) / fn, EscalateShare: float64(N-B[j]) / fn,
		}
		op.PGR = PGR(op.Quality, rp.rFast, rp.rStrong)
		percentiles(&op)
		visit(&op)
	}
	if nt < 2 {
		return
	}

	// With a speculate band, per accept value.
	spec := newCum(nt)
	specRank := make([]int32, N)
	for _, a := range A {
		var ss, sc, sl, sst, sac float64
		j := 0
		for i := 0; i <= N; i++ {
			for j < nt && B[j] == i {
				spec.score[j], spec.cost[j], spec.lat[j], spec.strong[j], spec.acc[j] = ss, sc, sl, sst, sac
				j++
			}
			if i == N {
				break
			}
			r := &rp.req[i]
			o := speculate(r, r.HasConfidence && r.Confidence >= a, rp.billing)
			ss, sc, sl = ss+o.Score, sc+o.CostUSD, sl+o.LatencyMS
			if o.KeptStrong {
				sst++
				if fw != nil {
					specRank[i] = rankS[i]
				}
			} else if fw != nil {
				specRank[i] = rankF[i]
			}
			if o.Accepted {
				sac++
			}
		}
		for j1 := 0; j1 < nt-1; j1++ {
			if fw != nil {
				reset(B[j1])
			}
			for j2 := j1 + 1; j2 < nt; j2++ {
				if fw != nil {
					for i := B[j2-1]; i < B[j2]; i++ {
						if specRank[i] != rankS[i] {
							fw.add(rankS[i], -1)
							fw.add(specRank[i], 1)
						}
					}
				}
				score := fast.score[j1] + spec.score[j2] - spec.score[j1] + escTot[0] - esc.score[j2]
				cost := fast.cost[j1] + spec.cost[j2] - spec.cost[j1] + escTot[1] - esc.cost[j2]
				lat := fast.lat[j1] + spec.lat[j2] - spec.lat[j1] + escTot[2] - esc.lat[j2]
				strong := spec.strong[j2] - spec.strong[j1] + float64(N-B[j2])
				op = OperatingPoint{
					Policy: models.Policy{SpeculateAbove: T[j1], EscalateAbove: T[j2], AcceptConfidence: a},
					Kind:   kindOf(true, B[j2] < N), N: N,
					StrongShare:   strong / fn,
					Quality:       score / fn,
					CostPer1k:     1000 * cost / fn,
					LatencyMeanMS: lat / fn,
					FastShare:     float64(B[j1]) / fn, SpeculateShare: float64(B[j2]-B[j1]) / fn, EscalateShare: float64(N-B[j2]) / fn,
					AcceptedShare: (spec.acc[j2] - spec.acc[j1]) / fn,
				}
				op.PGR = PGR(op.Quality, rp.rFast, rp.rStrong)
				percentiles(&op)
				visit(&op)
			}
		}
	}
}

// fenwick counts latencies by rank and finds the k-th smallest in
// O(log m).
type fenwick struct {
	vals []float64 // distinct latencies, ascending
	cnt  []int32   // count per rank, the input to build
	tree []int32   // 1-based Fenwick tree
	step int       // highest power of two <= len(vals)
}

func newFenwick(vals []float64) *fenwick {
	f := &fenwick{vals: vals, cnt: make([]int32, len(vals)), tree: make([]int32, len(vals)+1)}
	f.step = 1
	for f.step*2 <= len(vals) {
		f.step *= 2
	}
	return f
}

func (f *fenwick) clear() { clear(f.cnt) }

// build makes the tree from cnt in O(m).
func (f *fenwick) build() {
	m := len(f.vals)
	for i := 1; i <= m; i++ {
		f.tree[i] = f.cnt[i-1]
	}
	for i := 1; i <= m; i++ {
		if p := i + i&-i; p <= m {
			f.tree[p] += f.tree[i]
		}
	}
}

func (f *fenwick) add(rank int32, d int32) {
	for i := int(rank) + 1; i < len(f.tree); i += i & -i {
		f.tree[i] += d
	}
}

// kth returns the k-th smallest latency (1-based k).
func (f *fenwick) kth(k int32) float64 {
	pos := 0
	for s := f.step; s > 0; s >>= 1 {
		if n := pos + s; n < len(f.tree) && f.tree[n] < k {
			pos = n
			k -= f.tree[n]
		}
	}
	return f.vals[min(pos, len(f.vals)-1)]
}
