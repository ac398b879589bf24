package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
	"github.com/triage-router/triage/models/report"
	"github.com/triage-router/triage/models/retrain"
)

// tierFlags are the N-tier flags train and eval --cv share: the tiers,
// cheapest first, each NAME or NAME=PRICE, and the policy's knobs.
type tierFlags struct {
	tiers     []models.Tier
	lambda    float64
	margin    float64
	race      float64
	accept    float64
	selectL2  string
	tierCal   string
	vsTwoTier bool
	// partial is train's --partial-records: also train on the records
	// with some tiers' scores only, each head on those with its tier's.
	// Off by default: on the RouterDC replays of bench/loop/tiers.sh it
	// did not beat training on the complete records (docs/loop.md §8).
	partial bool
}

// tierFlagValue is --tier (one tier per use) or --tiers (a comma-separated
// list); both append, in order.
type tierFlagValue struct {
	dst  *[]models.Tier
	list bool
}

func (v tierFlagValue) String() string {
	if v.dst == nil {
		return ""
	}
	var parts []string
	for _, t := range *v.dst {
		parts = append(parts, fmt.Sprintf("%s=%g", t.Name, t.Price))
	}
	return strings.Join(parts, ",")
}

func (v tierFlagValue) Set(s string) error {
	if v.list {
		ts, err := models.ParseTierList(s)
		if err != nil {
			return err
		}
		*v.dst = append(*v.dst, ts...)
		return nil
	}
	t, err := models.ParseTier(s)
	if err != nil {
		return err
	}
	*v.dst = append(*v.dst, t)
	return nil
}

func (t *tierFlags) register(fs *flag.FlagSet) {
	fs.Var(tierFlagValue{dst: &t.tiers}, "tier", "an N-tier router's tier, NAME or NAME=PRICE (price per request, any unit used for all tiers); repeat, cheapest first. Replaces --fast/--strong")
	fs.Var(tierFlagValue{dst: &t.tiers, list: true}, "tiers", "the tiers as one comma-separated list, cheapest first: A=0.1,B=1,C=5 (same as repeating --tier)")
	fs.Float64Var(&t.lambda, "lambda", 0, "N tiers: willingness to pay, score points (on [0,1]) given up per unit of price; the router picks argmax predicted score − λ·price")
	fs.Float64Var(&t.margin, "margin", 0, "N tiers: quality floor, pick the cheapest tier predicted within MARGIN (on [0,1]) of the best")
	fs.Float64Var(&t.race, "race", 0, "N tiers: race the chosen tier with the next one up when that one's utility is within RACE of the chosen's (0: never)")
	fs.Float64Var(&t.accept, "accept-confidence", models.DefaultAcceptConfidence, "N tiers: in a race, keep the lower tier's answer when its calibrated confidence is at least this")
	fs.StringVar(&t.selectL2, "tier-l2", models.SelectRouted, "N tiers: how each head's L2 is chosen: routed (one strength for all heads, the one whose out-of-fold predictions route best) or per-head (each head's lowest log loss)")
	fs.BoolVar(&t.vsTwoTier, "vs-two-tier", false, "eval --cv with tiers: also cross-validate the two-tier router (--fast/--strong, default scorer) on the best pair and report its AIQ")
	fs.BoolVar(&t.partial, "partial-records", false, "train with tiers: also learn from records with some tiers' scores only (a served request's: the tier that ran), each tier's head from those with its tier's score; by default they are skipped (docs/loop.md §8)")
	fs.StringVar(&t.tierCal, "tier-calibration", models.TierCalNone, "N tiers: how a head's logit becomes the tier's predicted score: none (σ(logit)), platt or isotonic, fitted on out-of-fold logits")
}

func (t *tierFlags) multi() bool { return len(t.tiers) > 0 }

func (t *tierFlags) policy() models.TierPolicy {
	return models.TierPolicy{Lambda: t.lambda, Margin: t.margin, Race: t.race, AcceptConfidence: t.accept}
}

// checkTiers checks the N-tier flags of cmd against the two-tier ones.
func (tf *trainFlags) checkTiers(cmd string) error {
	t := &tf.tier
	if tf.fast != "" || tf.strong != "" {
		return usagef("give --tier for every tier (cheapest first), or --fast and --strong for two", "--tier/--tiers and --fast/--strong exclude each other")
	}
	if tf.diff {
		return usagef("leave --difficulty out: the N-tier router has one head per tier", "--difficulty is for two tiers (--fast and --strong)")
	}
	// The two-tier scorer, label and signal rule shape eval --cv's
	// --vs-two-tier comparison; otherwise nothing reads them.
	if n := tf.given("scorer", "label", "route-anyway"); n != "" && !(t.vsTwoTier && cmd == "eval --cv") {
		return usagef("leave it out: the N-tier router has one head per tier, predicting its score", "--%s is for two tiers (--fast and --strong)", n)
	}
	if t.vsTwoTier && cmd != "eval --cv" {
		return usagef("use it with eval --cv", "--vs-two-tier is for eval --cv")
	}
	if t.partial && cmd != "train" {
		// eval measures on complete records only, whatever it is told.
		return usagef("leave it out: eval measures an N-tier router on the records with every tier's score", "--partial-records is for train")
	}
	if err := models.ValidateTiers(t.tiers); err != nil {
		return usagef("list at least two different models cheapest first, e.g. --tier small=0.1 --tier mid=1 --tier large=5", "%v", err)
	}
	if err := t.policy().Validate(); err != nil {
		return usagef("use finite values >= 0 (and --accept-confidence in [0,1])", "%v", err)
	}
	switch t.selectL2 {
	case models.SelectRouted, models.SelectPerHead:
	default:
		return usagef("use routed or per-head", "--tier-l2 %q is not known", t.selectL2)
	}
	switch t.tierCal {
	case models.TierCalNone, models.TierCalPlatt, models.TierCalIsotonic:
	default:
		return usagef("use none, platt or isotonic", "--tier-calibration %q is not known", t.tierCal)
	}
	if len(tf.data) == 0 {
		return usagef("give --data FILE", "%s needs --data", cmd)
	}
	if tf.folds < 2 {
		return usagef("use 2 or more", "--folds is %d", tf.folds)
	}
	if tf.l2 < 0 {
		return usagef("use 0 to choose by CV", "--l2 is %v, want >= 0", tf.l2)
	}
	if _, err := tf.spec(); err != nil {
		return err
	}
	return nil
}

func (tf *trainFlags) tierOptions() models.TierTrainOptions {
	spec, _ := tf.spec() // checked in checkTiers
	return models.TierTrainOptions{
		Tiers: tf.tier.tiers, Policy: tf.tier.policy(), Features: spec, L2: tf.l2,
		Select: tf.tier.selectL2, Calibration: tf.tier.tierCal,
		Folds: tf.folds, NoIDF: tf.noIDF, Seed: tf.seed, Sources: tf.data,
	}
}

