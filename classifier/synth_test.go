package classifier

import (
	"math"
	"math/rand/v2"
	"testing"
)

// synthetic draws n rows of a sparse logistic model with dim columns and
// about nnz entries per row (some repeated, as hashing produces), labels
// sampled from the true model. It returns X, y and the true (w, b).
func synthetic(tb testing.TB, n, dim, nnz int, seed uint64) (*Sparse, []float64, *Model) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	truth := &Model{W: make([]float64, dim), B: -0.3}
	for j := range truth.W {
		truth.W[j] = rng.NormFloat64() * 0.5
	}
	X := NewSparse(dim)
	X.Idx = make([]int32, 0, n*nnz)
	X.Val = make([]float64, 0, n*nnz)
	X.Indptr = make([]int, 1, n+1)
	y := make([]float64, n)
	idx := make([]int32, 0, 2*nnz)
	val := make([]float64, 0, 2*nnz)
	scale := 1 / math.Sqrt(float64(nnz))
	for i := range n {
		idx, val = idx[:0], val[:0]
		k := nnz/2 + rng.IntN(nnz+1)
		for range k {
			// Zipf-like column popularity, as words in text.
			j := int32(float64(dim) * math.Pow(rng.Float64(), 3))
			idx = append(idx, j)
			val = append(val, scale*(0.5+rng.Float64()))
		}
		X.AppendRow(idx, val)
		if rng.Float64() < sigmoid(truth.Logit(idx, val)) {
			y[i] = 1
		}
	}
	return X, y, truth
}
