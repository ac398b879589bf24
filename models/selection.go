package models

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/triage-router/triage/classifier"
)

// How the scorer and the L2 strengths are chosen (ScorerAuto, the
// default): every head is cross-validated over the L2 grid once, and
// every candidate router those fits make (a scorer and its heads' L2
// strengths) is scored on what a router is judged by, the APGR of its
// out-of-fold scores. The candidate with the best APGR sets the bar; the
// simplest candidate within one standard error of it wins (fewest heads,
// then the strongest penalties). The standard error is the delta-method
// one of APGR as a ratio of means (see apgrSE). docs/quality.md has the
// measurements behind each choice.

// More scorers (ScorerLabel and ScorerPerTier are in artifact.go).
const (
	// ScorerGain is one logistic regression of the strong tier's gain as a
	// soft target, (strong − fast + 1)/2; the score is the predicted gain,
	// 2σ(z) − 1.
	ScorerGain = "gain"
	// ScorerBlend is the mean of the per-tier and gain scores: two
	// estimates of the same gain with different errors.
	ScorerBlend = "blend"
	// ScorerAuto chooses among autoScorers and the L2 strengths by
	// out-of-fold APGR with the one-standard-error rule. It is what train
	// does unless told otherwise; the artifact records what it chose.
	ScorerAuto = "auto"
)

// autoScorers are the scorers ScorerAuto compares, simplest first.
var autoScorers = []string{ScorerGain, ScorerPerTier, ScorerBlend}

// scorerList names the scorers for error messages.
const scorerList = `"auto", "per-tier", "gain", "blend" or "label"`

// head names, in the order the candidates' score functions take them.
const (
	headStrong = iota
	headFast
	headGain
	headLabel
	numHeads
)

var headNames = [numHeads]string{"strong tier", "fast tier", "gain", "label"}

// cvGradTol is the relative gradient tolerance of the cross-validation
// fits, whose out-of-fold scores only rank candidates and fit the
// calibration; the final fits keep the classifier's tighter default. On
// RouteLLM MMLU it made a training 2 times faster (73 to 36 CPU-seconds
// per outer fold) with the same out-of-fold APGR (0.701 and 0.703), and
// the quality suite's mean APGR moved by 0.001 (docs/quality.md).
const cvGradTol = 0.03

// headCV is one head's cross-validation over the L2 grid.
type headCV struct {
	cv       classifier.CVResult
	constant bool    // every target equal: the head is its intercept
	bias     float64 // the intercept of a constant head
}

// oof returns the head's out-of-fold logits at grid position k.
func (h *headCV) oof(k int) []float64 { return h.cv.GridOOF[k] }

