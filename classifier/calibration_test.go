package classifier

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFitPlattMatchesSklearn(t *testing.T) {
	g := loadGolden(t)
	c := g.Calibration
	tests := []struct {
		name string
		w    []float64
		ref  plattRef
	}{
		{"unweighted", nil, c.Platt},
		{"weighted", c.W, c.PlattWeighted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FitPlatt(c.Z, c.Y, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != CalibPlatt {
				t.Errorf("method = %q, want %q", got.Method, CalibPlatt)
			}
			// scipy BFGS polished to gtol 1e-12 on sklearn's objective.
			assertClose(t, "A", got.A, tc.ref.A, 1e-7)
			assertClose(t, "B", got.B, tc.ref.B, 1e-7)
			// sklearn's own fmin_bfgs result stops at gtol 1e-5.
			assertClose(t, "A vs sklearn", got.A, tc.ref.SklearnA, 1e-5)
			assertClose(t, "B vs sklearn", got.B, tc.ref.SklearnB, 1e-5)
		})
	}
}

// levels returns the distinct values of ys (sorted input), merging values
// within 1e-12.
func levels(ys []float64) []float64 {
	var out []float64
	for _, v := range ys {
		if len(out) == 0 || v-out[len(out)-1] > 1e-12 {
			out = append(out, v)
		}
	}
	return out
}

func TestFitIsotonicMatchesSklearn(t *testing.T) {
	g := loadGolden(t)
	c := g.Calibration
	tests := []struct {
		name string
		w    []float64
		want []float64
	}{
		{"unweighted", nil, c.IsotonicLevels},
		{"weighted", c.W, c.IsotonicLevelsWeighted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FitIsotonic(c.Z, c.Y, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			// sklearn IsotonicRegression's fitted values are the PAV block
			// means; rounded to 12 digits by the generator.
			assertSliceClose(t, "isotonic levels", levels(got.Y), tc.want, 1e-11)
		})
	}
}

