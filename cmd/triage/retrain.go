package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

func init() {
	register("retrain", "train a challenger on a log plus served feedback; promote it only if it is not worse (two-tier routers)", runRetrain)
}

const retrainUsage = "--model CURRENT --data BASE.jsonl --feedback F [--feedback F2 ...] [--metric apgr|auc|log_loss] [--margin X] [--force] -o NEW"

// exitRefused is retrain's exit status when the challenger is refused, so
// a script can tell "nothing to promote" (3) from a failure (1) and a
// usage mistake (2).
const exitRefused = 3

// errRefused is returned when the gate refuses the challenger.
var errRefused = errors.New("challenger refused")

// refusedError carries the verdict and the exit status. untrained is set
// when no challenger was trained (nothing was left to judge it on), so
// --force has nothing to write.
type refusedError struct {
	verdict, out string
	untrained    bool
}

func (e *refusedError) Error() string {
	force := "--force writes it anyway"
	if e.untrained {
		force = "no challenger is trained without records to judge it, so --force cannot write one"
	}
	return fmt.Sprintf("%s: %s; %s not written, the champion stays (%s)", errRefused, e.verdict, e.out, force)
}
func (e *refusedError) Unwrap() error { return errRefused }

// ExitCode is the process exit status for a refusal.
func (e *refusedError) ExitCode() int { return exitRefused }

