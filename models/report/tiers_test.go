package report

import (
	"context"
	"errors"
	"fmt"
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
	runs := tierRuns("r", [3]float64{})
	if c := runs[0].Curve; !math.IsNaN(c.AIQ) {
		t.Fatalf("AIQ is %v on a zero cost range, want NaN (undefined)", c.AIQ)
	}
	dir := t.TempDir()
	if err := WriteTiers(context.Background(), dir, runs, []string{"x.jsonl"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "NaN") {
		t.Errorf("index.html shows NaN for an undefined figure:\n%s", b)
	}
	// It said "Log: x.jsonl . Quality", a space before the stop.
	if !strings.Contains(string(b), "<p>Log: x.jsonl. Quality") {
		t.Errorf("index.html does not name its log as a sentence does:\n%s", b)
	}
}

// tierRuns is a small N-tier sweep of three tiers at the given costs, for
// the tests of WriteTiers.
func tierRuns(name string, cost [3]float64) []TierRun {
	tiers := []models.Tier{{Name: "small"}, {Name: "mid"}, {Name: "large"}}
	reqs := make([]replay.TierRequest, 6)
	for i := range reqs {
		reqs[i] = replay.TierRequest{
			Pred:      []float64{0.2 * float64(i%3), 0.5, 0.9},
			Score:     []float64{float64(i % 2), 1, 1},
			LatencyMS: []float64{100, 200, 300},
			CostUSD:   cost[:],
		}
	}
	c := replay.SweepTiers(reqs, cost[:], models.TierPolicy{}, replay.BillProrata, 8)
	return []TierRun{{Name: name, Tiers: tiers, Curve: c, CostUnit: "USD per request"}}
}

// TestWriteTiersWholeOrNotAtAll: an interrupted N-tier report leaves the
// old one whole (it wrote each file in place, one after another), and
// nothing to write is an error, not a panic.
func TestWriteTiersWholeOrNotAtAll(t *testing.T) {
	priced := [3]float64{0.001, 0.01, 0.1}
	dir := t.TempDir()
	if err := WriteTiers(context.Background(), dir, tierRuns("first", priced), []string{"x.jsonl"}); err != nil {
		t.Fatal(err)
	}
	before := readDir(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteTiers(ctx, dir, tierRuns("second", priced), []string{"x.jsonl"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted write: %v, want context.Canceled", err)
	}
	if after := readDir(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after an interrupted write the folder holds %v, want the first report as it was", after)
	}
	if err := WriteTiers(context.Background(), dir, tierRuns("second", priced), []string{"x.jsonl"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tiers_curves.csv")); !strings.Contains(string(b), "second") {
		t.Error("tiers_curves.csv is not the second report's")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".report-new-*")); len(m) > 0 {
		t.Errorf("staging folders left: %v", m)
	}
	if err := WriteTiers(context.Background(), dir, nil, nil); err == nil {
		t.Error("WriteTiers with no run: no error")
	}
	// Interrupted into a folder it had to make, it leaves no empty one.
	fresh := filepath.Join(t.TempDir(), "report")
	if err := WriteTiers(ctx, fresh, tierRuns("third", priced), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted write: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an interrupted write left the folder it made: %v", err)
	}
}

// TestTiersQualityAxisOnTheTablesScale: the N-tier page says quality is
// on 0-100 and its tables print 46.16 and 49.83, but its plot drew
// quality on [0,1] (0.425 to 0.625) under the label "quality (mean
// score)".
func TestTiersQualityAxisOnTheTablesScale(t *testing.T) {
	fig := qualityCostFigure(tierRuns("r", [3]float64{0.001, 0.01, 0.1}))
	if y := fig.p.Y; !strings.Contains(y.Label.Text, "0-100") || y.Max <= 1 {
		t.Errorf("quality axis %q reaches %v; want it on 0-100, named so", y.Label.Text, y.Max)
	}
}

// TestWriteTiersShowsTheCurrentPolicy: the N-tier page showed the λ
// sweep, the single tiers and the oracle, but not where the artifact's
// own policy sits (curves printed it; the two-tier page has it in its
// table and marks it on its plots).
func TestWriteTiersShowsTheCurrentPolicy(t *testing.T) {
	runs := tierRuns("r", [3]float64{0.001, 0.01, 0.1})
	cur := replay.TierPoint{Policy: models.TierPolicy{Lambda: 0.5}, N: 6, Quality: 0.75, CostPer1k: 40, Shares: []float64{0.5, 0.25, 0.25}}
	runs[0].Current = cur
	dir := t.TempDir()
	if err := WriteTiers(context.Background(), dir, runs, []string{"x.jsonl"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Current policy (λ 0.5, margin 0, race 0): quality 75.00, mean cost 0.04;\nsmall 50.0%, mid 25.0%, large 25.0%.</p>"; !strings.Contains(string(b), want) {
		t.Errorf("index.html lacks %q:\n%s", want, b)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "quality_vs_cost.svg"))
	if err != nil || !strings.Contains(string(svg), ">current policy<") {
		t.Errorf("the quality-against-cost plot does not mark the current policy (%v)", err)
	}
}
