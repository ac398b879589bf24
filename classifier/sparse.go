package classifier

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Sparse is a row-major (CSR) sparse matrix: row i holds the entries
// Idx[Indptr[i]:Indptr[i+1]] with values Val[Indptr[i]:Indptr[i+1]].
//
// A row may name the same column more than once; every consumer in this
// package treats repeated entries as summed, which is what hashed feature
// vectors produce. Columns need not be sorted.
type Sparse struct {
	// Dim is the number of columns; every index is in [0, Dim).
	Dim int
	// Indptr has Rows()+1 entries, starting at 0 and non-decreasing.
	Indptr []int
	// Idx holds the column index of each stored entry.
	Idx []int32
	// Val holds the value of each stored entry.
	Val []float64
}

// NewSparse returns an empty matrix with dim columns.
func NewSparse(dim int) *Sparse {
	if dim < 0 || dim > math.MaxInt32 {
		panic(fmt.Sprintf("classifier: sparse dimension %d out of range", dim))
	}
	return &Sparse{Dim: dim, Indptr: []int{0}}
}

// AppendRow appends one row, copying idx and val. It panics if the slices
// differ in length or an index is outside [0, Dim): both are programmer
// errors (a feature extractor built for another dimension).
func (s *Sparse) AppendRow(idx []int32, val []float64) {
	if len(idx) != len(val) {
		panic(fmt.Sprintf("classifier: row has %d indices but %d values", len(idx), len(val)))
	}
	if len(s.Indptr) == 0 {
		s.Indptr = append(s.Indptr, 0)
	}
	for _, j := range idx {
		if j < 0 || int(j) >= s.Dim {
			panic(fmt.Sprintf("classifier: column %d outside [0, %d)", j, s.Dim))
		}
	}
	s.Idx = append(s.Idx, idx...)
	s.Val = append(s.Val, val...)
	s.Indptr = append(s.Indptr, len(s.Idx))
}

// AppendRowSummed is AppendRow that stores each column of the row once,
// with its repeats summed, in ascending column order. Hashed feature
// vectors repeat columns (an n-gram that occurs twice, two n-grams that
// collide); storing each once makes every later pass over the row shorter.
func (s *Sparse) AppendRowSummed(idx []int32, val []float64) {
	start := len(s.Idx)
	s.AppendRow(idx, val)
	n := SumRow(s.Idx[start:], s.Val[start:])
	s.Idx, s.Val = s.Idx[:start+n], s.Val[:start+n]
	s.Indptr[len(s.Indptr)-1] = start + n
}

// SumRow sorts a row's entries by column in place and sums the repeats of
// a column into its first entry, as AppendRowSummed stores a row; the row
// is then idx[:n], val[:n]. A row summed with SumRow (on any goroutine)
// and appended with AppendRow is stored exactly as AppendRowSummed would
// store it.
func SumRow(idx []int32, val []float64) (n int) {
	if len(idx) != len(val) {
		panic(fmt.Sprintf("classifier: row has %d indices but %d values", len(idx), len(val)))
	}
	if n, ok := sumRowUniform(idx, val); ok {
		return n
	}
	sort.Sort(entries{idx, val})
	for k := range idx {
		if n > 0 && idx[n-1] == idx[k] {
			val[n-1] += val[k]
			continue
		}
		idx[n], val[n] = idx[k], val[k]
		n++
	}
	return n
}

// sumRowUniform is SumRow for a row whose repeats of a column all hold the
// same value, as a hashed text block's do (every occurrence weighs the
// same), and reports false, with the row untouched, for any other. The
// order in which sort.Sort leaves repeats decides the order in which
// SumRow adds them up, which changes the last bit of a sum of different
// values; a sum of equal values is the same in any order. So sorting
// (column, position) keys, which is three to four times faster than
// sort.Sort through its interface, gives SumRow's result bit for bit.
func sumRowUniform(idx []int32, val []float64) (int, bool) {
	var keyBuf [128]uint64
	var valBuf [128]float64
	keys, vals := keyBuf[:0], valBuf[:0]
	if len(idx) > len(keyBuf) {
		keys, vals = make([]uint64, 0, len(idx)), make([]float64, 0, len(idx))
	}
	for k, j := range idx {
		if j < 0 {
			return 0, false // not a column; AppendRow will say so
		}
		keys = append(keys, uint64(j)<<32|uint64(k))
	}
	slices.Sort(keys)
	// Check before writing: a column with different values goes to the
	// reference sort with the row as it was.
	for k := 1; k < len(keys); k++ {
		if keys[k]>>32 == keys[k-1]>>32 && math.Float64bits(val[uint32(keys[k])]) != math.Float64bits(val[uint32(keys[k-1])]) {
			return 0, false
		}
	}
	vals = append(vals, val...)
	n := 0
	for k, key := range keys {
		j, v := int32(key>>32), vals[uint32(key)]
		if k > 0 && idx[n-1] == j {
			val[n-1] += v
			continue
		}
		idx[n], val[n] = j, v
		n++
	}
	return n, true
}

