package models

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"

	"github.com/triage-router/triage/classifier"
)

// DifficultyMix is the weight of the chosen scorer's standardised score in
// the router's score; the difficulty view gets the rest. docs/quality.md
// (item 16) has the measurements behind both the view and the weight.
const DifficultyMix = 0.75

// Difficulty is a second view of the strong tier's gain, mixed into the
// score of the scorer the selection chose. One logistic regression learns
// how likely a request is to be answered well at all, from the mean of
// the two tiers' scores (a target with less noise than either tier's
// score or their difference), and each tier's chance of a good answer is a
// one-dimensional logistic curve of that head's logit z:
//
//	P(tier answers well) = σ(A + C·z),  gain(z) = P(strong) − P(fast).
//
// The gain is then a function of one learnt quantity, so it cannot chase
// the noise of the per-pair outcomes the way the other heads can; it is
// wrong in different places from them. On the quality suite the mix moves
// three sets up for every two down, but the mean not at all (docs/quality.md,
// items 16 and 19), so it is an option, not the default.
//
// The router's raw score is
//
//	Mix·(s − ScoreMean)/ScoreSD + (1 − Mix)·(gain(z) − GainMean)/GainSD,
//
// s the chosen scorer's raw score, the means and standard deviations those
// of the training rows' out-of-fold scores; the calibration maps it to
// p_hard like any raw score.
type Difficulty struct {
	Weights Weights `json:"weights"`
	Bias    float64 `json:"bias"`
	L2      float64 `json:"l2"`
	FastA   float64 `json:"fast_a"`
	FastC   float64 `json:"fast_c"`
	StrongA float64 `json:"strong_a"`
	StrongC float64 `json:"strong_c"`

	ScoreMean float64 `json:"score_mean"`
	ScoreSD   float64 `json:"score_sd"`
	GainMean  float64 `json:"gain_mean"`
	GainSD    float64 `json:"gain_sd"`
	Mix       float64 `json:"mix"`
}

// difficultyFormat is the first artifact format with a difficulty view.
const difficultyFormat = 5

// gain is the difficulty view's predicted gain of the strong tier at the
// head's logit z.
func (d *Difficulty) gain(z float64) float64 {
	return sigmoid(d.StrongA+d.StrongC*z) - sigmoid(d.FastA+d.FastC*z)
}

// mix is the router's raw score from the chosen scorer's raw score s and
// the difficulty head's logit z.
func (d *Difficulty) mix(s, z float64) float64 {
	return d.Mix*(s-d.ScoreMean)/d.ScoreSD + (1-d.Mix)*(d.gain(z)-d.GainMean)/d.GainSD
}

// minSD is the smallest spread the view standardises by; below it the
// scores are constant and there is no view (fitDifficulty), and an
// artifact saying otherwise is refused (validate).
const minSD = 1e-12

func (d *Difficulty) validate(dim int) error {
	if len(d.Weights) != dim {
		return fmt.Errorf("difficulty: %d weights for %d features", len(d.Weights), dim)
	}
	if err := checkHead("difficulty.weights", "difficulty.bias", d.Weights, d.Bias, dim); err != nil {
		return err
	}
	for _, v := range []float64{d.L2, d.FastA, d.FastC, d.StrongA, d.StrongC, d.ScoreMean, d.GainMean} {
		if !(math.Abs(v) <= maxParam) {
			return fmt.Errorf("difficulty: a coefficient is %v: not finite, or beyond ±%g", v, float64(maxParam))
		}
	}
	// The spreads divide the scores they standardise: one near zero would
	// overflow them.
	if !(d.ScoreSD >= minSD && d.ScoreSD <= maxParam) || !(d.GainSD >= minSD && d.GainSD <= maxParam) {
		return fmt.Errorf("difficulty: standard deviations %v and %v, want finite and positive (%g to %g)", d.ScoreSD, d.GainSD, minSD, float64(maxParam))
	}
	if !(d.Mix >= 0 && d.Mix <= 1) {
		return fmt.Errorf("difficulty: mix %v, want a value in [0, 1]", d.Mix)
	}
	return nil
}

