package classifier

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// golden mirrors testdata/golden.json, written by testdata/gen_golden.py
// (see its docstring for where each number comes from).
type golden struct {
	Routing []struct {
		Name                 string             `json:"name"`
		Score                []float64          `json:"score"`
		Weak                 []float64          `json:"weak"`
		Strong               []float64          `json:"strong"`
		C                    []float64          `json:"c"`
		Quality              []float64          `json:"quality"`
		PGR                  []float64          `json:"pgr"`
		APGR                 float64            `json:"apgr"`
		CPT                  map[string]float64 `json:"cpt"`
		AUCWeakFails         float64            `json:"auc_weak_fails"`
		AUCWeights           []float64          `json:"auc_weights"`
		AUCWeakFailsWeighted float64            `json:"auc_weak_fails_weighted"`
	} `json:"routing"`
	Ties struct {
		Score        []float64 `json:"score"`
		Weak         []float64 `json:"weak"`
		Strong       []float64 `json:"strong"`
		APGR8Draws   float64   `json:"apgr_8_draws"`
		AUCWeakFails float64   `json:"auc_weak_fails"`
	} `json:"ties"`
	Prob struct {
		P               []float64 `json:"p"`
		Y               []float64 `json:"y"`
		W               []float64 `json:"w"`
		LogLoss         float64   `json:"log_loss"`
		LogLossWeighted float64   `json:"log_loss_weighted"`
		Brier           float64   `json:"brier"`
		BrierWeighted   float64   `json:"brier_weighted"`
		ECE10           float64   `json:"ece10"`
	} `json:"prob"`
	LR struct {
		Dim     int         `json:"dim"`
		Idx     [][]int32   `json:"idx"`
		Val     [][]float64 `json:"val"`
		Y       []float64   `json:"y"`
		Weights []float64   `json:"weights"`
		Fits    []struct {
			L2       float64   `json:"l2"`
			Weighted bool      `json:"weighted"`
			W        []float64 `json:"w"`
			B        float64   `json:"b"`
		} `json:"fits"`
	} `json:"lr"`
	Calibration struct {
		Z                      []float64 `json:"z"`
		Y                      []float64 `json:"y"`
		W                      []float64 `json:"w"`
		Platt                  plattRef  `json:"platt"`
		PlattWeighted          plattRef  `json:"platt_weighted"`
		IsotonicLevels         []float64 `json:"isotonic_levels"`
		IsotonicLevelsWeighted []float64 `json:"isotonic_levels_weighted"`
	} `json:"calibration"`
}

type plattRef struct {
	SklearnA float64 `json:"sklearn_a"`
	SklearnB float64 `json:"sklearn_b"`
	A        float64 `json:"a"`
	B        float64 `json:"b"`
}

func loadGolden(tb testing.TB) *golden {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		tb.Fatalf("read golden values: %v (regenerate with /usr/bin/python3 classifier/testdata/gen_golden.py)", err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		tb.Fatalf("decode testdata/golden.json: %v", err)
	}
	return &g
}

// near reports whether got is within tol of want, relative to max(1,|want|).
func near(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func assertClose(tb testing.TB, name string, got, want, tol float64) {
	tb.Helper()
	if !near(got, want, tol) {
		tb.Errorf("%s = %.17g, want %.17g (tolerance %g)", name, got, want, tol)
	}
}

func assertSliceClose(tb testing.TB, name string, got, want []float64, tol float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s has %d entries, want %d", name, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if !near(got[i], want[i], tol) {
			if bad < 5 {
				tb.Errorf("%s[%d] = %.17g, want %.17g (tolerance %g)", name, i, got[i], want[i], tol)
			}
			bad++
		}
	}
	if bad > 5 {
		tb.Errorf("%s: %d entries differ in all", name, bad)
	}
}
