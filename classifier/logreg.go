package classifier

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// Defaults for Options fields left at zero.
const (
	// DefaultL2 is the ridge penalty λ. With the mean loss it is the
	// equivalent of liblinear's or scikit-learn's C = 1/(λ·n): C = 1 at
	// n = 10,000 rows.
	DefaultL2 = 1e-4
	// DefaultMaxIter bounds the outer iterations of the L-BFGS solver.
	DefaultMaxIter = 1000
	// DefaultNewtonMaxIter bounds the outer (trust-region) iterations of
	// the Newton solver; each runs several conjugate-gradient steps.
	DefaultNewtonMaxIter = 200
	// DefaultGradTolFactor sets the default relative gradient tolerance the
	// way liblinear's `train -s 0` does: GradTol = 0.01·min(W₊, W₋)/W, with
	// W₊ = Σ v_i·y_i and W₋ = Σ v_i·(1−y_i) the weighted class totals of the
	// training rows (0.005 for balanced labels, tighter when one class is
	// rare), relative to the gradient at the null model rather than at
	// zero (see Options.GradTol). On balanced labels fits stop where
	// liblinear's would; on 1M synthetic rows the objective was within
	// 2e-4 of a fit 300 times tighter.
	DefaultGradTolFactor = 0.01
	// DefaultLBFGSGradTol is the default relative gradient tolerance of the
	// L-BFGS solver. Its iterates at a given gradient norm are further from
	// the optimum than Newton's, so liblinear's rule would stop it early
	// (by 15% of the objective on weakly regularised test data).
	DefaultLBFGSGradTol = 1e-4
	// DefaultSolver is the solver used when Options.Solver is empty.
	DefaultSolver = SolverNewton
)

// Solvers for Options.Solver.
const (
	// SolverLBFGS is gonum's limited-memory BFGS (optimize.LBFGS) with a
	// More-Thuente line search.
	SolverLBFGS = "lbfgs"
	// SolverNewton is a trust-region Newton method with conjugate-gradient
	// inner steps, the algorithm of liblinear's `train -s 0` (Lin, Weng &
	// Keerthi 2008). It uses exact Hessian-vector products.
	SolverNewton = "newton"
)

// warmTolScale tightens the default GradTol of warm-started fits.
const warmTolScale = 0.1

// lbfgsStore is the L-BFGS history length; each pair costs 2·(Dim+1)
// floats, so 10 pairs are 160 MiB at Dim = 2^20.
const lbfgsStore = 10

// Options tunes Fit. The zero value selects every default.
type Options struct {
	// L2 is the ridge penalty λ on the weights (not the intercept) in
	// mean loss + λ/2·‖w‖². Zero means DefaultL2; it must not be negative.
	// For an almost unpenalised fit pass a tiny value such as 1e-12.
	L2 float64
	// MaxIter bounds the solver's outer iterations. Zero means
	// DefaultMaxIter (L-BFGS) or DefaultNewtonMaxIter (Newton). Reaching
	// it is not an error: Fit returns the last iterate and FitResult says
	// Converged false.
	MaxIter int
	// GradTol is the relative gradient tolerance: the fit has converged
	// when ‖∇f(θ)‖₂ ≤ GradTol·‖∇f(θ₀)‖₂, θ₀ the null model (all weights
	// zero, the intercept at the logit of the weighted mean label),
	// whatever Init is. Zero means liblinear's rule for the
	// Newton solver (see DefaultGradTolFactor) and DefaultLBFGSGradTol for
	// L-BFGS, ten times tighter when Init is set (a warm start from a fit
	// at a larger L2 has a small gradient but need not be near the
	// optimum). With weak regularisation (L2 below about 1e-5) even a cold
	// fit can stop with the objective a fraction of a percent above its
	// minimum; pass a smaller GradTol when that matters.
	GradTol float64
	// Workers is how many goroutines evaluate the loss. Zero means
	// GOMAXPROCS. It changes speed only: results are bit-identical for any
	// value.
	Workers int
	// Spare, if set, lets the fit borrow cores that concurrent work has
	// finished with: each evaluation runs on Workers plus the cores Spare
	// counts as free at that moment (up to GOMAXPROCS). Like Workers it
	// changes speed only.
	Spare *Spare
	// Solver is SolverNewton or SolverLBFGS. Empty means DefaultSolver.
	Solver string
	// Init, if set, is the starting point (a warm start); nil starts from
	// zero. Its W must have X.Dim entries.
	Init *Model
}

// Model is a binary logistic regression: p = 1/(1+exp(−(x·W + B))).
type Model struct {
	// W holds one weight per feature column.
	W []float64 `json:"w"`
	// B is the intercept.
	B float64 `json:"b"`
}

// Logit returns x·W + B for the sparse vector (idx, val); repeated indices
// add up. It allocates nothing.
func (m *Model) Logit(idx []int32, val []float64) float64 {
	z := m.B
	val = val[:len(idx)]
	for k, j := range idx {
		z += float64(val[k] * m.W[j])
	}
	return z
}

