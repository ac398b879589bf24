package retrain

import (
	"fmt"
	"math"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/models"
)

// ImputeMode says which missing tiers retrain imputes (imputeOtherTier).
type ImputeMode string

// The imputation modes.
const (
	// ImputeFast gives a strong-only record (an escalation) a soft fast
	// target from its strong score: the default.
	ImputeFast ImputeMode = "fast"
	// ImputeBoth also gives a fast-only record a soft strong target from
	// its fast score. It lowered test APGR on every MMLU split tried
	// (docs/loop.md §4), so it is not the default.
	ImputeBoth ImputeMode = "both"
	// ImputeNone imputes nothing: each head learns from its own tier's
	// outcomes only.
	ImputeNone ImputeMode = "none"
)

// DefaultImpute is the imputation retrain uses unless told.
const DefaultImpute = ImputeFast

// ParseImputeMode checks an --impute value.
func ParseImputeMode(s string) (ImputeMode, error) {
	switch m := ImputeMode(s); m {
	case ImputeFast, ImputeBoth, ImputeNone:
		return m, nil
	case "":
		return DefaultImpute, nil
	}
	return "", fmt.Errorf("impute mode %q is not known; want fast, both or none", s)
}

// DefaultImputeWeight is the weight of an imputed (soft) target in its
// head's fit, against 1 for an observed score. docs/loop.md §4 has the
// replay that chose it.
const DefaultImputeWeight = 1.0

// imputeMinPaired is the fewest paired training rows the imputation
// models are fitted on; with fewer, retrain does not impute.
const imputeMinPaired = 50

// imputeL2 is the imputation models' ridge penalty: they have five
// weights and are fitted on hundreds to thousands of rows, so it only
// keeps a separable log (every fast-correct request strong-correct, say)
// from sending a weight to infinity.
const imputeL2 = 1e-3

// ImputeStats says what the imputation did.
type ImputeStats struct {
	// Strong and Fast count the one-sided training rows that got an
	// imputed strong (fast) target; Paired the rows the models were
	// fitted on.
	Strong, Fast, Paired int
	// StrongGivenFast is the models' mean P(strong correct) on the paired
	// rows where the fast score was 1 and where it was 0 (and
	// FastGivenStrong the other way round): how much one tier's outcome
	// says about the other's.
	StrongGivenFast, FastGivenStrong [2]float64
}