func TestFitIsotonicBlocks(t *testing.T) {
	tests := []struct {
		name    string
		z, y, w []float64
		want    Calibration
	}{
		{"one violation pooled", []float64{1, 2, 3, 4}, []float64{1, 0, 1, 1}, nil,
			Calibration{Method: CalibIsotonic, X: []float64{1.5, 3, 4}, Y: []float64{0.5, 1, 1}}},
		{"weights move the block centre and mean", []float64{1, 2, 3}, []float64{1, 0, 1}, []float64{3, 1, 1},
			Calibration{Method: CalibIsotonic, X: []float64{1.25, 3}, Y: []float64{0.75, 1}}},
		{"equal scores pooled first", []float64{2, 1, 1}, []float64{1, 1, 0}, nil,
			Calibration{Method: CalibIsotonic, X: []float64{1, 2}, Y: []float64{0.5, 1}}},
		{"zero-weight points ignored", []float64{1, 2, 3}, []float64{0, 1, 0}, []float64{1, 0, 1},
			// Equal neighbours stay separate knots: PAV pools only violators.
			Calibration{Method: CalibIsotonic, X: []float64{1, 3}, Y: []float64{0, 0}}},
		{"unsorted input", []float64{3, 1, 2}, []float64{1, 0, 0.5}, nil,
			Calibration{Method: CalibIsotonic, X: []float64{1, 2, 3}, Y: []float64{0, 0.5, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FitIsotonic(tc.z, tc.y, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestIsotonicApply(t *testing.T) {
	c := Calibration{Method: CalibIsotonic, X: []float64{-1, 0, 2}, Y: []float64{0, 0.5, 1}}
	// The interpolated values, to within the tie-break term (ProbEps/2)
	// and the clamp to [2·ProbEps, 1−2·ProbEps].
	tests := []struct {
		z, want float64
	}{
		{-5, ProbEps},     // flat below the first knot, then clamped
		{-1, ProbEps},     // first knot
		{-0.5, 0.25},      // halfway between knots
		{0, 0.5},          // on a knot
		{1.5, 0.875},      // 3/4 of the way from 0.5 to 1
		{2, 1 - ProbEps},  // last knot, clamped
		{99, 1 - ProbEps}, // beyond
	}
	for _, tc := range tests {
		got := c.Apply(tc.z)
		if !near(got, tc.want, 1.5*ProbEps) || got < ProbEps || got > 1-ProbEps {
			t.Errorf("Apply(%v) = %v, want %v within 1.5·ProbEps, inside [ProbEps, 1−ProbEps]", tc.z, got, tc.want)
		}
	}
	if got := c.Apply(math.NaN()); !math.IsNaN(got) {
		t.Errorf("Apply(NaN) = %v, want NaN", got)
	}
	one := Calibration{Method: CalibIsotonic, X: []float64{3}, Y: []float64{0.3}}
	if got := one.Apply(-10); !near(got, 0.3, ProbEps) {
		t.Errorf("single-knot Apply = %v, want 0.3 within ProbEps", got)
	}
}

// A router ranks requests by p_hard, so the calibration must not tie
// scores the raw model told apart: beyond the end knots, across knots with
// the same probability, and where the clamp would flatten it.
func TestIsotonicKeepsTheOrder(t *testing.T) {
	c := Calibration{Method: CalibIsotonic, X: []float64{-1, 0, 0.5, 2}, Y: []float64{0, 0.4, 0.4, 1}}
	prev := math.Inf(-1)
	for k := range 2001 {
		z := -4 + 8*float64(k)/2000
		p := c.Apply(z)
		if !(p > prev) {
			t.Fatalf("Apply(%v) = %v, not above Apply(%v) = %v", z, p, z-8.0/2000, prev)
		}
		if p < ProbEps || p > 1-ProbEps {
			t.Fatalf("Apply(%v) = %v, outside [ProbEps, 1−ProbEps]", z, p)
		}
		prev = p
	}
}

func TestIsotonicIsMonotone(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 2000
	z, y, w := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range z {
		z[i] = rng.NormFloat64() * 3
		// Noisy and locally non-monotone truth.
		if rng.Float64() < Sigmoid(z[i]+math.Sin(3*z[i])) {
			y[i] = 1
		}
		w[i] = rng.Float64() * 2
	}
	c, err := FitIsotonic(z, y, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	prev := 0.0
	for k := range 4001 {
		x := -12 + 24*float64(k)/4000
		p := c.Apply(x)
		if p < prev {
			t.Fatalf("Apply(%v) = %v is below Apply at the previous point, %v", x, p, prev)
		}
		prev = p
	}
}

// calibrationData draws z ~ N(0, 2) and y ~ Bernoulli(σ(1.7 z − 0.6)).
func calibrationData(n int, seed uint64) (z, y []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	z, y = make([]float64, n), make([]float64, n)
	for i := range z {
		z[i] = rng.NormFloat64() * 2
		if rng.Float64() < Sigmoid(1.7*z[i]-0.6) {
			y[i] = 1
		}
	}
	return z, y
}

func TestCalibrationIsReliable(t *testing.T) {
	zFit, yFit := calibrationData(20000, 1)
	zTest, yTest := calibrationData(20000, 2)
	platt, err := FitPlatt(zFit, yFit, nil)
	if err != nil {
		t.Fatal(err)
	}
	iso, err := FitIsotonic(zFit, yFit, nil)
	if err != nil {
		t.Fatal(err)
	}
	ece := func(c Calibration) float64 {
		p := make([]float64, len(zTest))
		for i, v := range zTest {
			p[i] = c.Apply(v)
		}
		return ECE(p, yTest, 10)
	}
	// The raw logit is off by a slope of 1.7 and a shift of −0.6, so
	// σ(z) is visibly miscalibrated; both fits should remove that, down to
	// sampling noise (≈0.01 for 20,000 points in 10 bins).
	if got := ece(Identity()); got < 0.03 {
		t.Fatalf("identity ECE = %v; the test data should be miscalibrated", got)
	}
	if got := ece(platt); got > 0.015 {
		t.Errorf("platt ECE = %v, want <= 0.015", got)
	}
	if got := ece(iso); got > 0.02 {
		t.Errorf("isotonic ECE = %v, want <= 0.02", got)
	}
	// Platt's model is the truth here: it recovers the slope and shift.
	if math.Abs(platt.A-1.7) > 0.1 || math.Abs(platt.B+0.6) > 0.1 {
		t.Errorf("platt A, B = %v, %v; want about 1.7, -0.6", platt.A, platt.B)
	}
}

func TestChooseCalibration(t *testing.T) {
	t.Run("platt wins when the truth is a sigmoid and data is scarce", func(t *testing.T) {
		zf, yf := calibrationData(200, 3)
		zh, yh := calibrationData(5000, 4)
		best, pl, il, err := ChooseCalibration(zf, yf, nil, zh, yh, nil)
		if err != nil {
			t.Fatal(err)
		}
		if best.Method != CalibPlatt || !(pl < il) {
			t.Errorf("chose %s with losses platt %v isotonic %v; want platt, lower", best.Method, pl, il)
		}
		// The reported loss is the held-out log loss of Apply.
		p := make([]float64, len(zh))
		for i, v := range zh {
			p[i] = best.Apply(v)
		}
		assertClose(t, "platt held-out loss", pl, LogLoss(p, yh, nil), 1e-12)
	})
	t.Run("isotonic wins on a step-shaped truth", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(8, 9))
		gen := func(n int) (z, y []float64) {
			z, y = make([]float64, n), make([]float64, n)
			for i := range z {
				z[i] = rng.NormFloat64()
				q := 0.1
				if z[i] > 0.5 {
					q = 0.9
				}
				if rng.Float64() < q {
					y[i] = 1
				}
			}
			return z, y
		}
		zf, yf := gen(5000)
		zh, yh := gen(5000)
		best, pl, il, err := ChooseCalibration(zf, yf, nil, zh, yh, nil)
		if err != nil {
			t.Fatal(err)
		}
		if best.Method != CalibIsotonic || !(il < pl) {
			t.Errorf("chose %s with losses platt %v isotonic %v; want isotonic, lower", best.Method, pl, il)
		}
	})
	t.Run("bad held-out data is an error", func(t *testing.T) {
		zf, yf := calibrationData(50, 3)
		if _, _, _, err := ChooseCalibration(zf, yf, nil, []float64{math.NaN()}, []float64{1}, nil); err == nil {
			t.Error("NaN held-out score gave no error")
		}
	})
}

func TestCalibrationFitsRejectBadInput(t *testing.T) {
	tests := []struct {
		name    string
		z, y, w []float64
		wantErr string
	}{
		{"no points", nil, nil, nil, "no points"},
		{"NaN score", []float64{math.NaN()}, []float64{1}, nil, "score of point 0 is NaN"},
		{"infinite score", []float64{math.Inf(-1)}, []float64{1}, nil, "score of point 0 is -Inf"},
		{"label out of range", []float64{1}, []float64{-0.5}, nil, "label of point 0"},
		{"NaN weight", []float64{1}, []float64{1}, []float64{math.NaN()}, "weight of point 0"},
		{"negative weight", []float64{1, 2}, []float64{1, 0}, []float64{1, -1}, "weight of point 1"},
		{"zero total weight", []float64{1, 2}, []float64{1, 0}, []float64{0, 0}, "weights sum to 0"},
	}
	for _, tc := range tests {
		for name, fit := range map[string]func(z, y, w []float64) (Calibration, error){"platt": FitPlatt, "isotonic": FitIsotonic} {
			t.Run(name+" with "+tc.name, func(t *testing.T) {
				_, err := fit(tc.z, tc.y, tc.w)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
				}
			})
		}
	}
}

func TestCalibrationValidate(t *testing.T) {
	tests := []struct {
		name    string
		c       Calibration
		wantErr string // "" = valid
	}{
		{"identity", Identity(), ""},
		{"platt", Calibration{Method: CalibPlatt, A: 1.2, B: -0.3}, ""},
		{"isotonic", Calibration{Method: CalibIsotonic, X: []float64{0, 1}, Y: []float64{0.2, 0.2}}, ""},
		{"empty method", Calibration{}, "method is empty"},
		{"unknown method", Calibration{Method: "beta"}, `"beta"`},
		{"platt with NaN slope", Calibration{Method: CalibPlatt, A: math.NaN()}, "finite"},
		{"isotonic without knots", Calibration{Method: CalibIsotonic}, "0 knots"},
		{"isotonic lengths differ", Calibration{Method: CalibIsotonic, X: []float64{0, 1}, Y: []float64{0.5}}, "2 knots x and 1 values"},
		{"isotonic knots repeat", Calibration{Method: CalibIsotonic, X: []float64{1, 1}, Y: []float64{0, 1}}, "knots must increase"},
		{"isotonic values decrease", Calibration{Method: CalibIsotonic, X: []float64{0, 1}, Y: []float64{0.6, 0.4}}, "must not decrease"},
		{"isotonic value above one", Calibration{Method: CalibIsotonic, X: []float64{0}, Y: []float64{1.5}}, "[0,1]"},
		{"isotonic infinite knot", Calibration{Method: CalibIsotonic, X: []float64{math.Inf(1)}, Y: []float64{1}}, "finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCalibrationJSONRoundTrip(t *testing.T) {
	for _, c := range []Calibration{
		{Method: CalibPlatt, A: 1.5, B: -0.25},
		{Method: CalibIsotonic, X: []float64{-1, 0.5}, Y: []float64{0.1, 0.9}},
		Identity(),
	} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Calibration
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s round-tripped to %+v, want %+v", b, back, c)
		}
	}
	b, _ := json.Marshal(Calibration{Method: CalibPlatt, A: 2, B: 1})
	if got, want := string(b), `{"method":"platt","a":2,"b":1}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestApplyAllocatesNothing(t *testing.T) {
	for _, c := range []Calibration{
		{Method: CalibPlatt, A: 1.5, B: -0.25},
		{Method: CalibIsotonic, X: []float64{-1, 0, 0.5, 2}, Y: []float64{0.1, 0.2, 0.5, 0.9}},
		Identity(),
	} {
		var p float64
		z := 0.3
		if allocs := testing.AllocsPerRun(100, func() { p = c.Apply(z) }); allocs != 0 {
			t.Errorf("%s Apply allocates %v times per call, want 0", c.Method, allocs)
		}
		if !(p > 0 && p < 1) {
			t.Errorf("%s Apply(0.3) = %v, want a probability", c.Method, p)
		}
	}
}

// TestFitPlattStopsAtTheRoundingFloor fits Platt scaling on enough scores
// that the summed gradient cannot get below gtol for rounding, the case
// where FitPlatt stops when Newton stalls: the result must still be the
// optimum, to well within what a probability needs.
func TestFitPlattStopsAtTheRoundingFloor(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 300_000
	z, y := make([]float64, n), make([]float64, n)
	for i := range z {
		z[i] = 2*rng.Float64() - 1 // like the per-tier scorer's gains
		if rng.Float64() < sigmoid(4.7*z[i]-2.3) {
			y[i] = 1
		}
	}
	got, err := FitPlatt(z, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The mean gradient at the result, summed here in pairs (less
	// rounding than FitPlatt's running sum), against the curvature: how
	// far a Newton step from the result would still move A and B.
	npos := 0.0
	for _, v := range y {
		npos += v
	}
	hi, lo := (npos+1)/(npos+2), 1/(n-npos+2)
	var ga, gb, haa, hab, hbb []float64
	for i, v := range z {
		p := sigmoid(got.A*v + got.B)
		r := p - (y[i]*hi + (1-y[i])*lo)
		d := p * (1 - p)
		ga, gb = append(ga, r*v), append(gb, r)
		haa, hab, hbb = append(haa, d*v*v), append(hab, d*v), append(hbb, d)
	}
	sa, sb, saa, sab, sbb := pairSum(ga)/n, pairSum(gb)/n, pairSum(haa)/n, pairSum(hab)/n, pairSum(hbb)/n
	det := saa*sbb - sab*sab
	da, db := (sbb*sa-sab*sb)/det, (saa*sb-sab*sa)/det
	if math.Abs(da) > 1e-6 || math.Abs(db) > 1e-6 {
		t.Errorf("A = %v, B = %v is a Newton step of (%.3g, %.3g) from the optimum, want both below 1e-6", got.A, got.B, da, db)
	}
}

// pairSum adds xs by pairwise summation.
func pairSum(xs []float64) float64 {
	if len(xs) <= 8 {
		s := 0.0
		for _, v := range xs {
			s += v
		}
		return s
	}
	return pairSum(xs[:len(xs)/2]) + pairSum(xs[len(xs)/2:])
}

// An infinite score (a logit that overflowed) gets the map's limit: a flat
// end segment or a zero Platt slope made ∞·0 = NaN of it, and a NaN p_hard
// cannot be ranked or routed. NaN stays NaN, for the caller to refuse.
func TestApplyInfiniteScores(t *testing.T) {
	for _, c := range []Calibration{
		{Method: CalibIsotonic, X: []float64{-1, 0, 0.5, 2}, Y: []float64{0.2, 0.2, 0.5, 0.5}, LinearTails: true},
		{Method: CalibIsotonic, X: []float64{-1, 2}, Y: []float64{0.1, 0.9}, LinearTails: true},
		{Method: CalibIsotonic, X: []float64{0.3}, Y: []float64{0.4}},
		{Method: CalibPlatt, A: 0, B: 0.5},
		{Method: CalibPlatt, A: 2, B: -1},
		Identity(),
	} {
		lo, hi := c.Apply(math.Inf(-1)), c.Apply(math.Inf(1))
		if !(lo >= ProbEps && lo <= hi && hi <= 1-ProbEps) {
			t.Errorf("%s %v: Apply(-Inf) = %v, Apply(+Inf) = %v; want probabilities in order", c.Method, c.X, lo, hi)
		}
		if p := c.Apply(math.NaN()); !math.IsNaN(p) {
			t.Errorf("%s: Apply(NaN) = %v, want NaN", c.Method, p)
		}
	}
}

// An isotonic map without knots (a hand-written or truncated artifact that
// skipped Validate) has no probability to give: isotonic returns NaN for
// it, but Apply went on to index X for its tie-break term and panicked.
func TestApplyIsotonicWithoutKnotsIsNaN(t *testing.T) {
	for _, c := range []Calibration{
		{Method: CalibIsotonic},
		{Method: CalibIsotonic, LinearTails: true},
		{Method: CalibIsotonic, Y: []float64{0.5}},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Apply on %+v panicked: %v", c, r)
				}
			}()
			if p := c.Apply(0.3); !math.IsNaN(p) {
				t.Errorf("Apply on %+v = %v, want NaN", c, p)
			}
		}()
	}
}

// Finite scores and weights can overflow a block's weighted score sum
// Σ w·z: FitIsotonic then put a knot at ±Inf, and returned, without error,
// a map its own Validate rejects (and whose interpolation gives NaN).
func TestFitIsotonicKnotsStayFiniteOnHugeScores(t *testing.T) {
	for _, tc := range []struct{ z, y, w []float64 }{
		{[]float64{1e308, 1.5e308, -1e308, -1.7e308}, []float64{1, 1, 0, 1}, nil},
		{[]float64{10, 20, 30}, []float64{0, 1, 1}, []float64{1e307, 1e307, 1}},
	} {
		c, err := FitIsotonic(tc.z, tc.y, tc.w)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("FitIsotonic(%v, %v, %v) = %v: %v", tc.z, tc.y, tc.w, c.X, err)
		}
		for _, x := range c.X {
			lo, hi := slices.Min(tc.z), slices.Max(tc.z)
			if !(x >= lo && x <= hi) {
				t.Errorf("knot %v outside the scores' range [%v, %v]", x, lo, hi)
			}
		}
	}
}

// Pool-adjacent-violators compared block means as a.wy·b.w > b.wy·a.w.
// With large (or tiny) finite weights those products overflow to +Inf (or
// underflow to 0) on both sides, the comparison said "in order", and a
// violating pair was left unpooled: a mean label of 1 followed by one of
// 1/2 gave Y = [1, 1] (after the monotone clamp) instead of the pooled
// 3/4. Scaling every weight by one constant must not change the map.
func TestFitIsotonicPoolsWithExtremeWeights(t *testing.T) {
	z, y := []float64{1, 2, 3}, []float64{1, 0.5, 0.5}
	want, err := FitIsotonic(z, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []float64{1e160, 1e-200} {
		got, err := FitIsotonic(z, y, []float64{s, s, s})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Y) != len(want.Y) || len(got.X) != len(want.X) || math.Abs(got.Y[0]-want.Y[0]) > 1e-12 {
			t.Errorf("weights %g: X %v Y %v, want X %v Y %v", s, got.X, got.Y, want.X, want.Y)
		}
	}
}
