package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/report"
	"github.com/triage-router/triage/models/retrain"
)

func init() {
	register("train", "train a router from labelled logs", runTrain)
}

const trainUsage = "--data F[,F2...] --fast MODEL --strong MODEL [--label strong-wins|weak-fails|gap:T|gain] [--holdout F] [--seed N] -o FILE\n       triage train --data F --tier A[=PRICE] --tier B[=PRICE] --tier C[=PRICE] ... [--lambda L] [--margin M] [--holdout F] [--seed N] -o FILE"

// trainFlags are the flags train shares with eval --cv.
type trainFlags struct {
	data    logList
	fast    string
	strong  string
	label   string
	scorer  string
	seed    uint64
	l2      float64
	anyway  bool
	folds   int
	skipBad bool
	chars   string
	words   string
	bits    int
	noIDF   bool
	diff    bool
	// tier holds the N-tier flags (--tier, --lambda, ...).
	tier tierFlags
	// fs is the flag set the flags were registered on, to tell a flag the
	// user gave from its default (given).
	fs *flag.FlagSet
}

// given returns the first of names the user set on the command line, or
// "". A flag that shapes only the other kind of router (two-tier or
// N-tier) is refused with it rather than ignored.
func (t *trainFlags) given(names ...string) string {
	if t.fs == nil {
		return ""
	}
	set := flagsGiven(t.fs)
	for _, n := range names {
		if set[n] {
			return n
		}
	}
	return ""
}

// nTierOnly are the flags that shape only an N-tier router.
var nTierOnly = []string{"lambda", "margin", "race", "accept-confidence", "tier-l2", "tier-calibration", "vs-two-tier"}

func (t *trainFlags) register(fs *flag.FlagSet) {
	t.registerLog(fs)
	t.registerFeatures(fs)
	t.registerFit(fs)
}

// registerLog registers the flags that say what to read and what to
// learn: the logs, the tier pair and the label.
func (t *trainFlags) registerLog(fs *flag.FlagSet) {
	t.fs = fs
	fs.Var(&t.data, "data", "labelled JSONL log(s), comma-separated or repeated; a folder stands for its *.jsonl and *.jsonl.gz files")
	fs.StringVar(&t.fast, "fast", "", "fast tier model name, as in the log's outcomes")
	fs.StringVar(&t.strong, "strong", "", "strong tier model name, as in the log's outcomes")
	fs.StringVar(&t.label, "label", "strong-wins", "label p_hard estimates: strong-wins, weak-fails, gap:T or gain (a soft target: the strong tier's gain over the fast one, rescaled to [0,1])")
	fs.BoolVar(&t.skipBad, "skip-bad", false, "skip malformed lines instead of stopping: name the first five on stderr and count them all")
	// Unregistered fit flags keep check()'s bounds.
	t.folds = models.DefaultFolds
}

// registerFeatures registers the feature recipe's flags (spec reads them).
func (t *trainFlags) registerFeatures(fs *flag.FlagSet) {
	fs.StringVar(&t.words, "word-ngrams", "", fmt.Sprintf("hashed word n-grams of lengths MIN,MAX (default %d,%d; 0,0 turns them off)", features.DefaultSpec().WordNgrams[0], features.DefaultSpec().WordNgrams[1]))
	fs.StringVar(&t.chars, "char-ngrams", "", "add hashed character n-grams of lengths MIN,MAX (e.g. 3,5); off by default")
	fs.IntVar(&t.bits, "hash-bits", features.DefaultHashBits, "size of the hashed feature space, as a power of two")
}

// What --seed seeds. It is no bootstrap seed: curves and calibrate have
// one of their own under the same name, and retrain's is
// --bootstrap-seed. eval --model refuses it.
const (
	seedUsageTrain = "seed of the --holdout split, of the cross-validation folds (both drawn by id hash) and, for two tiers, of the outcome shuffles that test whether the router beats random"
	seedUsageEval  = "eval --cv: seed of the K folds and, in each fold's training, of its inner folds and beats-random shuffles (folds drawn by id hash); eval --model refuses it"
)