func runRetrain(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "retrain", retrainUsage)
	model := fs.String("model", "", "the serving router (the champion)")
	var data, feedback logList
	fs.Var(&data, "data", "base labelled log(s), comma-separated or repeated; a folder stands for its *.jsonl and *.jsonl.gz files")
	fs.Var(&feedback, "feedback", "feedback export(s) from 'triage feedback export', one per server, comma-separated or repeated; a folder stands for its *.jsonl and *.jsonl.gz files")
	metric := fs.String("metric", "apgr", "metric that gates promotion: apgr, auc or log_loss")
	gateSE := fs.Float64("gate-se", retrain.DefaultGateSE, "standard errors of the held-out slice's own noise (its paired bootstrap) added to --margin before the challenger is refused; 0 refuses on the point estimate alone (docs/loop.md §3 says why the default)")
	margin := fs.Float64("margin", retrain.DefaultMargin, "how much worse than the champion the challenger may be and still be written: in auc or log_loss units; for apgr, a share of the tiers' mean |strong − fast|, which is APGR's unit when the strong tier never scores below the fast one (apgr gates on the quality-gain area, APGR's numerator, so a near-zero tier gap cannot blow it up; see docs/loop.md)")
	force := fs.Bool("force", false, "write NEW even if the challenger is refused")
	out := fs.String("o", "", "write the challenger artifact to NEW")
	holdout := fs.Float64("holdout", retrain.DefaultHoldout, "share of the timestamped records with both tiers' scores that judge both routers: the newest the champion was not trained on, next to every record its own train --holdout kept out (docs/loop.md §3)")
	seed := fs.Uint64("seed", 1, "seed of the challenger's cross-validation folds (drawn by id hash) and of its beats-random outcome shuffles; the bootstrap seed is --bootstrap-seed")
	bootSeed := fs.Uint64("bootstrap-seed", retrain.DefaultBootstrapSeed, "seed of the paired bootstrap resamples that give the comparison's intervals and the gate's standard error")
	resamples := fs.Int("resamples", retrain.DefaultResamples, "bootstrap resamples for the intervals and the gate's standard error (100 or more)")
	l2 := fs.Float64("l2", 0, "L2 strength of the challenger; 0 picks it by cross-validation (default: the champion's)")
	folds := fs.Int("folds", models.DefaultFolds, "K for the challenger's calibration (and L2 search)")
	maxWeight := fs.Float64("max-weight", retrain.DefaultMaxWeight, "cap on inverse propensity weights")
	noIPW := fs.Bool("no-ipw", false, "give every record weight 1 everywhere, the comparison included (ignore propensities)")
	ipwFit := fs.Bool("ipw-fit", false, "fit the challenger with the inverse propensity weights too (default: weights only in the comparison)")
	heads := fs.String("head-weights", string(retrain.DefaultHeadEstimator), "how each per-tier head weighs the records where its tier ran: unweighted, ipw (1/P(tier ran), self-normalised) or clipped (ipw capped at 10); docs/loop.md §4 says why the default")
	pairedOnly := fs.Bool("paired-only", false, "train on records with both tiers' scores only (by default each tier's head also learns from every record where its tier ran)")
	noSoft := fs.Bool("no-soft-labels", false, "do not use the fast tier's calibrated confidence as a soft target where no fast score was posted")
	impute := fs.String("impute", string(retrain.DefaultImpute), "which tier that did not run on a one-sided record gets a soft target from the tier that did: fast (escalations' fast tier), both, or none; docs/loop.md §4 says why the default")
	imputeWeight := fs.Float64("impute-weight", retrain.DefaultImputeWeight, "weight of an imputed target in its head's fit, against 1 for a posted score")
	keepScorer := fs.Bool("keep-scorer", false, "train the challenger with the champion's scorer even when it is gain, which cannot learn from one-sided records (by default a gain champion's challenger is per-tier when the feedback has them)")
	asJSON := fs.Bool("json", false, "print the comparison as one JSON object")
	skipBad := fs.Bool("skip-bad", false, "skip malformed lines instead of stopping: name the first five on stderr and count them all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	given := flagsGiven(fs)
	l2Given := given["l2"]
	switch {
	case *model == "":
		return usagef("give the serving router", "retrain needs --model CURRENT")
	case *out == "":
		return usagef("say where the challenger goes", "retrain needs -o NEW")
	case len(data) == 0 && len(feedback) == 0:
		return usagef("give --data BASE.jsonl and/or --feedback EXPORT.jsonl", "retrain needs something to train on")
	case *margin < 0 || math.IsNaN(*margin):
		return usagef("use 0 or more (see -h for its units)", "--margin is %v", *margin)
	case *gateSE < 0 || math.IsNaN(*gateSE) || math.IsInf(*gateSE, 0):
		return usagef("use 0 or more standard errors", "--gate-se is %v", *gateSE)
	case !(*holdout > 0 && *holdout < 1):
		return usagef("use a share in (0,1)", "--holdout is %v", *holdout)
	case *folds < 2:
		return usagef("use 2 or more", "--folds is %d", *folds)
	case *l2 < 0:
		return usagef("use 0 to choose by CV", "--l2 is %v, want >= 0", *l2)
	case *maxWeight < 1:
		return usagef("a weight is 1/propensity, so use 1 or more", "--max-weight is %v", *maxWeight)
	case *resamples < minResamples:
		return resamplesError(*resamples)
	}
	// -o may be --model itself (promotion in place, for serve --watch),
	// but not a log it reads.
	if err := checkNotInput(*out, append(append([]string(nil), data...), feedback...)...); err != nil {
		return err
	}
	if err := checkOutFile(*out); err != nil {
		return err
	}
	// Promotion in place replaces the champion it was judged against;
	// that the file still holds it is checked again before the write.
	inPlace := sameFile(*out, *model)
	m, err := retrain.ParseMetric(*metric)
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	// AUC lies in [0,1], and apgr's margin is a share of the tiers' gap:
	// a margin of 1 or more lets any challenger through.
	if m != retrain.MetricLogLoss && *margin >= 1 {
		return usagef("use a margin below 1 (the default is "+strconv.FormatFloat(retrain.DefaultMargin, 'g', -1, 64)+"), or --force to write the challenger whatever the gate says", "--margin %v with --metric %s: the gate could never refuse", *margin, m)
	}
	he, err := retrain.ParseHeadEstimator(*heads)
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	im, err := retrain.ParseImputeMode(*impute)
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	if !(*imputeWeight > 0 && *imputeWeight <= 1) {
		return &UsageError{Msg: fmt.Sprintf("--impute-weight is %v, want a weight in (0,1]", *imputeWeight)}
	}
	// Flags that contradict each other, or that another flag makes do
	// nothing, are refused: the user expects each to change something.
	switch {
	case *noIPW && *ipwFit:
		return usagef("keep one: --no-ipw gives every record weight 1", "--no-ipw and --ipw-fit contradict each other")
	case *noIPW && he != retrain.HeadUnweighted:
		return usagef("keep one: --no-ipw gives every record weight 1", "--no-ipw and --head-weights %s contradict each other", he)
	case *pairedOnly && (given["impute"] || given["impute-weight"] || *noSoft):
		n := "--no-soft-labels"
		switch {
		case given["impute"]:
			n = "--impute"
		case given["impute-weight"]:
			n = "--impute-weight"
		}
		return usagef("leave it out: with --paired-only no one-sided record is trained on", "--paired-only makes %s do nothing", n)
	case im == retrain.ImputeNone && given["impute-weight"]:
		return usagef("leave it out, or impute with --impute fast or both", "--impute-weight weighs imputed targets, and --impute none makes none")
	}
	champion, err := models.Load(*model)
	if err != nil {
		return err
	}
	// Before the logs are read: an N-tier champion is refused whatever they hold.
	if err := retrain.CheckChampion(champion); err != nil {
		return err
	}

	// stop ends the bar in hand; a later step starts a new one.
	prog, stop := newProgress(env)
	defer stop()
	if prog != nil {
		prog("reading the logs", 0, 0)
	}
	// Base logs first, then exports: a later source wins an outcome
	// conflict, and exports are newer.
	var sources [][]datasets.Record
	files := map[string][]datasets.Record{}
	bad := 0
	// An empty file is allowed (a server that routed nothing exports
	// nothing) but is worth a word: it is also what a mistyped export
	// path or a failed redirect leaves behind.
	var empty []string
	readOpts := readOptions(env, "retrain", *skipBad)
	feedbackOpts := readOpts
	feedbackOpts.AllowMissingScore = true
	for _, f := range []struct {
		flag  string
		paths logList
		opts  datasets.ReadOptions
	}{
		{"--data", data, readOpts},
		// Feedback may carry only a confidence for a model.
		{"--feedback", feedback, feedbackOpts},
	} {
		if err := checkLogFolders(f.paths); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
		for _, p := range f.paths {
			recs, n, err := datasets.ReadFile(p, f.opts)
			bad += n
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				w := fmt.Sprintf("%s %s holds no records, so it adds nothing", f.flag, p)
				if n > 0 {
					w = fmt.Sprintf("%s %s holds no valid records (%s skipped), so it adds nothing", f.flag, p, count(n, "bad line"))
				}
				fmt.Fprintf(env.Stderr, "triage retrain: warning: %s\n", w)
				empty = append(empty, w)
			}
			if f.flag == "--feedback" && hasOutcomes(recs) && !namesATier(recs, champion.TierNames()) {
				// Not feedback about this router (another pair's log?): it
				// would add nothing, and the gate would still promote.
				return fmt.Errorf("--feedback %s: its records have outcomes, but none of the router's tiers (%s); is it an export of the server that serves %s?", p, strings.Join(champion.TierNames(), ", "), *model)
			}
			sources = append(sources, recs)
			files[p] = recs
		}
	}
	recs, ms := retrain.MergeRecords(sources...)
	stop()
	fmt.Fprintf(env.Stderr, "triage retrain: merged %s from %s into %d (%s merged, %s%s, %s skipped)\n",
		count(ms.In, "record"), count(len(sources), "file"), ms.Out, count(ms.Duplicates, "duplicate id"), count(ms.Conflicts, "outcome conflict"), conflictNote(ms), count(bad, "bad line"))

	opts := retrain.Options{
		Holdout:      *holdout,
		Compare:      retrain.CompareOptions{Metric: m, Margin: *margin, SE: *gateSE, Bootstrap: retrain.BootstrapOptions{Resamples: *resamples, Seed: *bootSeed}},
		Examples:     retrain.ExampleOptions{MaxWeight: *maxWeight, NoIPW: *noIPW, Heads: he},
		PairedOnly:   *pairedOnly,
		KeepScorer:   *keepScorer,
		NoSoftFast:   *noSoft,
		Impute:       im,
		ImputeWeight: *imputeWeight,
		L2:           *l2,
		ChooseL2:     l2Given && *l2 == 0,
		WeightedFit:  *ipwFit,
		Folds:        *folds,
		Seed:         *seed,
		Sources:      append(append([]string(nil), data...), feedback...),
		Skipped:      bad,
	}
	opts.Progress = prog
	trained, matched := retrain.ChampionTrainedOn(champion, recs, files, data)
	opts.ChampionTrained = trained
	opts.ChampionHeldOut = retrain.ChampionHeldOut(champion, files, matched)
	if len(matched) > 0 {
		fmt.Fprintln(env.Stderr, "triage retrain: "+trainedOnLine(champion, matched))
	}
	var res *retrain.Result
	err = interruptible(ctx, func() error {
		var err error
		res, err = retrain.Run(champion, recs, opts)
		return err
	})
	stop()
	var nj *retrain.NothingToJudgeError
	if errors.As(err, &nj) {
		// No comparison exists to print; in --json mode stdout is for the
		// JSON object only, so the refusal line goes to stderr as the
		// other outcome lines do.
		status := env.Stdout
		if *asJSON {
			status = env.Stderr
		}
		fmt.Fprintf(status, "refused: %v; %s not written (exit status %d)\n", err, *out, exitRefused)
		return &refusedError{verdict: err.Error(), out: *out, untrained: true}
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(env.Stderr, "triage retrain: warning: %s\n", w)
	}
	// Printed above as they were found; the JSON carries them too.
	res.Warnings = append(empty, res.Warnings...)
	c := res.Comparison
	write := c.Promote || *force
	if *asJSON {
		err = printRetrainJSON(env.Stdout, champion, res, write, *out)
	} else {
		printRetrain(env.Stdout, champion, res)
	}
	if err != nil {
		return err
	}
	// In --json mode stdout holds the one JSON object; the outcome line
	// goes to stderr.
	status := env.Stdout
	if *asJSON {
		status = env.Stderr
	}
	if !write {
		fmt.Fprintf(status, "refused: %s not written (exit status %d; --force writes it anyway)\n", *out, exitRefused)
		return &refusedError{verdict: c.Verdict, out: *out}
	}
	// The logs' digests, as train records them: eval, score, curves and
	// calibrate know a byte-identical copy of a log this router was
	// trained on by them (retrain.NamesSource), not only its path.
	if res.Challenger.Training.SourceDigests, err = retrain.DigestFiles(opts.Sources); err != nil {
		return err
	}
	if inPlace {
		if err := checkChampionUnchanged(*out, champion); err != nil {
			return err
		}
	}
	if err := saveArtifact(ctx, res.Challenger, *out); err != nil {
		return err
	}
	how := "promoted"
	if !c.Promote {
		how = "refused but forced"
	}
	fmt.Fprintf(status, "%s: wrote %s (version %s, parent %s)\n", how, *out, res.Challenger.Version, champion.Version)
	return nil
}

