package retrain

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/gunzip"
	"github.com/triage-router/triage/internal/plural"
	"github.com/triage-router/triage/models"
)

// DefaultHoldout is the share of labelled examples, the newest by
// time, that champion and challenger are compared on.
const DefaultHoldout = 0.2

// Options configures Run. Zero values mean the defaults.
type Options struct {
	// Holdout is the newest share of labelled examples kept out of
	// training for the comparison; 0 means DefaultHoldout.
	Holdout float64
	// Compare chooses the gating metric, margin and intervals.
	Compare CompareOptions
	// Examples caps weights or turns weighting off. Its Tiers are ignored:
	// the champion's are used.
	Examples ExampleOptions
	// WeightedFit fits the challenger with the inverse propensity
	// weights too. By default the fit gives every example weight 1 while
	// the comparison and the traffic estimates keep the weights: the
	// router selects on the prompt only, so P(label | prompt) is the same
	// inside and outside the labelled sample, and weighting the fit only
	// moves where a misspecified model spends its errors, at a large cost
	// in variance (docs/loop.md has the measurements).
	WeightedFit bool
	// L2 is the challenger's regularisation; 0 reuses the champion's, so
	// a retrain does not redo the search, unless ChooseL2 is set.
	L2       float64
	ChooseL2 bool
	// Folds is K for the fit's calibration; 0 means DefaultFolds.
	Folds int
	// Seed assigns the folds (by id hash); the bootstrap has its own.
	Seed uint64
	// PairedOnly trains on the records with both tiers' scores only, as
	// retrain did before one-sided outcomes were used: by default each
	// per-tier head also learns from every record where its tier ran.
	PairedOnly bool
	// NoSoftFast turns off the confidence soft labels (ExampleOptions
	// .SoftFast), which are on when the champion has a confidence
	// calibration.
	NoSoftFast bool
	// Impute says which tier that did not run on a one-sided record gets
	// a soft target from the tier that did (imputeOtherTier), when the
	// champion has per-tier heads; "" means DefaultImpute (the fast tier
	// of escalations). ImputeWeight is an imputed target's weight in its
	// head's fit; 0 means DefaultImputeWeight.
	Impute       ImputeMode
	ImputeWeight float64
	// ChampionTrained says the champion was trained on the record with
	// this id (see ChampionTrainedOn); such records never judge, so the
	// gate compares the routers on records neither was trained on. nil
	// means none.
	ChampionTrained func(id string) bool
	// ChampionHeldOut says the champion's own id-hash holdout kept the
	// record with this id out of its training (see ChampionHeldOut):
	// every such paired record judges, besides the newest ones, since
	// that is what the champion was held out for. nil means none.
	ChampionHeldOut func(id string) bool
	// KeepScorer trains the challenger with the champion's scorer even
	// where that scorer cannot learn from the one-sided records (see
	// challengerScorer).
	KeepScorer bool
	// Sources, Skipped, Now and Progress pass through to TrainOptions.
	Sources  []string
	Skipped  int
	Now      time.Time
	Progress func(step string, done, total int)
}

// Result is a challenger and how it compares with the champion.
type Result struct {
	// Challenger is the trained router (its Parent is the champion).
	Challenger *models.Artifact
	Report     *models.TrainReport
	// Comparison decides promotion.
	Comparison *Comparison
	// Stats describes the labelled data; Train and Held count each side's
	// examples by kind.
	Stats       ExampleStats
	Train, Held map[ExampleKind]int
	// HeldSince is the time of the oldest held-out example, and
	// TrainedThrough that of the newest training one.
	HeldSince, TrainedThrough time.Time
	// Traffic estimates, from the held-out slice with its weights, the
	// tiers' accuracy and the label rate over the traffic it stands for.
	Traffic TrafficEstimate
	// Warnings are caveats about the data, one sentence each.
	Warnings []string
	// ScorerChange says why the challenger's scorer is not the
	// champion's ("" when it is; see challengerScorer).
	ScorerChange string
	// Imputed says what the imputation of the missing tier did (zero
	// when it was off or had too few paired rows).
	Imputed ImputeStats
	// ChampionTrained counts the labelled records kept out of the judged
	// slice because the champion was trained on them.
	ChampionTrained int
	// HeldByChampionHoldout counts the held-out examples that the
	// champion's own id-hash holdout kept out of its training
	// (Options.ChampionHeldOut); the others are the newest.
	HeldByChampionHoldout int
}

// NothingToJudgeError says no labelled record is left that the champion
// was not trained on: no comparison can show the challenger is not
// worse, so retrain refuses it.
type NothingToJudgeError struct {
	Paired, ChampionTrained int
	// Dated counts the paired records with a time, of which the share
	// Holdout is held out.
	Dated   int
	Holdout float64
	// TrainedThrough is the champion's training.trained_through when it
	// was made by retrain: its records are counted by time
	// (ChampionTrainedOn), the slice it was judged on included.
	TrainedThrough time.Time
}