// registerFit registers the flags of the fit itself: scorer, penalty,
// folds, seed and the N-tier router's.
func (t *trainFlags) registerFit(fs *flag.FlagSet) {
	fs.StringVar(&t.scorer, "scorer", "", "how prompts are ranked: auto (the default: gain, per-tier or blend, chosen by out-of-fold APGR), per-tier (predict each tier's score, rank by the gain), gain (predict the gain), blend (the mean of both) or label (one model of the label; the default for weak-fails)")
	fs.Uint64Var(&t.seed, "seed", 1, seedUsageTrain)
	fs.Float64Var(&t.l2, "l2", 0, "L2 strength of every head; 0 picks each by K-fold cross-validation")
	fs.BoolVar(&t.anyway, "route-anyway", false, "keep the router's ranking and its default thresholds even when the log does not show it beats random (by default such a router escalates every request)")
	fs.IntVar(&t.folds, "folds", models.DefaultFolds, "K of the cross-validation inside each training: it chooses the scorer and L2 and fits the calibration on its out-of-fold scores (train reports their figures)")
	fs.BoolVar(&t.noIDF, "no-idf", false, "fit on raw feature values instead of IDF-scaled ones")
	fs.BoolVar(&t.diff, "difficulty", false, "mix a difficulty view into the score: one more head, on the mean of the two tiers' scores, mapped to the gain through a curve per tier (docs/quality.md, items 16 and 19: on the quality suite better on MMLU, worse on GSM8K, nothing on the mean; about a quarter more training time)")
	t.tier.register(fs)
}

// spec is the feature recipe the flags ask for.
func (t *trainFlags) spec() (features.Spec, error) {
	s := features.DefaultSpec()
	s.HashBits = t.bits
	if t.words != "" {
		r, err := ngramRange("word-ngrams", t.words, "1,3")
		if err != nil {
			return s, err
		}
		s.WordNgrams = r
	}
	if t.chars != "" {
		r, err := ngramRange("char-ngrams", t.chars, "3,5")
		if err != nil {
			return s, err
		}
		s.CharNgrams = r
	}
	if err := s.Validate(); err != nil {
		return s, &UsageError{Msg: err.Error()}
	}
	return s, nil
}

// ngramRange reads a MIN,MAX flag value; the range itself is checked by
// Spec.Validate, which knows the limits.
func ngramRange(name, v, example string) ([2]int, error) {
	var lo, hi int
	var rest string
	if n, _ := fmt.Sscanf(v, "%d,%d%s", &lo, &hi, &rest); n != 2 {
		return [2]int{}, usagef("write it as MIN,MAX, e.g. "+example, "--%s %q", name, v)
	}
	return [2]int{lo, hi}, nil
}

// check checks the two-tier flags; stdin is the command's, for the hint
// that lists a log's models when it is given as "-".
func (t *trainFlags) check(cmd string, stdin io.Reader) (datasets.Label, error) {
	if len(t.data) == 0 {
		return datasets.Label{}, usagef("give --data FILE", "%s needs --data", cmd)
	}
	if t.fast == "" || t.strong == "" {
		return datasets.Label{}, usagef("name both tiers as they appear in the log's outcomes"+peekModels(t.data[0], stdin), "%s needs --fast and --strong", cmd)
	}
	if t.fast == t.strong {
		return datasets.Label{}, usagef("pick two different models", "--fast and --strong are both %q", t.fast)
	}
	if n := t.given(nTierOnly...); n != "" {
		return datasets.Label{}, usagef("leave it out, or give the tiers with --tier for an N-tier router", "--%s is for N-tier routers (--tier), not --fast and --strong", n)
	}
	if t.folds < 2 {
		return datasets.Label{}, usagef("use 2 or more", "--folds is %d", t.folds)
	}
	if t.l2 < 0 {
		return datasets.Label{}, usagef("use 0 to choose by CV", "--l2 is %v, want >= 0", t.l2)
	}
	label, err := datasets.ParseLabel(t.label)
	if err != nil {
		return datasets.Label{}, &UsageError{Msg: err.Error()}
	}
	switch t.scorer {
	case "", models.ScorerAuto, models.ScorerPerTier, models.ScorerGain, models.ScorerBlend, models.ScorerLabel:
	default:
		return datasets.Label{}, usagef("use auto, per-tier, gain, blend or label", "--scorer %q is not known", t.scorer)
	}
	if _, err := t.spec(); err != nil {
		return datasets.Label{}, err
	}
	return label, nil
}

