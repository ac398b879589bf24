package classifier

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Calibration methods.
const (
	// CalibPlatt is p = 1/(1+exp(−(A·z + B))) on the raw logit z.
	CalibPlatt = "platt"
	// CalibIsotonic is a monotone piecewise-linear map through the points
	// (X[k], Y[k]), flat beyond the ends (or continuing the end segments,
	// LinearTails), plus a tie-break term of at most ProbEps/2 that keeps
	// it strictly increasing (see Apply).
	CalibIsotonic = "isotonic"
	// CalibIdentity is the logistic function of z itself.
	CalibIdentity = "identity"
)

// ProbEps bounds calibrated probabilities to [ProbEps, 1−ProbEps]. An
// isotonic block without positives would otherwise say exactly 0, and one
// confident mistake would cost an infinite log loss.
const ProbEps = 1e-6

// Calibration maps a raw score z (a logit, or any score that grows with
// the probability) to a probability. The zero value is not valid; build one
// with FitPlatt, FitIsotonic or Identity.
type Calibration struct {
	// Method is CalibPlatt, CalibIsotonic or CalibIdentity.
	Method string `json:"method"`
	// A and B are Platt's slope and intercept (CalibPlatt only).
	A float64 `json:"a"`
	B float64 `json:"b"`
	// X holds the isotonic knots (block centres in z), strictly increasing,
	// and Y the probability at each, non-decreasing (CalibIsotonic only).
	X []float64 `json:"x,omitempty"`
	Y []float64 `json:"y,omitempty"`
	// LinearTails (isotonic only) continues the end segments' slopes past
	// the end knots instead of holding the end values. Every request past
	// an end knot (the most and the least likely, half a block each) then
	// keeps a p_hard that grows with its score; flat, they all share one
	// value up to a tie-break of ProbEps/2, and two maps fitted on
	// different samples order those requests by sample rather than by
	// score. Set it on a fitted map; FitIsotonic leaves it off.
	LinearTails bool `json:"linear_tails,omitempty"`
}

// Identity returns the calibration that trusts the logit: p = σ(z).
func Identity() Calibration { return Calibration{Method: CalibIdentity} }

// Apply returns the calibrated probability of z, in [ProbEps, 1−ProbEps]
// (NaN for NaN z). An empty or unknown Method acts as CalibIdentity; use
// Validate to reject it. It allocates nothing.
func (c *Calibration) Apply(z float64) float64 {
	// An infinite score has the map's limit, not the NaN that ∞·0 makes
	// of a flat end segment or a zero Platt slope.
	z = math.Max(-math.MaxFloat64, math.Min(z, math.MaxFloat64))
	var p float64
	switch c.Method {
	case CalibPlatt:
		p = sigmoid(c.A*z + c.B)
	case CalibIsotonic:
		// The fitted map is flat beyond its end knots (unless LinearTails,
		// and then where a tail reaches 0 or 1) and wherever two knots
		// share a probability, and a flat stretch would tie every
		// request in it: a router ranks by p_hard, so the tie would throw
		// away the order its score made, at the top of the ranking where
		// it matters most. A strictly increasing term of at most
		// ProbEps/2 keeps that order and moves no probability by more than
		// ProbEps/2; clamping first to [2·ProbEps, 1−2·ProbEps] keeps the
		// sum inside the bounds, so the final clamp never flattens it.
		iso := c.isotonic(z)
		if math.IsNaN(iso) {
			// No knots, X and Y of different lengths, or a NaN z: there is
			// no probability, and no middle knot for the tie-break term
			// below to index (with no knots that indexing panicked).
			return iso
		}
		q := math.Min(math.Max(iso, 2*ProbEps), 1-2*ProbEps)
		p = q + ProbEps/2*math.Tanh(z-c.X[(len(c.X)-1)/2])
	default:
		p = sigmoid(z)
	}
	return math.Min(math.Max(p, ProbEps), 1-ProbEps)
}

