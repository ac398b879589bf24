package classifier

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// maxChunks bounds how many row chunks an evaluation is split into. Each
// chunk accumulates into its own dense buffer and the buffers are summed in
// chunk order, so the floating-point result depends on the chunking only,
// never on how many goroutines ran the chunks. The chunk count is a
// function of the data's shape (see newObjective), not of the machine.
const maxChunks = 8

// objective is the regularised weighted mean log loss over a set of rows,
//
//	f(w, b) = (1/W) Σ_i w_i ℓ(y_i, x_i·w + b) + (λ/2)‖w‖²,  W = Σ_i w_i,
//
// with ℓ(y, z) = log(1+e^z) − y z. The parameter vector θ has X.Dim+1
// entries: the weights, then the intercept b (not penalised).
type objective struct {
	x       *Sparse
	y, w    []float64 // labels and sample weights of all rows of x (w nil = ones)
	rows    []int     // rows to use, in order; nil = all rows
	n       int       // number of rows used
	invW    float64   // 1 / Σ w_i over the rows used
	l2      float64
	dim     int // len(θ) = x.Dim + 1
	workers int
	spare   *Spare // cores other work has left free (Options.Spare), or nil

	bounds []int // chunk c covers row positions bounds[c]:bounds[c+1]
	// Chunk c accumulates into buf[c], kept zeroed: one slot per column
	// its rows touch (cols[c], ascending) and a last one for the
	// intercept. local[c] holds, for each stored entry of its rows in
	// order, the entry's slot. A chunk of MMLU's rows touches under a
	// third of the columns in use, so its buffer stays in cache and the
	// merge reads a third of what dense per-chunk buffers cost.
	buf   [][]float64
	cols  [][]int32
	local [][]int32
	loss  []float64 // per-chunk loss sums

	// d holds w_i σ_i (1−σ_i) per row position at the point of the last
	// evaluation with keepCurv set: the Hessian's row weights.
	d, dTrial []float64
}

func newObjective(x *Sparse, y, w []float64, rows []int, l2 float64, workers int) *objective {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	o := &objective{x: x, y: y, w: w, rows: rows, l2: l2, dim: x.Dim + 1, workers: workers}
	o.n = x.Rows()
	if rows != nil {
		o.n = len(rows)
	}
	var sumW float64
	nnz := 0
	for p := 0; p < o.n; p++ {
		i := o.row(p)
		sumW += o.weight(i)
		nnz += x.Indptr[i+1] - x.Indptr[i]
	}
	o.invW = 1 / sumW

	// Merging chunk buffers costs chunks×dim; the data pass costs about nnz
	// random accesses. More chunks than 2·nnz/dim would spend more time
	// merging than they save, so small data on wide vectors gets fewer.
	chunks := min(maxChunks, max(1, 2*nnz/o.dim), max(1, o.n))
	// Balance chunks by stored entries, which is what the passes cost.
	o.bounds = make([]int, chunks+1)
	o.bounds[chunks] = o.n
	acc, c := 0, 1
	for p := 0; p < o.n && c < chunks; p++ {
		i := o.row(p)
		acc += x.Indptr[i+1] - x.Indptr[i]
		for c < chunks && acc*chunks >= nnz*c {
			o.bounds[c] = p + 1
			c++
		}
	}
	for ; c < chunks; c++ {
		o.bounds[c] = o.n
	}
	o.buf = make([][]float64, chunks)
	o.cols = make([][]int32, chunks)
	o.local = make([][]int32, chunks)
	// Slots follow ascending column order, so the merge walks the output
	// forward: mark the chunk's columns, number the marked ones in one
	// scan, then look each entry's slot up.
	slot := make([]int32, o.dim) // column -> slot+1 in the chunk being built
	for c := range chunks {
		n := 0
		for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
			i := o.row(p)
			for _, j := range x.Idx[x.Indptr[i]:x.Indptr[i+1]] {
				if slot[j] == 0 {
					slot[j] = 1
					n++
				}
			}
		}
		cols := make([]int32, 0, n)
		for j, m := range slot {
			if m != 0 {
				cols = append(cols, int32(j))
				slot[j] = int32(len(cols))
			}
		}
		local := make([]int32, 0, nnzOf(x, o, c))
		for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
			i := o.row(p)
			for _, j := range x.Idx[x.Indptr[i]:x.Indptr[i+1]] {
				local = append(local, slot[j]-1)
			}
		}
		for _, j := range cols {
			slot[j] = 0
		}
		o.cols[c], o.local[c] = cols, local
		o.buf[c] = make([]float64, len(cols)+1)
	}
	o.loss = make([]float64, chunks)
	return o
}