func (t *trainFlags) options(label datasets.Label) models.TrainOptions {
	spec, _ := t.spec() // checked in check
	return models.TrainOptions{
		Features:   spec,
		NoIDF:      t.noIDF,
		Difficulty: t.diff,
		Tiers:      models.Tiers{Fast: t.fast, Strong: t.strong},
		Label:      label.Of,
		LabelName:  label.String(),
		Scorer:     t.scorer,
		L2:         t.l2,
		Folds:      t.folds,
		Seed:       t.seed,
		Sources:    t.data,

		RouteWithoutSignal: t.anyway,
	}
}

// trainGCPercent is train's GOGC unless the environment sets one. The
// design's rows are most of a large train's live heap, and pointer-free,
// so a collection costs little more for them; the default GOGC of 100
// let the heap grow to twice them before collecting the decoder's garbage.
// On 1M synthetic records (--scorer label) the peak RSS was 1.45 GB at 100
// and 0.81 GB at 20, for the same CPU time within noise (commit 3442b64).
const trainGCPercent = 20

func runTrain(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "train", trainUsage)
	var tf trainFlags
	tf.register(fs)
	holdout := fs.Float64("holdout", 0, "share of records (by id hash) kept out of training to measure the router on; by default it trains on every record and reports the out-of-fold figures of its cross-validation")
	out := fs.String("o", "", "write the router artifact to FILE")
	asJSON := fs.Bool("json", false, "print the figures it reports as one JSON object: the out-of-fold ones by default, those of the held-out share with --holdout (N tiers: quality on 0-100, as quality_unit says)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkNotInput(*out, tf.data...); err != nil {
		return err
	}
	if err := checkOutFile(*out); err != nil {
		return err
	}
	if tf.tier.multi() {
		if *out == "" {
			return usagef("say where to write the router", "train needs -o FILE")
		}
		if *holdout < 0 || *holdout >= 1 {
			return usagef("use a share in [0,1)", "--holdout is %v", *holdout)
		}
		return runTrainTiers(ctx, env, &tf, *out, *holdout, *asJSON)
	}
	label, err := tf.check("train", env.Stdin)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("say where to write the router", "train needs -o FILE")
	}
	if *holdout < 0 || *holdout >= 1 {
		return usagef("use a share in [0,1)", "--holdout is %v", *holdout)
	}
	defer setGCPercent(env, trainGCPercent)()
	// Training keeps each example as a feature row, not its prompt; the
	// held-out examples are kept whole to be routed.
	prog, stop := newProgress(env)
	defer stop()
	var (
		set *designSet
		a   *models.Artifact
		rep *models.TrainReport
	)
	err = interruptible(ctx, func() error {
		var err error
		set, err = loadDesign(tf.data, tf, *holdout, readOptions(env, "train", tf.skipBad), prog)
		if err != nil {
			return err
		}
		train, held := set.train, set.held
		if err := checkTrainSize(train.Len(), tf.folds); err != nil {
			if *holdout > 0 {
				// The held-out share, not the log, may be what leaves
				// too few: say so rather than only "log more requests".
				return fmt.Errorf("%w; --holdout %v kept %d of the %s out", err, *holdout, len(held), count(train.Len()+len(held), "record"))
			}
			return err
		}
		opts := tf.options(label)
		opts.Skipped = set.missing
		opts.Progress = prog
		a, rep, err = models.TrainDesign(train, held, opts)
		if err != nil {
			return explainTrainError(err, train.Len())
		}
		return nil
	})
	stop()
	if err != nil {
		return err
	}
	train, held := set.train, set.held
	a.Training.Sources = tf.data
	if a.Training.SourceDigests, err = retrain.DigestFiles(tf.data); err != nil {
		return err
	}
	a.Training.HoldoutShare = *holdout
	models.NameTopFeaturesFrom(a, train.Inputs(), 20)
	if err := saveArtifact(ctx, a, *out); err != nil {
		return err
	}
	l2 := l2Summary(rep.Scorer, rep.L2, rep.FastL2, a.Training.GainL2)
	diffNote := ""
	if rep.Difficulty {
		diffNote = fmt.Sprintf(", difficulty view mixed in (l2 %g, by out-of-fold log loss)", rep.DifficultyL2)
	}
	// Without --l2 the strengths come from the grid by out-of-fold APGR
	// whichever scorer is used, given or chosen (model show says "by CV").
	chosen := map[bool]string{true: "chosen by out-of-fold APGR", false: "given"}[a.Training.L2Chosen]
	fmt.Fprintf(env.Stderr, "triage train: %s trained, %d held out, %d skipped without both tiers' scores, %s skipped; scorer %s, %s (%s)%s, calibration %s; wrote %s (version %s)\n",
		count(train.Len(), "record"), len(held), set.missing, count(set.bad, "bad line"), rep.Scorer, l2, chosen, diffNote, rep.Calibration, *out, a.Version)
	fmt.Fprintf(env.Stderr, "triage train: %s\n", rep.Signal)
	if len(held) == 0 {
		warnFew(env, "train", train.Len(), "log more requests")
		// Nothing held out: the figures are the out-of-fold ones of the
		// cross-validation that chose the router.
		if !*asJSON {
			fmt.Fprintf(env.Stdout, "out-of-fold figures (%d-fold cross-validation inside train; the choice of scorer saw them, so they lean optimistic):\n", tf.folds)
		}
		weak, strong := train.Scores()
		y := make([]float64, len(weak))
		for i := range y {
			y[i] = label.Of(weak[i], strong[i])
		}
		return printReports(env.Stdout, *asJSON, a.Signal, nil, withInSample(rep.OOF, 0), models.EvaluateRandom(y, weak, strong), models.EvaluateOracle(y, weak, strong))
	}
	if !*asJSON {
		fmt.Fprintf(env.Stdout, "held-out figures (%s, %.0f%% of ids kept out of training):\n", count(len(held), "record"), 100**holdout)
	}
	warnFew(env, "train", len(held), "raise --holdout or log more requests")
	y, weak, strong := scoresOf(held, label)
	// The held-out figure gets its interval, as eval's do: the signal
	// line above is the out-of-fold check, and on GSM8K's 255 held-out
	// requests an APGR of 0.564 holds 0.5 in its interval.
	ci := report.BootstrapAPGR(rep.HeldP, weak, strong, report.DefaultResamples, report.DefaultSeed)
	return printReports(env.Stdout, *asJSON, a.Signal, &ci, withInSample(rep.Held, 0), models.EvaluateRandom(y, weak, strong), models.EvaluateOracle(y, weak, strong))
}

