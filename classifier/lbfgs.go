package classifier

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// runLBFGS minimises o from theta (updated in place) with gonum's L-BFGS.
// start, if not nil, holds f and ∇f at theta.
func runLBFGS(o *objective, theta []float64, g0 float64, start *evalPoint, opts Options) (FitResult, error) {
	// gonum asks for the value and the gradient separately but at the same
	// point; one fused pass computes both and the cache serves the second.
	cacheX := make([]float64, o.dim)
	cacheG := make([]float64, o.dim)
	cacheF := math.NaN()
	if start != nil {
		copy(cacheX, theta)
		copy(cacheG, start.grad)
		cacheF = start.f
	}
	evals := 0
	eval := func(x []float64) {
		if !math.IsNaN(cacheF) && equalBits(x, cacheX) {
			return
		}
		copy(cacheX, x)
		cacheF = o.evalGrad(x, cacheG, false)
		evals++
	}
	prob := optimize.Problem{
		Func: func(x []float64) float64 {
			eval(x)
			return cacheF
		},
		Grad: func(grad, x []float64) {
			eval(x)
			copy(grad, cacheG)
		},
	}
	// Like the Newton solver, a warm start takes at least one step.
	conv := &relGradConverger{tol: opts.GradTol * g0, warm: start == nil}
	settings := &optimize.Settings{
		Converger:       conv,
		MajorIterations: opts.MaxIter,
	}
	method := &optimize.LBFGS{Store: lbfgsStore, Linesearcher: &optimize.MoreThuente{}}
	result, err := optimize.Minimize(prob, theta, settings, method)
	res := FitResult{Evaluations: evals}
	if result != nil {
		res.Status = result.Status.String()
		res.Iterations = result.MajorIterations
		res.Objective = result.F
		if result.Gradient != nil {
			res.GradNorm = norm2(result.Gradient) / g0
		}
	}
	converged, err := lbfgsOutcome(result, err)
	if err != nil {
		return res, fmt.Errorf("%w after %d iterations (relative gradient %.3g)", err, res.Iterations, res.GradNorm)
	}
	res.Converged = converged
	copy(theta, result.X)
	return res, nil
}

// lbfgsOutcome sorts gonum's ending into converged, stopped by MaxIter
// (converged false, no error), or failed (an error wrapping
// ErrNotConverged).
func lbfgsOutcome(result *optimize.Result, err error) (converged bool, _ error) {
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotConverged, err)
	}
	switch result.Status {
	case optimize.GradientThreshold, optimize.FunctionConvergence, optimize.StepConvergence,
		optimize.MethodConverge, optimize.Success:
		return true, nil
	case optimize.IterationLimit:
		return false, nil
	default:
		return false, fmt.Errorf("%w: optimizer stopped with status %v", ErrNotConverged, result.Status)
	}
}

// relGradConverger stops when ‖∇f‖₂ falls to tol, and (as a fallback for
// problems converged to machine precision) when f has not decreased by a
// relative 1e-14 for 10 iterations.
type relGradConverger struct {
	tol   float64
	warm  bool // ignore the starting point's gradient
	best  float64
	stall int
	first bool
}

func (c *relGradConverger) Init(int) { c.first, c.stall = true, 0 }

func (c *relGradConverger) Converged(loc *optimize.Location) optimize.Status {
	if c.first && c.warm {
		c.first, c.best = false, loc.F
		return optimize.NotTerminated
	}
	if loc.Gradient != nil && norm2(loc.Gradient) <= c.tol {
		return optimize.GradientThreshold
	}
	if c.first || loc.F < c.best-1e-14*math.Abs(c.best) {
		c.first, c.best, c.stall = false, loc.F, 0
		return optimize.NotTerminated
	}
	c.stall++
	if c.stall >= 10 {
		return optimize.FunctionConvergence
	}
	return optimize.NotTerminated
}

func equalBits(a, b []float64) bool {
	for i, v := range a {
		if math.Float64bits(v) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