func (e *NothingToJudgeError) Error() string {
	if e.ChampionTrained < e.Paired {
		// Not the champion's doing: the share rounds to nothing.
		return fmt.Sprintf("no record with both tiers' scores is held out to judge on: the champion was not trained on %d of the %d, but the held-out share (--holdout %g) of the %d with a time rounds to none; raise --holdout, or post both tiers' scores for more explored requests", e.Paired-e.ChampionTrained, e.Paired, e.Holdout, e.Dated)
	}
	if !e.TrainedThrough.IsZero() {
		// "The champion was trained on N of the N" was untrue of a
		// router made by retrain, which was judged, not trained, on some
		// of them, and "train the champion with --holdout" cannot be
		// done to it: what can judge it is newer scored traffic.
		return fmt.Sprintf("no record with both tiers' scores is left to judge on: the champion was made by retrain, so every record up to the newest it trained on (%s) counts as its own, %d of the %d here, the slice it was judged on included; only paired records newer than that can judge it: post both tiers' scores (POST /v1/feedback) for requests speculated or explored since then, export again and retrain", e.TrainedThrough.UTC().Format(time.RFC3339), e.ChampionTrained, e.Paired)
	}
	return fmt.Sprintf("no record with both tiers' scores is left to judge on: the champion was trained on %d of the %d; the gate judges only on records neither router was trained on (train the champion with --holdout, or post both tiers' scores for explored requests)", e.ChampionTrained, e.Paired)
}

