package models

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/features"
)

// TierTrainOptions configures TrainTiers. Zero values mean the documented
// defaults.
type TierTrainOptions struct {
	// Tiers are the router's tiers, cheapest first; the design's examples
	// carry one score per tier in this order.
	Tiers []Tier
	// Policy is the artifact's policy; the zero value is λ = 0 with no
	// floor and no race: the tier predicted best, ties to the cheaper.
	Policy TierPolicy
	// Features is the feature spec; zero means features.DefaultSpec().
	Features features.Spec
	// L2 is every head's regularisation strength; 0 chooses one from
	// L2Grid (see Select).
	L2 float64
	// L2Grid is the candidate strengths; nil means DefaultL2Grid.
	L2Grid []float64
	// Select is how the L2 strengths are chosen from the grid: SelectRouted
	// (the default) or SelectPerHead.
	Select string
	// Calibration maps each head's logit to its predicted score:
	// TierCalNone (σ(logit), the default), TierCalPlatt or
	// TierCalIsotonic, fitted on the head's out-of-fold logits.
	Calibration string
	// Folds is K for the cross-validation; examples' Fold must lie in
	// [0, Folds). 0 means DefaultFolds.
	Folds int
	// NoIDF, Groups and Classifier are as in TrainOptions.
	NoIDF      bool
	Groups     GroupScales
	Classifier classifier.Options
	// Seed, Sources and Skipped are recorded in the fingerprint.
	Seed    uint64
	Sources []string
	Skipped int
	// Now stamps the artifact; zero means time.Now().
	Now time.Time
	// Progress, when set, is told about each fitting step.
	Progress func(step string, done, total int)
}

// How TrainTiers maps a head's logit to the tier's predicted score.
const (
	// TierCalNone is σ(logit): a logistic regression fitted by
	// cross-entropy with an intercept already predicts the mean score
	// on average, and on the pooled RouterDC log (bench/tiers) it routed
	// best: +2.93 points over the best single model at λ=0, against
	// +2.30 with isotonic maps, whose steps tie tiers that σ tells
	// apart (ties go to the cheaper, earlier tier, which then took 59%
	// of requests).
	TierCalNone = "none"
	// TierCalPlatt refits a slope and intercept per head on its
	// out-of-fold logits, undoing the L2 penalty's shrinkage.
	TierCalPlatt = "platt"
	// TierCalIsotonic is a step-like monotone map per head.
	TierCalIsotonic = "isotonic"
)

// How TrainTiers chooses the heads' L2 strengths.
const (
	// SelectRouted gives every head the same strength, the grid value
	// whose out-of-fold predictions route best at the policy's λ: the
	// highest mean score of the chosen tiers, less λ times their mean
	// price. That is what the router is for; a head's own log loss is
	// not, and strengths chosen head by head put the tiers' predictions
	// on differently shrunk scales.
	SelectRouted = "routed"
	// SelectPerHead gives each head the strength with its lowest
	// out-of-fold log loss.
	SelectPerHead = "per-head"
)

// TierTrainReport says what TrainTiers did.
type TierTrainReport struct {
	// L2 is each head's strength and CVLoss each head's out-of-fold log
	// loss per grid value; Routed is the out-of-fold routed utility per
	// grid value (SelectRouted).
	L2     []float64
	L2Grid []float64
	CVLoss [][]float64
	Routed []float64
	// OOF holds every training example's out-of-fold predicted score per
	// tier, row-major (len(Tiers) per example), in the design's order:
	// what unseen traffic looks like to the router, for curves and
	// calibrate. Only the complete examples' rows can be measured.
	OOF []float64
	// Rows counts, per tier, the examples with that tier's score: the
	// rows its head was fitted on. Complete counts the examples with
	// every tier's score, the only ones the choice of L2 and the
	// figures use.
	Rows     []int
	Complete int
}

