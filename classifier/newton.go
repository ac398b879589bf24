package classifier

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// runNewton minimises o from theta (updated in place) with the trust-region
// Newton method of liblinear's `train -s 0` (tron.cpp): Lin, Weng & Keerthi
// (2008), "Trust region Newton method for large-scale logistic regression",
// with the diagonal preconditioner of Hsia, Chiang & Lin (2018). Each outer
// step solves H s = −g approximately by preconditioned conjugate gradients
// inside a trust region, then grows or shrinks the region by how well the
// quadratic model predicted the actual decrease.
//
// start, if not nil, holds f and ∇f at theta, with the curvature of theta
// already accepted into o.
func runNewton(o *objective, theta []float64, g0 float64, start *evalPoint, opts Options) (FitResult, error) {
	const (
		eta0, eta1, eta2       = 1e-4, 0.25, 0.75
		sigma1, sigma2, sigma3 = 0.25, 0.5, 4.0
		pcgAlpha               = 0.01 // preconditioner mix (liblinear's alpha_pcg)
	)
	cgTolFactor := opts.CGTol // inner CG stops at ‖r‖_M⁻¹ ≤ cgTol·‖g‖_M⁻¹
	if cgTolFactor == 0 {
		cgTolFactor = DefaultCGTol
	}
	n := o.dim
	g := make([]float64, n)
	m := make([]float64, n) // preconditioner
	s := make([]float64, n)
	r := make([]float64, n)
	z := make([]float64, n)
	d := make([]float64, n)
	hd := make([]float64, n)
	trial := make([]float64, n)
	gTrial := make([]float64, n)

	res := FitResult{Status: optimize.NotTerminated.String()}
	var f float64
	if start != nil {
		f = start.f
		copy(g, start.grad)
	} else {
		f = o.evalGrad(theta, g, true)
		o.acceptCurv()
		res.Evaluations++
	}
	gnorm := norm2(g)
	tol := opts.GradTol * g0
	finish := func(st optimize.Status) FitResult {
		res.Status = st.String()
		res.Converged = st != optimize.IterationLimit
		res.Objective = f
		res.GradNorm = gnorm / g0
		return res
	}
	// A warm start (start == nil) always takes one Newton step: a small
	// gradient there does not mean a small gap when λ is small (the
	// Hessian's smallest eigenvalue is λ), and a warm start from a fit at a
	// larger λ typically sits exactly there: gradient (λ_old−λ)·w, gap up to
	// ‖(λ_old−λ)·w‖²/(2λ).
	if start != nil && gnorm <= tol {
		return finish(optimize.GradientThreshold), nil
	}
	precondition := func() {
		// liblinear mixes its Hessian diagonal with the identity, which in
		// its units is the regulariser; in ours that is λ:
		// M = (1−α)·λ + α·diag(H).
		o.hessDiag(m)
		res.Evaluations++
		for i, v := range m {
			m[i] = float64((1-pcgAlpha)*o.l2) + float64(pcgAlpha*v)
		}
	}
	precondition()
	// liblinear starts with delta = ‖g‖_M of its sum-scaled loss, which is
	// not scale-free. An unbounded first step followed by delta = ‖s‖_M, as
	// liblinear does after its first step, matches its usual behaviour
	// (the first step lies inside its large initial region).
	delta := math.Inf(1)
	for res.Iterations < opts.MaxIter {
		res.Iterations++ // rejected steps count too, so MaxIter bounds the work
		cg := o.trpcg(delta, g, m, s, r, z, d, hd, cgTolFactor)
		res.Evaluations += cg

		for i := range trial {
			trial[i] = theta[i] + s[i]
		}
		gs := dot(g, s)
		prered := -0.5 * (gs - dot(s, r))
		fnew := o.evalGrad(trial, gTrial, true)
		res.Evaluations++
		if math.IsNaN(fnew) {
			return finish(optimize.Failure), fmt.Errorf("loss is NaN at iteration %d: %w", res.Iterations, ErrNotConverged)
		}
		actred := f - fnew
		snorm := math.Sqrt(uTMv(s, m, s))
		if res.Iterations == 1 {
			delta = math.Min(delta, snorm)
		}
		var alpha float64
		if fnew-f-gs <= 0 {
			alpha = sigma3
		} else {
			alpha = math.Max(sigma1, -0.5*(gs/(fnew-f-gs)))
		}
		switch {
		case actred < eta0*prered:
			delta = math.Min(alpha*snorm, sigma2*delta)
		case actred < eta1*prered:
			delta = math.Max(sigma1*delta, math.Min(alpha*snorm, sigma2*delta))
		case actred < eta2*prered:
			delta = math.Max(sigma1*delta, math.Min(alpha*snorm, sigma3*delta))
		default:
			delta = math.Max(delta, math.Min(alpha*snorm, sigma3*delta))
		}
		if actred > eta0*prered {
			copy(theta, trial)
			copy(g, gTrial)
			o.acceptCurv()
			f = fnew
			gnorm = norm2(g)
			if gnorm <= tol {
				return finish(optimize.GradientThreshold), nil
			}
			precondition()
		}
		// No measurable progress is possible any more: the iterate is as
		// good as floating point allows, which counts as converged.
		if actred <= 0 && prered <= 0 {
			return finish(optimize.FunctionConvergence), nil
		}
		if math.Abs(actred) <= 1e-14*math.Abs(f) && math.Abs(prered) <= 1e-14*math.Abs(f) {
			return finish(optimize.FunctionConvergence), nil
		}
	}
	return finish(optimize.IterationLimit), nil
}

// trpcg approximately solves H s = −g by conjugate gradients preconditioned
// with the diagonal m, stopping at the boundary ‖s‖_M = delta (Steihaug).
// It leaves the residual −g − H s in r and returns the number of
// Hessian-vector products.
func (o *objective) trpcg(delta float64, g, m, s, r, z, d, hd []float64, cgTol float64) int {
	for i, v := range g {
		s[i] = 0
		r[i] = -v
		z[i] = r[i] / m[i]
		d[i] = z[i]
	}
	zTr := dot(z, r)
	tol := cgTol * math.Sqrt(zTr)
	iters := 0
	for iters < max(len(g), 5) && math.Sqrt(zTr) > tol {
		iters++
		o.hessVec(d, hd)
		dHd := dot(d, hd)
		if !(dHd > 0) {
			// H is positive definite for λ > 0; only rounding can get here.
			break
		}
		alpha := zTr / dHd
		axpy(alpha, d, s)
		if math.Sqrt(uTMv(s, m, s)) > delta {
			// Step back, then move to the boundary along d.
			axpy(-alpha, d, s)
			std, sts, dtd := uTMv(s, m, d), uTMv(s, m, s), uTMv(d, m, d)
			dsq := delta * delta
			rad := math.Sqrt(std*std + dtd*(dsq-sts))
			if std >= 0 {
				alpha = (dsq - sts) / (std + rad)
			} else {
				alpha = (rad - std) / dtd
			}
			axpy(alpha, d, s)
			axpy(-alpha, hd, r)
			break
		}
		axpy(-alpha, hd, r)
		for i, v := range r {
			z[i] = v / m[i]
		}
		znew := dot(z, r)
		beta := znew / zTr
		for i := range d {
			d[i] = z[i] + float64(beta*d[i])
		}
		zTr = znew
	}
	return iters
}

// uTMv returns uᵀ·diag(m)·v.
func uTMv(u, m, v []float64) float64 {
	m, v = m[:len(u)], v[:len(u)]
	var s float64
	for i, x := range u {
		s += float64(float64(x*m[i]) * v[i])
	}
	return s
}