// Prob returns the (uncalibrated) probability of the positive label.
func (m *Model) Prob(idx []int32, val []float64) float64 {
	return sigmoid(m.Logit(idx, val))
}

// FitResult describes how a fit ended.
type FitResult struct {
	// Solver is the solver that ran.
	Solver string `json:"solver"`
	// Status is why it stopped, as a gonum optimize.Status name:
	// GradientThreshold, FunctionConvergence, MethodConverge, Success or
	// IterationLimit.
	Status string `json:"status"`
	// Converged is false only when MaxIter stopped the fit.
	Converged bool `json:"converged"`
	// Iterations is the number of outer iterations.
	Iterations int `json:"iterations"`
	// Evaluations counts passes over the data (loss+gradient evaluations
	// and Hessian-vector products).
	Evaluations int `json:"evaluations"`
	// Objective is f at the returned model.
	Objective float64 `json:"objective"`
	// GradNorm is ‖∇f‖₂ at the returned model relative to ‖∇f(θ₀)‖₂, θ₀
	// the null model.
	GradNorm float64 `json:"grad_norm"`
}

// ErrNotConverged is returned (wrapped) when a solver stops for a reason
// other than convergence or the iteration limit, e.g. a failed line search.
var ErrNotConverged = errors.New("logistic regression did not converge")

// ErrOneClass is returned (wrapped) when every training row with positive
// weight has label 0, or every one has label 1.
var ErrOneClass = errors.New("the training rows hold only one class")

// Fit trains a binary logistic regression on the rows of X with labels y
// in [0,1] (fractional labels are allowed) and optional per-row weights
// (nil means all ones). It minimises
//
//	f(w, b) = Σ_i w_i·ℓ(y_i, x_i·w + b) / Σ_i w_i + L2/2·‖w‖²,
//	ℓ(y, z) = log(1 + e^z) − y·z,
//
// so the intercept b is not penalised and a weight of 2 is the same as the
// row appearing twice. It returns an error for non-finite or out-of-range
// labels, weights or matrix values, and when the solver fails.
func Fit(X *Sparse, y, weights []float64, opts Options) (*Model, error) {
	m, _, err := FitDetailed(X, y, weights, opts)
	return m, err
}

// FitDetailed is Fit that also reports how the solver ended.
func FitDetailed(X *Sparse, y, weights []float64, opts Options) (*Model, FitResult, error) {
	checkShapes(X, y, weights)
	if err := X.Validate(); err != nil {
		return nil, FitResult{}, fmt.Errorf("fit logistic regression: %w", err)
	}
	if err := checkLabelsWeights(y, weights); err != nil {
		return nil, FitResult{}, fmt.Errorf("fit logistic regression: %w", err)
	}
	cx, cols := compactColumns(X)
	if cols == nil {
		return fitRows(X, y, weights, nil, opts)
	}
	if opts.Init != nil && len(opts.Init.W) != X.Dim {
		panic(fmt.Sprintf("classifier: init model has %d weights for %d columns", len(opts.Init.W), X.Dim))
	}
	opts.Init = compactModel(opts.Init, cols, cx.Dim)
	m, res, err := fitRows(cx, y, weights, nil, opts)
	if err != nil {
		return nil, res, err
	}
	return expandModel(m, cols, X.Dim), res, nil
}

// checkShapes panics on mismatched lengths: a programmer error.
func checkShapes(X *Sparse, y, weights []float64) {
	if X == nil {
		panic("classifier: nil matrix")
	}
	if len(y) != X.Rows() {
		panic(fmt.Sprintf("classifier: %d labels for %d rows", len(y), X.Rows()))
	}
	if weights != nil && len(weights) != len(y) {
		panic(fmt.Sprintf("classifier: %d weights for %d rows", len(weights), len(y)))
	}
}

func checkLabelsWeights(y, weights []float64) error {
	if len(y) == 0 {
		return errors.New("no training rows; need at least one row with positive weight")
	}
	for i, v := range y {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("label of row %d is %v, want a value in [0,1]", i, v)
		}
	}
	if weights == nil {
		return nil
	}
	var sum float64
	for i, v := range weights {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("weight of row %d is %v, want a finite value >= 0", i, v)
		}
		sum += v
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return fmt.Errorf("weights sum to %v, want a finite positive total", sum)
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.L2 < 0 || math.IsNaN(o.L2) || math.IsInf(o.L2, 0) {
		return o, fmt.Errorf("l2 is %v, want a finite value >= 0", o.L2)
	}
	if o.L2 == 0 {
		o.L2 = DefaultL2
	}
	if o.GradTol < 0 || math.IsNaN(o.GradTol) {
		return o, fmt.Errorf("grad tol is %v, want a value >= 0", o.GradTol)
	}
	if o.MaxIter < 0 {
		return o, fmt.Errorf("max iter is %d, want a value >= 0", o.MaxIter)
	}
	if o.Solver == "" {
		o.Solver = DefaultSolver
	}
	switch o.Solver {
	case SolverLBFGS:
		if o.MaxIter == 0 {
			o.MaxIter = DefaultMaxIter
		}
	case SolverNewton:
		if o.MaxIter == 0 {
			o.MaxIter = DefaultNewtonMaxIter
		}
	default:
		return o, fmt.Errorf("solver is %q, want %q or %q", o.Solver, SolverNewton, SolverLBFGS)
	}
	return o, nil
}