// beforePromoteCheck, when set by a test, runs before an in-place
// promotion checks the champion's file.
var beforePromoteCheck func()

// checkChampionUnchanged refuses to promote over path when it no longer
// holds the champion the challenger was judged against: another retrain
// promoted, or a person rolled back, while this one trained. Writing over
// it would put a router that was never compared with the one serving in
// its place, and undo the other change without a word.
func checkChampionUnchanged(path string, champion *models.Artifact) error {
	if beforePromoteCheck != nil {
		beforePromoteCheck()
	}
	cur, err := models.Load(path)
	if err != nil {
		return fmt.Errorf("%s no longer holds the champion %s, so the challenger was not written over it: %w", path, champion.Version, err)
	}
	if cur.Version != champion.Version || cur.Checksum != champion.Checksum {
		return fmt.Errorf("%s changed while retrain ran: it holds %s now, and the challenger was judged against %s, so it was not written over it; run retrain again on the router there now", path, cur.Version, champion.Version)
	}
	return nil
}

func conflictNote(ms retrain.MergeStats) string {
	if ms.Conflicts == 0 {
		return ""
	}
	return ", the later file kept; first at " + ms.FirstConflict
}

func kinds(m map[retrain.ExampleKind]int) string {
	return fmt.Sprintf("%d base, %d speculated by policy, %d explored", m[retrain.KindBase], m[retrain.KindPolicy], m[retrain.KindExplored])
}

