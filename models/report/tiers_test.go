package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

// Unpriced tiers (price 0, no cost in the log) give every single tier
// the same mean cost: AIQ is undefined (NaN), and the page must say so
// rather than print "NaN".
func TestWriteTiersUndefinedAIQ(t *testing.T) {
	tiers := []models.Tier{{Name: "small"}, {Name: "mid"}, {Name: "large"}}
	reqs := make([]replay.TierRequest, 6)
	for i := range reqs {
		reqs[i] = replay.TierRequest{
			Pred:      []float64{0.2 * float64(i%3), 0.5, 0.9},
			Score:     []float64{float64(i % 2), 1, 1},
			LatencyMS: []float64{100, 200, 300},
			CostUSD:   []float64{0, 0, 0},
		}
	}
	c := replay.SweepTiers(reqs, []float64{0, 0, 0}, models.TierPolicy{}, replay.BillProrata, 8)
	if !math.IsNaN(c.AIQ) {
		t.Fatalf("AIQ is %v on a zero cost range, want NaN (undefined)", c.AIQ)
	}
	dir := t.TempDir()
	if err := WriteTiers(dir, []TierRun{{Name: "r", Tiers: tiers, Curve: c, CostUnit: "USD per request"}}, []string{"x.jsonl"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "NaN") {
		t.Errorf("index.html shows NaN for an undefined figure:\n%s", b)
	}
}