// nnzOf is the number of stored entries in chunk c's rows.
func nnzOf(x *Sparse, o *objective, c int) int {
	n := 0
	for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
		i := o.row(p)
		n += x.Indptr[i+1] - x.Indptr[i]
	}
	return n
}

// minorityShare returns min(W₊, W₋)/W over the rows used, W₊ = Σ w_i y_i.
func (o *objective) minorityShare() float64 {
	var pos, all float64
	for p := range o.n {
		i := o.row(p)
		pos += o.weight(i) * o.y[i]
		all += o.weight(i)
	}
	return math.Min(pos, all-pos) / all
}

// nullIntercept is the intercept of the best model without features: the
// logit of the weighted mean label over the rows used (finite, as both
// labels have weight: see minorityShare).
func (o *objective) nullIntercept() float64 {
	var pos, all float64
	for p := range o.n {
		i := o.row(p)
		pos += o.weight(i) * o.y[i]
		all += o.weight(i)
	}
	return math.Log(pos / (all - pos))
}

func (o *objective) row(p int) int {
	if o.rows == nil {
		return p
	}
	return o.rows[p]
}

func (o *objective) weight(i int) float64 {
	if o.w == nil {
		return 1
	}
	return o.w[i]
}

// parallel runs fn(c) for every chunk c on up to o.workers goroutines.
func (o *objective) parallel(n int, fn func(c int)) {
	workers := min(o.workers+o.spare.free(), runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for c := 0; c < n; c++ {
			fn(c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1)) - 1
				if c >= n {
					return
				}
				fn(c)
			}
		}()
	}
	wg.Wait()
}

// Spare counts the cores that concurrent fits may borrow. Cross-validation
// runs its outer folds one per core with Workers 1; when fewer folds than
// cores are left, the idle cores would wait for the last ones (5 folds on
// 2 cores: the fifth trains alone, a sixth of the run with one core
// idle). A fold goroutine that runs out of folds gives its core to Spare,
// and the fits still running spread their evaluations over it. Results
// are bit-identical whatever the count (see maxChunks).
type Spare struct{ n atomic.Int32 }

// Give adds k free cores (k < 0 takes them back).
func (s *Spare) Give(k int) { s.n.Add(int32(k)) }

// free is how many cores are free now; 0 for a nil Spare.
func (s *Spare) free() int {
	if s == nil {
		return 0
	}
	return max(0, int(s.n.Load()))
}

// mergeBlock is the column block size of the parallel scale pass.
const mergeBlock = 1 << 14

// merge sets out[j] = scale·Σ_c buf[c][j] + l2·reg[j] (the intercept gets
// no l2 term; reg nil stands for all ones), summing chunks in index order,
// and re-zeroes the buffers. A chunk that does not touch column j adds
// nothing to it, so only the slots it has are added: the sums are those
// of dense per-chunk buffers (up to the sign of a zero).
func (o *objective) merge(out, reg []float64, scale float64) {
	last := o.dim - 1
	clear(out)
	for c, b := range o.buf {
		cols := o.cols[c]
		for k, j := range cols {
			out[j] += b[k]
		}
		out[last] += b[len(cols)]
		clear(b)
	}
	blocks := (o.dim + mergeBlock - 1) / mergeBlock
	o.parallel(blocks, func(blk int) {
		lo, hi := blk*mergeBlock, min(o.dim, (blk+1)*mergeBlock)
		dst := out[lo:hi]
		for j := range dst {
			switch {
			case lo+j == last:
				dst[j] *= scale
			case reg == nil:
				dst[j] = float64(dst[j]*scale) + o.l2
			default:
				dst[j] = float64(dst[j]*scale) + float64(o.l2*reg[lo+j])
			}
		}
	})
}