// imputedLine is the summary's line about the imputation of the tier that
// did not run.
func imputedLine(im retrain.ImputeStats) string {
	// A mean over no paired record (the strong tier never wrong, say) is
	// NaN, which says nothing to a reader.
	prob := func(p float64) string {
		if math.IsNaN(p) {
			return "none seen"
		}
		return fmt.Sprintf("%.2f", p)
	}
	return fmt.Sprintf("imputed from the tier that ran: %s (%d fast, %d strong; fitted on %d paired; P(fast right) %s when strong was right, %s when wrong)",
		count(im.Fast+im.Strong, "target"), im.Fast, im.Strong, im.Paired, prob(im.FastGivenStrong[1]), prob(im.FastGivenStrong[0]))
}

func printRetrain(w io.Writer, champion *models.Artifact, res *retrain.Result) {
	c := res.Comparison
	st := res.Stats
	var unpaired []string
	for _, k := range []string{"fast", "speculate", "escalate", ""} {
		if n := st.Unpaired[k]; n > 0 {
			name := k
			if k == "" {
				name = "unrouted"
			}
			unpaired = append(unpaired, fmt.Sprintf("%s %d", name, n))
		}
	}
	fmt.Fprintf(w, "data: %s; %d labelled (%s); without both scores: %s\n",
		count(st.Records, "record"), sum(st.ByKind), kinds(st.ByKind), orNone(strings.Join(unpaired, ", ")))
	if st.FastOnly+st.StrongOnly+st.SoftFast > 0 {
		fmt.Fprintf(w, "one tier only (each trains its tier's head): %d fast, %d strong, %d fast by calibrated confidence\n", st.FastOnly, st.StrongOnly, st.SoftFast)
	}
	if st.PinnedOneSided > 0 {
		fmt.Fprintf(w, "one tier only, left out: %d pinned to the tier that stored the response they continue (not routed on their own features)\n", st.PinnedOneSided)
	}
	if im := res.Imputed; im.Strong+im.Fast > 0 {
		fmt.Fprintln(w, imputedLine(im))
	}
	if res.ScorerChange != "" {
		fmt.Fprintln(w, res.ScorerChange)
	}
	if one := st.FastOnly + st.StrongOnly + st.SoftFast; one > 0 {
		// Every one-sided record trains (only paired ones are held out);
		// "train: 1596 (...)" beside the scorer line's "25 of the 1621
		// training records" gave the challenger two sizes.
		fmt.Fprintf(w, "train: %d records: %d paired (%s), %d with one tier's outcome\n", sum(res.Train)+one, sum(res.Train), kinds(res.Train), one)
	} else {
		fmt.Fprintf(w, "train: %d (%s)\n", sum(res.Train), kinds(res.Train))
	}
	if res.ChampionTrained > 0 {
		fmt.Fprintf(w, "not judged: %s the champion was trained on\n", count(res.ChampionTrained, "labelled record"))
	}
	switch h := res.HeldByChampionHoldout; {
	case h > 0:
		// The champion's id-hash holdout is spread over its whole log, so
		// "the newest since T" (T the oldest held-out record's time) was
		// untrue of it: the README's demo printed "404 newest since" the
		// log's first minute.
		which := "all kept out of the champion's training by its id-hash holdout"
		if h < c.N {
			which = fmt.Sprintf("%d kept out of the champion's training by its id-hash holdout and the %d newest of the rest", h, c.N-h)
		}
		fmt.Fprintf(w, "held out: %d, %s (%s); effective n %.0f under the weights\n",
			c.N, which, kinds(res.Held), c.ESS)
	case res.HeldSince.IsZero():
		// No held-out record has a time: splitJudged (models/retrain) held
		// out the last paired ones by id.
		fmt.Fprintf(w, "held out: %d, the last by id (no record has a time) (%s); effective n %.0f under the weights\n",
			c.N, kinds(res.Held), c.ESS)
	default:
		fmt.Fprintf(w, "held out: %d newest since %s (%s); effective n %.0f under the weights\n",
			c.N, res.HeldSince.UTC().Format(time.RFC3339Nano), kinds(res.Held), c.ESS)
	}
	t := res.Traffic
	fmt.Fprintf(w, "traffic (weighted held-out): fast accuracy %s, strong accuracy %s, label rate %s\n", t.FastAccuracy, t.StrongAccuracy, t.LabelRate)
	fmt.Fprintf(w, "\n%-9s %-26s %-26s %-26s\n", "metric", "champion "+short(champion.Version), "challenger "+short(res.Challenger.Version), "gain (95% paired bootstrap)")
	star := func(gated bool) string {
		if gated {
			return " *"
		}
		return ""
	}
	a := c.Area
	for _, mc := range c.Metrics {
		fmt.Fprintf(w, "%-9s %-26s %-26s %s%s\n", mc.Metric, mc.Champion, mc.Challenger, gainString(mc.Gain), star(mc.Metric == c.Gate && mc.Metric != retrain.MetricAPGR))
		if mc.Metric == retrain.MetricAPGR {
			// The apgr gate compares APGR's numerator; print it under
			// APGR so the gated figure is in the table.
			fmt.Fprintf(w, "%-9s %-26s %-26s %s%s\n", "  area", a.Champion, a.Challenger, gainString(a.Gain), star(c.Gate == retrain.MetricAPGR))
		}
	}
	fmt.Fprintf(w, "\ntiers on the held-out slice: strong − fast %s, mean |strong − fast| %s\n", a.Gap, a.Disagreement)
	if u := c.Of(retrain.MetricAPGR).Undefined; u != "" {
		fmt.Fprintf(w, "apgr undefined: %s; the area (its numerator) still compares the routers\n", u)
	} else if a.Gap.Estimate < 0 {
		fmt.Fprintf(w, "apgr reversed: the strong tier scores below the fast one here, so the better router has the lower APGR; the area is not reversed\n")
	}
	word := "refused"
	if c.Promote {
		word = "promoted"
	}
	on := ""
	if c.Gate == retrain.MetricAPGR {
		on = fmt.Sprintf(" = %.4f of quality-gain area", c.GateMargin)
	}
	fmt.Fprintf(w, "\ngate (* %s, margin %.4f%s): %s: %s\n", c.Gate, c.Margin, on, word, c.Verdict)
}

