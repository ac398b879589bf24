package retrain

import (
	"github.com/triage-router/triage/internal/racetest"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tierSet is a held-out set built from counts of the four kinds of
// request with 0/1 scores: the strong tier alone right (strongWins), the
// fast tier alone right (fastWins), and the rest split between both right
// and both wrong. fastWinWeight is the weight of a fastWins request (the
// others weigh 1; 0 means no weights), as inverse propensity weights
// might give.
type tierSet struct {
	n, strongWins, fastWins int
	fastWinWeight           float64
}

// build returns the labels, scores and weights in a shuffled order, and
// two routers: good ranks the strong-wins requests high and the
// fast-wins ones low, with enough noise that the kinds overlap; noise is
// a random score.
func (ts tierSet) build(seed uint64) (good, noise, y, weak, strong, w []float64) {
	r := rand.New(rand.NewPCG(seed, 17))
	for i := range ts.n {
		var f, s float64
		switch {
		case i < ts.strongWins:
			s = 1
		case i < ts.strongWins+ts.fastWins:
			f = 1
		case i%2 == 0:
			f, s = 1, 1
		}
		weak, strong, y = append(weak, f), append(strong, s), append(y, b2f(s > f))
		wi := 1.0
		if f > s && ts.fastWinWeight > 0 {
			wi = ts.fastWinWeight
		}
		w = append(w, wi)
		good = append(good, 0.5+0.25*(s-f)+0.5*(r.Float64()-0.5))
		noise = append(noise, r.Float64())
	}
	r.Shuffle(ts.n, func(i, j int) {
		for _, s := range [][]float64{good, noise, y, weak, strong, w} {
			s[i], s[j] = s[j], s[i]
		}
	})
	if ts.fastWinWeight == 0 {
		w = nil
	}
	return good, noise, y, weak, strong, w
}

// numberRE finds the numbers in a verdict.
var numberRE = regexp.MustCompile(`[-+]?(\d+\.\d+|NaN|Inf)`)

// TestGateWhenTiersTie checks the apgr gate on held-out sets where the
// tiers are equally accurate (APGR's denominator ~0, where the old gate
// printed APGRs like −71 and −80) and where they are not: the verdict is
// finite and promotes the router that keeps the better answers.
func TestGateWhenTiersTie(t *testing.T) {
	racetest.SkipSlow(t)
	const n = 1000
	tests := []struct {
		name          string
		set           tierSet
		betterWins    bool // the challenger is good and the champion noise (else the reverse)
		wantUndefined bool // APGR is reported undefined
	}{
		{"with tiers that tie exactly a better challenger is promoted", tierSet{n: n, strongWins: 150, fastWins: 150}, true, true},
		{"with tiers that tie exactly a worse challenger is refused", tierSet{n: n, strongWins: 150, fastWins: 150}, false, true},
		{"with tiers 0.002 apart a better challenger is promoted", tierSet{n: n, strongWins: 150, fastWins: 148}, true, true},
		{"with tiers 0.002 apart a worse challenger is refused", tierSet{n: n, strongWins: 150, fastWins: 148}, false, true},
		{"with tiers that tie only under the weights a better challenger is promoted", tierSet{n: n, strongWins: 200, fastWins: 100, fastWinWeight: 2}, true, true},
		{"with tiers that tie only under the weights a worse challenger is refused", tierSet{n: n, strongWins: 200, fastWins: 100, fastWinWeight: 2}, false, true},
		{"with a stronger strong tier a better challenger is promoted", tierSet{n: n, strongWins: 250, fastWins: 50}, true, false},
		{"with a stronger strong tier a worse challenger is refused", tierSet{n: n, strongWins: 250, fastWins: 50}, false, false},
		{"with a weaker strong tier a better challenger is promoted though its APGR is lower", tierSet{n: n, strongWins: 50, fastWins: 250}, true, false},
		{"with a weaker strong tier a worse challenger is refused though its APGR is higher", tierSet{n: n, strongWins: 50, fastWins: 250}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good, noise, y, weak, strong, w := tt.set.build(5)
			champ, chall := good, noise
			if tt.betterWins {
				champ, chall = noise, good
			}
			c, err := Compare(champ, chall, y, weak, strong, w, CompareOptions{Metric: MetricAPGR, Margin: DefaultMargin, Bootstrap: BootstrapOptions{Resamples: 300}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("gap %v; %s", c.Area.Gap, c.Verdict)
			if c.Promote != tt.betterWins {
				t.Errorf("promote = %v, want %v: %s", c.Promote, tt.betterWins, c.Verdict)
			}
			// Sensible and finite: every figure in the verdict is a score
			// difference or an area, so it lies in [-1, 1].
			for _, s := range numberRE.FindAllString(c.Verdict, -1) {
				if v, err := strconv.ParseFloat(s, 64); err != nil || math.Abs(v) > 1 {
					t.Errorf("verdict holds %s, want finite figures within [-1, 1]: %s", s, c.Verdict)
				}
			}
			a := c.Area
			for name, iv := range map[string]Interval{"champion area": a.Champion, "challenger area": a.Challenger, "area gain": a.Gain, "gap": a.Gap, "gate gain": c.GateGain} {
				if !(iv.Lo <= iv.Estimate && iv.Estimate <= iv.Hi) || math.Abs(iv.Lo) > 1 || math.Abs(iv.Hi) > 1 {
					t.Errorf("%s %v: want a finite interval that holds its estimate", name, iv)
				}
			}
			// The paired interval resolves the difference between a
			// ranking router and noise, tie or no tie.
			if got := a.Gain; (got.Lo > 0) != tt.betterWins || (got.Hi < 0) == tt.betterWins {
				t.Errorf("area gain %v, want an interval on the %v side of 0", got, map[bool]string{true: "positive", false: "negative"}[tt.betterWins])
			}
			if got, want := c.GateMargin, DefaultMargin*a.Disagreement.Estimate; math.Abs(got-want) > 1e-15 {
				t.Errorf("gate margin %v, want %v (margin × mean |strong − fast|)", got, want)
			}
			g := c.Of(MetricAPGR)
			if got := g.Undefined != ""; got != tt.wantUndefined {
				t.Fatalf("apgr undefined = %v (%q), want %v; apgr %v", got, g.Undefined, tt.wantUndefined, g)
			}
			if tt.wantUndefined {
				if old := WeightedAPGR(good, weak, strong, w); !math.IsNaN(old) && math.Abs(old) <= 1 {
					t.Errorf("WeightedAPGR of the good router is %v; the case does not reproduce the blow-up it is meant to", old)
				}
				if !math.IsNaN(g.Champion.Estimate) || !strings.Contains(c.Verdict, "apgr undefined") {
					t.Errorf("apgr %v, verdict %q; want it reported as undefined", g, c.Verdict)
				}
				return
			}
			// Where APGR is defined, the area gain is its gain times the
			// shared gap (hence the same sign when the gap is positive).
			if got, want := a.Gain.Estimate, g.Gain.Estimate*a.Gap.Estimate; math.Abs(got-want) > 1e-12 {
				t.Errorf("area gain %v, want APGR gain %v × gap %v = %v", got, g.Gain.Estimate, a.Gap.Estimate, want)
			}
		})
	}
	t.Run("when the strong tier never scores below the fast one the margin is APGR's", func(t *testing.T) {
		_, noise, y, weak, strong, w := tierSet{n: n, strongWins: 250}.build(6)
		c, err := Compare(noise, noise, y, weak, strong, w, CompareOptions{Margin: 0.05, Bootstrap: BootstrapOptions{Resamples: 50}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.GateMargin, 0.05*c.Area.Gap.Estimate; math.Abs(got-want) > 1e-15 {
			t.Errorf("gate margin %v, want margin × gap = %v", got, want)
		}
	})
	t.Run("tiers that agree on every request are an error for apgr, not a verdict", func(t *testing.T) {
		good, noise, y, weak, _, _ := tierSet{n: 100}.build(7)
		_, err := Compare(good, noise, y, weak, weak, nil, CompareOptions{Bootstrap: BootstrapOptions{Resamples: 20}})
		if err == nil || !strings.Contains(err.Error(), "routing changes nothing") {
			t.Errorf("err = %v, want one saying routing changes nothing", err)
		}
	})
}

// TestGateStandardErrors checks the gate's allowance for the held-out
// slice's noise: with SE 0 it is the point-estimate gate; with
// DefaultGateSE a challenger whose loss is within the margin plus one
// standard error of the gain (the spread of its paired resamples) is
// promoted and the verdict says the slice cannot tell them apart, while a
// loss beyond that is refused either way.
func TestGateStandardErrors(t *testing.T) {
	const n = 40 // about the explored slice an ε = 0.02 loop judges on
	opts := func(se float64) CompareOptions {
		return CompareOptions{Metric: MetricAPGR, Margin: DefaultMargin, SE: se, Bootstrap: BootstrapOptions{Resamples: 400}}
	}
	var within, beyond int
	for seed := uint64(1); seed <= 60 && (within == 0 || beyond == 0); seed++ {
		good, noise, y, weak, strong := rankingCase(n, seed)
		// A challenger a little worse than the champion: the good ranking
		// with a fifth of the noise mixed in.
		chall := make([]float64, n)
		for i := range chall {
			chall[i] = 0.8*good[i] + 0.2*noise[i]
		}
		point, err := Compare(good, chall, y, weak, strong, nil, opts(0))
		if err != nil {
			t.Fatal(err)
		}
		se, err := Compare(good, chall, y, weak, strong, nil, opts(DefaultGateSE))
		if err != nil {
			t.Fatal(err)
		}
		gain := se.GateGain.Estimate
		if point.GateGain != se.GateGain || point.GateMargin != se.GateMargin {
			t.Fatalf("seed %d: the allowance changed the figures: %+v vs %+v", seed, point.GateGain, se.GateGain)
		}
		// The standard error is the resamples' spread: about a quarter of
		// the 95% interval's width.
		if w := se.GateGain.Hi - se.GateGain.Lo; !(se.GateSE > w/6 && se.GateSE < w/2.5) {
			t.Errorf("seed %d: standard error %.4f for an interval %.4f wide", seed, se.GateSE, w)
		}
		if got, want := se.GateAllowance, se.GateMargin+se.GateSE; math.Abs(got-want) > 1e-12 || point.GateAllowance != point.GateMargin {
			t.Errorf("seed %d: allowance %v (point gate %v), want margin + 1 SE = %v", seed, got, point.GateAllowance, want)
		}
		if point.Promote != (gain >= -point.GateMargin) {
			t.Errorf("seed %d: the point gate promote = %v for gain %.4f and margin %.4f", seed, point.Promote, gain, point.GateMargin)
		}
		switch {
		case gain < -se.GateMargin && gain >= -se.GateAllowance:
			within++
			if point.Promote || !se.Promote || !strings.Contains(se.Verdict, "cannot tell them apart") {
				t.Errorf("seed %d: gain %.4f within the allowance %.4f: point gate promote %v, with the standard error %v (%s)", seed, gain, se.GateAllowance, point.Promote, se.Promote, se.Verdict)
			}
		case gain < -se.GateAllowance:
			beyond++
			if point.Promote || se.Promote || !strings.Contains(se.Verdict, "plus 1 standard error of the 40-request slice") {
				t.Errorf("seed %d: gain %.4f beyond the allowance %.4f: promoted (%s)", seed, gain, se.GateAllowance, se.Verdict)
			}
		}
	}
	t.Logf("losses within the allowance: %d, beyond it: %d", within, beyond)
	if within == 0 || beyond == 0 {
		t.Errorf("no seed gave a loss within the allowance (%d) or beyond it (%d); the case does not test the gate", within, beyond)
	}
	t.Run("a negative number of standard errors is an error", func(t *testing.T) {
		good, noise, y, weak, strong := rankingCase(n, 1)
		if _, err := Compare(good, noise, y, weak, strong, nil, opts(-1)); err == nil {
			t.Error("no error")
		}
	})
}

// TestResolutionWarning checks the warning a retrain prints when its
// held-out slice's noise is several times the margin.
func TestResolutionWarning(t *testing.T) {
	for _, tt := range []struct {
		name           string
		se, margn, ses float64
		want           string
	}{
		{"a slice that resolves the margin says nothing", 0.002, 0.003, 1, ""},
		{"a standard error of twice the margin or less says nothing", 0.006, 0.003, 1, ""},
		{"a noisy slice says how noisy", 0.0135, 0.0026, 1, "standard error 0.0135 is 5.2 times the margin 0.0026, so the gate refuses only losses clearly beyond chance"},
		{"without the allowance the verdict is the draw", 0.0135, 0.0026, 0, "so a verdict on the point estimate is largely the draw"},
		{"a zero margin", 0.001, 0, 1, "standard error 0.0010 is more than twice the margin 0.0000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := resolutionWarning(&Comparison{N: 35, ESS: 35, GateSE: tt.se, GateMargin: tt.margn, GateSEs: tt.ses})
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("warning %q, want %q", got, tt.want)
			}
		})
	}
	if got := resolutionWarning(nil); got != "" {
		t.Errorf("nil comparison: %q", got)
	}
}
