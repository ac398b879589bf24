package models

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
)

// Defaults for TrainOptions.
const (
	// DefaultFolds is K for choosing the scorer and L2 and for the
	// out-of-fold scores the calibration is fit on. Three folds chose as
	// well as five on the quality suite (mean APGR 0.550 against 0.547) at
	// 0.6 of the fits, each on less data.
	DefaultFolds = 3
	// DefaultEscalateShare is the share of traffic the default thresholds
	// send to the strong tier alone: the requests with the highest p_hard.
	DefaultEscalateShare = 0.3
	// DefaultSpeculateShare is the share just below it that speculates
	// when the log has fast-tier confidence to gate on.
	DefaultSpeculateShare = 0.2
	// DefaultAcceptConfidence is the calibrated confidence a speculated
	// fast answer needs to be kept.
	DefaultAcceptConfidence = 0.8
)

// DefaultL2Grid is searched when no L2 is given: half-decade steps were
// no better than decade steps on the quality suite, at 4/3 of the fits,
// and strengths weaker than 3e-3 were never the best choice on RouteLLM
// MMLU and GSM8K and were the slowest fits (docs/quality.md).
var DefaultL2Grid = []float64{1e-1, 1e-2, 3e-3}

// ErrNoExamples is returned when there is nothing to train on.
var ErrNoExamples = errors.New("no labelled examples")

// Example is one labelled request for training: its features' input, both
// tiers' scores and, where logged, the fast tier's raw confidence.
type Example struct {
	ID    string
	Input features.Input
	// Fast and Strong are the tiers' scores; NaN when that tier's outcome
	// was not observed (a one-sided record of a fast or escalate
	// decision). Each per-tier head learns from the rows where its tier
	// was observed; everything that needs both scores (the label, the
	// gain head, selection, calibration, the figures) uses the paired
	// rows only.
	Fast   float64
	Strong float64
	// Scores are the N tiers' scores, in the order of the router's tiers,
	// for TrainTiers; nil for a two-tier example. Every example of a
	// design has the same number; NaN where that tier did not run (a
	// served request's record), which leaves the row out of that head's
	// fit and out of the figures.
	Scores []float64
	// Confidences are the N tiers' raw confidences, NaN where not logged;
	// nil when none was.
	Confidences []float64
	// FastSoft says Fast is not an observed score but a soft target: the
	// champion's calibrated P(fast answer correct) from the fast tier's
	// confidence, for a request nobody scored. Only the fast head learns
	// from it; the row is never paired.
	FastSoft bool
	// StrongSoft says Strong is not an observed score but a soft target
	// imputed from the fast tier's observed score (see imputeOtherTier).
	// Only the strong head learns from it; the row is never paired.
	StrongSoft bool
	// Weight scales the example's loss; 0 means 1.
	Weight float64
	// FastWeight and StrongWeight, when set, scale the example's loss in
	// the fast and strong heads instead of Weight: the inverse of the
	// probability that the tier ran (see retrain.HeadEstimator).
	FastWeight, StrongWeight float64
	// Fold is the example's cross-validation fold in [0, TrainOptions.Folds).
	Fold int
	// Confidence is the fast tier's raw confidence, nil when not logged.
	Confidence *float64
	TS         time.Time
}

// TrainOptions configures Train. Zero values mean the documented defaults.
type TrainOptions struct {
	// Tiers names the fast and strong models.
	Tiers Tiers
	// Label maps (fast score, strong score) to the 0/1 label p_hard
	// estimates; LabelName is its name as stored in the artifact.
	Label     func(fast, strong float64) float64
	LabelName string
	// Scorer is ScorerAuto, ScorerPerTier, ScorerGain, ScorerBlend or
	// ScorerLabel; "" means DefaultScorer(LabelName).
	Scorer string
	// Features is the feature spec; zero means features.DefaultSpec().
	Features features.Spec
	// L2 is the regularisation strength of every head; 0 chooses each
	// head's from L2Grid by out-of-fold ranking quality. FastL2, when set,
	// is the fast head's instead.
	L2     float64
	FastL2 float64
	// L2Grid is the candidate strengths; nil means DefaultL2Grid.
	L2Grid []float64
	// Folds is K; examples' Fold must lie in [0, Folds). 0 means
	// DefaultFolds.
	Folds int
	// NoIDF turns off inverse-document-frequency scaling of the hashed
	// features (see Train).
	NoIDF bool
	// Groups scales the numeric and meta groups for the fit, which gives
	// each its own penalty strength.
	Groups GroupScales
	// Classifier passes optimiser settings through.
	Classifier classifier.Options
	// Seed is recorded in the fingerprint.
	Seed uint64
	// Sources are recorded in the fingerprint.
	Sources []string
	// Skipped is recorded in the fingerprint.
	Skipped int
	// Now stamps the artifact; zero means time.Now().
	Now time.Time
	// Progress, when set, is told about each fitting step.
	Progress func(step string, done, total int)
	// RouteWithoutSignal keeps the router's ranking even where the log
	// does not show it beats random (see Signal); by default such a
	// router escalates every request.
	RouteWithoutSignal bool
	// Difficulty mixes the difficulty view (models/difficulty.go) into
	// the chosen scorer's score. Off by default: judged without the leak
	// docs/quality.md item 19 fixed, it moves more of the quality suite's
	// sets up than down but is worth nothing on the mean (better on MMLU,
	// worse on GSM8K), at about a quarter more training time.
	Difficulty bool
	// DifficultyL2 is the difficulty head's L2; 0 chooses it by
	// out-of-fold log loss over the grid (or takes L2 where that is
	// given).
	DifficultyL2 float64
}