func (c *Calibration) isotonic(z float64) float64 {
	x, y := c.X, c.Y
	n := len(x)
	switch {
	case n == 0 || len(y) != n || math.IsNaN(z):
		return math.NaN()
	case z <= x[0]:
		if c.LinearTails && n > 1 {
			return math.Max(y[0]+(z-x[0])*(y[1]-y[0])/(x[1]-x[0]), 0)
		}
		return y[0]
	case z >= x[n-1]:
		if c.LinearTails && n > 1 {
			return math.Min(y[n-1]+(z-x[n-1])*(y[n-1]-y[n-2])/(x[n-1]-x[n-2]), 1)
		}
		return y[n-1]
	}
	// Smallest k with x[k] > z; then x[k-1] ≤ z < x[k].
	lo, hi := 1, n-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x[m] > z {
			hi = m
		} else {
			lo = m + 1
		}
	}
	t := (z - x[lo-1]) / (x[lo] - x[lo-1])
	return y[lo-1] + t*(y[lo]-y[lo-1])
}

// Validate reports whether c can be applied: a known method, finite
// parameters, and for isotonic a strictly increasing X and a
// non-decreasing Y in [0,1] of the same length.
func (c *Calibration) Validate() error {
	switch c.Method {
	case CalibIdentity:
		return nil
	case CalibPlatt:
		if !finite(c.A) || !finite(c.B) {
			return fmt.Errorf("platt calibration: a = %v, b = %v, want finite numbers", c.A, c.B)
		}
		if c.LinearTails {
			return errors.New("platt calibration: linear_tails is for isotonic maps")
		}
		return nil
	case CalibIsotonic:
		if len(c.X) == 0 || len(c.X) != len(c.Y) {
			return fmt.Errorf("isotonic calibration: %d knots x and %d values y, want the same positive number", len(c.X), len(c.Y))
		}
		for k := range c.X {
			if !finite(c.X[k]) {
				return fmt.Errorf("isotonic calibration: x[%d] is %v, want a finite number", k, c.X[k])
			}
			if !(c.Y[k] >= 0 && c.Y[k] <= 1) {
				return fmt.Errorf("isotonic calibration: y[%d] is %v, want a value in [0,1]", k, c.Y[k])
			}
			if k > 0 && !(c.X[k] > c.X[k-1]) {
				return fmt.Errorf("isotonic calibration: x[%d] = %v does not exceed x[%d] = %v; knots must increase", k, c.X[k], k-1, c.X[k-1])
			}
			if k > 0 && c.Y[k] < c.Y[k-1] {
				return fmt.Errorf("isotonic calibration: y[%d] = %v is below y[%d] = %v; values must not decrease", k, c.Y[k], k-1, c.Y[k-1])
			}
		}
		return nil
	case "":
		return errors.New("calibration method is empty, want platt, isotonic or identity")
	default:
		return fmt.Errorf("calibration method is %q, want platt, isotonic or identity", c.Method)
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkCalibInput validates the inputs of a calibration fit.
func checkCalibInput(what string, z, y, w []float64) error {
	checkLen(what, len(z), y, w)
	if len(z) == 0 {
		return fmt.Errorf("%s: no points to fit", what)
	}
	var sum float64
	for i := range z {
		if !finite(z[i]) {
			return fmt.Errorf("%s: score of point %d is %v, want a finite number", what, i, z[i])
		}
		if !(y[i] >= 0 && y[i] <= 1) {
			return fmt.Errorf("%s: label of point %d is %v, want a value in [0,1]", what, i, y[i])
		}
		wi := weightAt(w, i)
		if !finite(wi) || wi < 0 {
			return fmt.Errorf("%s: weight of point %d is %v, want a finite value >= 0", what, i, wi)
		}
		sum += wi
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return fmt.Errorf("%s: weights sum to %v, want a finite positive total", what, sum)
	}
	return nil
}

// FitPlatt fits p = σ(A·z + B) to labels y in [0,1] by weighted maximum
// likelihood with Platt's smoothed targets: a label 1 counts as
// (N₊+1)/(N₊+2) and a label 0 as 1/(N₋+2), N₊ and N₋ the weighted class
// totals, which keeps A finite on separable scores. It uses Newton's method
// with a backtracking line search (Lin, Lin & Weng 2007). w nil means all
// ones.
func FitPlatt(z, y, w []float64) (Calibration, error) {
	if err := checkCalibInput("fit platt", z, y, w); err != nil {
		return Calibration{}, err
	}
	var npos, nneg float64
	for i := range z {
		wi := weightAt(w, i)
		npos += wi * y[i]
		nneg += wi * (1 - y[i])
	}
	hi := (npos + 1) / (npos + 2)
	lo := 1 / (nneg + 2)
	target := func(i int) float64 { return y[i]*hi + (1-y[i])*lo }
	sumW := npos + nneg

	// Mean objective, so tolerances do not depend on the data size.
	obj := func(a, b float64) float64 {
		var f float64
		for i, v := range z {
			f += weightAt(w, i) * logLoss1(a*v+b, target(i))
		}
		return f / sumW
	}
	a, b := 0.0, math.Log((npos+1)/(nneg+1))
	f := obj(a, b)
	gPrev := math.Inf(1) // the last iteration's largest gradient entry
	const (
		maxIter = 100
		minStep = 1e-10
		ridge   = 1e-12 // keeps the 2x2 Hessian invertible
		gtol    = 1e-9
		// looseGTol is accepted when maxIter steps could not reach gtol.
		looseGTol = 1e-6
		// decrementFloor is the smallest decrease of f, relative to f, a
		// step is taken for: 64 units in the last place.
		decrementFloor = 64 * 0x1p-52
	)
	for iter := 0; ; iter++ {
		var ga, gb, haa, hab, hbb float64
		for i, v := range z {
			wi := weightAt(w, i)
			p := sigmoid(a*v + b)
			r := wi * (p - target(i))
			ga += r * v
			gb += r
			d := wi * p * (1 - p)
			haa += d * v * v
			hab += d * v
			hbb += d
		}
		ga, gb = ga/sumW, gb/sumW
		haa, hab, hbb = haa/sumW+ridge, hab/sumW, hbb/sumW+ridge
		if math.Abs(ga) < gtol && math.Abs(gb) < gtol {
			break
		}
		if iter == maxIter {
			// Rounding in the summed gradient can keep it just above gtol
			// on large logits; a gradient this small is an optimum for any
			// purpose a probability is put to.
			if math.Abs(ga) < looseGTol && math.Abs(gb) < looseGTol {
				break
			}
			return Calibration{}, fmt.Errorf("fit platt: no convergence after %d Newton steps (gradient %.3g, %.3g): %w", maxIter, ga, gb, ErrNotConverged)
		}
		det := haa*hbb - hab*hab
		da := -(hbb*ga - hab*gb) / det
		db := -(-hab*ga + haa*gb) / det
		gd := ga*da + gb*db
		g := math.Max(math.Abs(ga), math.Abs(gb))
		if -gd <= decrementFloor*math.Abs(f) && g >= 0.9*gPrev {
			// Newton has stalled: the gradient has all but stopped
			// shrinking (what is left of it is rounding in its sum over z;
			// Newton's steps shrink a real one far faster) and the step would
			// lower f by less than f's rounding can show (-gd is twice the
			// decrease it predicts). The line search could only halve the
			// step, pass after pass over z: on 500k per-tier scores that
			// was 120 passes (2.5 s) moving a by 6e-11.
			break
		}
		gPrev = g
		step := 1.0
		for {
			na, nb := a+step*da, b+step*db
			if na == a && nb == b {
				// The step no longer moves the parameters: the gradient left
				// is rounding in its sum, and more steps would only repeat
				// this one (up to maxIter passes over z for nothing).
				return Calibration{Method: CalibPlatt, A: a, B: b}, nil
			}
			nf := obj(na, nb)
			if nf <= f+1e-4*step*gd {
				a, b, f = na, nb, nf
				break
			}
			step /= 2
			if step < minStep {
				// The Newton direction cannot decrease f further: we are at
				// the optimum to rounding.
				return Calibration{Method: CalibPlatt, A: a, B: b}, nil
			}
		}
	}
	return Calibration{Method: CalibPlatt, A: a, B: b}, nil
}

// FitIsotonic fits a non-decreasing map from z to y by weighted
// pool-adjacent-violators. Equal scores are pooled first; each final block
// becomes one knot at its weighted mean score, holding its weighted mean
// label, and Apply interpolates linearly between knots. Points of weight 0
// are ignored. w nil means all ones.
func FitIsotonic(z, y, w []float64) (Calibration, error) {
	if err := checkCalibInput("fit isotonic", z, y, w); err != nil {
		return Calibration{}, err
	}
	order := make([]int, 0, len(z))
	for i := range z {
		if weightAt(w, i) > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(z[a], z[b]) })

	// Blocks as a stack: weight, weighted sums of z and y, and the
	// position in order of the block's first point.
	type block struct {
		w, wz, wy float64
		from      int
	}
	stack := make([]block, 0, 64)
	for s := 0; s < len(order); {
		bl := block{from: s}
		e := s
		for ; e < len(order) && z[order[e]] == z[order[s]]; e++ {
			i := order[e]
			wi := weightAt(w, i)
			bl.w += wi
			bl.wz += wi * z[i]
			bl.wy += wi * y[i]
		}
		// Pool while the previous block's mean exceeds this one's
		// (a.wy/a.w > b.wy/b.w, compared without dividing).
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			l, r := top.wy*bl.w, bl.wy*top.w
			if math.IsInf(l, 0) || math.IsInf(r, 0) || l == 0 && top.wy != 0 || r == 0 && bl.wy != 0 {
				// Huge or tiny finite weights overflow or underflow the
				// cross products (Inf <= Inf, 0 <= 0), which left violating
				// blocks unpooled. Compare the means themselves then; the
				// products are kept otherwise so ordinary fits are unchanged.
				l, r = top.wy/top.w, bl.wy/bl.w
			}
			if l <= r {
				break
			}
			bl = block{top.w + bl.w, top.wz + bl.wz, top.wy + bl.wy, top.from}
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, bl)
		s = e
	}
	c := Calibration{Method: CalibIsotonic, X: make([]float64, len(stack)), Y: make([]float64, len(stack))}
	for k, bl := range stack {
		c.X[k] = bl.wz / bl.w
		if !finite(c.X[k]) {
			// Finite scores and weights can overflow Σ w·z (scores near
			// ±MaxFloat64, or weights near it), which put a knot at ±Inf:
			// a map Validate rejects. Average with normalised weights
			// instead, which cannot overflow, and keep it within the
			// block's scores against rounding. Only overflowing blocks
			// take this path.
			to := len(order)
			if k+1 < len(stack) {
				to = stack[k+1].from
			}
			var mean float64
			for _, i := range order[bl.from:to] {
				mean += weightAt(w, i) / bl.w * z[i]
			}
			c.X[k] = math.Min(math.Max(mean, z[order[bl.from]]), z[order[to-1]])
		}
		c.Y[k] = math.Min(math.Max(bl.wy/bl.w, 0), 1)
		if k > 0 {
			// Rounding can make a pooled mean dip below the previous one.
			c.Y[k] = math.Max(c.Y[k], c.Y[k-1])
			if !(c.X[k] > c.X[k-1]) {
				// Two blocks' mean scores can coincide after rounding when
				// scores differ only in the last bits; nudge to keep X
				// strictly increasing.
				c.X[k] = math.Nextafter(c.X[k-1], math.Inf(1))
			}
		}
	}
	return c, nil
}