// fitDifficulty cross-validates and fits the difficulty head on x (the
// training rows, columns as the other heads see them), with the mean of
// the tiers' scores as the target on the rows where both were observed
// (weight w), chooses its L2 on grid by out-of-fold log loss, and fits
// each tier's curve on the head's out-of-fold logits (with that tier's
// weights, so one-sided rows count where their tier ran). mainOOF is the
// chosen scorer's out-of-fold raw score. It returns the view (weights in
// x's columns; the caller maps them to the raw features), the final head
// and the mixed out-of-fold score; a nil view means there was nothing to
// learn (a constant target or a constant score), and the router keeps its
// scorer alone.
func fitDifficulty(x *classifier.Sparse, fast, strong, w, fastW, strongW, mainOOF []float64, folds []int, grid []float64, copts classifier.Options) (*Difficulty, *classifier.Model, []float64, error) {
	n := len(fast)
	t := make([]float64, n)
	for i := range n {
		t[i] = (fast[i] + strong[i]) / 2
	}
	hc, err := cvHead("difficulty", x, t, w, folds, grid, copts)
	if err != nil {
		return nil, nil, nil, err
	}
	if hc.constant {
		return nil, nil, nil, nil
	}
	z := hc.cv.OOF
	// Both tiers' curves are fitted on the same one-column matrix of z.
	one := classifier.NewSparse(1)
	for i := range n {
		one.AppendRowSummed([]int32{0}, []float64{z[i]})
	}
	curve := func(y, wy []float64) (a, c float64, err error) {
		if v, ok := constant(observed(y, wy)); ok {
			// A tier that always (or never) answers well is a flat
			// curve; a fit would chase an infinite intercept.
			p := math.Min(math.Max(v, 1e-4), 1-1e-4)
			return math.Log(p / (1 - p)), 0, nil
		}
		c1 := copts
		c1.L2 = 1e-6
		m, err := classifier.Fit(one, y, wy, c1)
		if err != nil {
			return 0, 0, err
		}
		return m.B, m.W[0], nil
	}
	d := &Difficulty{L2: hc.cv.Best, Mix: DifficultyMix}
	if d.FastA, d.FastC, err = curve(fast, fastW); err != nil {
		return nil, nil, nil, fmt.Errorf("difficulty: fast tier's curve: %w", err)
	}
	if d.StrongA, d.StrongC, err = curve(strong, strongW); err != nil {
		return nil, nil, nil, fmt.Errorf("difficulty: strong tier's curve: %w", err)
	}
	g := make([]float64, n)
	for i := range n {
		g[i] = d.gain(z[i])
	}
	d.ScoreMean, d.ScoreSD = stat.PopMeanStdDev(mainOOF, w)
	d.GainMean, d.GainSD = stat.PopMeanStdDev(g, w)
	if !(d.ScoreSD >= minSD) || !(d.GainSD >= minSD) {
		return nil, nil, nil, nil
	}
	// The mixed out-of-fold score is what the calibration is fitted on, so
	// the curves behind it are fitted out of fold too, like every other
	// score it mixes. Fitted on every row, they take the direction of the
	// view from the outcomes the score is then fitted to; on logs of coin
	// flips that made the mix look better than random (docs/quality.md,
	// item 19).
	mixed := make([]float64, n)
	fw, sw := make([]float64, n), make([]float64, n)
	for f := range slices.Max(folds) + 1 {
		for i := range n {
			fw[i], sw[i] = fastW[i], strongW[i]
			if folds[i] == f {
				fw[i], sw[i] = 0, 0
			}
		}
		c := *d
		if c.FastA, c.FastC, err = curve(fast, fw); err != nil {
			return nil, nil, nil, fmt.Errorf("difficulty: fast tier's curve without fold %d: %w", f, err)
		}
		if c.StrongA, c.StrongC, err = curve(strong, sw); err != nil {
			return nil, nil, nil, fmt.Errorf("difficulty: strong tier's curve without fold %d: %w", f, err)
		}
		for i := range n {
			if folds[i] == f {
				mixed[i] = c.mix(mainOOF[i], z[i])
			}
		}
	}
	c := copts
	c.L2 = d.L2
	m, err := classifier.Fit(x, t, w, c)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("difficulty: final fit: %w", err)
	}
	return d, m, mixed, nil
}