// tierSet is a log read for an N-tier router: the examples with a score
// for every tier, and with partial also those with a score for some
// tiers only (NaN for the others).
type tierSet struct {
	examples []models.Example
	missing  int // records left out: without a score for some tier (with partial: for every tier)
	bad      int
	// perFile counts the examples of each path, in order.
	perFile []int
}

// keys returns the examples as records cut down to id and time, and
// where they came from, for screenTrained.
func (s *tierSet) keys(paths []string) ([]datasets.Record, readLogs) {
	all := make([]datasets.Record, len(s.examples))
	for i, e := range s.examples {
		all[i] = datasets.Record{ID: e.ID, TS: e.TS}
	}
	return all, readLogs{paths: paths, counts: s.perFile, total: len(all)}
}

// loadTierExamples reads the records that have a score for every tier;
// with partial, those with a score for any tier, NaN for the tiers that
// have none (a served request's record: the tier that ran, two on a
// race), which train fits the heads of the scored tiers on.
func loadTierExamples(paths []string, tiers []models.Tier, opts datasets.ReadOptions, partial bool) (*tierSet, error) {
	set := &tierSet{perFile: make([]int, len(paths))}
	seen := map[string]int{}
	bad, err := eachLogRecord(paths, opts, seen, func(i int, rec *datasets.Record) {
		scores := make([]float64, len(tiers))
		var conf []float64
		scored := 0
		for k, t := range tiers {
			o, ok := rec.Outcomes[t.Name]
			if !ok || o.Score == nil {
				if !partial {
					set.missing++
					return
				}
				scores[k] = math.NaN()
				continue
			}
			scored++
			scores[k] = *o.Score
			if o.Confidence != nil {
				if conf == nil {
					conf = make([]float64, len(tiers))
					for j := range conf {
						conf[j] = math.NaN()
					}
				}
				conf[k] = *o.Confidence
			}
		}
		if scored == 0 {
			set.missing++
			return
		}
		set.examples = append(set.examples, models.Example{ID: rec.ID, Input: retrain.RecordInput(rec), Scores: scores, Confidences: conf, TS: rec.TS})
		set.perFile[i]++
	})
	set.bad = bad
	if err != nil {
		return nil, err
	}
	for _, t := range tiers {
		if seen[t.Name] == 0 {
			return nil, fmt.Errorf("tier %q appears in no record of %s; models that do: %s", t.Name, strings.Join(paths, ","), datasets.ModelList(seen))
		}
	}
	if len(set.examples) == 0 {
		if partial {
			return nil, fmt.Errorf("no record of %s has a score for any tier (%s lack one)", strings.Join(paths, ","), count(set.missing, "record"))
		}
		return nil, fmt.Errorf("no record of %s has a score for every tier (%s lack one)", strings.Join(paths, ","), count(set.missing, "record"))
	}
	return set, nil
}

// designOf builds a training design from examples, with inner folds.
func designOf(ex []models.Example, tf *trainFlags) (*models.Design, error) {
	spec, _ := tf.spec()
	d, err := models.NewDesign(spec)
	if err != nil {
		return nil, err
	}
	d.Expect(len(ex))
	for i := range ex {
		e := ex[i]
		e.Fold = datasets.Fold(e.ID, tf.seed+1, tf.folds)
		d.Add(&e)
	}
	return d, nil
}

// runTrainTiers is train with --tier: an N-tier router. holdout is the
// share of ids (by id hash with --seed, as two-tier train draws it) kept
// out of training and measured on instead; the artifact records it, so
// eval, curves and calibrate --unseen keep those ids only.
func runTrainTiers(ctx context.Context, env *Env, tf *trainFlags, out string, holdout float64, asJSON bool) error {
	if err := tf.checkTiers("train"); err != nil {
		return err
	}
	warnUnpriced(env, "train", tf.tier.tiers)
	prog, stop := newProgress(env)
	defer stop()
	opts := tf.tierOptions()
	nt := len(opts.Tiers)
	heldPartial := 0 // held-out records without every tier's score: neither trained on nor measured
	var (
		set         *tierSet
		train, held []models.Example
		a           *models.Artifact
		rep         *models.TierTrainReport
	)
	err := interruptible(ctx, func() error {
		var err error
		set, err = loadTierExamples(tf.data, tf.tier.tiers, readOptions(env, "train", tf.skipBad), tf.tier.partial)
		if err != nil {
			return err
		}
		train, held = splitHoldout(set.examples, tf.seed, holdout)
		// Before anything is written: the held-out figures need every
		// tier's score, and a held-out record with some only is neither
		// trained on nor measured.
		n := len(held)
		held = slices.DeleteFunc(held, func(e models.Example) bool { return !complete(e.Scores) })
		heldPartial = n - len(held)
		if heldPartial > 0 && len(held) == 0 {
			return fmt.Errorf("--holdout %v kept %s out, none with every tier's score, which the held-out figures need; raise --holdout", holdout, count(heldPartial, "record"))
		}
		if err := checkTrainSize(len(train), tf.folds); err != nil {
			if holdout > 0 {
				// As two-tier train says: the held-out share, not the
				// log, may be what leaves too few.
				return fmt.Errorf("%w; --holdout %v kept %d of the %s out", err, holdout, len(held), count(len(set.examples), "record"))
			}
			return err
		}
		d, err := designOf(train, tf)
		if err != nil {
			return err
		}
		o := opts
		o.Skipped = set.missing
		o.Progress = prog
		a, rep, err = models.TrainTiers(d, o)
		if err != nil {
			return explainTrainError(err, len(train))
		}
		return nil
	})
	stop()
	if err != nil {
		return err
	}
	if a.Training.SourceDigests, err = retrain.DigestFiles(tf.data); err != nil {
		return err
	}
	// With Seed and Sources, what screenTrained reads to tell the
	// held-out ids from those the router was trained on.
	a.Training.HoldoutShare = holdout
	if err := saveArtifact(ctx, a, out); err != nil {
		return err
	}
	skipped := fmt.Sprintf("%d skipped without every tier's score", set.missing)
	if tf.tier.partial {
		skipped = fmt.Sprintf("%d skipped without any tier's score", set.missing)
	}
	heldOut := fmt.Sprintf("%d held out", len(held))
	if heldPartial > 0 {
		heldOut += fmt.Sprintf(" (and %d without every tier's score, neither trained on nor measured)", heldPartial)
	}
	fmt.Fprintf(env.Stderr, "triage train: %s trained on %d tiers, %s, %s, %s skipped; L2 %v (%s); wrote %s (version %s)\n",
		count(len(train), "record"), len(opts.Tiers), heldOut, skipped, count(set.bad, "bad line"), rep.L2, opts.Select, out, a.Version)
	if rep.Complete < len(train) {
		// Served traffic: each head learnt from its own tier's records,
		// and only the complete ones chose L2 and give the figures.
		heads := make([]string, len(opts.Tiers))
		for k, t := range opts.Tiers {
			heads[k] = fmt.Sprintf("%s %d", t.Name, rep.Rows[k])
		}
		fmt.Fprintf(env.Stderr, "triage train: records per head (those with its tier's score): %s; %d of the %s have every tier's score, and only they chose L2 and can be measured\n",
			strings.Join(heads, ", "), rep.Complete, count(len(train), "record"))
	}
	warnRaceWithoutConfidence(env, "train", a)
	if len(held) == 0 {
		var oof []float64
		var done []models.Example
		for i, e := range train {
			if complete(e.Scores) {
				oof = append(oof, rep.OOF[i*nt:(i+1)*nt]...)
				done = append(done, e)
			}
		}
		if rep.Complete < len(train) {
			// The complete records alone chose L2 and are measured: with
			// served records they can be a handful of the records read.
			warnFewTiers(env, "train", rep.Complete, "add records with every tier's score (an offline log)")
		}
		fig := tierFigures(oof, done, opts.Tiers, opts.Policy)
		if !asJSON {
			fmt.Fprintf(env.Stdout, "out-of-fold figures (%d-fold cross-validation inside train; the choice of L2 saw them, so they lean optimistic):\n", tf.folds)
		}
		return printTierFigures(env.Stdout, asJSON, fig)
	}
	r, err := models.NewTierRouter(a)
	if err != nil {
		return err
	}
	pred := make([]float64, 0, len(held)*nt)
	var buf []float64
	for _, e := range held {
		buf = r.Predict(buf, e.Input)
		pred = append(pred, buf...)
	}
	warnFewTiers(env, "train", len(held), "raise --holdout or log more requests")
	if !asJSON {
		fmt.Fprintf(env.Stdout, "held-out figures (%s, %.0f%% of ids kept out of training; quality is the mean score on 0-100):\n", count(len(held), "record"), 100*holdout)
	}
	return printTierFigures(env.Stdout, asJSON, tierFigures(pred, held, opts.Tiers, opts.Policy))
}