// Grow makes room for n more stored entries and rows more rows without
// reallocating.
func (s *Sparse) Grow(entries, rows int) {
	s.Idx = grow(s.Idx, entries)
	s.Val = grow(s.Val, entries)
	s.Indptr = grow(s.Indptr, rows)
}

// grow is slices.Grow by make and copy. slices.Grow zeroes the new room
// in one call the scheduler cannot preempt: for the hundreds of megabytes
// a large design reserves, that held the garbage collector's workers
// spinning to stop the goroutine for seconds. make zeroes large blocks in
// preemptible chunks, and not at all when they are fresh from the OS.
func grow[E any](s []E, n int) []E {
	if n <= cap(s)-len(s) {
		return s
	}
	t := make([]E, len(s), len(s)+n)
	copy(t, s)
	return t
}

// Rows returns the number of rows.
func (s *Sparse) Rows() int {
	if len(s.Indptr) == 0 {
		return 0
	}
	return len(s.Indptr) - 1
}

// NNZ returns the number of stored entries (repeats counted separately).
func (s *Sparse) NNZ() int { return len(s.Idx) }

// Row returns row i's indices and values. The slices alias the matrix.
func (s *Sparse) Row(i int) ([]int32, []float64) {
	a, b := s.Indptr[i], s.Indptr[i+1]
	return s.Idx[a:b:b], s.Val[a:b:b]
}

// Validate checks the structure (Indptr shape, index range) and that every
// value is finite. Fit and SelectL2 call it; matrices built only with
// AppendRow can still hold NaN or Inf values.
func (s *Sparse) Validate() error {
	if s.Dim < 0 || s.Dim > math.MaxInt32 {
		return fmt.Errorf("sparse matrix: dim is %d, want a value in [0, %d]", s.Dim, math.MaxInt32)
	}
	if len(s.Indptr) == 0 {
		if len(s.Idx) != 0 || len(s.Val) != 0 {
			return fmt.Errorf("sparse matrix: indptr is empty but %d entries are stored", len(s.Idx))
		}
		return nil
	}
	if s.Indptr[0] != 0 {
		return fmt.Errorf("sparse matrix: indptr[0] is %d, want 0", s.Indptr[0])
	}
	if len(s.Idx) != len(s.Val) {
		return fmt.Errorf("sparse matrix: %d indices but %d values", len(s.Idx), len(s.Val))
	}
	if last := s.Indptr[len(s.Indptr)-1]; last != len(s.Idx) {
		return fmt.Errorf("sparse matrix: indptr ends at %d but %d entries are stored", last, len(s.Idx))
	}
	for i := 1; i < len(s.Indptr); i++ {
		if s.Indptr[i] < s.Indptr[i-1] {
			return fmt.Errorf("sparse matrix: indptr decreases at row %d", i-1)
		}
	}
	for k, j := range s.Idx {
		if j < 0 || int(j) >= s.Dim {
			return fmt.Errorf("sparse matrix: entry %d has column %d, want a value in [0, %d)", k, j, s.Dim)
		}
	}
	for k, v := range s.Val {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("sparse matrix: entry %d (row %d) is %v, want a finite value", k, s.rowOf(k), v)
		}
	}
	return nil
}

// rowOf returns the row holding entry k, for error messages.
func (s *Sparse) rowOf(k int) int {
	lo, hi := 0, s.Rows()
	for lo < hi {
		m := (lo + hi) / 2
		if s.Indptr[m+1] <= k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// entries sorts a row's entries by column.
type entries struct {
	idx []int32
	val []float64
}

func (e entries) Len() int           { return len(e.idx) }
func (e entries) Less(a, b int) bool { return e.idx[a] < e.idx[b] }
func (e entries) Swap(a, b int) {
	e.idx[a], e.idx[b] = e.idx[b], e.idx[a]
	e.val[a], e.val[b] = e.val[b], e.val[a]
}

// DropZeros removes the entries whose value is zero, in place, and returns
// how many it removed. They add nothing to any product, but every pass
// over the matrix would still read them: after IDF zeroes the n-grams seen
// in one training prompt, that was about a third of a RouteLLM MMLU
// design's entries.
func (s *Sparse) DropZeros() int {
	w := 0
	start := 0
	for i := 0; i+1 < len(s.Indptr); i++ {
		end := s.Indptr[i+1]
		for k := start; k < end; k++ {
			if s.Val[k] != 0 {
				s.Idx[w], s.Val[w] = s.Idx[k], s.Val[k]
				w++
			}
		}
		start = end
		s.Indptr[i+1] = w
	}
	n := len(s.Idx) - w
	s.Idx, s.Val = s.Idx[:w], s.Val[:w]
	return n
}
