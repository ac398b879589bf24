package datasets

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An N-tier decision's ran, policy_tier and tier_propensity go through
// the store's encoder, the export and the reader unchanged; a two-tier
// decision, which has none, exports exactly the keys it always had.
func TestTierDecisionRoundTrip(t *testing.T) {
	s := openTestStore(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ntier := Decision{Kind: "speculate", Tier: "mid", ModelVersion: "v3", Propensity: 0.3, Explored: true, Policy: "escalate",
		Ran: []string{"mid", "large"}, PolicyTier: "large", TierPropensity: map[string]float64{"small": 0, "mid": 0.3, "large": 1}}
	plain := Decision{Kind: "fast", Tier: "small", ModelVersion: "v3", Propensity: 0.7,
		Ran: []string{"small"}, PolicyTier: "small", TierPropensity: map[string]float64{"small": 1, "mid": 0.3, "large": 0}}
	two := Decision{Kind: "escalate", Tier: "strong", PHard: 0.9, ModelVersion: "v2", Propensity: 0.98}
	err := s.AppendDecisions([]LogEntry{
		{ID: "n1", TS: t0, Decision: ntier, Request: []byte(`{"prompt":"p1"}`)},
		{ID: "n2", TS: t0.Add(time.Second), Decision: plain, Request: []byte(`{"prompt":"p2"}`)},
		{ID: "t1", TS: t0.Add(2 * time.Second), Decision: two, Request: []byte(`{"prompt":"p3"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Export(context.Background(), &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("export has %d lines, want 3:\n%s", len(lines), buf.String())
	}
	for _, k := range []string{`"ran"`, `"policy_tier"`, `"tier_propensity"`} {
		if strings.Contains(lines[2], k) {
			t.Errorf("two-tier record's export has %s: %s", k, lines[2])
		}
	}
	want := `"decision":{"decision":"escalate","tier":"strong","p_hard":0.9,"model_version":"v2","propensity":0.98}`
	if !strings.Contains(lines[2], want) {
		t.Errorf("two-tier record's export is\n%s\nwant its decision as before, %s", lines[2], want)
	}
	recs, _, err := readRecords(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range []Decision{ntier, plain, two} {
		if got := recs[i].Decision; got == nil || !reflect.DeepEqual(*got, d) {
			t.Errorf("record %s read back as %+v, want %+v", recs[i].ID, got, d)
		}
	}
}