// complete reports whether every tier's score is known.
func complete(scores []float64) bool {
	for _, s := range scores {
		if math.IsNaN(s) {
			return false
		}
	}
	return true
}

// splitHoldout splits ex by datasets.InHoldout, as two-tier train's
// loadDesign does while it streams (TestTrainStreamsTheSameRouter trains
// its reference on this split): held are the ids in the share frac drawn
// with seed. Order is kept.
func splitHoldout(ex []models.Example, seed uint64, frac float64) (train, held []models.Example) {
	if !(frac > 0) {
		return ex, nil
	}
	train = make([]models.Example, 0, len(ex))
	for _, e := range ex {
		if datasets.InHoldout(e.ID, seed, frac) {
			held = append(held, e)
		} else {
			train = append(train, e)
		}
	}
	return train, held
}

// warnRaceWithoutConfidence warns when a's policy races tiers but no tier
// that can be the lower one of a race has a confidence calibration: its
// answer can then never be kept, so every race waits for the dearer
// tier's answer and pays both calls, a dearer way to answer with the
// dearer tier. On the README's three RouterDC tiers (no confidence in
// the log), --race 0.02 measured quality 49.57 at cost 8.241 against
// 49.67 at 7.376 without races, and train said nothing.
//
// calibrate keeps the artifact's race (it tunes λ or the margin only), so
// it warns too, as cmd; what to do then is to train again, since the race
// and the calibrations are train's.
func warnRaceWithoutConfidence(env *Env, cmd string, a *models.Artifact) {
	if a.TierPolicy == nil || a.TierPolicy.Race <= 0 {
		return
	}
	for _, t := range a.TierList[:len(a.TierList)-1] {
		if t.ConfidenceCalibration != nil {
			return
		}
	}
	undo := "leave --race at 0"
	if cmd != "train" {
		undo = "train again with --race 0"
	}
	fmt.Fprintf(env.Stderr, "triage %s: warning: --race %g races tiers, but the log gives no tier below the dearest a confidence, so a race can never keep the cheaper answer: it waits for the dearer one and pays for both; log the tiers' confidence (e.g. mean token log-probability), or %s\n", cmd, a.TierPolicy.Race, undo)
}

// crossValidateTiers returns each example's out-of-fold predicted scores
// (row-major, one per tier) from k trainings, each without one fold of
// the ids' hash, each choosing its own L2 and calibrations by inner CV on
// its training folds.
func crossValidateTiers(ctx context.Context, env *Env, ex []models.Example, k int, tf *trainFlags) ([]float64, error) {
	nt := len(tf.tier.tiers)
	pred := make([]float64, len(ex)*nt)
	prog, stop := newProgress(env)
	defer stop()
	outer, used := outerFolds(env, ex, tf.seed, k)
	desc := fmt.Sprintf("cross-validating: %d trainings of %d heads", len(used), nt)
	if prog != nil {
		prog(desc, 0, len(used))
	}
	spare := new(classifier.Spare)
	fold := func(f int) error {
		var train []models.Example
		var held []int
		for i := range ex {
			if outer[i] == f {
				held = append(held, i)
			} else {
				train = append(train, ex[i])
			}
		}
		d, err := designOf(train, tf)
		if err != nil {
			return err
		}
		opts := tf.tierOptions()
		opts.Classifier.Workers, opts.Classifier.Spare = 1, spare
		a, _, err := models.TrainTiers(d, opts)
		if err != nil {
			return fmt.Errorf("training without fold %d of %d: %w", f+1, k, explainTrainError(err, len(train)))
		}
		r, err := models.NewTierRouter(a)
		if err != nil {
			return err
		}
		var buf []float64
		for _, i := range held {
			buf = r.Predict(buf, ex[i].Input)
			copy(pred[i*nt:(i+1)*nt], buf)
		}
		return nil
	}
	var onDone func(int)
	if prog != nil {
		onDone = func(done int) { prog(desc, done, len(used)) }
	}
	if err := runFolds(ctx, len(used), spare, func(j int) error { return fold(used[j]) }, onDone); err != nil {
		return nil, err
	}
	return pred, nil
}