// ChooseCalibration fits Platt and isotonic calibrations on (zFit, yFit,
// wFit) and returns the one with the lower weighted log loss on (zHeld,
// yHeld, wHeld), with both held-out losses. Ties go to Platt, the simpler
// map.
func ChooseCalibration(zFit, yFit, wFit, zHeld, yHeld, wHeld []float64) (best Calibration, plattLoss, isotonicLoss float64, err error) {
	if err := checkCalibInput("choose calibration (held-out points)", zHeld, yHeld, wHeld); err != nil {
		return Calibration{}, 0, 0, err
	}
	platt, err := FitPlatt(zFit, yFit, wFit)
	if err != nil {
		return Calibration{}, 0, 0, fmt.Errorf("choose calibration: %w", err)
	}
	iso, err := FitIsotonic(zFit, yFit, wFit)
	if err != nil {
		return Calibration{}, 0, 0, fmt.Errorf("choose calibration: %w", err)
	}
	plattLoss = heldLoss(&platt, zHeld, yHeld, wHeld)
	isotonicLoss = heldLoss(&iso, zHeld, yHeld, wHeld)
	if isotonicLoss < plattLoss {
		return iso, plattLoss, isotonicLoss, nil
	}
	return platt, plattLoss, isotonicLoss, nil
}

func heldLoss(c *Calibration, z, y, w []float64) float64 {
	var num, den float64
	for i, v := range z {
		wi := weightAt(w, i)
		num += wi * clippedLoss(c.Apply(v), y[i])
		den += wi
	}
	return num / den
}