// minTrainPerFold is the fewest records per cross-validation fold that
// training accepts: with fewer, folds come out empty or with one outcome
// only, and no router could be learnt from them anyway.
const minTrainPerFold = 10

// fewFigures is the size under which figures get a warning: on 400
// requests APGR's 95% bootstrap interval is about ±0.035 wide, on 100
// about ±0.07.
const fewFigures = 100

// checkTrainSize returns the error for a training set too small for
// folds-fold cross-validation (which picks the L2 strength and fits the
// calibration).
func checkTrainSize(n, folds int) error {
	if need := minTrainPerFold * folds; n < need {
		hint := "log more requests"
		// The most folds n records allow: "to 2" whatever --folds was
		// (600 records and --folds 100 allow 60) sent a user who chose
		// many folds down to the fewest.
		if most := n / minTrainPerFold; folds > 2 && most >= 2 {
			hint += fmt.Sprintf(", or lower --folds to %d", most)
			if most > 2 {
				hint += " or fewer"
			}
		}
		return fmt.Errorf("%s to train on, and training needs at least %d (%d per fold of its %d-fold cross-validation); %s", count(n, "record"), need, minTrainPerFold, folds, hint)
	}
	return nil
}

// explainTrainError says in plain words why a fit failed on a small or
// one-sided log, instead of the chain of fold names that leads to it.
func explainTrainError(err error, n int) error {
	if errors.Is(err, classifier.ErrOneClass) {
		return fmt.Errorf("%s too few or too one-sided to train on: on part of them a tier scored the same every time, so there is nothing to tell apart; log more requests (%w)", countIs(n, "record"), err)
	}
	return err
}

// warnFew prints a warning when figures rest on fewer than fewFigures
// records.
func warnFew(env *Env, cmd string, n int, fix string) {
	if n < fewFigures {
		fmt.Fprintf(env.Stderr, "triage %s: warning: the figures below rest on %s, too few to trust (APGR's 95%% interval is ±0.07 or wider below %d); %s\n", cmd, count(n, "record"), fewFigures, fix)
	}
}