// evalCVTiers is eval --cv with --tier.
func evalCVTiers(ctx context.Context, env *Env, k int, tf *trainFlags, asJSON bool) error {
	if err := tf.checkTiers("eval --cv"); err != nil {
		return err
	}
	warnUnpriced(env, "eval --cv", tf.tier.tiers)
	set, err := loadTierExamples(tf.data, tf.tier.tiers, readOptions(env, "eval", tf.skipBad), false)
	if err != nil {
		return err
	}
	if err := checkTrainSize(len(set.examples)*(k-1)/k, tf.folds); err != nil {
		return fmt.Errorf("each of the %d trainings of --cv %d leaves a fold of the %s out: %w", k, k, count(len(set.examples), "record"), err)
	}
	pred, err := crossValidateTiers(ctx, env, set.examples, k, tf)
	if err != nil {
		return err
	}
	fig := tierFigures(pred, set.examples, tf.tier.tiers, tf.tier.policy())
	if tf.tier.vsTwoTier && fig.AIQ != nil {
		v, err := twoTierAIQ(ctx, env, set.examples, k, tf, fig)
		if err != nil {
			return err
		}
		fig.AIQ.TwoTierRouter = &v
	}
	if set.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage eval: %s skipped without every tier's score\n", count(set.missing, "record"))
	}
	noteSkipped(env, "eval", set.bad)
	warnFewTiers(env, "eval", len(set.examples), "evaluate on a larger log")
	if !asJSON {
		fmt.Fprintf(env.Stdout, "%d-fold cross-validation by id hash, %s, %d tiers; quality is the mean score on 0-100:\n", k, count(len(set.examples), "request"), len(tf.tier.tiers))
	}
	return printTierFigures(env.Stdout, asJSON, fig)
}

// twoTierAIQ cross-validates Triage's two-tier router (the default
// scorer and label) on the best pair the N-tier figures found, and
// returns the AIQ of its quality-cost curve over the same cost range:
// the requests sent to the dearer tier are the top share by out-of-fold
// p_hard, at every share from none to all.
func twoTierAIQ(ctx context.Context, env *Env, ex []models.Example, k int, tf *trainFlags, fig tierFig) (float64, error) {
	i, j := fig.AIQ.pair[0], fig.AIQ.pair[1]
	pair := make([]models.Example, len(ex))
	for n, e := range ex {
		pair[n] = models.Example{ID: e.ID, Input: e.Input, Fast: e.Scores[i], Strong: e.Scores[j], TS: e.TS}
	}
	two := *tf
	two.tier = tierFlags{}
	two.fast, two.strong = tf.tier.tiers[i].Name, tf.tier.tiers[j].Name
	label, err := datasets.ParseLabel(two.label)
	if err != nil {
		return 0, err
	}
	p, err := crossValidate(ctx, env, pair, k, two, label)
	if err != nil {
		return 0, fmt.Errorf("two-tier router on %s: %w", fig.AIQ.BestPair, err)
	}
	order := make([]int, len(p))
	for n := range order {
		order[n] = n
	}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] > p[order[b]] })
	ci, cj := tf.tier.tiers[i].Price, tf.tier.tiers[j].Price
	var q float64
	for _, e := range pair {
		q += e.Fast
	}
	nf := float64(len(pair))
	pts := []replay.CurvePoint{{Cost: ci, Quality: 100 * q / nf}}
	for n, r := range order {
		q += pair[r].Strong - pair[r].Fast
		c := float64(n + 1)
		pts = append(pts, replay.CurvePoint{Cost: ci + (cj-ci)*c/nf, Quality: 100 * q / nf})
	}
	return replay.AIQ(pts, fig.CostLo, fig.CostHi), nil
}

// The quality units of the N-tier figures: train and eval print, and
// their --json carries, the mean score on 0-100; calibrate --json and
// tiers_metrics.json carry it on [0,1], as tiers_curves.csv does.
const (
	qualityUnit100 = "mean score on 0-100"
	qualityUnit1   = "mean score on 0-1"
)

// tierFig is what eval and train print of an N-tier router.
type tierFig struct {
	N int `json:"n"`
	// InSample counts the N requests the router was trained on, as a
	// two-tier Report's: 0 for out-of-fold figures.
	InSample int `json:"in_sample"`
	// QualityUnit and CostUnit say what the figures are in: quality,
	// oracle and AIQ are on 0-100 here, as train and eval print them,
	// where calibrate --json and tiers_metrics.json have [0,1]; both
	// shapes are read by scripts (bench/tiers/check_tiers.py reads this
	// one), so the unit is named instead of one being rescaled.
	QualityUnit string `json:"quality_unit"`
	CostUnit    string `json:"cost_unit"`
	// Policy is the policy Routed was measured at.
	Policy models.TierPolicy `json:"policy"`
	// Routed is the router's quality (0-100) and mean price under Policy;
	// Lambda0 at λ = 0 (no floor, no race).
	Routed  pointFig `json:"routed"`
	Lambda0 pointFig `json:"lambda0"`
	// Singles are every tier alone; BestSingle the best of them by quality.
	Singles    []singleFig `json:"singles"`
	BestSingle singleFig   `json:"best_single"`
	Oracle     float64     `json:"oracle"`
	// GainOverBest is Lambda0's quality less BestSingle's, in points.
	GainOverBest float64 `json:"gain_over_best_single"`
	// AIQ: over the single tiers' price range [CostLo, CostHi], of the
	// N-tier router's λ sweep, of the convex hull of single tiers and of
	// the best two-tier router built from two of the tiers (their heads,
	// the same sweep). Present when the tiers' prices differ.
	CostLo float64    `json:"cost_lo,omitempty"`
	CostHi float64    `json:"cost_hi,omitempty"`
	AIQ    *aiqFig    `json:"aiq,omitempty"`
	Shares []shareFig `json:"shares_lambda0"`
}

type pointFig struct {
	Quality float64 `json:"quality"`
	Cost    float64 `json:"cost"`
}

type singleFig struct {
	Name    string  `json:"name"`
	Price   float64 `json:"price"`
	Quality float64 `json:"quality"`
}

type shareFig struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"`
}

type aiqFig struct {
	// TwoTierRouter is the AIQ of Triage's two-tier router (train
	// --fast/--strong, its p_hard thresholds swept) on BestPair, measured
	// by its own K-fold CV; present with eval --vs-two-tier.
	TwoTierRouter *float64 `json:"two_tier_router,omitempty"`
	Router        float64  `json:"router"`
	Hull          float64  `json:"hull_of_singles"`
	BestTwoTier   float64  `json:"best_two_tier"`
	BestPair      string   `json:"best_pair"`
	RouterPoints  int      `json:"router_points"`
	// pair are BestPair's tier indices.
	pair [2]int
}

