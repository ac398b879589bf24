package classifier

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// DefaultL2Grid returns the candidate L2 strengths SelectL2 tries when
// given none: 11 values log-spaced by half decades from 1e-6 to 1e-1. With
// the mean loss, L2 = 1/(C·n) in liblinear/scikit-learn terms, so the grid
// covers C = 1 from n = 10 to n = 1,000,000 rows and much stronger
// penalties for small, noisy data.
func DefaultL2Grid() []float64 {
	g := make([]float64, 11)
	for i := range g {
		g[i] = math.Pow(10, -6+0.5*float64(i))
	}
	return g
}

// CVResult is the outcome of CrossValidate.
type CVResult struct {
	// Best is the grid value with the lowest out-of-fold log loss; ties go
	// to the larger L2.
	Best float64
	// Grid is the grid tried, in the caller's order.
	Grid []float64
	// Loss[k] is the out-of-fold weighted log loss of Grid[k].
	Loss []float64
	// OOF holds each row's out-of-fold logit under Best: the logit of the
	// model trained without the row's fold. Use it to fit a calibration.
	OOF []float64
	// GridOOF[k] holds the out-of-fold logits under Grid[k], for a caller
	// that chooses by something other than log loss (a ranking metric, a
	// combination with another model's logits).
	GridOOF [][]float64
}

// SelectL2 picks the L2 strength with the lowest K-fold out-of-fold
// weighted log loss. folds[i] is row i's fold in [0, K); every fold must
// hold at least one row. grid nil means DefaultL2Grid(). opts.L2 and
// opts.Init are ignored. It returns the best L2 and the loss of each grid
// value, in grid order.
func SelectL2(X *Sparse, y, weights []float64, folds []int, grid []float64, opts Options) (best float64, cvLogLoss []float64, err error) {
	r, err := CrossValidate(X, y, weights, folds, grid, opts)
	if err != nil {
		return 0, nil, err
	}
	return r.Best, r.Loss, nil
}

// CrossValidate is SelectL2 that also returns the out-of-fold logits of the
// best L2. It fits K models per grid value, from the largest L2 down, each
// warm-started from the same fold's fit at the previous (larger) value.
func CrossValidate(X *Sparse, y, weights []float64, folds []int, grid []float64, opts Options) (CVResult, error) {
	checkShapes(X, y, weights)
	if len(folds) != len(y) {
		panic(fmt.Sprintf("classifier: %d fold ids for %d rows", len(folds), len(y)))
	}
	if err := X.Validate(); err != nil {
		return CVResult{}, fmt.Errorf("cross-validate: %w", err)
	}
	if err := checkLabelsWeights(y, weights); err != nil {
		return CVResult{}, fmt.Errorf("cross-validate: %w", err)
	}
	if grid == nil {
		grid = DefaultL2Grid()
	}
	if len(grid) == 0 {
		return CVResult{}, errors.New("cross-validate: the l2 grid is empty; pass nil for the default grid")
	}
	for _, l2 := range grid {
		if !(l2 > 0) || math.IsInf(l2, 0) {
			return CVResult{}, fmt.Errorf("cross-validate: grid value %v is not a finite positive l2", l2)
		}
	}
	k := 0
	for i, f := range folds {
		if f < 0 {
			return CVResult{}, fmt.Errorf("cross-validate: fold of row %d is %d, want a value >= 0", i, f)
		}
		k = max(k, f+1)
	}
	if k < 2 {
		return CVResult{}, fmt.Errorf("cross-validate: folds name %d fold, want at least 2", k)
	}
	train := make([][]int, k)
	held := make([][]int, k)
	for i, f := range folds {
		held[f] = append(held[f], i)
	}
	for f := range k {
		if len(held[f]) == 0 {
			return CVResult{}, fmt.Errorf("cross-validate: fold %d has no rows; number folds 0..%d without gaps", f, k-1)
		}
		train[f] = make([]int, 0, len(y)-len(held[f]))
		for i, g := range folds {
			if g != f {
				train[f] = append(train[f], i)
			}
		}
	}

	order := make([]int, len(grid)) // grid positions, largest L2 first
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case grid[a] > grid[b]:
			return -1
		case grid[a] < grid[b]:
			return 1
		}
		return 0
	})

	// Every fit and logit below works on the columns in use only; the
	// models never leave this function.
	X, _ = compactColumns(X)
	res := CVResult{Grid: slices.Clone(grid), Loss: make([]float64, len(grid)), Best: math.NaN(), GridOOF: make([][]float64, len(grid))}
	oof := make([]float64, len(y))
	bestOOF := make([]float64, len(y))
	bestLoss := math.Inf(1)
	warm := make([]*Model, k)
	for _, gi := range order {
		o := opts
		o.L2 = grid[gi]
		for f := range k {
			o.Init = warm[f]
			m, _, err := fitRows(X, y, weights, train[f], o)
			if err != nil {
				return CVResult{}, fmt.Errorf("cross-validate: fold %d: %w", f, err)
			}
			warm[f] = m
			logits(oof, X, held[f], m)
		}
		loss := logLossOfLogits(oof, y, weights)
		res.Loss[gi] = loss
		res.GridOOF[gi] = slices.Clone(oof)
		if loss < bestLoss {
			bestLoss, res.Best = loss, grid[gi]
			copy(bestOOF, oof)
		}
	}
	res.OOF = bestOOF
	return res, nil
}