// warnFewTiers is warnFew for an N-tier router's figures, which report
// no APGR and no interval: the bound it gives instead holds for any mean
// of scores in [0,1] over n requests, the quality, whose 95% interval is
// at most 1.96·0.5/√n either side (the worst case, scores of 0 and 1 in
// equal parts).
func warnFewTiers(env *Env, cmd string, n int, fix string) {
	if n >= fewFigures {
		return
	}
	why := "N-tier figures carry no interval"
	if n > 0 {
		half := 1.96 * 0.5 / math.Sqrt(float64(n))
		why += fmt.Sprintf("; a quality, a mean of scores in [0,1], over %s has a 95%% interval up to ±%.2f wide, ±%.0f points on 0-100", count(n, "record"), half, 100*half)
	}
	fmt.Fprintf(env.Stderr, "triage %s: warning: the figures below rest on %s, too few to trust (%s); %s\n", cmd, count(n, "record"), why, fix)
}

// printReports prints router, random and oracle side by side, or as the
// JSON object {"router": ..., "random": ..., "oracle": ...}.
// train passes its signal check (sig, nil for eval), which joins the JSON
// object as "signal", for a script that must not take a router that cannot
// route for one that can; the table's reader has had it on stderr.
//
// eval and train --holdout pass the router's APGR interval (apgrCI; nil
// for train's out-of-fold table, whose signal line gives its own): without it, an APGR of 0.564 on 255 held-out
// requests read as a router that beats random, where its interval is
// [0.458, 0.686]. In JSON it is the router report's apgr_lo and apgr_hi
// (as the signal names its interval), so the object stays one of
// reports whose values are numbers.
func printReports(w io.Writer, asJSON bool, sig *models.Signal, apgrCI *report.Interval, router, random, oracle models.Report) error {
	if asJSON {
		out := map[string]any{"router": router, "random": random, "oracle": oracle}
		if sig != nil {
			out["signal"] = sig
		}
		if apgrCI != nil && apgrCI.Valid() {
			router.APGRLo, router.APGRHi = &apgrCI.Lo, &apgrCI.Hi
			out["router"] = router
		}
		return json.NewEncoder(w).Encode(out)
	}
	fmt.Fprintf(w, "%-8s %7s %7s %7s %7s %7s %8s %7s %7s\n", "router", "n", "apgr", "cpt50", "cpt80", "cpt95", "auc", "logloss", "ece")
	for _, r := range []struct {
		name string
		r    models.Report
	}{{"router", router}, {"random", random}, {"oracle", oracle}} {
		fmt.Fprintf(w, "%-8s %7d %7s %7s %7s %7s %8s %7s %7s\n", r.name, r.r.N, opt(&r.r.APGR), opt(&r.r.CPT50), opt(&r.r.CPT80), opt(&r.r.CPT95), opt(r.r.AUC), opt(r.r.LogLoss), opt(r.r.ECE))
	}
	if math.IsNaN(router.APGR) {
		// APGR is a share of the gap between the tiers' mean scores.
		fmt.Fprintln(w, "apgr is undefined here: the two tiers' mean scores are equal, so there is no gap for routing to recover")
	} else if apgrCI != nil && apgrCI.Valid() {
		verdict := "above 0.5"
		switch {
		case router.InSample != nil && *router.InSample > 0:
			verdict = "in-sample, so it flatters the router as the figures do"
		case !(apgrCI.Lo > 0.5):
			verdict = "it holds 0.5: these requests do not show that the router beats random"
		}
		fmt.Fprintf(w, "router apgr 95%% bootstrap interval [%.4f, %.4f] over these %d requests (%d resamples, as curves computes it); %s\n",
			apgrCI.Lo, apgrCI.Hi, router.N, report.DefaultResamples, verdict)
	}
	_, err := io.WriteString(w, tableGlossary)
	return err
}

// withInSample is r saying that n of its requests are ones the router was
// trained on (Report.InSample): 0 for out-of-fold and held-out figures.
func withInSample(r models.Report, n int) models.Report {
	r.InSample = &n
	return r
}

// tableGlossary follows the metrics table, so a person reading it needs
// no other page (the README's glossary says the same at more length).
const tableGlossary = `
apgr     share of the quality gap between always-fast and always-strong that routing recovers,
         averaged over every share of strong calls; random 0.5. The oracle can pass 1: where the
         fast tier sometimes does better, it keeps those requests on the fast tier and beats
         always-strong part-way.
cptN     smallest share of requests sent to the strong tier that recovers N% of the gap
auc      chance that p_hard ranks a request the label calls hard above one it calls easy (0.5: a coin)
logloss  how well p_hard works as a probability; ece: its mean gap to the observed rate over 10 bins
`

func opt(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "-" // not defined on this data
	}
	return fmt.Sprintf("%.4f", *v)
}