// tierRequests turns examples and predictions into replay requests whose
// cost is the tier's price, with no latency (eval's figures are quality
// and price only).
func tierRequests(pred []float64, ex []models.Example, tiers []models.Tier) []replay.TierRequest {
	nt := len(tiers)
	price := make([]float64, nt)
	for k, t := range tiers {
		price[k] = t.Price
	}
	zero := make([]float64, nt)
	reqs := make([]replay.TierRequest, len(ex))
	for i := range ex {
		reqs[i] = replay.TierRequest{ID: ex[i].ID, Pred: pred[i*nt : (i+1)*nt], Score: ex[i].Scores, LatencyMS: zero, CostUSD: price}
	}
	return reqs
}

// tierFigures measures the router whose predictions are pred.
func tierFigures(pred []float64, ex []models.Example, tiers []models.Tier, pol models.TierPolicy) tierFig {
	nt := len(tiers)
	prices := make([]float64, nt)
	for k, t := range tiers {
		prices[k] = t.Price
	}
	reqs := tierRequests(pred, ex, tiers)
	fig := tierFig{N: len(ex), QualityUnit: qualityUnit100, CostUnit: "tier price per request", Policy: pol}
	pt := replay.ReplayTiers(reqs, prices, pol, replay.BillProrata)
	fig.Routed = pointFig{Quality: 100 * pt.Quality, Cost: pt.CostPer1k / 1000}
	p0 := replay.ReplayTiers(reqs, prices, models.TierPolicy{}, replay.BillProrata)
	fig.Lambda0 = pointFig{Quality: 100 * p0.Quality, Cost: p0.CostPer1k / 1000}
	for k, t := range tiers {
		fig.Shares = append(fig.Shares, shareFig{Name: t.Name, Share: p0.Shares[k]})
	}
	sum := make([]float64, nt)
	var orc float64
	for _, e := range ex {
		best := math.Inf(-1)
		for k, s := range e.Scores {
			sum[k] += s
			best = math.Max(best, s)
		}
		orc += best
	}
	n := float64(len(ex))
	fig.Oracle = 100 * orc / n
	var singles []replay.CurvePoint
	for k, t := range tiers {
		s := singleFig{Name: t.Name, Price: t.Price, Quality: 100 * sum[k] / n}
		fig.Singles = append(fig.Singles, s)
		if k == 0 || s.Quality > fig.BestSingle.Quality {
			fig.BestSingle = s
		}
		singles = append(singles, replay.CurvePoint{Cost: t.Price, Quality: s.Quality})
	}
	fig.GainOverBest = fig.Lambda0.Quality - fig.BestSingle.Quality
	lo, hi := prices[0], prices[nt-1]
	if hi <= lo {
		return fig
	}
	fig.CostLo, fig.CostHi = lo, hi
	sweep := func(reqs []replay.TierRequest, prices []float64) []replay.CurvePoint {
		var pts []replay.CurvePoint
		for _, l := range replay.LambdaGrid(reqs, prices, 200) {
			p := replay.ReplayTiers(reqs, prices, models.TierPolicy{Lambda: l}, replay.BillProrata)
			pts = append(pts, replay.CurvePoint{Cost: p.CostPer1k / 1000, Quality: 100 * p.Quality})
		}
		return pts
	}
	rpts := sweep(reqs, prices)
	a := &aiqFig{Router: replay.AIQ(rpts, lo, hi), Hull: replay.AIQ(singles, lo, hi), RouterPoints: len(rpts), BestTwoTier: math.Inf(-1)}
	for i := range nt {
		for j := i + 1; j < nt; j++ {
			sub := make([]replay.TierRequest, len(reqs))
			pp := []float64{prices[i], prices[j]}
			for r := range reqs {
				q := &reqs[r]
				sub[r] = replay.TierRequest{Pred: []float64{q.Pred[i], q.Pred[j]}, Score: []float64{q.Score[i], q.Score[j]}, LatencyMS: []float64{0, 0}, CostUSD: pp}
			}
			if v := replay.AIQ(sweep(sub, pp), lo, hi); v > a.BestTwoTier {
				a.BestTwoTier, a.BestPair, a.pair = v, tiers[i].Name+" + "+tiers[j].Name, [2]int{i, j}
			}
		}
	}
	fig.AIQ = a
	return fig
}