// splitJudged holds out the newest paired examples the champion was not
// trained on, as many as the share frac of the paired timestamped
// examples (of all paired ones when none has a time), and every paired
// example the champion's own holdout kept out (heldOut, nil for none);
// everything else trains. Ties by time are broken by id, so the split is
// deterministic. Other examples without a time are held out only when too
// few timestamped ones qualify.
func splitJudged(ex []Labelled, frac float64, trained, heldOut func(string) bool) (train, held []Labelled, excluded int) {
	s := slices.Clone(ex)
	slices.SortStableFunc(s, func(a, b Labelled) int {
		if c := a.TS.Compare(b.TS); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	dated := countDated(s)
	if trained != nil {
		for i := range s {
			if s[i].Paired && trained(s[i].ID) {
				excluded++
			}
		}
	}
	k := max(0, int(math.Round(frac*float64(dated))))
	isHeld := make([]bool, len(s))
	for i := len(s) - 1; i >= 0 && k > 0; i-- {
		if !s[i].Paired {
			continue
		}
		if trained != nil && trained(s[i].ID) {
			continue
		}
		isHeld[i] = true
		k--
	}
	if heldOut != nil {
		// A champion trained with --holdout kept these out to be judged
		// on: with a few timestamped explored records, the share above is
		// a handful of them, and the hundreds of records the champion
		// never saw used to train the challenger instead.
		for i := range s {
			if s[i].Paired && heldOut(s[i].ID) && (trained == nil || !trained(s[i].ID)) {
				isHeld[i] = true
			}
		}
	}
	for i := range s {
		if isHeld[i] {
			held = append(held, s[i])
		} else {
			train = append(train, s[i])
		}
	}
	return train, held, excluded
}

// countDated counts the paired examples with a time: what splitJudged
// takes its share of (all paired ones when none has a time).
func countDated(ex []Labelled) int {
	var paired, dated int
	for i := range ex {
		if ex[i].Paired {
			paired++
			if !ex[i].TS.IsZero() {
				dated++
			}
		}
	}
	if dated == 0 {
		return paired
	}
	return dated
}

// challengerScorer is the scorer the challenger is trained with, and why
// it differs from the champion's ("" when it does not). The challenger
// keeps the champion's scorer, so that the comparison is about the new
// data, not a new method, with one exception. A `gain` champion (one
// model of the strong tier's gain, which `train --scorer auto` picks on
// many logs) learns from paired records only, so the one-sided records
// that are most of a served log's feedback (fast decisions, escalations,
// the proxy's confidences) would be read and dropped. Its challenger is
// trained with the per-tier scorer instead, whose heads learn from them
// (docs/loop.md §3), with each head's L2 chosen by cross-validation; the
// gate still judges both on records neither trained on. A `label`
// champion keeps its scorer: `train` only makes one when told to.
func challengerScorer(champion *models.Artifact, train []Labelled, opts Options) (string, string) {
	k := champion.ScorerKind()
	if k != models.ScorerGain || opts.KeepScorer || opts.PairedOnly {
		return k, ""
	}
	one := 0
	for i := range train {
		if !train[i].Paired {
			one++
		}
	}
	if one == 0 {
		return k, ""
	}
	return models.ScorerPerTier, fmt.Sprintf("challenger scorer per-tier, not the champion's gain: a gain model learns from paired records only, and %d of the %s %s one tier's outcome, which each per-tier head learns from (--keep-scorer keeps gain)", one, plural.Count(len(train), "training record"), plural.Agree(one, "has", "have"))
}

// TrafficEstimate is what the weighted held-out slice says about traffic.
type TrafficEstimate struct {
	FastAccuracy   Interval `json:"fast_accuracy"`
	StrongAccuracy Interval `json:"strong_accuracy"`
	LabelRate      Interval `json:"label_rate"`
}

// CheckChampion returns an error when retrain cannot take champion: an
// N-tier router, since the champion/challenger gate compares p_hard
// rankings, which it does not have. The error says what does learn from
// an N-tier router's traffic (docs/loop.md §8): train on the offline log
// and the export with --partial-records, the champion's tiers, policy,
// holdout and seed, and compare both routers on the held-out share of the
// offline log, the only records with every tier's score. Callers check it
// before reading the logs; Run checks it again.
func CheckChampion(champion *models.Artifact) error {
	if champion.IsMultiTier() {
		again := ""
		if champion.Training.HoldoutShare == 0 {
			again = ", after training the current one again with the same --holdout and --seed (it was trained on all of its log, so --unseen finds nothing to measure it on)"
		}
		return fmt.Errorf("%w: retrain compares two-tier routers only; to learn from its traffic, train a new one on an offline log with every tier's score and the export, each tier's head also on the exported records where its tier ran: %s; then compare `triage eval --model ROUTER --data LOG --unseen` of both%s. docs/loop.md §8 says what it gains: little on RouterDC replays, where every tier's outcome of the same traffic taught more",
			models.ErrMultiTier, tiersTrainCommand(champion), again)
	}
	return nil
}

// tiersTrainCommand is the train command line that makes an N-tier router
// like a from LOG and EXPORT: its tiers, policy, holdout and seed.
func tiersTrainCommand(a *models.Artifact) string {
	tiers := make([]string, len(a.TierList))
	for i, t := range a.TierList {
		tiers[i] = fmt.Sprintf("%s=%g", t.Name, t.Price)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`triage train --data LOG,EXPORT --tiers %s", strings.Join(tiers, ","))
	if p := a.TierPolicy; p != nil {
		for _, k := range []struct {
			flag string
			v    float64
		}{{"lambda", p.Lambda}, {"margin", p.Margin}, {"race", p.Race}} {
			if k.v != 0 {
				fmt.Fprintf(&b, " --%s %g", k.flag, k.v)
			}
		}
		if p.AcceptConfidence != models.DefaultAcceptConfidence {
			fmt.Fprintf(&b, " --accept-confidence %g", p.AcceptConfidence)
		}
	}
	if h := a.Training.HoldoutShare; h > 0 {
		fmt.Fprintf(&b, " --holdout %g --seed %d", h, a.Training.Seed)
	} else {
		// The comparison needs LOG records neither router trained on.
		b.WriteString(" --holdout 0.2 --seed 1")
	}
	b.WriteString(" --partial-records -o NEW.json`")
	return b.String()
}

// Run trains a challenger for champion on merged records (see
// MergeRecords) with the champion's feature spec, label and tiers, on all
// labelled examples but the newest Holdout share, and compares both
// routers on that newest share. It returns the challenger whatever the
// verdict; the caller writes it only if Comparison.Promote (or forced).
func Run(champion *models.Artifact, recs []datasets.Record, opts Options) (*Result, error) {
	if err := CheckChampion(champion); err != nil {
		return nil, err
	}
	label, err := datasets.ParseLabel(champion.Label)
	if err != nil {
		return nil, fmt.Errorf("champion's label: %w", err)
	}
	if opts.Holdout == 0 {
		opts.Holdout = DefaultHoldout
	}
	if !(opts.Holdout > 0 && opts.Holdout < 1) {
		return nil, fmt.Errorf("holdout is %v, want a share in (0,1)", opts.Holdout)
	}
	if opts.Folds == 0 {
		opts.Folds = models.DefaultFolds
	}
	eo := opts.Examples
	eo.Tiers = champion.Tiers
	eo.Policy = champion.Policy
	eo.OneSided = !opts.PairedOnly
	if eo.OneSided && !opts.NoSoftFast && champion.ConfidenceCalibration != nil {
		eo.SoftFast = champion.ConfidenceCalibration
	}
	all, stats, err := LabelledExamples(recs, eo)
	if err != nil {
		return nil, err
	}
	npaired := 0
	for i := range all {
		if all[i].Paired {
			npaired++
		}
	}
	if npaired == 0 {
		if err := absentTier(recs, champion.Tiers); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no record has scores for both %q and %q (%s); feedback must carry both tiers' scores for some requests: speculated or explored ones", champion.Tiers.Fast, champion.Tiers.Strong, plural.Count(len(recs), "record"))
	}
	train, held, excluded := splitJudged(all, opts.Holdout, opts.ChampionTrained, opts.ChampionHeldOut)
	if len(held) == 0 {
		nj := &NothingToJudgeError{Paired: npaired, ChampionTrained: excluded, Dated: countDated(all), Holdout: opts.Holdout}
		if opts.ChampionTrained != nil {
			nj.TrainedThrough = champion.Training.TrainedThrough
		}
		return nil, nj
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("%s %s too few to hold out %.0f%% and train on the rest", plural.Count(len(all), "labelled example"), plural.Agree(len(all), "is", "are"), 100*opts.Holdout)
	}
	res := &Result{Stats: stats, Train: countKinds(train), Held: countKinds(held), HeldSince: HeldSince(held), TrainedThrough: TrainedThrough(train), ChampionTrained: excluded}
	if opts.ChampionHeldOut != nil {
		for i := range held {
			if opts.ChampionHeldOut(held[i].ID) {
				res.HeldByChampionHoldout++
			}
		}
	}
	res.Warnings = dataWarnings(stats, res.Held, opts.Examples.NoIPW)

	trEx := Examples(train)
	for i := range trEx {
		trEx[i].Fold = datasets.Fold(trEx[i].ID, opts.Seed, opts.Folds)
		if !opts.WeightedFit {
			trEx[i].Weight = 1
		}
	}
	heldEx := Examples(held)
	scorer, why := challengerScorer(champion, train, opts)
	res.ScorerChange = why
	// The champion's penalties carry over only to the same scorer: a
	// changed one has heads they say nothing about, so Train chooses
	// those by cross-validation (l2 0).
	reusePenalty := opts.L2 == 0 && !opts.ChooseL2 && scorer == champion.ScorerKind()
	l2, fastL2 := opts.L2, opts.L2
	if reusePenalty {
		l2, fastL2 = scaledL2(champion, train)
	}
	mode, err := ParseImputeMode(string(opts.Impute))
	if err != nil {
		return nil, err
	}
	if eo.OneSided && mode != ImputeNone {
		w := opts.ImputeWeight
		if w == 0 {
			w = DefaultImputeWeight
		}
		if !(w > 0 && w <= 1) {
			return nil, fmt.Errorf("impute weight is %v, want a weight in (0,1]", w)
		}
		st, err := imputeOtherTier(champion, trEx, mode, w)
		if err != nil {
			return nil, err
		}
		res.Imputed = st
		if reusePenalty {
			l2, fastL2 = imputedL2(champion, trEx, st, w, l2, fastL2)
		}
	}
	a, rep, err := models.Train(trEx, heldEx, models.TrainOptions{
		Tiers: champion.Tiers, Label: label.Of, LabelName: label.String(), Scorer: scorer,
		Features: champion.Features, L2: l2, FastL2: fastL2, Folds: opts.Folds, Seed: opts.Seed,
		// A champion with a difficulty view gets a challenger with one,
		// its head at the challenger's L2: the comparison is about the
		// new data, not a new method.
		Difficulty: champion.Difficulty != nil,
		Sources:    opts.Sources, Skipped: opts.Skipped, Now: opts.Now, Progress: opts.Progress,
	})
	if err != nil {
		return nil, fmt.Errorf("train challenger: %w", err)
	}
	a.Parent = champion.Version
	a.Training.HeldSince = res.HeldSince
	a.Training.TrainedThrough = res.TrainedThrough
	models.NameTopFeatures(a, trEx, 20)
	if err := keepOperatingPoint(a, champion, recs); err != nil {
		return nil, err
	}
	res.Challenger, res.Report = a, rep

	// Both routers on the same requests, with the same weights.
	cr, err := models.NewRouter(champion)
	if err != nil {
		return nil, fmt.Errorf("champion: %w", err)
	}
	n := len(held)
	pChamp := make([]float64, n)
	y, weak, strong, w := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range held {
		pChamp[i] = cr.Route(held[i].Input).PHard
		weak[i], strong[i], w[i] = held[i].Fast, held[i].Strong, held[i].Weight
		y[i] = label.Of(weak[i], strong[i])
	}
	res.Comparison, err = Compare(pChamp, rep.HeldP, y, weak, strong, w, opts.Compare)
	if err != nil {
		return nil, err
	}
	if msg := resolutionWarning(res.Comparison); msg != "" {
		res.Warnings = append(res.Warnings, msg)
	}
	bo := opts.Compare.Bootstrap
	res.Traffic = TrafficEstimate{
		FastAccuracy:   BootstrapMean(weak, w, bo),
		StrongAccuracy: BootstrapMean(strong, w, bo),
		LabelRate:      BootstrapMean(y, w, bo),
	}
	return res, nil
}

// countKinds counts the paired examples by kind (one-sided ones are
// counted in ExampleStats).
// scaledL2 is the champion's regularisation for a fit on train: the same
// prior on the weights, not the same penalty. The fit's loss is a mean
// over its rows, so a fixed Gaussian prior is a penalty inversely
// proportional to the number of rows a head fits; a retrain that kept the
// champion's penalty on four times the rows would shrink four times too
// hard (on MMLU, test APGR 0.650 against 0.677 with the penalty scaled,
// docs/loop.md §4). Each per-tier head counts the rows where its tier was
// observed; the other heads, the paired rows. The champion's own count
// is its training records.
func scaledL2(champion *models.Artifact, train []Labelled) (l2, fastL2 float64) {
	l2, fastL2 = champion.Training.L2, champion.Training.FastL2
	n0 := float64(champion.Training.Records)
	if n0 <= 0 {
		return l2, fastL2
	}
	// A champion fitted on one-sided records says what each head saw.
	hr := champion.Training.HeadRecords
	n0First, n0Fast := n0, n0
	if hr["fast"] > 0 {
		n0Fast = float64(hr["fast"])
	}
	var nFast, nStrong, nPaired float64
	for i := range train {
		if !math.IsNaN(train[i].Fast) {
			nFast++
		}
		if !math.IsNaN(train[i].Strong) {
			nStrong++
		}
		if train[i].Paired {
			nPaired++
		}
	}
	nFirst := nPaired
	if hr["paired"] > 0 {
		n0First = float64(hr["paired"])
	}
	if k := champion.ScorerKind(); k == models.ScorerPerTier || k == models.ScorerBlend {
		nFirst = nStrong
		n0First = n0
		if hr["strong"] > 0 {
			n0First = float64(hr["strong"])
		}
	}
	if fastL2 == 0 {
		fastL2 = l2
	}
	if nFirst > 0 {
		l2 *= n0First / nFirst
	}
	if nFast > 0 {
		fastL2 *= n0Fast / nFast
	}
	return l2, fastL2
}

// imputedL2 rescales the heads' penalties for the imputed rows: the fit
// divides its loss by the sum of the row weights, so to keep the same
// prior the penalty shrinks by the other rows' weight over the total
// (scaledL2 counted the rows before imputation). Only the st.Strong and
// st.Fast rows imputed with weight w are new; confidence targets were
// counted by scaledL2 already.
func imputedL2(champion *models.Artifact, ex []models.Example, st ImputeStats, w, l2, fastL2 float64) (float64, float64) {
	var allF, allS float64
	for i := range ex {
		if !math.IsNaN(ex[i].Fast) {
			allF += headWeight(ex[i].FastWeight, ex[i].Weight)
		}
		if !math.IsNaN(ex[i].Strong) {
			allS += headWeight(ex[i].StrongWeight, ex[i].Weight)
		}
	}
	if k := champion.ScorerKind(); (k == models.ScorerPerTier || k == models.ScorerBlend) && allS > 0 {
		l2 *= (allS - w*float64(st.Strong)) / allS
	}
	if allF > 0 {
		fastL2 *= (allF - w*float64(st.Fast)) / allF
	}
	return l2, fastL2
}

// headWeight is a row's weight in a per-tier head (Design.AddRow's rule).
func headWeight(head, w float64) float64 {
	if head != 0 {
		return head
	}
	if w == 0 {
		return 1
	}
	return w
}

func countKinds(ls []Labelled) map[ExampleKind]int {
	m := map[ExampleKind]int{}
	for i := range ls {
		if ls[i].Paired {
			m[ls[i].Kind]++
		}
	}
	return m
}

// resolutionWarning says when the held-out slice is too small for its
// verdict to see a loss of the margin's size: the gate's standard error
// is more than twice the margin, so only clear losses are refused (with
// the default allowance) or the verdict is largely the draw (without it).
// On an ε = 0.02 loop's ~35 explored records it is four to ten times
// (docs/loop.md §7).
func resolutionWarning(c *Comparison) string {
	if c == nil || !(c.GateSE > 2*c.GateMargin) {
		return ""
	}
	ratio := "more than twice"
	if r := c.GateSE / c.GateMargin; !math.IsInf(r, 0) {
		ratio = fmt.Sprintf("%.1f times", r)
	}
	so := "the gate refuses only losses clearly beyond chance"
	if c.GateSEs == 0 {
		so = "a verdict on the point estimate is largely the draw"
	}
	return fmt.Sprintf("the held-out slice (%s, effective %.0f) cannot resolve a loss of the margin's size: the gain's standard error %.4f is %s the margin %.4f, so %s; judge on more records (a larger exploration epsilon, longer traffic, or a champion trained with --holdout, whose held-out records then judge too)", plural.Count(c.N, "request"), c.ESS, c.GateSE, ratio, c.GateMargin, so)
}

// dataWarnings says in words when the weights cannot make the labelled
// examples stand for all traffic.
func dataWarnings(st ExampleStats, held map[ExampleKind]int, noIPW bool) []string {
	var w []string
	routed := st.ByKind[KindPolicy] + st.ByKind[KindExplored]
	if routed > 0 && st.ByKind[KindExplored] == 0 {
		w = append(w, "no labelled request was explored: feedback labels cover only the speculate band, so they cannot be reweighted to stand for all traffic (serve with exploration epsilon > 0)")
	}
	if st.NoPropensity > 0 {
		w = append(w, fmt.Sprintf("%s no propensity (a server without exploration); %s weight 1", plural.Count(st.NoPropensity, "routed labelled record")+plural.Agree(st.NoPropensity, " carries", " carry"), plural.Agree(st.NoPropensity, "it gets", "they get")))
	}
	if st.Clipped > 0 {
		w = append(w, fmt.Sprintf("%s capped at the maximum weight; estimates lean slightly towards the well-sampled requests", plural.Count(st.Clipped, "weight")+plural.Agree(st.Clipped, " was", " were")))
	}
	if held[KindBase] > 0 && held[KindPolicy]+held[KindExplored] > 0 {
		w = append(w, fmt.Sprintf("the held-out slice mixes %s with %d routed: its figures describe neither population alone", plural.Count(held[KindBase], "base-log record"), held[KindPolicy]+held[KindExplored]))
	}
	if noIPW && routed > 0 {
		w = append(w, "weighting is off: routed examples count once each, so the speculate band is over-represented")
	}
	if n := held[KindBase] + held[KindPolicy] + held[KindExplored]; n < fewHeld {
		// The gate promotes unless the slice shows the challenger worse,
		// which a handful of records cannot: the README's proxy with
		// scored traffic, retrained twice on one export, judged the
		// second time on 1 record (every resample the same, a standard
		// error of 0) and promoted with "better by 0.0000".
		w = append(w, fmt.Sprintf("the gate judges on %d held-out record(s), too few to show a challenger worse (APGR's 95%% interval is ±0.07 or wider below %d): it promotes unless shown worse, so on so few it promotes almost any challenger; post both tiers' scores for more requests (speculated or explored) before trusting its verdict", n, fewHeld))
	}
	return w
}

// fewHeld is the held-out size under which retrain warns that its gate
// can hardly refuse: the size under which eval and train warn that
// figures are too few to trust (cmd/triage fewFigures).
const fewHeld = 100

// minRoutedForShares is the fewest routed requests keepOperatingPoint
// sets thresholds on alone: a share's standard error on 200 requests is
// about 0.03, on 25 about 0.09.
const minRoutedForShares = 200

// keepOperatingPoint sets the challenger's thresholds so it sends the
// same shares of traffic to each decision as the champion was calibrated
// for, measured on the routed requests of the log (labelled or not: a
// p_hard needs no label, so this sample is all traffic, unbiased), or on
// every record when fewer than minRoutedForShares were routed. A
// retrain changes the ranking, not the operating point; choose a new one
// with the curves.
//
// Two operating points are not shares of a ranking and are kept as they
// are. A challenger that cannot route answers one p_hard for every
// request: no threshold splits its traffic, and one at that value would
// send it all to the fast tier, so it escalates everything, as train
// made it. A champion that escalates everything (it could not route, or
// was not shown to beat random) hands that on: a quantile at share 1 would
// be the lowest p_hard, which would send the requests at it to the fast
// tier.
func keepOperatingPoint(a, champion *models.Artifact, recs []datasets.Record) error {
	a.Policy.AcceptConfidence = champion.Policy.AcceptConfidence
	es := champion.ExpectedShares
	if len(es) == 0 {
		return nil
	}
	if a.Signal != nil && !a.Signal.Routable {
		return nil
	}
	if es[models.Escalate] >= 1 {
		nr := models.NoRoutePolicy()
		a.Policy.SpeculateAbove, a.Policy.EscalateAbove = nr.SpeculateAbove, nr.EscalateAbove
		a.ExpectedShares = map[models.Decision]float64{models.Fast: 0, models.Speculate: 0, models.Escalate: 1}
		a.PolicyTarget = "retrain: the champion escalates every request, and so does the challenger until `triage calibrate` sets thresholds from its curves"
		return a.Policy.Validate()
	}
	r, err := models.NewRouter(a)
	if err != nil {
		return fmt.Errorf("challenger: %w", err)
	}
	// Routed traffic is the sample when there is enough of it; a quantile
	// of a few dozen requests is mostly noise (the README's proxy demo
	// serves 25, and its challenger's speculate share fell from 20% to 6%
	// of fresh traffic), so below minRoutedForShares every record sets it.
	routed := 0
	for i := range recs {
		if recs[i].Decision != nil {
			routed++
		}
	}
	onRouted := routed >= minRoutedForShares
	var p []float64
	for i := range recs {
		if onRouted && recs[i].Decision == nil {
			continue
		}
		p = append(p, r.Route(RecordInput(&recs[i])).PHard)
	}
	if len(p) == 0 {
		return errors.New("no records to set thresholds on")
	}
	esc := models.Quantile(p, 1-es[models.Escalate])
	spec := esc
	if es[models.Speculate] > 0 {
		spec = models.Quantile(p, 1-es[models.Escalate]-es[models.Speculate])
	}
	a.Policy.SpeculateAbove, a.Policy.EscalateAbove = spec, esc
	a.ExpectedShares = models.Shares(a.Policy, p)
	parts := make([]string, 0, 3)
	for _, d := range []models.Decision{models.Fast, models.Speculate, models.Escalate} {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", d, 100*es[d]))
	}
	on := plural.Count(len(p), "routed request")
	if !onRouted {
		on = fmt.Sprintf("all %s (%d routed, fewer than the %d a share needs on its own)", plural.Count(len(p), "record"), routed, minRoutedForShares)
	}
	a.PolicyTarget = fmt.Sprintf("retrain: the champion's decision shares (%s) on %s", strings.Join(parts, ", "), on)
	if a.Signal != nil && !a.Signal.Significant {
		// The operating point is the champion's (or the user's): kept,
		// but said, since train would not have routed on this ranking.
		a.PolicyTarget += ", kept although the challenger is not shown to beat random"
	}
	return a.Policy.Validate()
}

// NamesSource says whether the artifact names path among the logs it was
// trained on ("-", standard input, never), compared as given and as absolute paths (relative ones
// against the working directory now), or, where the artifact has the
// sources' digests, by content: a byte-identical copy of a training log
// under another name or on another machine is one too (its size is
// compared first, so other logs are not read).
func NamesSource(a *models.Artifact, path string) bool {
	if path == "-" {
		// Standard input is no particular log: a router trained on one
		// stream says nothing about the next.
		return false
	}
	abs, _ := filepath.Abs(path)
	for _, s := range a.Training.Sources {
		if s == path {
			return true
		}
		if sa, err := filepath.Abs(s); err == nil && abs != "" && sa == abs {
			return true
		}
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	// Logs match by content (the same bytes share it; so does the same
	// log compressed one way and not the other). The file's digest is
	// taken once, and only where a size could match: a gzip file's content
	// size is known only once it is read.
	gz := datasets.IsCompressed(path)
	var digest *models.SourceDigest
	for _, d := range a.Training.SourceDigests {
		cb, cs := d.Content()
		if !gz && cb != st.Size() {
			continue
		}
		if digest == nil {
			got, err := digestOnce(path, st)
			if err != nil {
				return false
			}
			digest = &got
		}
		if b, h := digest.Content(); b == cb && h == cs {
			return true
		}
	}
	return false
}

// digests remembers the digests NamesSource computed, by path, with the
// size and modification time they were taken at: one command asks about
// the same log several times (the in-sample screen, then
// ChampionTrainedOn; retrain's gate, then its message), and a log of
// gigabytes should be read once.
var digests struct {
	sync.Mutex
	m map[string]fileDigest
}

type fileDigest struct {
	size int64
	mod  time.Time
	d    models.SourceDigest
}

// digestOnce is DigestFile(path), from memory when st says the file is
// unchanged since it was taken.
func digestOnce(path string, st os.FileInfo) (models.SourceDigest, error) {
	digests.Lock()
	defer digests.Unlock()
	if f, ok := digests.m[path]; ok && f.size == st.Size() && f.mod.Equal(st.ModTime()) {
		return f.d, nil
	}
	d, err := DigestFile(path)
	if err != nil {
		return d, err
	}
	if digests.m == nil {
		digests.m = map[string]fileDigest{}
	}
	digests.m[path] = fileDigest{size: st.Size(), mod: st.ModTime(), d: d}
	return d, nil
}

// DigestFile is the size and SHA-256 of the file at path, as an artifact
// records its training logs (Fingerprint.SourceDigests), and for a gzip
// file those of its content too.
func DigestFile(path string) (models.SourceDigest, error) {
	f, err := os.Open(path)
	if err != nil {
		return models.SourceDigest{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return models.SourceDigest{}, fmt.Errorf("digest %s: %w", path, err)
	}
	d := models.SourceDigest{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	if !datasets.IsCompressed(path) {
		return d, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return d, fmt.Errorf("digest %s: %w", path, err)
	}
	// Read as the log readers read it, so a file they take (members in
	// turn, zero padding after the last) has the digest of its content.
	zr, err := gunzip.NewReader(f)
	if err != nil {
		return d, nil // not a gzip stream after all: its bytes are its content
	}
	ch := sha256.New()
	cn, err := io.Copy(ch, zr)
	if err != nil {
		return d, nil // damaged: reading it as a log fails, with a message
	}
	d.ContentBytes, d.ContentSHA256 = cn, hex.EncodeToString(ch.Sum(nil))
	return d, nil
}

// DigestFiles digests each of paths that is a regular file (DigestFile);
// a pipe (--data <(zcat log.gz)) cannot be read twice and is left out.
func DigestFiles(paths []string) ([]models.SourceDigest, error) {
	var out []models.SourceDigest
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		d, err := DigestFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ChampionTrainedOn returns which record ids the champion was trained on,
// as far as its artifact tells: for a router made by retrain, every
// labelled record up to the newest it trained on (and every untimed
// one; an id is as old as its earliest copy in any file), which also
// counts as trained the records it was judged on before that time: the
// safe side, since the gate must never judge on a record
// the champion fitted (a router made before trained_through was
// recorded: every record before its held-out period);
// for one made by train, the ids of the files it names as sources that
// its id-hash holdout did not keep out. files are the logs given to
// retrain by path (paths compared as given and as absolute paths); when
// none of them is a named source, the base logs (base) are taken to be
// the champion's, as the loop's commands use them. An artifact that names
// no source (made by the library, not the command) excludes nothing. matched says which
// files were taken as the champion's sources.
func ChampionTrainedOn(champion *models.Artifact, merged []datasets.Record, files map[string][]datasets.Record, base []string) (trained func(id string) bool, matched []string) {
	tr := champion.Training
	if len(tr.Sources) == 0 && tr.HeldSince.IsZero() && tr.TrainedThrough.IsZero() {
		return nil, nil // the artifact does not say
	}
	if !tr.HeldSince.IsZero() || !tr.TrainedThrough.IsZero() {
		// Each id's earliest time over every copy given, untimed (zero)
		// first: the merged record takes the time of its decision, so a
		// base record the champion trained on (untimed) whose id comes
		// back in new traffic, or a decision seen again later on another
		// server, would otherwise look new and judge the champion on a
		// record it fitted.
		ts := make(map[string]time.Time, len(merged))
		note := func(r *datasets.Record) {
			if t, ok := ts[r.ID]; !ok || (!t.IsZero() && (r.TS.IsZero() || r.TS.Before(t))) {
				ts[r.ID] = r.TS
			}
		}
		for i := range merged {
			note(&merged[i])
		}
		for _, recs := range files {
			for i := range recs {
				note(&recs[i])
			}
		}
		return func(id string) bool {
			t, ok := ts[id]
			if !ok {
				return false
			}
			if !tr.TrainedThrough.IsZero() {
				return t.IsZero() || !t.After(tr.TrainedThrough)
			}
			return t.IsZero() || t.Before(tr.HeldSince)
		}, nil
	}
	for p := range files {
		if NamesSource(champion, p) {
			matched = append(matched, p)
		}
	}
	if len(matched) == 0 {
		matched = base
	}
	slices.Sort(matched)
	ids := map[string]bool{}
	for _, p := range matched {
		for i := range files[p] {
			id := files[p][i].ID
			if !datasets.InHoldout(id, tr.Seed, tr.HoldoutShare) {
				ids[id] = true
			}
		}
	}
	return func(id string) bool { return ids[id] }, matched
}

// ChampionHeldOut returns which record ids the champion's own id-hash
// holdout kept out of its training: for a router made by `train
// --holdout`, the ids of the files it was trained on (matched, as
// ChampionTrainedOn returned them) in its held-out share. nil when it kept
// none out, or when it was made by retrain (its held-out records are
// counted by time, ChampionTrainedOn). These are the records the champion
// was held out to be judged on.
func ChampionHeldOut(champion *models.Artifact, files map[string][]datasets.Record, matched []string) func(id string) bool {
	tr := champion.Training
	if !(tr.HoldoutShare > 0) || !tr.HeldSince.IsZero() || !tr.TrainedThrough.IsZero() || len(tr.Sources) == 0 {
		return nil
	}
	ids := map[string]bool{}
	for _, p := range matched {
		for i := range files[p] {
			if id := files[p][i].ID; datasets.InHoldout(id, tr.Seed, tr.HoldoutShare) {
				ids[id] = true
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return func(id string) bool { return ids[id] }
}

// absentTier returns the error for records in which one of the champion's
// tiers never appears, naming the models that do (a log of other tiers,
// or a champion whose tier was renamed): "no record has both scores"
// alone would not say why.
func absentTier(recs []datasets.Record, tiers models.Tiers) error {
	seen := map[string]int{}
	for i := range recs {
		for m := range recs[i].Outcomes {
			seen[m]++
		}
	}
	for _, t := range []struct{ role, name string }{{"fast", tiers.Fast}, {"strong", tiers.Strong}} {
		if seen[t.name] > 0 {
			continue
		}
		return fmt.Errorf("the champion's %s tier %q appears in no record; the records' models are %s. Give this champion's logs, or start a loop on those tiers with triage train", t.role, t.name, datasets.ModelList(seen))
	}
	return nil
}