// gainString prints a signed gain with its interval, or "undefined".
func gainString(g retrain.Interval) string {
	if math.IsNaN(g.Estimate) {
		return "undefined"
	}
	return fmt.Sprintf("%+.4f [%+.4f, %+.4f]", g.Estimate, g.Lo, g.Hi)
}

func printRetrainJSON(w io.Writer, champion *models.Artifact, res *retrain.Result, written bool, out string) error {
	v := struct {
		Champion   string                      `json:"champion"`
		Challenger string                      `json:"challenger"`
		Written    bool                        `json:"written"`
		Output     string                      `json:"output,omitempty"`
		HeldSince  *time.Time                  `json:"held_since,omitempty"`
		Train      map[retrain.ExampleKind]int `json:"train"`
		Held       map[retrain.ExampleKind]int `json:"held"`
		Traffic    retrain.TrafficEstimate     `json:"traffic"`
		Warnings   []string                    `json:"warnings,omitempty"`
		// One-sided examples kept (each trains its tier's head) and the
		// paired records not judged because the champion trained on them.
		OneSided        map[string]int `json:"one_sided"`
		ChampionTrained int            `json:"champion_trained"`
		// HeldByChampionHoldout counts the held-out records the
		// champion's id-hash holdout kept out of its training.
		HeldByChampionHoldout int `json:"held_by_champion_holdout"`
		// PinnedOneSided counts the one-sided records left out because
		// the proxy pinned them to the tier of the response they continue.
		PinnedOneSided int `json:"pinned_one_sided"`
		// Imputed counts the soft targets imputed from the tier that ran.
		Imputed map[string]int `json:"imputed"`
		// ScorerChange says why the challenger's scorer differs from
		// the champion's, when it does.
		ScorerChange string `json:"scorer_change,omitempty"`
		*retrain.Comparison
	}{
		Champion: champion.Version, Challenger: res.Challenger.Version, Written: written,
		Train: res.Train, Held: res.Held, Traffic: res.Traffic, Warnings: res.Warnings, Comparison: res.Comparison,
		OneSided:              map[string]int{"fast": res.Stats.FastOnly, "strong": res.Stats.StrongOnly, "fast_confidence": res.Stats.SoftFast},
		Imputed:               map[string]int{"fast": res.Imputed.Fast, "strong": res.Imputed.Strong},
		ChampionTrained:       res.ChampionTrained,
		HeldByChampionHoldout: res.HeldByChampionHoldout,
		PinnedOneSided:        res.Stats.PinnedOneSided,
		ScorerChange:          res.ScorerChange,
	}
	if written {
		v.Output = out
	}
	if !res.HeldSince.IsZero() {
		v.HeldSince = &res.HeldSince
	}
	return json.NewEncoder(w).Encode(v)
}

