package models

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/features"
)

// Design is a training set in the form TrainDesign fits: each example's
// feature row, extracted once with its repeated columns summed, and beside
// it only what training needs of the example (id, scores, weight, fold and
// confidence). A log can be streamed into a Design without holding its
// prompts: rows may be extracted on other goroutines (RowExtractor) and
// added in order (AddRow). Train builds one from []Example.
type Design struct {
	spec   features.Spec
	ext    *features.Extractor // for Add
	v      features.Vector
	x      *classifier.Sparse
	ids    []string
	fast   []float64
	strong []float64
	weight []float64
	// fastW and strongW are the heads' own weights (Example.FastWeight,
	// StrongWeight); soft marks a fast target taken from confidence or
	// imputed, strongSoft an imputed strong target.
	fastW, strongW   []float64
	soft, strongSoft []bool
	folds            []int
	conf             []float64        // the fast tier's raw confidence, NaN when not logged
	multi            []float64        // N-tier scores, row-major (ntier per example); nil for two-tier
	ntier            int              // tiers per example in multi, 0 for a two-tier design
	mconf            []float64        // N-tier raw confidences, row-major like multi, NaN when not logged
	inputs           []features.Input // of the first maxNamingExamples rows, to name features
	expect           int              // rows the caller expects in all, 0 if unknown
	used             bool             // TrainDesign has scaled x in place
}

// DesignSample is how many rows a Design holds before it reserves room for
// the rows it expects (Expect) at their mean length; a caller that
// estimates the total from the input read so far does it at this count.
const DesignSample = 1000

// NewDesign returns an empty design for spec; a zero spec means
// features.DefaultSpec().
func NewDesign(spec features.Spec) (*Design, error) {
	if spec.Version == 0 {
		spec = features.DefaultSpec()
	}
	ext, err := features.NewExtractor(spec)
	if err != nil {
		return nil, err
	}
	return &Design{spec: spec, ext: ext, x: classifier.NewSparse(spec.Dim())}, nil
}

// Len is the number of examples added.
func (d *Design) Len() int { return len(d.ids) }

// Scores returns each example's fast and strong tier scores, in the order
// added (NaN where a tier was not observed). The slices are the design's
// own: do not modify them.
func (d *Design) Scores() (fast, strong []float64) { return d.fast, d.strong }

// Tiers is the number of tier scores per example (0 for a two-tier design).
func (d *Design) Tiers() int { return d.ntier }

// Inputs returns the inputs of the first examples added (up to 5,000),
// which NameTopFeaturesFrom reads to name the heaviest features.
func (d *Design) Inputs() []features.Input { return d.inputs }

// Expect says how many examples the design will hold in all, so a large
// one reserves its storage once (at the mean row length of the first
// rows) instead of being copied at every growth. A wrong guess costs only
// memory or copies.
func (d *Design) Expect(rows int) {
	d.expect = rows
	for _, s := range []*[]float64{&d.fast, &d.strong, &d.weight, &d.fastW, &d.strongW, &d.conf} {
		*s = growTo(*s, rows)
	}
	d.ids = growTo(d.ids, rows)
	d.soft = growTo(d.soft, rows)
	d.strongSoft = growTo(d.strongSoft, rows)
	d.folds = growTo(d.folds, rows)
	if d.Len() >= DesignSample {
		d.reserve()
	} else {
		d.x.Grow(0, rows)
	}
}

func growTo[S ~[]E, E any](s S, n int) S {
	if n > cap(s) {
		s2 := make(S, len(s), n)
		copy(s2, s)
		return s2
	}
	return s
}

// reserve grows the entries for the expected rows still to come, at the
// mean length of the rows so far plus a sixteenth.
func (d *Design) reserve() {
	n := d.Len()
	if d.expect <= n || n == 0 {
		return
	}
	more := d.expect - n
	d.x.Grow(d.x.NNZ()/n*more*17/16, more)
}

// Add extracts ex's features and appends the example.
func (d *Design) Add(ex *Example) {
	d.ext.Extract(&d.v, ex.Input)
	n := classifier.SumRow(d.v.Idx, d.v.Val)
	d.AddRow(Row{Idx: d.v.Idx[:n], Val: d.v.Val[:n]}, ex)
}

