package classifier

// compactColumns returns X with its columns renumbered so that only those
// holding a nonzero value in some row remain, in their original order, and
// cols, the original column of each new one. Hashed feature spaces are
// mostly empty (and IDF zeroes the columns seen once), so the dense work of
// every pass (merging chunk buffers, the solver's vector algebra) and the
// cache footprint of the weights shrink to the columns in use. Entries of
// the other columns, all zero, go to one extra last column that is not in
// cols: its weight starts at zero, gets no gradient and no curvature from
// zero values, and so stays zero. The result shares Indptr and Val with X
// and has a new Idx; cols is nil (and X returned as is) when too few
// columns would go to be worth that copy.
func compactColumns(X *Sparse) (*Sparse, []int32) {
	cols, remap := columnsInUse(X)
	if cols == nil {
		return X, nil
	}
	cx := &Sparse{Indptr: X.Indptr, Idx: make([]int32, len(X.Idx)), Val: X.Val}
	cx.Dim = renumber(cx.Idx, X.Idx, remap, int32(len(cols)))
	return cx, cols
}

// CompactColumns is the renumbering Fit and CrossValidate apply to their
// matrix on every call, done once and in place: X keeps only the columns
// holding a nonzero value (the entries of the others go to one extra last
// column), X.Dim shrinks to match, and cols, the original column of each
// kept one, is returned; nil (and X unchanged) when too few columns would
// go to be worth it. A fit on the compacted X is the fit on X restricted
// to cols, with the same arithmetic, so ExpandWeights of its weights are
// the weights Fit returns on X. Doing it once saves each fit a copy of
// X.Idx.
func CompactColumns(X *Sparse) (cols []int32) {
	cols, remap := columnsInUse(X)
	if cols == nil {
		return nil
	}
	X.Dim = renumber(X.Idx, X.Idx, remap, int32(len(cols)))
	return cols
}

// ExpandWeights returns the dim weights whose entry cols[c] is w[c] and
// whose other entries are zero: the weights over the original columns of
// a model fit on a matrix CompactColumns compacted (w may have one more
// entry, the extra column's, which is zero).
func ExpandWeights(w []float64, cols []int32, dim int) []float64 {
	return expandModel(&Model{W: w}, cols, dim).W
}

// columnsInUse returns the columns holding a nonzero value in some row,
// in order, and remap, each column's new number (-1 for the others); nil
// when compacting would drop fewer than an eighth of the columns.
func columnsInUse(X *Sparse) (cols, remap []int32) {
	count := make([]int32, X.Dim) // nonzero entries per column
	for k, j := range X.Idx {
		if X.Val[k] != 0 {
			count[j]++
		}
	}
	for j, c := range count {
		if c > 0 {
			cols = append(cols, int32(j))
		}
	}
	n := len(cols)
	if n+1 > X.Dim-X.Dim/8 {
		return nil, nil
	}
	remap = count[:X.Dim] // reuse: count is no longer needed
	for j := range remap {
		remap[j] = -1
	}
	for c, j := range cols {
		remap[j] = int32(c)
	}
	return cols, remap
}

// renumber writes the new column of each entry of src into dst (which may
// be src): remap[j], or n, the extra column, for a column that holds only
// zeros. It returns the new number of columns.
func renumber(dst, src, remap []int32, n int32) int {
	zeroOnly := false
	for k, j := range src {
		c := remap[j]
		if c < 0 {
			c = n
			zeroOnly = true
		}
		dst[k] = c
	}
	if zeroOnly {
		return int(n) + 1
	}
	return int(n)
}

// compactModel returns m's weights on the columns cols of a matrix of dim
// columns (dim >= len(cols)); nil stays nil.
func compactModel(m *Model, cols []int32, dim int) *Model {
	if m == nil {
		return nil
	}
	w := make([]float64, dim)
	for c, j := range cols {
		w[c] = m.W[j]
	}
	return &Model{W: w, B: m.B}
}

// expandModel returns the model over dim columns whose weight on column
// cols[c] is m.W[c] and zero elsewhere.
func expandModel(m *Model, cols []int32, dim int) *Model {
	w := make([]float64, dim)
	for c, j := range cols {
		w[j] = m.W[c]
	}
	return &Model{W: w, B: m.B}
}
