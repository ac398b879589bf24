package report

import (
	"math"
	"strconv"
	"testing"
)

// TestExactTicksLabelTheirValues: gonum's default ticks on the N-tier
// report's cost axis (7.24 to 7.38 price units) were labelled "7.2",
// "7.3", "7.3" at 7.25, 7.30 and 7.35; on 7.18 to 7.38, "7.3" and "7.4"
// at 7.28 and 7.36. Every label must name its tick's value.
func TestExactTicksLabelTheirValues(t *testing.T) {
	for _, r := range [][2]float64{{7.24, 7.376}, {7.18, 7.376}, {7.24, 8.03}, {0.42, 0.64}, {0, 1}, {1200, 5100}} {
		seen := map[string]bool{}
		labelled := 0
		for _, tk := range (exactTicks{}).Ticks(r[0], r[1]) {
			if tk.Label == "" {
				continue
			}
			labelled++
			v, err := strconv.ParseFloat(tk.Label, 64)
			if err != nil || math.Abs(v-tk.Value) > 1e-6*(r[1]-r[0]) {
				t.Errorf("range %v: tick %v labelled %q", r, tk.Value, tk.Label)
			}
			if seen[tk.Label] {
				t.Errorf("range %v: label %q twice", r, tk.Label)
			}
			seen[tk.Label] = true
		}
		if labelled < 2 {
			t.Errorf("range %v: %d labelled ticks, want at least 2", r, labelled)
		}
	}
}
