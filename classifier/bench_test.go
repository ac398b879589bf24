package classifier

import (
	"fmt"
	"testing"
)

// Benchmarks on synthetic hashed-text-like data (see synthetic). The
// figures to compare with liblinear come from bench/ scripts; these track
// the package's own speed.

func BenchmarkFit(b *testing.B) {
	X, y, _ := synthetic(b, 50_000, 1<<18, 150, 1)
	for _, solver := range []string{SolverNewton, SolverLBFGS} {
		b.Run(solver, func(b *testing.B) {
			b.ReportAllocs()
			var res FitResult
			for b.Loop() {
				var err error
				_, res, err = FitDetailed(X, y, nil, Options{Solver: solver, L2: 1e-5})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Evaluations), "passes/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(res.Evaluations)/float64(X.NNZ()), "ns/nnz-pass")
		})
	}
}

func BenchmarkPass(b *testing.B) {
	X, y, _ := synthetic(b, 50_000, 1<<18, 150, 1)
	for _, workers := range []int{1, 2} {
		o := newObjective(X, y, nil, nil, 1e-5, workers)
		theta := make([]float64, o.dim)
		g := make([]float64, o.dim)
		o.evalGrad(theta, g, true)
		o.acceptCurv()
		b.Run(fmt.Sprintf("evalGrad/workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				o.evalGrad(theta, g, true)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(X.NNZ()), "ns/nnz")
		})
		b.Run(fmt.Sprintf("hessVec/workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				o.hessVec(g, theta)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(X.NNZ()), "ns/nnz")
		})
	}
}
