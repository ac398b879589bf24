package retrain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
)

// event is one thing a client did: route a request, or post feedback.
type event struct {
	route    bool
	id       string
	model    string
	score    float64
	ts       time.Time
	decision datasets.Decision
}

// traffic scripts n requests: each is routed once, then gets feedback for
// one or both tiers, sometimes posted twice (a client retry).
func traffic(n int, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, 1))
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var ev []event
	for i := range n {
		id := fmt.Sprintf("req-%04d", i)
		ts := t0.Add(time.Duration(i) * time.Second)
		kinds := []string{"fast", "speculate", "escalate"}
		d := datasets.Decision{Kind: kinds[r.IntN(3)], PHard: r.Float64(), ModelVersion: "v1", Propensity: 0.98}
		if d.Kind == "speculate" {
			d.Propensity, d.Explored = 0.02, r.IntN(2) == 0
		}
		ev = append(ev, event{route: true, id: id, ts: ts, decision: d})
		var models []string
		switch d.Kind {
		case "fast":
			models = []string{"fast"}
		case "escalate":
			models = []string{"strong"}
		default:
			models = []string{"fast", "strong"}
		}
		for _, m := range models {
			fb := event{id: id, model: m, score: float64(r.IntN(2)), ts: ts.Add(500 * time.Millisecond)}
			ev = append(ev, fb)
			if r.IntN(5) == 0 {
				ev = append(ev, fb) // a retry
			}
		}
	}
	return ev
}

func openStore(t *testing.T, name string) *datasets.BoltStore {
	t.Helper()
	st, err := datasets.OpenBoltStore(filepath.Join(t.TempDir(), name), datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// apply plays one event into a store as a server would: a route appends a
// decision; feedback carries the prompt, so a server that never routed
// the id creates the record (as POST /v1/feedback does).
func apply(t *testing.T, st *datasets.BoltStore, e event) {
	t.Helper()
	prompt := "prompt of " + e.id
	if e.route {
		body, _ := json.Marshal(map[string]any{"prompt": prompt, "meta": map[string]string{"tenant": "acme"}})
		if err := st.AppendDecisions([]datasets.LogEntry{{ID: e.id, TS: e.ts, Decision: e.decision, Request: body}}); err != nil {
			t.Fatal(err)
		}
		return
	}
	err := st.PutFeedback(context.Background(), datasets.Feedback{
		RequestID: e.id, Model: e.model, Outcome: datasets.Outcome{Score: datasets.Float(e.score)},
		Prompt: prompt, Meta: datasets.Meta{"tenant": "acme"}, TS: e.ts,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func export(t *testing.T, st *datasets.BoltStore) []datasets.Record {
	t.Helper()
	var buf bytes.Buffer
	if _, err := st.Export(context.Background(), &buf, datasets.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	var recs []datasets.Record
	rd := datasets.NewReader(&buf, "export", datasets.ReadOptions{AllowMissingScore: true})
	for {
		r, err := rd.Next()
		if err != nil {
			break
		}
		recs = append(recs, r)
	}
	return recs
}

// TestMergeIsLossless is the merging acceptance: the exports of two
// servers sharing the traffic, merged, are the records one server taking
// all of it records.
func TestMergeIsLossless(t *testing.T) {
	ev := traffic(300, 4)
	one := openStore(t, "one.db")
	for _, e := range ev {
		apply(t, one, e)
	}
	want := export(t, one)

	tests := []struct {
		name string
		// server picks the server (0 or 1) an event goes to.
		server func(i int, e event, r *rand.Rand) int
	}{
		{"requests alternate and feedback follows its request", func(i int, e event, _ *rand.Rand) int {
			var n int
			fmt.Sscanf(e.id, "req-%d", &n)
			return n % 2
		}},
		{"every event goes to a random server", func(_ int, _ event, r *rand.Rand) int { return r.IntN(2) }},
		{"all routes on one server, all feedback on the other", func(_ int, e event, _ *rand.Rand) int {
			if e.route {
				return 0
			}
			return 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, 9))
			two := []*datasets.BoltStore{openStore(t, "a.db"), openStore(t, "b.db")}
			for i, e := range ev {
				apply(t, two[tt.server(i, e, r)], e)
			}
			a, b := export(t, two[0]), export(t, two[1])
			for _, order := range [][2][]datasets.Record{{a, b}, {b, a}} {
				got, st := MergeRecords(order[0], order[1])
				if st.Conflicts != 0 {
					t.Errorf("%d conflicts (first %s), want none: both servers saw the same values", st.Conflicts, st.FirstConflict)
				}
				if len(got) != len(want) {
					t.Fatalf("merged %d records, one server has %d", len(got), len(want))
				}
				for i := range want {
					if !reflect.DeepEqual(got[i], want[i]) {
						g, _ := json.Marshal(got[i])
						w, _ := json.Marshal(want[i])
						t.Fatalf("record %d:\n got %s\nwant %s", i, g, w)
					}
				}
			}
		})
	}
}