// evalPoint is the objective's value and gradient at a point.
type evalPoint struct {
	f    float64
	grad []float64
}

// fitRows fits on the given rows (nil = all). Inputs are already checked.
func fitRows(X *Sparse, y, weights []float64, rows []int, opts Options) (*Model, FitResult, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, FitResult{}, fmt.Errorf("fit logistic regression: %w", err)
	}
	o := newObjective(X, y, weights, rows, opts.L2, opts.Workers)
	o.spare = opts.Spare
	if math.IsInf(o.invW, 0) || o.invW == 0 || math.IsNaN(o.invW) {
		return nil, FitResult{}, errors.New("fit logistic regression: the training rows have zero total weight; give some rows a positive weight")
	}
	share := o.minorityShare()
	if share == 0 {
		return nil, FitResult{}, fmt.Errorf("fit logistic regression: %w; the unpenalised intercept would grow without bound, so give rows of both labels", ErrOneClass)
	}
	theta := make([]float64, o.dim)
	// The null model, all weights zero and the intercept at the logit of
	// the weighted mean label, anchors GradTol, and is the starting point
	// unless Init is set. Its gradient does not depend on λ and has no
	// intercept part, so the tolerance measures what the features have
	// left to learn. Anchored at zero instead, a label mean far from 1/2
	// (a tier that is right 80% of the time, say) puts most of the first
	// gradient in the intercept, and a fit stopped as soon as the
	// intercept was right, with the weights of a weak signal barely moved:
	// on RouteLLM-style graded logs that changed the out-of-fold ranking
	// by as much as 0.19 APGR between two fits of the same problem.
	theta[o.dim-1] = o.nullIntercept()
	start := &evalPoint{grad: make([]float64, o.dim)}
	start.f = o.evalGrad(theta, start.grad, true)
	o.acceptCurv()
	g0 := norm2(start.grad)
	if math.IsInf(g0, 0) || math.IsNaN(g0) {
		// Finite but huge feature values (above about 1e154) overflow
		// ‖∇f(θ₀)‖. The tolerance, relative to it, would be +Inf and the
		// solvers would stop at once and report the null model as
		// converged; the Hessian's x² terms overflow too, so no step could
		// be trusted anyway.
		return nil, FitResult{}, fmt.Errorf("fit logistic regression: the gradient at the null model is %v (feature values too large; rescale them): %w", g0, ErrNotConverged)
	}
	if opts.GradTol == 0 {
		opts.GradTol = DefaultGradTolFactor * share
		if opts.Solver == SolverLBFGS {
			opts.GradTol = DefaultLBFGSGradTol
		}
		if opts.Init != nil {
			// A warm start from a fit at a larger λ sits where the
			// gradient, (λ_old−λ)·w, is small but the gap, up to
			// ‖(λ_old−λ)·w‖²/2λ, need not be. Ten times tighter costs about
			// one more Newton step.
			opts.GradTol *= warmTolScale
		}
	}
	if g0 == 0 {
		// The null model is optimal already (no feature correlates with
		// the label), and the objective is strictly convex, so it is the
		// answer whatever Init. Objective is f there (it was left at 0).
		return &Model{W: theta[: o.dim-1 : o.dim-1], B: theta[o.dim-1]}, FitResult{Solver: opts.Solver, Status: optimize.GradientThreshold.String(), Converged: true, Evaluations: 1, Objective: start.f}, nil
	}
	if opts.Init != nil {
		if len(opts.Init.W) != X.Dim {
			panic(fmt.Sprintf("classifier: init model has %d weights for %d columns", len(opts.Init.W), X.Dim))
		}
		copy(theta, opts.Init.W)
		theta[o.dim-1] = opts.Init.B
		start = nil
	}
	var res FitResult
	switch opts.Solver {
	case SolverLBFGS:
		res, err = runLBFGS(o, theta, g0, start, opts)
	default:
		res, err = runNewton(o, theta, g0, start, opts)
	}
	res.Solver = opts.Solver
	res.Evaluations++ // the pass at zero
	if err != nil {
		return nil, res, fmt.Errorf("fit logistic regression (%s, l2 %g): %w", opts.Solver, opts.L2, err)
	}
	for j, v := range theta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, res, fmt.Errorf("fit logistic regression: parameter %d is %v after fitting: %w", j, v, ErrNotConverged)
		}
	}
	m := &Model{W: theta[: o.dim-1 : o.dim-1], B: theta[o.dim-1]}
	return m, res, nil
}

func norm2(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += float64(x * x)
	}
	return math.Sqrt(s)
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		s += float64(x * b[i])
	}
	return s
}

// axpy sets y += a·x.
func axpy(a float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += float64(a * v)
	}
}