func sum(m map[retrain.ExampleKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// short trims a version to its time and the first hex digits.
func short(v string) string {
	if len(v) > 21 {
		return v[:21]
	}
	return v
}

// trainedOnLine says which --data files retrain takes to be the champion's
// training logs. Where none of them is a log the artifact names (by path
// or by its content: an edited copy, or a file moved since by an artifact
// without digests), retrain.ChampionTrainedOn takes the --data files
// to be them, as the loop's commands use them; that is an assumption, and
// the line says so and names the logs the artifact does name, so a user
// whose --data is in fact new data can see why its records did not judge.
func trainedOnLine(champion *models.Artifact, matched []string) string {
	share := fmt.Sprintf("share kept out by id hash: %.0f%%", 100*champion.Training.HoldoutShare)
	if slices.ContainsFunc(matched, func(p string) bool { return retrain.NamesSource(champion, p) }) {
		return fmt.Sprintf("the champion was trained on %s (%s); those records do not judge", strings.Join(matched, ", "), share)
	}
	verb, their := "are", "their"
	if len(matched) == 1 {
		verb, their = "is", "its"
	}
	return fmt.Sprintf("the champion's artifact names its training data as %s, which no --data file is by path or content; %s %s taken to be that data (%s), so %s records do not judge (if that is new data, give the champion's log too, by the path it names, and only that log is the champion's)",
		strings.Join(champion.Training.Sources, ", "), strings.Join(matched, ", "), verb, share, their)
}

// hasOutcomes reports whether any record has an outcome.
func hasOutcomes(recs []datasets.Record) bool {
	for i := range recs {
		if len(recs[i].Outcomes) > 0 {
			return true
		}
	}
	return false
}

// namesATier reports whether any record has an outcome of one of tiers.
func namesATier(recs []datasets.Record, tiers []string) bool {
	for i := range recs {
		for _, t := range tiers {
			if _, ok := recs[i].Outcomes[t]; ok {
				return true
			}
		}
	}
	return false
}