// cvHead cross-validates one head over grid. A target that is the same for
// every row (a tier that always succeeds, say) gets a constant head: there
// is nothing to learn and the optimiser would chase an infinite intercept.
func cvHead(name string, x *classifier.Sparse, y, w []float64, folds []int, grid []float64, copts classifier.Options) (*headCV, error) {
	if c, ok := constant(observed(y, w)); ok {
		p := math.Min(math.Max(c, 1e-4), 1-1e-4)
		h := &headCV{constant: true, bias: math.Log(p / (1 - p))}
		h.cv = classifier.CVResult{Grid: slices.Clone(grid), Loss: make([]float64, len(grid)), GridOOF: make([][]float64, len(grid)), Best: grid[0]}
		oof := make([]float64, len(y))
		for i := range oof {
			oof[i] = h.bias
		}
		for k := range grid {
			h.cv.GridOOF[k] = oof
		}
		return h, nil
	}
	if copts.GradTol == 0 {
		copts.GradTol = cvGradTol
	}
	cv, err := classifier.CrossValidate(x, y, w, folds, grid, copts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &headCV{cv: cv}, nil
}

// observed is y where the weight is positive: a head's rows whose tier was
// observed.
func observed(y, w []float64) []float64 {
	if w == nil {
		return y
	}
	out := make([]float64, 0, len(y))
	for i, v := range y {
		if w[i] > 0 {
			out = append(out, v)
		}
	}
	return out
}

// candidate is one router the heads' fits make: a scorer and, per head it
// uses, a position in the L2 grid.
type candidate struct {
	scorer string
	k      [numHeads]int // grid position of each head used; -1 if unused
	oof    []float64     // out-of-fold raw scores
	apgr   float64
	se     float64
	noMeta bool // fitted with the meta group left out
}

// uses reports whether the candidate's scorer reads head h.
func (c *candidate) uses(h int) bool { return c.k[h] >= 0 }

// heads is how many logistic regressions the candidate scores with.
func (c *candidate) heads() int {
	n := 0
	for _, k := range c.k {
		if k >= 0 {
			n++
		}
	}
	return n
}

// strength orders candidates by how strongly they are penalised: the sum
// of log L2 over the heads they use (larger is simpler).
func (c *candidate) strength(grids [numHeads][]float64) float64 {
	s := 0.0
	for h, k := range c.k {
		if k >= 0 {
			s += math.Log(grids[h][k])
		}
	}
	return s / float64(c.heads())
}

// scorerHeads lists the heads each scorer reads.
var scorerHeads = map[string][]int{
	ScorerLabel:   {headLabel},
	ScorerPerTier: {headStrong, headFast},
	ScorerGain:    {headGain},
	ScorerBlend:   {headStrong, headFast, headGain},
}

// rawScore is a scorer's raw score from its heads' logits: the logit of a
// label model, else the predicted gain of the strong tier in [-1, 1].
func rawScore(scorer string, z [numHeads]float64) float64 {
	switch scorer {
	case ScorerLabel:
		return z[headLabel]
	case ScorerPerTier:
		return sigmoid(z[headStrong]) - sigmoid(z[headFast])
	case ScorerGain:
		return 2*sigmoid(z[headGain]) - 1
	case ScorerBlend:
		return (sigmoid(z[headStrong]) - sigmoid(z[headFast]) + 2*sigmoid(z[headGain]) - 1) / 2
	}
	panic("models: unknown scorer " + scorer)
}

// enumerateCandidates enumerates the routers to compare for scorers: every L2 of
// a one-head scorer, every pair for per-tier (its heads predict different
// things and want different strengths), and one shared L2 for blend.
// grids[h] is head h's L2 grid (one value when the L2 is given).
func enumerateCandidates(scorers []string, grids [numHeads][]float64) []*candidate {
	var out []*candidate
	none := [numHeads]int{-1, -1, -1, -1}
	for _, s := range scorers {
		switch s {
		case ScorerLabel, ScorerGain:
			h := scorerHeads[s][0]
			for k := range grids[h] {
				c := &candidate{scorer: s, k: none}
				c.k[h] = k
				out = append(out, c)
			}
		case ScorerPerTier:
			for a := range grids[headStrong] {
				for b := range grids[headFast] {
					c := &candidate{scorer: s, k: none}
					c.k[headStrong], c.k[headFast] = a, b
					out = append(out, c)
				}
			}
		case ScorerBlend:
			g := 0
			for _, h := range scorerHeads[s] {
				g = max(g, len(grids[h]))
			}
			for k := range g {
				c := &candidate{scorer: s, k: none}
				for _, h := range scorerHeads[s] {
					c.k[h] = min(k, len(grids[h])-1)
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// l2s is the L2 of each head the candidate uses (0 for the others).
func (c *candidate) l2s(grids [numHeads][]float64) [numHeads]float64 {
	var l [numHeads]float64
	for h, k := range c.k {
		if k >= 0 {
			l[h] = grids[h][k]
		}
	}
	return l
}

// headOf is the head whose L2 a report names first: the label's, the
// gain's, or the strong tier's for the scorers with tier heads.
func headOf(scorer string) int {
	switch scorer {
	case ScorerLabel:
		return headLabel
	case ScorerGain:
		return headGain
	}
	return headStrong
}

// CandidateReport is one router the selection compared.
type CandidateReport struct {
	Scorer string `json:"scorer"`
	// L2 holds the strength of each head the scorer uses, by head: strong
	// tier, fast tier, gain, label (0 for heads it does not use).
	L2 [numHeads]float64 `json:"l2"`
	// NoMeta is set for the candidate fitted without the meta group.
	NoMeta bool `json:"no_meta,omitempty"`
	// APGR of its out-of-fold scores, with the standard error.
	APGR   float64 `json:"apgr"`
	SE     float64 `json:"se"`
	Chosen bool    `json:"chosen,omitempty"`
}

// scoreCandidates fills each candidate's out-of-fold scores, APGR and its
// standard error.
func scoreCandidates(cands []*candidate, heads [numHeads]*headCV, weak, strong, w []float64) {
	n := len(weak)
	for _, c := range cands {
		c.oof = make([]float64, n)
		var z [numHeads]float64
		for i := range c.oof {
			for h, k := range c.k {
				if k >= 0 {
					z[h] = heads[h].oof(k)[i]
				}
			}
			c.oof[i] = rawScore(c.scorer, z)
		}
		c.apgr, c.se = apgrSE(c.oof, weak, strong, w)
	}
}

// pickOneSE returns the candidate the one-standard-error rule chooses: the
// simplest (fewest heads, then the strongest mean penalty, then the order
// given) whose APGR is within one standard error of the best's. The
// standard error is that of the difference between the two, paired on the
// same requests: the noise common to both (which requests the log holds)
// cancels from it, so the rule prefers a simpler router when the data
// cannot tell the two apart, not merely when the log is small.
func pickOneSE(cands []*candidate, grids [numHeads][]float64, weak, strong, w []float64) *candidate {
	var best *candidate
	for _, c := range cands {
		if !math.IsNaN(c.apgr) && (best == nil || c.apgr > best.apgr) {
			best = c
		}
	}
	if best == nil {
		// The tiers tie exactly: no candidate can rank; take the first,
		// and the signal check says the router cannot route.
		return cands[0]
	}
	ub := rankShares(best.oof, w)
	pick := best
	for _, c := range cands {
		if c == best || math.IsNaN(c.apgr) {
			continue
		}
		simpler := c.heads() < pick.heads() ||
			c.heads() == pick.heads() && c.strength(grids) > pick.strength(grids)
		if !simpler {
			continue
		}
		if d, se := pairedDiff(ub, rankShares(c.oof, w), weak, strong, w); d <= se {
			pick = c
		}
	}
	return pick
}

// pairedDiff returns the difference in APGR of two rankings of the same
// requests, given as each request's rank share u (see rankShares), and
// its delta-method standard error: both APGRs share the denominator Σ w·g,
// so the difference is Σ w·g·(u_a − u_b) / Σ w·g.
func pairedDiff(ua, ub, weak, strong, w []float64) (d, se float64) {
	var num, den float64
	for i := range ua {
		g := strong[i] - weak[i]
		num += wt(w, i) * g * (ua[i] - ub[i])
		den += wt(w, i) * g
	}
	if den == 0 {
		return math.NaN(), math.NaN()
	}
	d = num / den
	var v float64
	for i := range ua {
		g := strong[i] - weak[i]
		e := wt(w, i) * (g*(ua[i]-ub[i]) - d*g)
		v += e * e
	}
	return d, math.Sqrt(v) / math.Abs(den)
}

func wt(w []float64, i int) float64 {
	if w == nil {
		return 1
	}
	return w[i]
}

// rankShares returns, per request, the share of weight ranked below it by
// descending score: u_j = 1 − (W_{<j} + w_j/2)/W, tied scores sharing the
// mean u of their run (a random order among them).
func rankShares(score, w []float64) []float64 {
	n := len(score)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return score[order[a]] > score[order[b]] })
	var total float64
	for i := range n {
		total += wt(w, i)
	}
	u := make([]float64, n)
	var before float64
	for s := 0; s < n; {
		e := s
		var runW float64
		for e < n && score[order[e]] == score[order[s]] {
			runW += wt(w, order[e])
			e++
		}
		mid := 1 - (before+runW/2)/total
		for j := s; j < e; j++ {
			u[order[j]] = mid
		}
		before += runW
		s = e
	}
	return u
}

// apgrSE returns the APGR of score (the strong tier's gain ranked by
// descending score, ties in a random order) and its delta-method standard
// error. With rows in descending score order, APGR is a ratio of weighted
// means, Σ w·g·u / Σ w·g, where g is the gain strong−fast and u_j =
// 1 − (W_{<j} + w_j/2)/W the share of weight ranked below row j; its
// variance is that of the linearised terms w·(g·u − APGR·g) over n. It is
// NaN when the tiers' mean gain is 0. The standard error treats the order
// as fixed, as the AUC's Hanley-McNeil one does, so it measures how much
// the data behind a ranking could move it, not the ranking's own noise.
func apgrSE(score, weak, strong, w []float64) (apgr, se float64) {
	if len(score) == 0 {
		return math.NaN(), math.NaN()
	}
	u := rankShares(score, w)
	var num, den float64
	for i := range u {
		g := strong[i] - weak[i]
		num += wt(w, i) * g * u[i]
		den += wt(w, i) * g
	}
	if den == 0 {
		return math.NaN(), math.NaN()
	}
	apgr = num / den
	// Var of the ratio: Σ w²(g u − apgr g)² / (Σ w g)², the linearised
	// ratio estimator with the weights as frequencies.
	var v float64
	for i := range u {
		g := strong[i] - weak[i]
		d := wt(w, i) * (g*u[i] - apgr*g)
		v += d * d
	}
	return apgr, math.Sqrt(v) / math.Abs(den)
}

// metaVaries reports whether the design's meta block (columns from mb on,
// before compaction to cols) holds at least two columns in use: a log
// whose meta takes one value (or none) has nothing in it to choose about.
func metaVaries(x *classifier.Sparse, cols []int32, mb int) bool {
	used := map[int32]bool{}
	for _, j := range x.Idx {
		orig := int(j)
		if cols != nil {
			if int(j) >= len(cols) {
				continue
			}
			orig = int(cols[j])
		}
		if orig >= mb {
			used[j] = true
			if len(used) > 1 {
				return true
			}
		}
	}
	return false
}

// withoutColumns returns x with the values of the columns from mb on
// (before compaction to cols) set to zero, sharing x's indices: a fit on
// it leaves those columns' weights at zero.
func withoutColumns(x *classifier.Sparse, cols []int32, mb int) *classifier.Sparse {
	val := slices.Clone(x.Val)
	for k, j := range x.Idx {
		orig := int(j)
		if cols != nil {
			if int(j) >= len(cols) {
				continue
			}
			orig = int(cols[j])
		}
		if orig >= mb {
			val[k] = 0
		}
	}
	return &classifier.Sparse{Dim: x.Dim, Indptr: x.Indptr, Idx: x.Idx, Val: val}
}