func printTierFigures(w io.Writer, asJSON bool, f tierFig) error {
	if asJSON {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-52s %8s %10s\n", "", "quality", "mean price")
	fmt.Fprintf(&b, "  %-52s %8.2f %10.4g\n", "router at λ=0 (the tier predicted best)", f.Lambda0.Quality, f.Lambda0.Cost)
	if f.Policy.Lambda != 0 || f.Policy.Margin != 0 || f.Policy.Race != 0 {
		fmt.Fprintf(&b, "  %-52s %8.2f %10.4g\n", fmt.Sprintf("router at λ=%.4g margin=%.4g race=%.4g", f.Policy.Lambda, f.Policy.Margin, f.Policy.Race), f.Routed.Quality, f.Routed.Cost)
	}
	for _, s := range f.Singles {
		fmt.Fprintf(&b, "  %-52s %8.2f %10.4g\n", "always "+s.Name, s.Quality, s.Price)
	}
	fmt.Fprintf(&b, "  %-52s %8.2f\n", "oracle (each request's best tier)", f.Oracle)
	// A gain that rounds to nothing is +0.00: a tie (the router picks
	// the best tier on every request) printed as "-0.00 points".
	gain := f.GainOverBest
	if math.Abs(gain) < 0.005 {
		gain = 0
	}
	fmt.Fprintf(&b, "router at λ=0 vs the best single tier (%s): %+.2f points\n", f.BestSingle.Name, gain)
	shares := make([]string, len(f.Shares))
	for i, s := range f.Shares {
		shares[i] = fmt.Sprintf("%s %.1f%%", s.Name, 100*s.Share)
	}
	fmt.Fprintf(&b, "share of requests per tier at λ=0: %s\n", strings.Join(shares, ", "))
	if a := f.AIQ; a != nil {
		fmt.Fprintf(&b, "AIQ (mean quality over price %g..%g, upper convex hull of each curve): N-tier router %.2f (%d λ points), convex hull of single tiers %.2f, best two-tier router %.2f (%s, the N-tier heads of the pair)\n",
			f.CostLo, f.CostHi, a.Router, a.RouterPoints, a.Hull, a.BestTwoTier, a.BestPair)
		if a.TwoTierRouter != nil {
			fmt.Fprintf(&b, "AIQ of Triage's two-tier router (train --fast/--strong, p_hard thresholds swept) on %s: %.2f\n", a.BestPair, *a.TwoTierRouter)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tierReplay is an N-tier router's view of a log.
type tierReplay struct {
	reqs    []replay.TierRequest
	missing int
	// costUnit names the cost axis: the tiers' prices unless the log or
	// --cost gave every cost.
	costUnit  string
	noLatency bool
}

// buildTierReplay predicts every record's tier scores with r and gathers
// each tier's score, latency, cost and calibrated confidence: from the
// log, else the --latency/--cost defaults. A value the log and the
// defaults give for no request of any tier is unknown: latency is then 0,
// which makes every race keep whichever answer the replay sees first, the
// lower tier's, and cost the tier's price. One given for some requests
// only must be given for all (a default covers the rest), as for two
// tiers: filling the gaps with 0 ms or with prices would mix a measured
// figure with a made-up one (USD with price units) in one mean.
func buildTierReplay(recs []datasets.Record, files string, r *models.TierRouter, lat, cost map[string]float64) (*tierReplay, error) {
	names, prices := r.Names(), r.Prices()
	nt := len(names)
	out := &tierReplay{}
	// known counts the values taken from the log or a default; absent
	// the ones neither gave, with the first record and tier lacking one.
	type gaps struct {
		known, absent int
		firstID       string
		firstTier     int
	}
	var latGaps, costGaps gaps
	note := func(g *gaps, ok bool, id string, k int) {
		switch {
		case ok:
			g.known++
		case g.absent == 0:
			g.absent, g.firstID, g.firstTier = 1, id, k
		default:
			g.absent++
		}
	}
	var buf []float64
	seen := map[string]int{} // each model's records, for the error naming them
	for i := range recs {
		rec := &recs[i]
		for m := range rec.Outcomes {
			seen[m]++
		}
		q := replay.TierRequest{ID: rec.ID, Score: make([]float64, nt), LatencyMS: make([]float64, nt), CostUSD: make([]float64, nt), Confidence: make([]float64, nt)}
		if !hasScores(rec, names) {
			out.missing++
			continue
		}
		for k, m := range names {
			o := rec.Outcomes[m]
			q.Score[k] = *o.Score
			d, hasD := lat[m]
			switch {
			case o.LatencyMS != nil && !o.Cancelled:
				q.LatencyMS[k] = *o.LatencyMS
			case hasD:
				q.LatencyMS[k] = d
			}
			note(&latGaps, o.LatencyMS != nil && !o.Cancelled || hasD, rec.ID, k)
			d, hasD = cost[m]
			switch {
			case o.CostUSD != nil && !o.Cancelled:
				q.CostUSD[k] = *o.CostUSD
			case hasD:
				q.CostUSD[k] = d
			default:
				q.CostUSD[k] = prices[k]
			}
			note(&costGaps, o.CostUSD != nil && !o.Cancelled || hasD, rec.ID, k)
			q.Confidence[k] = math.NaN()
			if o.Confidence != nil {
				if p, ok := r.CalibratedConfidence(k, *o.Confidence); ok {
					q.Confidence[k] = p
				}
			}
		}
		buf = r.Predict(buf, retrain.RecordInput(rec))
		q.Pred = append([]float64(nil), buf...)
		out.reqs = append(out.reqs, q)
	}
	if len(out.reqs) == 0 {
		// A log of other models said only that no record has every
		// tier's score; as for two tiers, name the tier and the models
		// the log does have.
		for _, m := range names {
			if seen[m] == 0 {
				return nil, &absentTierError{name: m, files: files, seen: seen, ofRouter: true}
			}
		}
		return nil, fmt.Errorf("no record of %s has a score for every tier of the router (%s)", files, strings.Join(names, ", "))
	}
	for _, v := range []struct {
		g                 gaps
		field, flag, unit string
	}{{latGaps, "latency_ms", "latency", "MS"}, {costGaps, "cost_usd", "cost", "USD"}} {
		if v.g.known > 0 && v.g.absent > 0 {
			m := names[v.g.firstTier]
			return nil, fmt.Errorf("record %q has no %s for model %q (%d of the %d tier outcomes lack one) and there is no default; pass --%s '%s=%s'",
				v.g.firstID, v.field, m, v.g.absent, v.g.known+v.g.absent, v.flag, m, v.unit)
		}
	}
	out.costUnit = "USD per request"
	if costGaps.known == 0 {
		out.costUnit = "price units per request"
	}
	out.noLatency = latGaps.known == 0
	return out, nil
}

// runCurvesTiers is curves for N-tier routers: a λ sweep per router.
func runCurvesTiers(ctx context.Context, env *Env, paths []string, arts []*models.Artifact, notes []string, inSample []int, recs []datasets.Record, lat, cost map[string]float64, billing replay.CancelBilling, rf *replayFlags, outDir string, asJSON bool) error {
	names := sectionNames(paths)
	// With --json, stdout carries the JSON alone.
	text := env.Stdout
	if asJSON {
		text = io.Discard
	}
	var runs []report.TierRun
	for i, a := range arts {
		r, err := models.NewTierRouter(a)
		if err != nil {
			return err
		}
		rl, err := buildTierReplay(recs, strings.Join(rf.data, ","), r, lat, cost)
		if err != nil {
			return fmt.Errorf("%s: %w", paths[i], err)
		}
		if rl.missing > 0 {
			fmt.Fprintf(env.Stderr, "triage curves: %s: %s skipped without every tier's score\n", names[i], count(rl.missing, "record"))
		}
		warnFewTiers(env, "curves", len(rl.reqs), "replay a larger log")
		// Per router: another router's tiers may have the latency this
		// one's lack, and its billing must not carry over.
		billing := billing
		if rl.noLatency && billing == replay.BillProrata {
			billing = replay.BillFull // pro rata needs the time a cancelled call ran
		}
		c := replay.SweepTiers(rl.reqs, r.Prices(), *a.TierPolicy, billing, rf.grid)
		cur := replay.ReplayTiers(rl.reqs, r.Prices(), *a.TierPolicy, billing)
		run := report.TierRun{Name: names[i], Tiers: a.TierList, Curve: c, CostUnit: rl.costUnit, NoLatency: rl.noLatency, Current: cur, InSample: inSample[i]}
		if notes[i] != "" {
			// The in-sample warning went to stderr only: the report,
			// read later or by someone else, showed flattering figures
			// as if measured on new traffic (the two-tier report lists
			// it among its sources).
			run.Notes = append(run.Notes, notes[i])
		}
		runs = append(runs, run)
		// AIQ is undefined (NaN) when every tier's mean cost is the same
		// (unpriced tiers): say so rather than print NaN.
		aiq := "undefined (every tier costs the same, so there is no cost range)"
		if !math.IsNaN(c.AIQ) {
			aiq = fmt.Sprintf("%.2f, convex hull of single tiers %.2f", 100*c.AIQ, 100*c.HullAIQ)
		}
		// The current quality relative to the best single tier too, the
		// scale of calibrate's --target quality, as the two-tier line
		// gives it relative to always-strong: read as the target, 49.67
		// is no relative quality at all.
		best := 0.0
		for _, s := range c.Singles {
			best = math.Max(best, s.Quality)
		}
		// After the cost: bench/tiers/check_tiers.py reads "quality Q,
		// cost C" off this line.
		rel := "undefined relative to the best single tier, which scores 0 on every request"
		if best > 0 {
			rel = fmt.Sprintf("%.3f of the best single tier's %.2f", cur.Quality/best, 100*best)
		}
		fmt.Fprintf(text, "%s: %s, %s; AIQ %s (cost %.4g..%.4g %s); oracle %.2f; current policy (λ=%.4g, margin %.4g, race %.4g): quality %.2f, cost %.4g; quality %s\n",
			names[i], count(len(rl.reqs), "request"), count(len(c.Points), "operating point"), aiq, c.Lo, c.Hi, rl.costUnit, 100*c.Oracle.Quality,
			a.TierPolicy.Lambda, a.TierPolicy.Margin, a.TierPolicy.Race, 100*cur.Quality, cur.CostPer1k/1000, rel)
		for k, s := range c.Singles {
			fmt.Fprintf(text, "  always %-44s quality %.2f, cost %.4g\n", a.TierList[k].Name, 100*s.Quality, s.Cost)
		}
		if cheapest := cheapestPoint(c.Points); !math.IsNaN(c.AIQ) && cheapest > c.Lo*1.01 {
			// AIQ counts quality 0 where the curve has no point (as
			// RouterBench defines it), so a sweep that cannot reach the
			// cheap end reads far below the hull without ranking worse.
			why := ""
			if a.TierPolicy.Race != 0 {
				why = fmt.Sprintf(": every point races (race %g), so none costs as little as one call", a.TierPolicy.Race)
			}
			fmt.Fprintf(text, "  note: the router's cheapest point costs %.4g, above the cheapest tier's %.4g%s; AIQ counts quality 0 below it, so compare the curves where they overlap\n",
				cheapest, c.Lo, why)
		}
	}
	if err := report.WriteTiers(ctx, outDir, runs, rf.data); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(env.Stdout).Encode(report.TiersMetrics(runs))
	}
	fmt.Fprintf(text, "(quality on 0-100; AIQ: mean quality of the curve's upper convex hull over the single tiers' cost range)\nwrote %s\n", filepath.Join(outDir, "index.html"))
	return nil
}

// cheapestPoint is the lowest cost per request among pts.
func cheapestPoint(pts []replay.TierPoint) float64 {
	lo := math.Inf(1)
	for _, p := range pts {
		lo = math.Min(lo, p.CostPer1k/1000)
	}
	return lo
}

// calibrateTiers is calibrate for an N-tier router: it sweeps λ (or the
// quality floor's margin, --knob margin) over the log and keeps the
// policy that meets every target at the lowest cost (or latency; with
// only ceilings, at the highest quality).
func calibrateTiers(ctx context.Context, env *Env, a *models.Artifact, solver *replay.Solver, knob string, recs []datasets.Record, inSample int, lat, cost map[string]float64, billing replay.CancelBilling, rf *replayFlags, out string, asJSON bool) error {
	r, err := models.NewTierRouter(a)
	if err != nil {
		return err
	}
	rl, err := buildTierReplay(recs, strings.Join(rf.data, ","), r, lat, cost)
	if err != nil {
		return err
	}
	if rl.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage calibrate: %s skipped without every tier's score\n", count(rl.missing, "record"))
	}
	warnFewTiers(env, "calibrate", len(rl.reqs), "set the policy on a larger log")
	// The race is kept as trained: the policy calibrate writes races, and
	// pays both calls, as its parent did.
	warnRaceWithoutConfidence(env, "calibrate", a)
	for _, t := range solver.Targets {
		if t.Kind == replay.TargetP95Latency && rl.noLatency {
			return fmt.Errorf("--target %s needs latency, and the log has none: pass --latency '%s=MS,...' for every tier", t, r.Names()[0])
		}
	}
	if solver.Minimize == replay.MinimizeLatency && rl.noLatency {
		return fmt.Errorf("--minimize latency needs latency, and the log has none: pass --latency '%s=MS,...' for every tier", r.Names()[0])
	}
	if rl.noLatency && billing == replay.BillProrata {
		billing = replay.BillFull
	}
	prices := r.Prices()
	singles := replay.SweepTiers(rl.reqs, prices, *a.TierPolicy, billing, 1).Singles
	for _, s := range singles {
		solver.StrongQuality = math.Max(solver.StrongQuality, s.Quality)
	}
	var pts []replay.TierPoint
	base := *a.TierPolicy
	switch knob {
	case "lambda":
		for _, l := range replay.LambdaGrid(rl.reqs, prices, rf.grid) {
			p := base
			p.Lambda = l
			pts = append(pts, replay.ReplayTiers(rl.reqs, prices, p, billing))
		}
	case "margin":
		for _, m := range replay.MarginGrid(rl.reqs, rf.grid) {
			p := base
			p.Lambda, p.Margin = 0, m
			pts = append(pts, replay.ReplayTiers(rl.reqs, prices, p, billing))
		}
	default:
		return usagef("use --knob lambda or margin", "--knob %q is not known", knob)
	}
	if rl.noLatency {
		// The replay's latencies are placeholders (0 ms): unknown, so
		// that no message or --json field states them as measured.
		for k := range pts {
			pts[k].LatencyMeanMS, pts[k].LatencyP50MS, pts[k].LatencyP95MS, pts[k].LatencyP99MS = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		}
	}
	i, err := replay.SolveTiers(solver, pts)
	if err != nil {
		return err
	}
	op := pts[i]
	na := a.Derive(time.Now())
	pol := op.Policy
	na.TierPolicy = &pol
	// The training figures of quality, cost and shares were measured at
	// the parent's policy; model show and GET /v1/model would print them
	// beside this one as if they were its own.
	models.DropPolicyMetrics(na.Metrics)
	ts := make([]string, len(solver.Targets))
	for i, t := range solver.Targets {
		ts[i] = t.String()
	}
	na.PolicyTarget = fmt.Sprintf("calibrate: %s, %s, on %s (%s, %s of %s)", strings.Join(ts, " and "), solver.Minimize.Describe(), strings.Join(rf.data, ","), count(len(rl.reqs), "request"), count(len(pts), "value"), knob)
	if err := saveArtifact(ctx, na, out); err != nil {
		return err
	}
	shares := map[string]float64{}
	for k, n := range r.Names() {
		shares[n] = op.Shares[k]
	}
	res := struct {
		Version      string            `json:"version"`
		Parent       string            `json:"parent"`
		Policy       models.TierPolicy `json:"tier_policy"`
		PolicyTarget string            `json:"policy_target"`
		N            int               `json:"n"`
		InSample     int               `json:"in_sample"`
		Quality      float64           `json:"quality"`
		QualityUnit  string            `json:"quality_unit"`
		RelQuality   jfloat            `json:"relative_quality"`
		Cost         float64           `json:"cost"`
		CostUnit     string            `json:"cost_unit"`
		// CostPer1k is Cost in the unit of the cost-per-1k target, which
		// is per 1,000 requests where Cost is per request.
		CostPer1k    float64            `json:"cost_per_1k"`
		LatencyP95MS jfloat             `json:"latency_p95_ms"`
		RaceShare    float64            `json:"race_share"`
		Shares       map[string]float64 `json:"shares"`
	}{na.Version, na.Parent, pol, na.PolicyTarget, op.N, inSample, op.Quality, qualityUnit1, jfloat(op.Quality / solver.StrongQuality), op.CostPer1k / 1000, rl.costUnit, op.CostPer1k, jfloat(op.LatencyP95MS), op.RaceShare, shares}
	if asJSON {
		return json.NewEncoder(env.Stdout).Encode(res)
	}
	// Relative quality is undefined where no tier ever scores (NaN, null
	// in --json): say so, as the two-tier calibrate does.
	rel := fmt.Sprintf("%.3f of the best single tier", float64(res.RelQuality))
	if q := float64(res.RelQuality); math.IsNaN(q) || math.IsInf(q, 0) {
		rel = "undefined relative to the best single tier, which scores 0 on every request"
	}
	// Quality on 0-100, as train, eval and curves print an N-tier
	// router's (docs/design.md): on [0,1] here, the same policy's figure
	// read as a hundredth of the one curves had just printed for it
	// (--json keeps [0,1] and says so in quality_unit). The cost is also
	// given per 1,000 requests, the unit of --target cost-per-1k.
	per1k := strings.Replace(rl.costUnit, "per request", "per 1k requests", 1)
	// The target and objective first, as the two-tier calibrate prints
	// them: which one chose the policy (cost, or quality under ceilings
	// alone) was said only in --json and model show.
	fmt.Fprintf(env.Stdout, "%s\n", na.PolicyTarget)
	fmt.Fprintf(env.Stdout, "wrote %s (version %s, parent %s)\npolicy: λ=%.4g margin=%.4g race=%.4g accept_confidence=%.3g\nexpected on %s: quality %.2f on 0-100 (%s), cost %.4g %s (%.4g %s, as --target cost-per-1k takes it), race share %.3f",
		out, na.Version, na.Parent, pol.Lambda, pol.Margin, pol.Race, pol.AcceptConfidence, count(op.N, "request"), 100*op.Quality, rel, res.Cost, rl.costUnit, op.CostPer1k, per1k, op.RaceShare)
	if !rl.noLatency {
		fmt.Fprintf(env.Stdout, ", p95 latency %.0f ms", op.LatencyP95MS)
	}
	// Percentages with commas, as eval and train print a router's shares:
	// "A 1.000 B 0.000" ran names and numbers together.
	list := make([]string, len(r.Names()))
	for k, n := range r.Names() {
		list[k] = fmt.Sprintf("%s %.1f%%", n, 100*op.Shares[k])
	}
	fmt.Fprintf(env.Stdout, "\nshares: %s\n", strings.Join(list, ", "))
	return nil
}

// evalTiersModel is eval --model on an N-tier artifact: its figures on
// the log, at the artifact's policy and at λ = 0.
func evalTiersModel(ctx context.Context, env *Env, path string, a *models.Artifact, tf trainFlags, unseen, asJSON bool) error {
	if n := tf.given("fast", "strong", "label"); n != "" {
		// Refused, not ignored: an N-tier router is measured on its own
		// tiers, each head predicting its tier's score.
		return usagef("leave it out: an N-tier router is measured on the tiers it names, "+strings.Join(a.TierNames(), ", "),
			"--%s is for two-tier routers, and %s is an N-tier one", n, path)
	}
	r, err := models.NewTierRouter(a)
	if err != nil {
		return err
	}
	var set *tierSet
	if err := interruptible(ctx, func() error {
		var err error
		set, err = loadTierExamples(tf.data, a.TierList, readOptions(env, "eval", tf.skipBad), false)
		return err
	}); err != nil {
		return err
	}
	all, logs := set.keys(tf.data)
	keep, notes, inSample, err := screenTrained(env, "eval", unseen, []string{path}, []*models.Artifact{a}, all, logs, nil)
	if err != nil {
		return err
	}
	set.examples = keepOnly(set.examples, keep)
	// What the figures were measured on, as two-tier eval says it.
	measured := fmt.Sprintf("figures on the requests of --data (none found in the logs %s was trained on)", path)
	switch {
	case keep != nil:
		measured = fmt.Sprintf("held-out figures (--unseen: the requests of --data %s was not trained on)", path)
	case notes[0] != "":
		measured = notes[0]
	}
	nt := len(a.TierList)
	pred := make([]float64, 0, len(set.examples)*nt)
	var buf []float64
	for _, e := range set.examples {
		buf = r.Predict(buf, e.Input)
		pred = append(pred, buf...)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if set.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage eval: %s skipped without every tier's score\n", count(set.missing, "record"))
	}
	noteSkipped(env, "eval", set.bad)
	warnFewTiers(env, "eval", len(set.examples), "evaluate on a larger log")
	if !asJSON {
		fmt.Fprintf(env.Stdout, "%s\n%s, %d tiers; quality is the mean score on 0-100:\n", measured, count(len(set.examples), "request"), nt)
	}
	fig := tierFigures(pred, set.examples, a.TierList, *a.TierPolicy)
	fig.InSample = inSample[0]
	if keep != nil {
		fig.InSample = 0 // --unseen left them out
	}
	return printTierFigures(env.Stdout, asJSON, fig)
}

// warnUnpriced says when every tier has the same price (most often none
// given: --tier NAME is price 0): cost then plays no part, λ changes
// nothing, and the policy picks the best predicted score (with a margin,
// the first listed tier within it), which is seldom what a user listing
// tiers meant.
func warnUnpriced(env *Env, cmd string, tiers []models.Tier) {
	for _, t := range tiers[1:] {
		if t.Price != tiers[0].Price {
			return
		}
	}
	fmt.Fprintf(env.Stderr, "triage %s: warning: every tier has the price %g, so cost plays no part: --lambda changes nothing, and the router picks the tier with the best predicted score (with --margin, the first listed within it); give each tier its price, cheapest first (--tier NAME=PRICE)\n", cmd, tiers[0].Price)
}