// TrainReport says what Train did and how well the result does.
type TrainReport struct {
	// Scorer is the artifact's scorer.
	Scorer string
	// L2 used, and the CV log loss per grid value when it was chosen: of
	// the label model, or of the strong head of a per-tier scorer.
	L2     float64
	L2Grid []float64
	CVLoss []float64
	// FastL2 and FastCVLoss are the fast head's, for a per-tier scorer.
	FastL2     float64
	FastCVLoss []float64
	// Calibration of p_hard: isotonic regression of the out-of-fold
	// scores, with linear end segments (calibrateScores).
	Calibration string
	// ConfidenceCalibration chosen for the gate, "" when no confidence
	// was logged.
	ConfidenceCalibration string
	// Held is the evaluation on the held-out examples (N == 0 if none).
	Held Report
	// HeldP is p_hard for each held-out example, in order.
	HeldP []float64
	// OOF is the evaluation of the out-of-fold p_hard of the training
	// examples, OOFP those p_hard in the design's order.
	OOF  Report
	OOFP []float64
	// Candidates are the routers the selection compared, with the chosen
	// one marked; Signal is the verdict on the chosen one.
	Candidates []CandidateReport
	Signal     Signal
	// MetaChecked says the log's meta varied, so the chosen router was
	// also compared without it; NoMeta says the router left meta out.
	MetaChecked, NoMeta bool
	// Difficulty says the router mixes in the difficulty view, whose
	// head's L2 (chosen by out-of-fold log loss) is DifficultyL2.
	Difficulty   bool
	DifficultyL2 float64
}

// Train fits a router on train and evaluates it on held (which may be
// empty). The scorer and each head's L2 are chosen by K-fold CV on
// out-of-fold APGR unless given (see ScorerAuto); the calibration,
// isotonic regression, is fit on the chosen router's out-of-fold scores
// so it sees scores like those of unseen prompts.
func Train(train, held []Example, opts TrainOptions) (*Artifact, *TrainReport, error) {
	if len(train) == 0 {
		return nil, nil, ErrNoExamples
	}
	d, err := NewDesign(opts.Features)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	d.Expect(len(train))
	for i := range train {
		d.Add(&train[i])
	}
	return TrainDesign(d, held, opts)
}