// imputeOtherTier gives one-sided training rows a soft target for the
// tier that did not run, from the tier that did: P(y_f = 1 | y_s, x) for a
// strong-only row (an escalation) and, with ImputeBoth, P(y_s = 1 | y_f, x)
// for a fast-only one; each a small logistic model fitted on the paired
// training rows with the observed score, the champion's two head logits at
// x and their products as features.
//
// Why it is valid: which tiers ran depends on the request's features only
// (p_hard and the exploration coin), so given x the outcomes are
// independent of the selection, and the conditional of one tier's outcome
// given the other's and x is the same on the paired rows (base log,
// explored and speculated requests) as on the one-sided ones. A soft
// target whose mean given x is P(y_f = 1 | x) keeps the head's target
// unbiased while it carries what the observed tier says about this very
// request: on MMLU the fast tier was right on about 78% of the questions
// the strong tier got right and 27% of those it got wrong. The fast head
// then learns the escalated (hard) requests from each of them, not only
// from the base log and the ~2% explored. Imputing the strong tier the
// same way lowered test APGR (docs/loop.md §4): the strong head learns to
// track the fast one, as the conditional has only the champion's logits
// to vary with x. A posted score always wins: only a missing tier is
// imputed, and never from a soft (confidence) target.
//
// The rows' targets and head weights are changed in place (weight w for
// an imputed target); imputed rows stay unpaired (StrongSoft, FastSoft).
func imputeOtherTier(champion *models.Artifact, ex []models.Example, mode ImputeMode, w float64) (ImputeStats, error) {
	var st ImputeStats
	if mode == ImputeNone {
		return st, nil
	}
	r, err := models.NewRouter(champion)
	if err != nil {
		return st, fmt.Errorf("impute: champion: %w", err)
	}
	n := len(ex)
	zf, zs := make([]float64, n), make([]float64, n)
	for i := range ex {
		f, s, ok := r.TierScores(ex[i].Input)
		if !ok {
			return st, nil // a label or gain champion has no per-tier heads
		}
		zf[i], zs[i] = logitClamp(f), logitClamp(s)
	}
	observed := func(i int) (fast, strong bool) {
		return !math.IsNaN(ex[i].Fast) && !ex[i].FastSoft, !math.IsNaN(ex[i].Strong) && !ex[i].StrongSoft
	}
	var pairedRows []int
	for i := range ex {
		if f, s := observed(i); f && s {
			pairedRows = append(pairedRows, i)
		}
	}
	st.Paired = len(pairedRows)
	if len(pairedRows) < imputeMinPaired {
		return st, nil
	}
	// row is the imputation model's features: the observed score y, the
	// champion's logits at x, and y times each (so the observed outcome
	// can say more or less depending on how hard the request looks).
	row := func(y float64, i int) []float64 {
		return []float64{y, zs[i], zf[i], y * zs[i], y * zf[i]}
	}
	fit := func(given func(int) float64, target func(int) float64) (*classifier.Model, error) {
		x := classifier.NewSparse(5)
		y := make([]float64, len(pairedRows))
		wt := make([]float64, len(pairedRows))
		idx := []int32{0, 1, 2, 3, 4}
		for k, i := range pairedRows {
			x.AppendRow(idx, row(given(i), i))
			y[k], wt[k] = target(i), 1
		}
		return classifier.Fit(x, y, wt, classifier.Options{L2: imputeL2})
	}
	fastOf := func(i int) float64 { return ex[i].Fast }
	strongOf := func(i int) float64 { return ex[i].Strong }
	sGivenF, err := fit(fastOf, strongOf)
	if err != nil {
		return st, fmt.Errorf("impute: P(strong | fast, x): %w", err)
	}
	fGivenS, err := fit(strongOf, fastOf)
	if err != nil {
		return st, fmt.Errorf("impute: P(fast | strong, x): %w", err)
	}
	predict := func(m *classifier.Model, y float64, i int) float64 {
		v := row(y, i)
		z := m.B
		for j, x := range v {
			z += m.W[j] * x
		}
		return 1 / (1 + math.Exp(-z))
	}
	var sum, cnt [2][2]float64
	for _, i := range pairedRows {
		b := int(math.Round(ex[i].Fast))
		sum[0][b] += predict(sGivenF, ex[i].Fast, i)
		cnt[0][b]++
		b = int(math.Round(ex[i].Strong))
		sum[1][b] += predict(fGivenS, ex[i].Strong, i)
		cnt[1][b]++
	}
	for b := range 2 {
		st.StrongGivenFast[b] = sum[0][b] / cnt[0][b]
		st.FastGivenStrong[b] = sum[1][b] / cnt[1][b]
	}
	for i := range ex {
		f, s := observed(i)
		switch {
		case f && !s && math.IsNaN(ex[i].Strong) && mode == ImputeBoth:
			ex[i].Strong, ex[i].StrongSoft, ex[i].StrongWeight = predict(sGivenF, ex[i].Fast, i), true, w
			st.Strong++
		case s && !f && math.IsNaN(ex[i].Fast):
			ex[i].Fast, ex[i].FastSoft, ex[i].FastWeight = predict(fGivenS, ex[i].Strong, i), true, w
			st.Fast++
		}
	}
	return st, nil
}

// logitClamp is the logit of p, kept finite.
func logitClamp(p float64) float64 {
	p = math.Min(math.Max(p, 1e-6), 1-1e-6)
	return math.Log(p / (1 - p))
}