// AddRow appends an example whose row a RowExtractor for the design's spec
// made from ex.Input. The row is copied; ex.Input is kept only for the
// first examples (Inputs). TrainDesign checks the weights.
func (d *Design) AddRow(row Row, ex *Example) {
	w := ex.Weight
	if w == 0 {
		w = 1
	}
	if d.used {
		panic("models: AddRow on a design TrainDesign has used")
	}
	if d.Len() == 0 {
		d.ntier = len(ex.Scores)
	}
	if len(ex.Scores) != d.ntier {
		panic(fmt.Sprintf("models: example %q has %d tier scores, the design's first example %d", ex.ID, len(ex.Scores), d.ntier))
	}
	d.multi = append(d.multi, ex.Scores...)
	for k := range d.ntier {
		c := math.NaN()
		if k < len(ex.Confidences) {
			c = ex.Confidences[k]
		}
		d.mconf = append(d.mconf, c)
	}
	d.x.AppendRow(row.Idx, row.Val)
	d.ids = append(d.ids, ex.ID)
	d.fast = append(d.fast, ex.Fast)
	d.strong = append(d.strong, ex.Strong)
	d.weight = append(d.weight, w)
	fw, sw := ex.FastWeight, ex.StrongWeight
	if fw == 0 {
		fw = w
	}
	if sw == 0 {
		sw = w
	}
	d.fastW = append(d.fastW, fw)
	d.strongW = append(d.strongW, sw)
	d.soft = append(d.soft, ex.FastSoft)
	d.strongSoft = append(d.strongSoft, ex.StrongSoft)
	d.folds = append(d.folds, ex.Fold)
	c := math.NaN()
	if ex.Confidence != nil {
		c = *ex.Confidence
	}
	d.conf = append(d.conf, c)
	if len(d.inputs) < maxNamingExamples {
		d.inputs = append(d.inputs, ex.Input)
	}
	if d.Len() == DesignSample {
		d.reserve()
	}
}

// Row is an example's feature row as a Design stores it: each column once,
// ascending.
type Row struct {
	Idx []int32
	Val []float64
}

// RowExtractor makes Design rows. Like features.Extractor it is for one
// goroutine at a time; unlike it, the rows it returns are not overwritten
// by later calls (they are cut from blocks it allocates, so many small
// rows cost few allocations).
type RowExtractor struct {
	ext  *features.Extractor
	v    features.Vector
	idx  []int32
	vals []float64
}

// rowBlock is how many entries a RowExtractor allocates at a time.
const rowBlock = 1 << 14

// NewRowExtractor returns an extractor of rows for spec; a zero spec means
// features.DefaultSpec().
func NewRowExtractor(spec features.Spec) (*RowExtractor, error) {
	if spec.Version == 0 {
		spec = features.DefaultSpec()
	}
	ext, err := features.NewExtractor(spec)
	if err != nil {
		return nil, err
	}
	return &RowExtractor{ext: ext}, nil
}

// Extract returns the row of in.
func (r *RowExtractor) Extract(in features.Input) Row {
	r.ext.Extract(&r.v, in)
	n := classifier.SumRow(r.v.Idx, r.v.Val)
	if cap(r.idx)-len(r.idx) < n {
		r.idx = make([]int32, 0, max(n, rowBlock))
		r.vals = make([]float64, 0, max(n, rowBlock))
	}
	i, j := len(r.idx), len(r.idx)+n
	r.idx = append(r.idx, r.v.Idx[:n]...)
	r.vals = append(r.vals, r.v.Val[:n]...)
	return Row{Idx: r.idx[i:j:j], Val: r.vals[i:j:j]}
}

// readyToTrain fills in the default feature spec and fold count and checks
// that the design can be trained with them: built for that spec, not
// trained on yet (training scales its rows in place), every example's
// fold in range and every weight positive and finite. Train and
// TrainTiers share it.
func (d *Design) readyToTrain(spec *features.Spec, folds *int) error {
	if spec.Version == 0 {
		*spec = features.DefaultSpec()
	}
	if !reflect.DeepEqual(*spec, d.spec) {
		return errors.New("the design was built for another feature spec")
	}
	if d.used {
		return errors.New("the design has been trained on already")
	}
	if *folds == 0 {
		*folds = DefaultFolds
	}
	if *folds < 2 {
		return fmt.Errorf("folds is %d, want at least 2", *folds)
	}
	for i, f := range d.folds {
		if f < 0 || f >= *folds {
			return fmt.Errorf("example %q has fold %d, want [0,%d)", d.ids[i], f, *folds)
		}
	}
	for i, w := range d.weight {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("example %q: weight %v, want a positive finite number", d.ids[i], w)
		}
	}
	return nil
}