// TrainDesign is Train on examples already turned into a Design (whose
// spec is opts.Features, or the default spec when that is zero). It
// scales the design's values in place, so a design trains once.
func TrainDesign(train *Design, held []Example, opts TrainOptions) (*Artifact, *TrainReport, error) {
	if train.Len() == 0 {
		return nil, nil, ErrNoExamples
	}
	if opts.Label == nil {
		return nil, nil, errors.New("train: no label function")
	}
	if err := train.readyToTrain(&opts.Features, &opts.Folds); err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
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
	// One-sided rows: a row is paired when both tiers' scores were
	// observed (a soft target is not an observation). fast and
	// strong are the scores with the unobserved ones set to 0, so that
	// weighted sums stay finite; every statistic over both tiers weighs
	// them with d.w, which is 0 on unpaired rows, and each per-tier head
	// with its own weights, 0 where its tier was not observed.
	fast, strong := train.fast, train.strong
	var headW [numHeads][]float64
	paired := make([]bool, n)
	npaired := 0
	for i := range n {
		paired[i] = !math.IsNaN(fast[i]) && !math.IsNaN(strong[i]) && !train.soft[i] && !train.strongSoft[i]
		if paired[i] {
			npaired++
		}
	}
	oneSided := npaired < n || !slices.Equal(train.fastW, train.weight) || !slices.Equal(train.strongW, train.weight)
	evalW := train.weight
	if oneSided {
		fast, strong = slices.Clone(fast), slices.Clone(strong)
		evalW = make([]float64, n)
		headW[headFast], headW[headStrong] = make([]float64, n), make([]float64, n)
		for i := range n {
			if paired[i] {
				evalW[i] = train.weight[i]
			}
			if math.IsNaN(fast[i]) {
				fast[i] = 0
			} else {
				headW[headFast][i] = train.fastW[i]
			}
			if math.IsNaN(strong[i]) {
				strong[i] = 0
			} else {
				headW[headStrong][i] = train.strongW[i]
			}
		}
		if npaired == 0 {
			return nil, nil, errors.New("train: no example has both tiers' scores; the router's selection and calibration need some")
		}
	}
	// The fit's matrix, labels and weights (of the paired rows).
	d := struct {
		x    *classifier.Sparse
		y, w []float64
	}{x: train.x, y: make([]float64, n), w: evalW}
	for i := range d.y {
		d.y[i] = opts.Label(fast[i], strong[i])
	}
	for h := range numHeads {
		if headW[h] == nil {
			headW[h] = d.w
		}
	}
	if err := checkBothClasses(pick(d.y, paired)); err != nil {
		return nil, nil, err // says what to do; "train: " doubled 'triage train: '
	}
	rep := &TrainReport{}
	// IDF: rare n-grams (and rare meta values) get larger values, which
	// under one L2 penalty means they are shrunk less. Fitting on scaled
	// columns and multiplying the weights back by the same factors gives
	// a model over the raw features, so serving needs no IDF table.
	//
	// The numeric slots (lengths, shares, counts) are scaled to unit
	// standard deviation for the same reason: features.Spec squeezes them
	// into [0, 1], where a prompt's length varies by a few hundredths, so
	// one L2 penalty would all but erase them. On GSM8K, where length is
	// the best single sign of a hard problem, this was worth +0.015 APGR
	// (docs/quality.md). Their means need no centring: the intercept is
	// not penalised, so a shift only moves it.
	scale := columnScales(d.x, blocksOf(opts.Features), !opts.NoIDF, opts.Groups)
	train.used = true
	for k, j := range d.x.Idx {
		d.x.Val[k] *= scale[j]
	}
	// Every fit below would renumber the columns in use (the hashed space
	// is mostly empty, and IDF zeroes the columns seen once) in a copy of
	// the matrix's column indices; doing it here, once and in place, gives
	// the same fits without the copies.
	d.x.DropZeros()
	cols := classifier.CompactColumns(d.x)

	grid := opts.L2Grid
	if grid == nil {
		grid = DefaultL2Grid
	}
	folds := train.folds
	scorer := opts.Scorer
	if scorer == "" {
		scorer = DefaultScorer(opts.LabelName)
	}
	scorers := []string{scorer}
	if scorer == ScorerAuto {
		scorers = autoScorers
	} else if _, ok := scorerHeads[scorer]; !ok {
		return nil, nil, fmt.Errorf("train: scorer %q is not known; want %s", scorer, scorerList)
	}

	// Each head's grid: the given L2 alone, or the search grid. The L2
	// strengths are chosen with the scorer below, by ranking quality.
	var grids [numHeads][]float64
	for h := range numHeads {
		switch {
		case h == headFast && opts.FastL2 != 0:
			grids[h] = []float64{opts.FastL2}
		case opts.L2 != 0:
			grids[h] = []float64{opts.L2}
		default:
			grids[h] = grid
		}
	}
	// The heads' targets: each tier's score, the strong tier's gain as a
	// soft target in [0, 1], and the label.
	targets := [numHeads][]float64{
		headStrong: strong,
		headFast:   fast,
		headGain:   make([]float64, n),
		headLabel:  d.y,
	}
	for i := range n {
		targets[headGain][i] = (strong[i] - fast[i] + 1) / 2
	}
	var heads [numHeads]*headCV
	for _, s := range scorers {
		for _, h := range scorerHeads[s] {
			if heads[h] != nil {
				continue
			}
			step := "cross-validating (" + headNames[h] + ")"
			progress(step, 0, 1)
			hc, err := cvHead(headNames[h], d.x, targets[h], headW[h], folds, grids[h], opts.Classifier)
			if err != nil {
				return nil, nil, fmt.Errorf("train: %w", err)
			}
			progress(step, 1, 1)
			heads[h] = hc
		}
	}
	cands := enumerateCandidates(scorers, grids)
	scoreCandidates(cands, heads, fast, strong, d.w)
	chosen := pickOneSE(cands, grids, fast, strong, d.w)

	// The meta group's strength: where the log's meta varies, the chosen
	// router is cross-validated again without it, and the one-SE rule
	// keeps meta only where it clearly ranks better (it is the larger
	// model). Subject was worth 0.024 APGR on RouteLLM MMLU; on small logs
	// meta's weights can take over what the text would teach.
	fitX := d.x
	if mb := blocksOf(opts.Features).meta; opts.Groups.Meta >= 0 && metaVaries(d.x, cols, mb) {
		noMeta := withoutColumns(d.x, cols, mb)
		var mheads [numHeads]*headCV
		alt := &candidate{scorer: chosen.scorer, k: chosen.k, noMeta: true}
		var agrids [numHeads][]float64
		for h := range numHeads {
			if !chosen.uses(h) {
				alt.k[h] = -1
				continue
			}
			agrids[h] = []float64{grids[h][chosen.k[h]]}
			step := "cross-validating without meta (" + headNames[h] + ")"
			progress(step, 0, 1)
			hc, err := cvHead(headNames[h], noMeta, targets[h], headW[h], folds, agrids[h], opts.Classifier)
			if err != nil {
				return nil, nil, fmt.Errorf("train: %w", err)
			}
			progress(step, 1, 1)
			mheads[h] = hc
			alt.k[h] = 0
		}
		scoreCandidates([]*candidate{alt}, mheads, fast, strong, d.w)
		// Without meta is the simpler model: it wins within one standard
		// error of the difference, paired on the same requests.
		alt.k = chosen.k // its grid positions in the full grids, for reports
		cands = append(cands, alt)
		dif, se := pairedDiff(rankShares(chosen.oof, d.w), rankShares(alt.oof, d.w), fast, strong, d.w)
		if !math.IsNaN(alt.apgr) && (math.IsNaN(dif) || dif <= se) {
			chosen, fitX = alt, noMeta
		}
		rep.MetaChecked = true
	}
	rep.Scorer = chosen.scorer
	rep.NoMeta = chosen.noMeta
	for _, c := range cands {
		rep.Candidates = append(rep.Candidates, CandidateReport{Scorer: c.scorer, L2: c.l2s(grids), NoMeta: c.noMeta, APGR: c.apgr, SE: c.se, Chosen: c == chosen})
	}

	// The chosen scorer's heads, fitted on every training row.
	var final [numHeads]*classifier.Model
	for h := range numHeads {
		if !chosen.uses(h) {
			continue
		}
		hc, l2 := heads[h], grids[h][chosen.k[h]]
		if hc.constant {
			final[h] = &classifier.Model{W: make([]float64, d.x.Dim), B: hc.bias}
			continue
		}
		step := "fitting (" + headNames[h] + ")"
		progress(step, 0, 1)
		copts := opts.Classifier
		copts.L2 = l2
		m, err := classifier.Fit(fitX, targets[h], headW[h], copts)
		if err != nil {
			return nil, nil, fmt.Errorf("train: %s: final fit: %w", headNames[h], err)
		}
		progress(step, 1, 1)
		final[h] = m
	}
	best := chosen.oof // out-of-fold raw scores, for the calibration
	// The difficulty view (models/difficulty.go), mixed into the chosen
	// scorer's score; the calibration is fitted on the mix, which is what
	// the router answers with. The signal check below judges the chosen
	// scorer, as for a router without the view: the view is a fixed
	// recipe added after the selection, and it must not turn a log the
	// selection cannot tell from noise into one that routes.
	var diff *Difficulty
	var diffModel *classifier.Model
	if opts.Difficulty {
		dgrid := grid
		switch {
		case opts.DifficultyL2 != 0:
			dgrid = []float64{opts.DifficultyL2}
		case opts.L2 != 0:
			dgrid = []float64{opts.L2}
		}
		step := "cross-validating (difficulty)"
		progress(step, 0, 1)
		dv, dm, mixed, err := fitDifficulty(fitX, fast, strong, d.w, headW[headFast], headW[headStrong], chosen.oof, folds, dgrid, opts.Classifier)
		if err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		progress(step, 1, 1)
		if dv != nil {
			diff, diffModel, best = dv, dm, mixed
			rep.Difficulty = true
			rep.DifficultyL2 = dv.L2
		}
	}
	l2s := chosen.l2s(grids)
	rep.L2, rep.FastL2 = l2s[headOf(chosen.scorer)], l2s[headFast]
	rep.L2Grid = grids[headOf(chosen.scorer)]
	rep.CVLoss = heads[headOf(chosen.scorer)].cv.Loss
	if chosen.uses(headFast) {
		rep.FastCVLoss = heads[headFast].cv.Loss
	}

	cal, err := calibrateScores(best, d.y, d.w)
	if err != nil {
		return nil, nil, fmt.Errorf("train: calibration: %w", err)
	}
	rep.Calibration = "isotonic"
	// Every head was fitted on the compacted, scaled columns; serving
	// reads raw features in the hashed space.
	toRaw := func(m *classifier.Model) {
		if cols != nil {
			m.W = classifier.ExpandWeights(m.W, cols, len(scale))
		}
		for j := range scale {
			m.W[j] *= scale[j]
		}
	}
	for _, m := range final {
		if m != nil {
			toRaw(m)
		}
	}
	if diff != nil {
		toRaw(diffModel)
		diff.Weights, diff.Bias = Weights(diffModel.W), diffModel.B
	}

	a := &Artifact{
		FormatVersion: FormatVersion,
		Version:       NewVersion(opts.Now),
		CreatedAt:     opts.Now.UTC(),
		Features:      opts.Features,
		Scorer:        chosen.scorer,
		Calibration:   cal,
		Tiers:         opts.Tiers,
		Label:         opts.LabelName,
		Training: Fingerprint{
			Records: n, Skipped: opts.Skipped, Holdout: len(held),
			SHA256: fingerprint(train.ids, d.y), L2: rep.L2, FastL2: rep.FastL2, GainL2: gainL2(chosen.scorer, l2s), L2Chosen: opts.L2 == 0, IDF: !opts.NoIDF,
			MetaOff: chosen.noMeta || opts.Groups.Meta < 0,
			Seed:    opts.Seed, Sources: opts.Sources,
		},
	}
	if oneSided {
		hr := map[string]int{"paired": npaired}
		for i := range n {
			if headW[headFast][i] > 0 {
				hr["fast"]++
			}
			if headW[headStrong][i] > 0 {
				hr["strong"]++
			}
		}
		a.Training.HeadRecords = hr
	}
	a.setHeads(final)
	a.Difficulty = diff
	// The gate: P(fast answer correct) from the fast tier's raw confidence.
	if cc, name, ok, err := fitConfidence(train, opts.Folds); err != nil {
		return nil, nil, fmt.Errorf("train: confidence calibration: %w", err)
	} else if ok {
		a.ConfidenceCalibration = &cc
		rep.ConfidenceCalibration = name
	}

	// Does the log let a router beat random? The chosen candidate's
	// out-of-fold APGR, with its 95% interval, says; where it cannot,
	// the router answers one p_hard for every request and escalates them
	// all, so it cannot route worse than sending everything to the strong
	// tier, which is what a user had before.
	rankings := make([][]float64, 0, len(cands))
	for _, c := range cands {
		rankings = append(rankings, c.oof)
	}
	sig := checkSignal(chosen, rankings, fast, strong, d.w, opts.Seed)
	a.Signal = &sig
	rep.Signal = sig
	if !sig.Routable && opts.RouteWithoutSignal {
		sig.Routable, sig.Reason = true, "routed anyway (--route-anyway): "+sig.Reason
		a.Signal = &sig
		rep.Signal = sig
	} else if !sig.Significant && opts.RouteWithoutSignal {
		// The default policy routes after all: the line must not say
		// that it escalates every request.
		sig.Reason = "routed anyway (--route-anyway): " + sig.NotShown()
		a.Signal = &sig
		rep.Signal = sig
	}

	// Default thresholds from the out-of-fold p_hard distribution, which
	// is what unseen traffic looks like to this model.
	pOOF := make([]float64, len(best))
	if sig.Routable {
		for i, z := range best {
			pOOF[i] = cal.Apply(z)
		}
		if sig.Significant || opts.RouteWithoutSignal {
			a.Policy, a.PolicyTarget = DefaultPolicy(pOOF, a.ConfidenceCalibration != nil)
		} else {
			// The log does not show that this ranking beats random: on a
			// log whose outcomes are coin flips, the chosen router's
			// out-of-fold APGR is above 0.5 about half the time (above
			// it by chance, and lifted by choosing the best candidate).
			// A default that sends most requests to the fast tier would
			// then cost quality for nothing, so nothing is switched on by
			// default: every request escalates, as before the router. The
			// ranking and its calibration are kept, because on real logs
			// such routers still rank better than random on average (the
			// curves show what a threshold would do; docs/quality.md).
			a.Policy, a.PolicyTarget = NoRoutePolicy(), "not shown to beat random: every request escalates until `triage calibrate` sets thresholds from its curves"
		}
	} else {
		a.Calibration = constantCalibration()
		for i := range pOOF {
			pOOF[i] = a.Calibration.Apply(0)
		}
		a.Policy, a.PolicyTarget = NoRoutePolicy(), "cannot route: "+sig.Reason+"; every request escalates"
		rep.Calibration = "constant"
	}
	a.ExpectedShares = Shares(a.Policy, pOOF)
	// The figures train reports when nothing is held out: the out-of-fold
	// p_hard of the cross-validation that chose the router (a little
	// optimistic, as the choice saw them).
	rep.OOF = Evaluate(pick(pOOF, paired), pick(d.y, paired), pick(fast, paired), pick(strong, paired))
	rep.OOFP = pOOF
	a.Metrics = rep.OOF.Map()
	a.MetricsFrom = MetricsOutOfFold

	if len(held) > 0 {
		r, err := NewRouter(a)
		if err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		rep.HeldP = make([]float64, len(held))
		weak := make([]float64, len(held))
		strong := make([]float64, len(held))
		y := make([]float64, len(held))
		for i := range held {
			rep.HeldP[i] = r.Route(held[i].Input).PHard
			weak[i], strong[i] = held[i].Fast, held[i].Strong
			y[i] = opts.Label(weak[i], strong[i])
		}
		rep.Held = Evaluate(rep.HeldP, y, weak, strong)
		a.Metrics = rep.Held.Map()
		a.MetricsFrom = MetricsHeldOut
	}
	return a, rep, nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// gainL2 is the gain head's L2 where the fingerprint records it apart
// from L2: in a blend, whose L2 is the strong head's.
func gainL2(scorer string, l2s [numHeads]float64) float64 {
	if scorer == ScorerBlend {
		return l2s[headGain]
	}
	return 0
}

// DefaultScorer is the scorer for a label when none is asked for:
// ScorerAuto (chosen by out-of-fold ranking quality among the scorers of
// the strong tier's gain) for the labels about that gain (strong-wins,
// gap:T, gain), and ScorerLabel for weak-fails, which is about the fast
// tier alone.
func DefaultScorer(label string) string {
	if label == datasets.LabelWeakFails {
		return ScorerLabel
	}
	return ScorerAuto
}

func constant(y []float64) (float64, bool) {
	for _, v := range y[1:] {
		if v != y[0] {
			return 0, false
		}
	}
	return y[0], true
}

func checkBothClasses(y []float64) error {
	pos := 0
	for _, v := range y {
		if v > 0.5 {
			pos++
		}
	}
	if pos == 0 || pos == len(y) {
		what := "every request is easy (the fast tier does as well)"
		if pos > 0 {
			what = "every request is hard (the strong tier wins each one)"
		}
		return fmt.Errorf("cannot route: all %d examples have label %v: %s, so there is nothing to rank, and no router to train; send every request to the one tier that does the job, check --fast/--strong and --label, or log requests where the tiers differ", len(y), y[0], what)
	}
	return nil
}

// calibrateScores maps out-of-fold raw scores to the probability of the
// label: isotonic regression, with its end segments continued past the end
// knots. It never turns the ranking round, and it is the map that keeps
// the most of it when routers trained on different samples are compared
// on one scale: on the quality suite, pooling five folds' p_hard lost
// 0.001 APGR against their raw scores this way, 0.008 when Platt or
// isotonic was chosen by held-out log loss and 0.012 with Platt alone
// (docs/quality.md). Platt's single slope fitted to a label only loosely
// tied to the score (strong-wins on graded logs) flattened the scale by a
// different amount in every fold.
func calibrateScores(z, y, w []float64) (classifier.Calibration, error) {
	cal, err := classifier.FitIsotonic(z, y, w)
	if err != nil {
		return cal, err
	}
	cal.LinearTails = true
	return cal, nil
}

// chooseCalibration fits Platt and isotonic on the out-of-fold logits of
// the lower half of the folds, compares their log loss on the upper half,
// and refits the winner on all of them. It returns the calibration and
// the name of the method chosen.
func chooseCalibration(z, y, w []float64, folds []int, k int) (classifier.Calibration, string, error) {
	var zf, yf, wf, zh, yh, wh []float64
	for i, f := range folds {
		if f < k/2 {
			zf, yf, wf = append(zf, z[i]), append(yf, y[i]), append(wf, w[i])
		} else {
			zh, yh, wh = append(zh, z[i]), append(yh, y[i]), append(wh, w[i])
		}
	}
	bestName, bestLoss := "", math.Inf(1)
	for _, c := range []struct {
		name string
		fit  func(z, y, w []float64) (classifier.Calibration, error)
	}{{"platt", classifier.FitPlatt}, {"isotonic", classifier.FitIsotonic}} {
		cal, err := c.fit(zf, yf, wf)
		if err != nil || !increasing(cal) {
			continue
		}
		p := make([]float64, len(zh))
		for i, v := range zh {
			p[i] = cal.Apply(v)
		}
		l := classifier.LogLoss(p, yh, wh)
		if l < bestLoss {
			bestName, bestLoss = c.name, l
		}
	}
	if bestName == "" {
		return classifier.Calibration{}, "", errors.New("neither platt nor isotonic could be fit")
	}
	if bestName == "platt" {
		if cal, err := classifier.FitPlatt(z, y, w); err == nil && increasing(cal) {
			return cal, bestName, nil
		}
		// On all the scores the slope can come out flat or negative where
		// half of them gave a positive one; isotonic keeps the order.
		bestName = "isotonic"
	}
	cal, err := classifier.FitIsotonic(z, y, w)
	return cal, bestName, err
}

// increasing reports whether a calibration keeps the order of the scores.
// A Platt fit with a slope of zero or below would make every request
// alike or turn the router's ranking round, which no later step could
// repair: the ranking is what routing quality is made of.
func increasing(c classifier.Calibration) bool {
	return c.Method != classifier.CalibPlatt || c.A > 0
}

// fitConfidence calibrates the fast tier's raw confidence against whether
// its answer was correct (score >= 0.5), on the examples that logged one.
func fitConfidence(d *Design, k int) (classifier.Calibration, string, bool, error) {
	var z, y, w []float64
	var sub []int
	for i, c := range d.conf {
		if math.IsNaN(c) || math.IsNaN(d.fast[i]) || d.soft[i] {
			continue
		}
		z = append(z, c)
		y = append(y, b2f(d.fast[i] >= 0.5))
		w = append(w, 1)
		sub = append(sub, d.folds[i])
	}
	// Too few to calibrate reliably: no gate rather than a wild one.
	if len(z) < 50 {
		return classifier.Calibration{}, "", false, nil
	}
	if checkBothClasses(y) != nil {
		return classifier.Calibration{}, "", false, nil
	}
	cal, name, err := chooseCalibration(z, y, w, sub, k)
	if err != nil {
		return classifier.Calibration{}, "", false, err
	}
	return cal, name, true, nil
}

// pick returns x's elements where keep is true (x itself when all are).
func pick(x []float64, keep []bool) []float64 {
	if !slices.Contains(keep, false) {
		return x
	}
	out := make([]float64, 0, len(x))
	for i, k := range keep {
		if k {
			out = append(out, x[i])
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// DefaultPolicy sets thresholds from a p_hard sample: the top
// DefaultEscalateShare escalates; when a confidence gate exists the next
// DefaultSpeculateShare speculates, else there is no speculate band.
func DefaultPolicy(p []float64, gate bool) (Policy, string) {
	esc := Quantile(p, 1-DefaultEscalateShare)
	pol := Policy{SpeculateAbove: esc, EscalateAbove: esc, AcceptConfidence: DefaultAcceptConfidence}
	target := fmt.Sprintf("default: escalate the top %.0f%% by p_hard", 100*DefaultEscalateShare)
	if gate {
		pol.SpeculateAbove = Quantile(p, 1-DefaultEscalateShare-DefaultSpeculateShare)
		target += fmt.Sprintf(", speculate the next %.0f%% (accept fast at calibrated confidence >= %.2f)", 100*DefaultSpeculateShare, DefaultAcceptConfidence)
	}
	return pol, target
}

// Quantile returns the q-quantile of xs (nearest rank on a sorted copy).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(len(s)-1, i))
	return s[i]
}

// Shares is the share of each decision the policy gives over p.
func Shares(pol Policy, p []float64) map[Decision]float64 {
	out := map[Decision]float64{Fast: 0, Speculate: 0, Escalate: 0}
	if len(p) == 0 {
		return out
	}
	for _, v := range p {
		out[pol.Decide(v)]++
	}
	for k := range out {
		out[k] /= float64(len(p))
	}
	return out
}

func fingerprint(ids []string, y []float64) string {
	h := sha256.New()
	var b [8]byte
	for i, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
		binary.LittleEndian.PutUint64(b[:], uint64(y[i]))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// minDocFreq is the fewest training prompts a hashed column must appear in
// to be used (scikit-learn's min_df).
const minDocFreq = 2

// GroupScales multiplies the columns of a feature group for the fit,
// which under one L2 penalty divides that group's penalty by the square:
// a scale of 3 penalises it 9 times less. 0 means 1; Off leaves the group
// out of the fit altogether.
type GroupScales struct {
	// Numeric scales the numeric slots (after their unit-variance scaling).
	Numeric float64
	// Meta scales the meta block (spec version 2 with MetaBits; in version
	// 1 meta shares the text's slots and is scaled with the text).
	Meta float64
}

// Off is the GroupScales value that leaves a group out.
const Off = -1

func groupScale(v float64) float64 {
	switch {
	case v == 0:
		return 1
	case v < 0:
		return 0
	}
	return v
}

// blocks are the column ranges of a spec's vector: the hashed text slots
// [0, hashed), the numeric slots [hashed, meta) and the meta block
// [meta, dim).
type blocks struct{ hashed, meta int }

func blocksOf(spec features.Spec) blocks {
	return blocks{hashed: 1 << spec.HashBits, meta: spec.MetaBase()}
}

// isCount reports the columns that count occurrences (text n-grams and
// meta indicators), which get IDF; the others are numeric slots.
func (b blocks) isCount(j int) bool { return j < b.hashed || j >= b.meta }

// columnScales returns the factor each column is multiplied by for the
// fit: the IDF of the text and meta columns (1 when idf is false), one
// over the standard deviation of the numeric slots, and the groups'
// scales on top.
func columnScales(x *classifier.Sparse, b blocks, idf bool, g GroupScales) []float64 {
	var scale []float64
	if idf {
		scale = inverseDocumentFrequency(x, b)
	} else {
		scale = make([]float64, x.Dim)
		for j := range scale {
			scale[j] = 1
		}
	}
	if ms := groupScale(g.Meta); ms != 1 {
		for j := b.meta; j < x.Dim; j++ {
			scale[j] *= ms
		}
	}
	n := min(b.meta, x.Dim) - b.hashed
	if n <= 0 || x.Rows() == 0 {
		return scale
	}
	// Two passes, the mean and then the squared deviations from it:
	// E[x²] − E[x]² leaves rounding error on a column that never varies
	// (num:turns is one turn on every line of a log of prompts): its
	// square root, 6e-8 on 2,000 rows, passed for a spread, scaled the
	// column by 1.6e7 and let it take a weight of −10 in the model's units.
	// Requests of two messages (a system prompt) then moved every p_hard
	// by that weight times a change the log never showed.
	sum, nnz := make([]float64, n), make([]int, n)
	eachNumeric := func(fn func(c int, v float64)) {
		for i := 0; i < x.Rows(); i++ {
			idx, val := x.Row(i)
			for k, j := range idx {
				if c := int(j) - b.hashed; c >= 0 && c < n {
					fn(c, val[k])
				}
			}
		}
	}
	eachNumeric(func(c int, v float64) { sum[c] += v; nnz[c]++ })
	rows := float64(x.Rows())
	mean := make([]float64, n)
	for c := range n {
		mean[c] = sum[c] / rows
	}
	dev := make([]float64, n)
	eachNumeric(func(c int, v float64) { dev[c] += (v - mean[c]) * (v - mean[c]) })
	ns := groupScale(g.Numeric)
	for c := range n {
		// The rows that do not store the slot hold 0 there.
		dev[c] += float64(x.Rows()-nnz[c]) * mean[c] * mean[c]
		sd := math.Sqrt(dev[c] / rows)
		// A column that never varies carries nothing the intercept does
		// not; leave it as it is rather than divide by (almost) zero.
		if sd > 1e-9 {
			scale[b.hashed+c] = ns / sd
		} else {
			scale[b.hashed+c] = ns
		}
	}
	return scale
}

// inverseDocumentFrequency returns, per column, log((1+n)/(1+df)) + 1 (the
// smoothed IDF of scikit-learn) for the text and meta columns, and 1 for
// the numeric slots, which are not counts.
func inverseDocumentFrequency(x *classifier.Sparse, b blocks) []float64 {
	df := make([]float64, x.Dim)
	last := make([]int32, x.Dim) // row+1 that last counted the column
	for i := 0; i < x.Rows(); i++ {
		idx, _ := x.Row(i)
		for _, j := range idx {
			if last[j] != int32(i+1) {
				last[j] = int32(i + 1)
				df[j]++
			}
		}
	}
	n := float64(x.Rows())
	for j := range df {
		if !b.isCount(j) {
			df[j] = 1
			continue
		}
		if df[j] < minDocFreq {
			// Seen in one training prompt only: it cannot generalise, and
			// with IDF it would get the largest value of all.
			df[j] = 0
			continue
		}
		df[j] = math.Log((1+n)/(1+df[j])) + 1
	}
	return df
}