// TrainTiers fits an N-tier router: one logistic regression per tier on
// that tier's score (a soft target in [0,1]), so every tier's prediction
// is an estimate of the same thing, the mean score such a request gets
// from that tier. A head's prediction is σ(logit) by default
// (TierCalNone); opts.Calibration can map its out-of-fold logits through
// Platt or isotonic regression instead. The design's examples carry Scores, one
// per tier.
//
// A score may be NaN: that tier did not run on the request (a served
// request runs the tier the policy chose, two on a race or an explored
// one). Each head is fitted on the examples with its tier's score and
// no others, as a two-tier router's per-tier heads are on one-sided
// records: which tier ran depends on the request's features only (the
// policy's choice and the exploration draw), so the rows a head sees are
// a sample of the traffic selected on x, and a model of P(score | x)
// fitted on them without weights is consistent (docs/loop.md §4). What
// needs every tier's score, the routed utility that chooses the L2
// strength and the artifact's figures, uses the complete examples only,
// and there must be some.
func TrainTiers(train *Design, opts TierTrainOptions) (*Artifact, *TierTrainReport, error) {
	nt := len(opts.Tiers)
	if err := ValidateTiers(opts.Tiers); err != nil {
		return nil, nil, fmt.Errorf("train tiers: %w", err)
	}
	if err := opts.Policy.Validate(); err != nil {
		return nil, nil, fmt.Errorf("train tiers: %w", err)
	}
	if train.Len() == 0 {
		return nil, nil, ErrNoExamples
	}
	if train.Tiers() != nt {
		return nil, nil, fmt.Errorf("train tiers: the examples carry %d tier scores for %d tiers", train.Tiers(), nt)
	}
	if err := train.readyToTrain(&opts.Features, &opts.Folds); err != nil {
		return nil, nil, fmt.Errorf("train tiers: %w", err)
	}
	switch opts.Calibration {
	case "":
		opts.Calibration = TierCalNone
	case TierCalNone, TierCalPlatt, TierCalIsotonic:
	default:
		return nil, nil, fmt.Errorf("train tiers: calibration %q is not known; want %q, %q or %q", opts.Calibration, TierCalNone, TierCalPlatt, TierCalIsotonic)
	}
	switch opts.Select {
	case "":
		opts.Select = SelectRouted
	case SelectRouted, SelectPerHead:
	default:
		return nil, nil, fmt.Errorf("train tiers: select %q is not known; want %q or %q", opts.Select, SelectRouted, SelectPerHead)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	progress := func(step string, done, total int) {
		if opts.Progress != nil {
			opts.Progress(step, done, total)
		}
	}
	n := train.Len()
	w := train.weight
	// y[k] is tier k's score, 0 where it was not observed, and hw[k] the
	// head's weights: the example's weight where tier k was observed, 0
	// elsewhere. evalW is the example's weight where every tier was
	// observed, 0 elsewhere: every statistic across tiers weighs by it.
	y, hw := make([][]float64, nt), make([][]float64, nt)
	rows := make([]int, nt)
	evalW := slices.Clone(w)
	for k := range y {
		y[k], hw[k] = make([]float64, n), make([]float64, n)
		for i := range n {
			s := train.multi[i*nt+k]
			if math.IsNaN(s) {
				evalW[i] = 0
				continue
			}
			if !(s >= 0 && s <= 1) {
				return nil, nil, fmt.Errorf("train tiers: example %q: %s score %v, want a value in [0,1]", train.ids[i], opts.Tiers[k].Name, s)
			}
			y[k][i], hw[k][i] = s, w[i]
			rows[k]++
		}
	}
	complete := 0
	for i := range n {
		if evalW[i] > 0 {
			complete++
		}
	}
	for k, r := range rows {
		if r == 0 {
			return nil, nil, fmt.Errorf("train tiers: no example has a score for %s; every head needs its tier's outcomes", opts.Tiers[k].Name)
		}
	}
	if complete == 0 {
		return nil, nil, errors.New("train tiers: no example has every tier's score; the choice of L2 and the router's figures need some (an offline log where every tier answered every request)")
	}
	// The same column scaling as a two-tier fit (see TrainDesign).
	x := train.x
	scale := columnScales(x, blocksOf(opts.Features), !opts.NoIDF, opts.Groups)
	train.used = true
	for k, j := range x.Idx {
		x.Val[k] *= scale[j]
	}
	x.DropZeros()
	cols := classifier.CompactColumns(x)

	grid := opts.L2Grid
	if grid == nil {
		grid = DefaultL2Grid
	}
	if opts.L2 != 0 {
		grid = []float64{opts.L2}
	}
	rep := &TierTrainReport{L2Grid: grid, L2: make([]float64, nt), CVLoss: make([][]float64, nt), Rows: rows, Complete: complete}
	heads := make([]*headCV, nt)
	for k := range nt {
		step := fmt.Sprintf("cross-validating (%s)", opts.Tiers[k].Name)
		progress(step, 0, 1)
		hc, err := cvHead(opts.Tiers[k].Name, x, y[k], hw[k], train.folds, grid, opts.Classifier)
		if err != nil {
			return nil, nil, fmt.Errorf("train tiers: %w", err)
		}
		progress(step, 1, 1)
		heads[k] = hc
		rep.CVLoss[k] = hc.cv.Loss
	}
	prices := make([]float64, nt)
	for k, t := range opts.Tiers {
		prices[k] = t.Price
	}

	// oofAt returns the calibrations and out-of-fold predicted scores of
	// the heads at grid positions pos.
	oofAt := func(pos []int) ([]*classifier.Calibration, []float64, error) {
		cals := make([]*classifier.Calibration, nt)
		pred := make([]float64, n*nt)
		for k := range nt {
			z := heads[k].oof(pos[k])
			if opts.Calibration != TierCalNone && !heads[k].constant {
				fit := classifier.FitIsotonic
				if opts.Calibration == TierCalPlatt {
					fit = classifier.FitPlatt
				}
				c, err := fit(z, y[k], hw[k])
				if err != nil {
					return nil, nil, fmt.Errorf("calibrate %s: %w", opts.Tiers[k].Name, err)
				}
				// Flat tails: past the out-of-fold range a tier's predicted
				// score stays at its end block's mean. Continued slopes
				// would extrapolate the final fit's larger logits to
				// scores no fold saw, and one tier's would beat the
				// others' on extrapolation alone.
				cals[k] = &c
			}
			for i := range n {
				pred[i*nt+k] = predictScore(z[i], cals[k])
			}
		}
		return cals, pred, nil
	}
	pos := make([]int, nt)
	switch {
	case len(grid) == 1:
	case opts.Select == SelectPerHead:
		for k := range nt {
			pos[k] = argmin(heads[k].cv.Loss)
		}
	default:
		best := math.Inf(-1)
		for g := range grid {
			same := make([]int, nt)
			for k := range same {
				same[k] = g
			}
			_, pred, err := oofAt(same)
			if err != nil {
				return nil, nil, fmt.Errorf("train tiers: %w", err)
			}
			u := routedUtility(pred, train.multi, prices, evalW, opts.Policy)
			rep.Routed = append(rep.Routed, u)
			// Ties go to the stronger penalty, which the grid lists first.
			if u > best+1e-12 {
				best = u
				copy(pos, same)
			}
		}
	}
	cals, pred, err := oofAt(pos)
	if err != nil {
		return nil, nil, fmt.Errorf("train tiers: %w", err)
	}
	rep.OOF = pred

	a := &Artifact{
		FormatVersion: FormatVersion,
		Version:       NewVersion(opts.Now),
		CreatedAt:     opts.Now.UTC(),
		Features:      opts.Features,
		Scorer:        ScorerTiers,
		Tiers:         Tiers{Fast: opts.Tiers[0].Name, Strong: opts.Tiers[nt-1].Name},
		Label:         "score",
		TierList:      append([]Tier(nil), opts.Tiers...),
		TierPolicy:    &opts.Policy,
		Training: Fingerprint{
			Records: n, Skipped: opts.Skipped, L2Chosen: opts.L2 == 0, IDF: !opts.NoIDF,
			SHA256: tierFingerprint(train.ids, train.multi), Seed: opts.Seed, Sources: opts.Sources,
			MetaOff: opts.Groups.Meta < 0,
		},
		MetricsFrom: MetricsOutOfFold,
	}
	for k := range nt {
		l2 := grid[pos[k]]
		rep.L2[k] = l2
		var m *classifier.Model
		if hc := heads[k]; hc.constant {
			m = &classifier.Model{W: make([]float64, x.Dim), B: hc.bias}
		} else {
			step := fmt.Sprintf("fitting (%s)", opts.Tiers[k].Name)
			progress(step, 0, 1)
			copts := opts.Classifier
			copts.L2 = l2
			m, err = classifier.Fit(x, y[k], hw[k], copts)
			if err != nil {
				return nil, nil, fmt.Errorf("train tiers: %s: final fit: %w", opts.Tiers[k].Name, err)
			}
			progress(step, 1, 1)
		}
		if cols != nil {
			m.W = classifier.ExpandWeights(m.W, cols, len(scale))
		}
		for j := range scale {
			m.W[j] *= scale[j]
		}
		a.TierHeads = append(a.TierHeads, TierHead{Weights: m.W, Bias: m.B, Calibration: cals[k]})
	}
	// Each tier's gate: P(its answer correct) from its raw confidence,
	// where the log has enough of them (as the two-tier gate, fitConfidence).
	for k := range nt {
		var z, yc, wc []float64
		var sub []int
		for i := range n {
			if c := train.mconf[i*nt+k]; !math.IsNaN(c) && hw[k][i] > 0 {
				z, yc, wc = append(z, c), append(yc, b2f(y[k][i] >= 0.5)), append(wc, 1)
				sub = append(sub, train.folds[i])
			}
		}
		if len(z) < 50 || checkBothClasses(yc) != nil {
			continue
		}
		cal, _, err := chooseCalibration(z, yc, wc, sub, opts.Folds)
		if err != nil {
			return nil, nil, fmt.Errorf("train tiers: %s: confidence calibration: %w", opts.Tiers[k].Name, err)
		}
		a.TierList[k].ConfidenceCalibration = &cal
	}
	a.Training.L2 = rep.L2[nt-1]
	a.Metrics = TierMetrics(pred, train.multi, prices, evalW, opts.Policy)
	if complete < n {
		// Which rows trained which head, as a two-tier router trained on
		// one-sided records records its heads' (Fingerprint.HeadRecords).
		hr := map[string]int{}
		for k, t := range opts.Tiers {
			hr[t.Name] = rows[k]
		}
		if _, ok := hr[completeKey]; !ok {
			hr[completeKey] = complete
		}
		a.Training.HeadRecords = hr
	}
	return a, rep, nil
}

// completeKey is Fingerprint.HeadRecords' count of the N-tier examples
// with every tier's score; the other keys are the tiers' names.
const completeKey = "complete"

func argmin(xs []float64) int {
	best := 0
	for i, v := range xs {
		if v < xs[best] {
			best = i
		}
	}
	return best
}

// routedUtility is the weighted mean, over requests, of the chosen tier's
// actual score less λ times its price, with pred and actual row-major.
func routedUtility(pred, actual, prices, w []float64, p TierPolicy) float64 {
	nt := len(prices)
	var sum, tot float64
	for i := 0; i < len(pred)/nt; i++ {
		wi := wt(w, i)
		if wi == 0 {
			continue // an incomplete row: its actual scores hold NaNs
		}
		k, _ := p.Choose(pred[i*nt:(i+1)*nt], prices)
		sum += wi * (actual[i*nt+k] - p.Lambda*prices[k])
		tot += wi
	}
	return sum / tot
}

// TierMetrics are an N-tier router's figures under policy p, from
// predicted and actual scores (row-major, one per tier): "quality" the
// mean score of the chosen tiers, "cost" their mean price, "best_single"
// the best single tier's mean score, "oracle" the mean of each request's
// best score, and "share_<k>" the share of requests tier k gets. Rows of
// weight 0 are left out (TrainTiers gives incomplete rows that weight).
func TierMetrics(pred, actual, prices, w []float64, p TierPolicy) map[string]float64 {
	nt := len(prices)
	n := len(pred) / nt
	single := make([]float64, nt)
	share := make([]float64, nt)
	var q, c, orc, tot float64
	for i := range n {
		wi := wt(w, i)
		if wi == 0 {
			continue // an incomplete row: its actual scores hold NaNs
		}
		row := actual[i*nt : (i+1)*nt]
		k, _ := p.Choose(pred[i*nt:(i+1)*nt], prices)
		tot += wi
		q += wi * row[k]
		c += wi * prices[k]
		share[k] += wi
		best := math.Inf(-1)
		for j, s := range row {
			single[j] += wi * s
			best = math.Max(best, s)
		}
		orc += wi * best
	}
	m := map[string]float64{"quality": q / tot, "cost": c / tot, "oracle": orc / tot}
	bs := math.Inf(-1)
	for k := range nt {
		bs = math.Max(bs, single[k]/tot)
		m[fmt.Sprintf("share_%d", k)] = share[k] / tot
	}
	m["best_single"] = bs
	return m
}

// DropPolicyMetrics removes from an N-tier artifact's metrics the
// figures TierMetrics measured under one policy ("quality", "cost" and
// "share_<k>"), keeping those no policy changes ("best_single",
// "oracle"). A derived artifact whose policy was changed calls it: the
// figures describe its parent's policy, and shown beside the new one
// they read as its own.
func DropPolicyMetrics(m map[string]float64) {
	for k := range m {
		if k == "quality" || k == "cost" || strings.HasPrefix(k, "share_") {
			delete(m, k)
		}
	}
}

// tierFingerprint hashes the ids and every tier's score, in order.
func tierFingerprint(ids []string, scores []float64) string {
	h := sha256.New()
	nt := len(scores) / max(1, len(ids))
	var b [8]byte
	for i, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
		for _, s := range scores[i*nt : (i+1)*nt] {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(s))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