// evalGrad returns f(θ) and writes ∇f(θ) into grad. With keepCurv it also
// stores the Hessian row weights in dTrial (see acceptCurv).
func (o *objective) evalGrad(theta, grad []float64, keepCurv bool) float64 {
	x := o.x
	wv := theta[:o.dim-1]
	b := theta[o.dim-1]
	if keepCurv && o.dTrial == nil {
		o.dTrial = make([]float64, o.n)
		o.d = make([]float64, o.n)
	}
	o.parallel(len(o.buf), func(c int) {
		g, local := o.buf[c], o.local[c]
		off := 0
		var loss, gb float64
		for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
			i := o.row(p)
			lo, hi := x.Indptr[i], x.Indptr[i+1]
			idx, val := x.Idx[lo:hi], x.Val[lo:hi:hi]
			val = val[:len(idx)]
			loc := local[off : off+len(idx)]
			off += len(idx)
			z := b
			for k, j := range idx {
				z += float64(val[k] * wv[j])
			}
			wi := o.weight(i)
			if wi == 0 {
				continue
			}
			s := sigmoid(z)
			loss += float64(wi * logLoss1(z, o.y[i]))
			r := wi * (s - o.y[i])
			gb += r
			for k, l := range loc {
				g[l] += float64(r * val[k])
			}
			if keepCurv {
				o.dTrial[p] = wi * s * (1 - s)
			}
		}
		g[len(g)-1] = gb
		o.loss[c] = loss
	})
	var loss float64
	for _, l := range o.loss {
		loss += l
	}
	o.merge(grad, theta, o.invW)
	var ww float64
	for _, v := range wv {
		ww += float64(v * v)
	}
	return float64(loss*o.invW) + float64(0.5*o.l2*ww)
}

// acceptCurv makes the Hessian row weights of the last evalGrad current.
func (o *objective) acceptCurv() { o.d, o.dTrial = o.dTrial, o.d }

// hessVec writes H·v into out, H the Hessian at the point last accepted
// with acceptCurv.
func (o *objective) hessVec(v, out []float64) {
	x := o.x
	vw := v[:o.dim-1]
	vb := v[o.dim-1]
	o.parallel(len(o.buf), func(c int) {
		g, local := o.buf[c], o.local[c]
		off := 0
		var gb float64
		for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
			i := o.row(p)
			lo, hi := x.Indptr[i], x.Indptr[i+1]
			loc := local[off : off+hi-lo]
			off += hi - lo
			di := o.d[p]
			if di == 0 {
				continue
			}
			idx, val := x.Idx[lo:hi], x.Val[lo:hi:hi]
			val = val[:len(idx)]
			loc = loc[:len(idx)]
			t := vb
			for k, j := range idx {
				t += float64(val[k] * vw[j])
			}
			t *= di
			gb += t
			for k, l := range loc {
				g[l] += float64(t * val[k])
			}
		}
		g[len(g)-1] = gb
	})
	o.merge(out, v, o.invW)
}

// logits sets dst[i] = x_i·w + b for each row i in rows.
func logits(dst []float64, x *Sparse, rows []int, m *Model) {
	for _, i := range rows {
		idx, val := x.Row(i)
		dst[i] = m.Logit(idx, val)
	}
}

// hessDiag writes an approximation of diag(H) at the point last accepted
// with acceptCurv into out: (1/W) Σ_i d_i Σ_k x_ik² + λ (no λ for the
// intercept). Repeated indices within a row are treated as separate
// entries, so the value is not exact for them; it is used only as a
// preconditioner, where any positive diagonal is valid.
func (o *objective) hessDiag(out []float64) {
	x := o.x
	o.parallel(len(o.buf), func(c int) {
		g, local := o.buf[c], o.local[c]
		off := 0
		var gb float64
		for p := o.bounds[c]; p < o.bounds[c+1]; p++ {
			i := o.row(p)
			lo, hi := x.Indptr[i], x.Indptr[i+1]
			loc := local[off : off+hi-lo]
			off += hi - lo
			di := o.d[p]
			if di == 0 {
				continue
			}
			val := x.Val[lo:hi:hi]
			val = val[:len(loc)]
			gb += di
			for k := range loc {
				g[loc[k]] += float64(di * float64(val[k]*val[k]))
			}
		}
		g[len(g)-1] = gb
	})
	// reg = ones puts λ on the diagonal (merge skips the intercept).
	o.merge(out, nil, o.invW)
}
