package proxy

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// ladderRouter is a three-tier router for tests: "T<i> ..." chooses tier
// i alone, "R<i> ..." races tier i with i+1; "sure" in the prompt sets
// the gate at 0.5, else 0.9 (the sims' default answer has confidence
// -0.25, calibrated as exp(raw) to 0.78: kept at 0.5, rejected at 0.9).
type ladderRouter struct{}

func (ladderRouter) Choose(in features.Input) Choice {
	text := in.Messages[len(in.Messages)-1].Content
	c := Choice{Tier: int(text[1] - '0'), Race: NoRace, PHard: 0.5, Accept: 0.9}
	if strings.Contains(text, "sure") {
		c.Accept = 0.5
	}
	switch {
	case text[0] == 'R':
		c.Race, c.Decision = c.Tier+1, "speculate"
	case c.Tier == 0:
		c.Decision = "fast"
	default:
		c.Decision = "escalate"
	}
	return c
}

func (ladderRouter) CalibratedConfidence(_ int, raw float64) (float64, bool) {
	return math.Exp(raw), true
}

func (ladderRouter) Model() ModelInfo {
	return ModelInfo{Version: "v-ladder", Tiers: []string{"log-small", "log-mid", "log-large"}, MultiTier: true}
}

type ladderRig struct {
	sims []*upstreamsim.Server
	url  string
	h    *Handler
	rec  *memRecorder
}

// newLadder is a proxy over three sims in the list form of tiers. They
// answer every prompt with their default answer after 1, 20 and 200 ms,
// so in a race the cheaper tier's answer comes first; "<name>-500" in a
// prompt fails that tier. explore, if given, is the proxy's exploration
// (Deps.Explore) at ε = 0.3.
func newLadder(t *testing.T, explore ...func(models.Result) (models.Decision, float64, bool)) *ladderRig {
	t.Helper()
	r := &ladderRig{rec: &memRecorder{}}
	cfg := DefaultConfig()
	for i, s := range []struct {
		name string
		lat  time.Duration
	}{{"small", time.Millisecond}, {"mid", 20 * time.Millisecond}, {"large", 200 * time.Millisecond}} {
		// The sims need a log; a record of another prompt will do.
		rec := chatRecord(t, `{"id":"x","prompt":"unused","outcomes":{"`+s.name+`-model":{"score":1}}}`)
		sim, err := upstreamsim.New(upstreamsim.Options{Model: s.name + "-model", Records: rec, DefaultLatency: s.lat,
			Default: s.name + " says hi", Fault: faults(s.name)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(sim)
		t.Cleanup(ts.Close)
		r.sims = append(r.sims, sim)
		cfg.Tiers.Ordered = append(cfg.Tiers.Ordered, Tier{Name: s.name, BaseURL: ts.URL + "/v1", Model: s.name + "-model",
			PriceInPer1K: float64(i + 1), PriceOutPer1K: float64(i + 1)})
	}
	cfg.Tiers.Ordered[1].RecordAs = "mid-as-recorded"
	cfg.Aliases = map[string]string{"gpt-4o": "mid"}
	deps := Deps{Router: func() Router { return ladderRouter{} }, Recorder: r.rec, Registry: prometheus.NewRegistry()}
	if len(explore) > 0 {
		deps.Explore, deps.Epsilon = explore[0], 0.3
	}
	h, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	mux := http.NewServeMux()
	mux.Handle("/v1/chat/completions", h)
	mux.HandleFunc("/v1/models", h.ServeModels)
	ps := httptest.NewServer(mux)
	t.Cleanup(ps.Close)
	r.url = ps.URL
	return r
}

func chatRecord(t *testing.T, line string) []datasets.Record {
	t.Helper()
	var rec datasets.Record
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	return []datasets.Record{rec}
}

// ranKeysOutcomes checks that an N-tier recording's ran and its outcomes
// agree: each tier in ran has an outcome with an answer (not cancelled),
// and every other outcome is of a call cut short (a race's loser, a
// timeout), which has no answer to score. A recording without per-tier
// fields (a request sent to a named tier) has nothing to check.
func ranKeysOutcomes(t *testing.T, rec *Recording) {
	t.Helper()
	if rec.Decision.TierPropensity == nil {
		return
	}
	for _, name := range rec.Decision.Ran {
		if o, ok := rec.Outcomes[name]; !ok || o.Cancelled {
			t.Errorf("ran %v names %s, whose outcome is %+v (present %v), want a whole answer", rec.Decision.Ran, name, o, ok)
		}
	}
	for name, o := range rec.Outcomes {
		if !slices.Contains(rec.Decision.Ran, name) && !o.Cancelled {
			t.Errorf("outcome of %s is a whole answer, but ran %v does not name it", name, rec.Decision.Ran)
		}
	}
}

// TestThreeTiersRanIsWhatAnswered: an N-tier recording's ran names the
// tiers whose answers were produced, with or without exploration: not a
// tier that failed (no outcome), but the tier the proxy fell back to
// (one); none when no tier answered. policy_tier and tier_propensity are
// the policy's and exploration's, which a failure does not change.
func TestThreeTiersRanIsWhatAnswered(t *testing.T) {
	explore := func(r models.Result) (models.Decision, float64, bool) {
		if r.Decision == models.Speculate {
			return r.Decision, 1, false
		}
		return models.Speculate, 0.3, true
	}
	const s, m, l = "log-small", "mid-as-recorded", "log-large"
	for _, tt := range []struct {
		name, prompt string
		explored     bool
		status       int
		decision     string
		ran          string // space-separated
		policy       string
		p            map[string]float64
	}{
		{"a failing top tier, its fallback answering", "T2 large-500", false, 200, "escalate+fallback", m, l,
			map[string]float64{s: 0, m: 0, l: 1}},
		{"a failing top tier and its fallback", "T2 large-500 mid-500", false, 502, "escalate+fallback", "", l,
			map[string]float64{s: 0, m: 0, l: 1}},
		{"a tier's 4xx, no answer to score", "T1 mid-400", false, 400, "escalate", "", m,
			map[string]float64{s: 0, m: 1, l: 0}},
		{"a race whose dearer tier fails", "R0 mid-500", false, 200, "speculate", s, s,
			map[string]float64{s: 1, m: 1, l: 0}},
		{"an explored top tier that fails, the one below answering", "T2 large-500", true, 200, "escalate+fallback", m, l,
			map[string]float64{s: 0, m: 0.3, l: 1}},
		{"an explored cheapest tier that fails, the one up answering", "T0 small-500", true, 200, "fast+fallback", m, s,
			map[string]float64{s: 1, m: 0.3, l: 0}},
		{"an explored request whose partner fails", "T1 large-500", true, 200, "escalate", m, m,
			map[string]float64{s: 0, m: 1, l: 0.3}},
		{"an explored request whose two tiers fail", "T1 mid-500 large-500", true, 502, "escalate", "", m,
			map[string]float64{s: 0, m: 1, l: 0.3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r *ladderRig
			if tt.explored {
				r = newLadder(t, explore)
			} else {
				r = newLadder(t)
			}
			got := (&rig{}).do(t, context.Background(), r.url, chatBody(tt.prompt, ""))
			if got.status != tt.status || got.decision != tt.decision {
				t.Fatalf("status %d decision %q, want %d %q; body %s", got.status, got.decision, tt.status, tt.decision, got.body)
			}
			if err := r.h.AwaitRecording(context.Background(), got.id); err != nil {
				t.Fatal(err)
			}
			if err := r.h.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(r.rec.recs) != 1 {
				t.Fatalf("%d recordings, want 1", len(r.rec.recs))
			}
			rec := r.rec.recs[0]
			d := rec.Decision
			if d.Explored != tt.explored || strings.Join(d.Ran, " ") != tt.ran || d.PolicyTier != tt.policy || !maps.Equal(d.TierPropensity, tt.p) {
				t.Errorf("explored %v ran %q policy_tier %q tier_propensity %v; want %v %q %q %v",
					d.Explored, strings.Join(d.Ran, " "), d.PolicyTier, d.TierPropensity, tt.explored, tt.ran, tt.policy, tt.p)
			}
			if tt.ran == "" && d.Ran != nil {
				t.Errorf("ran %#v, want none (absent from the record)", d.Ran)
			}
			ranKeysOutcomes(t, rec)
		})
	}
}

func TestThreeTiers(t *testing.T) {
	tests := []struct {
		name, prompt, extra string
		decision, model     string
		content             string
		// tier is the recorded choice; outcomes the recorded models.
		tier     string
		outcomes string
		// cancelled is the sim (index) that sees its call cancelled, or -1.
		cancelled int
		// ran is the recorded decision.ran: the tiers that answered
		// (not one that failed, nor a race's cancelled loser); none on
		// a request the client sent to a named tier.
		ran string
	}{
		{"the cheapest tier alone answers as fast", "T0 hi", "", "fast", "small-model", "small says hi", "log-small", "log-small", -1, "log-small"},
		{"the middle tier alone answers, recorded under its record_as", "T1 hi", "", "escalate", "mid-model", "mid says hi", "mid-as-recorded", "mid-as-recorded", -1, "mid-as-recorded"},
		{"the top tier alone answers", "T2 hi", "", "escalate", "large-model", "large says hi", "log-large", "log-large", -1, "log-large"},
		{"a race keeps the chosen tier's confident answer and cancels the next one up", "R1 sure", "", "speculate", "mid-model", "mid says hi",
			"mid-as-recorded", "log-large mid-as-recorded", 2, "mid-as-recorded"},
		{"a race rejects an unconfident answer for the next tier up's", "R0 doubtful", "", "speculate", "mid-model", "mid says hi",
			"log-small", "log-small mid-as-recorded", -1, "log-small mid-as-recorded"},
		{"a failing top tier falls back to the next cheaper one", "T2 large-500", "", "escalate+fallback", "mid-model", "mid says hi",
			"log-large", "mid-as-recorded", -1, "mid-as-recorded"},
		{"a failing middle tier falls back to the cheapest", "T1 mid-500", "", "escalate+fallback", "small-model", "small says hi",
			"mid-as-recorded", "log-small", -1, "log-small"},
		{"a failing cheapest tier falls back to the next one up", "T0 small-500", "", "fast+fallback", "mid-model", "mid says hi",
			"log-small", "mid-as-recorded", -1, "mid-as-recorded"},
		{"a client may name a tier of the list", "T0 hi", `,"model":"large"`, "escalate", "large-model", "large says hi", "log-large", "log-large", -1, ""},
		{"an alias may name a tier of the list", "T0 hi", `,"model":"gpt-4o"`, "escalate", "mid-model", "mid says hi", "mid-as-recorded", "mid-as-recorded", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLadder(t)
			got := (&rig{}).do(t, context.Background(), r.url, chatBody(tt.prompt, tt.extra))
			if got.status != 200 || got.decision != tt.decision || got.model != tt.model || got.content != tt.content {
				t.Fatalf("status %d decision %q model %q content %q, want 200 %q %q %q; body %s", got.status, got.decision, got.model, got.content,
					tt.decision, tt.model, tt.content, got.body)
			}
			if tt.cancelled >= 0 {
				waitFor(t, "the loser's cancel", func() bool { return r.sims[tt.cancelled].Stats().Cancelled == 1 })
			}
			// A race's winner reaches the client before its handler ends
			// (loser_grace), and the loser's cancel before the handler
			// queues the recording: Close then would drop it.
			if err := r.h.AwaitRecording(context.Background(), got.id); err != nil {
				t.Fatal(err)
			}
			if err := r.h.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			recs := r.rec.recs
			if len(recs) != 1 {
				t.Fatalf("%d recordings, want 1", len(recs))
			}
			var names []string
			for m := range recs[0].Outcomes {
				names = append(names, m)
			}
			slices.Sort(names)
			if recs[0].Decision.Tier != tt.tier || strings.Join(names, " ") != tt.outcomes || recs[0].Decision.ModelVersion != "v-ladder" {
				t.Errorf("recorded tier %q outcomes %v version %q, want %q, %s, v-ladder", recs[0].Decision.Tier, names,
					recs[0].Decision.ModelVersion, tt.tier, tt.outcomes)
			}
			if got := strings.Join(recs[0].Decision.Ran, " "); got != tt.ran {
				t.Errorf("recorded ran %q, want %q", got, tt.ran)
			}
			ranKeysOutcomes(t, recs[0])
		})
	}
	t.Run("GET /v1/models lists every tier cheapest first, then the aliases", func(t *testing.T) {
		r := newLadder(t)
		resp, err := http.Get(r.url + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Data []modelObject `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range list.Data {
			got = append(got, m.ID+">"+m.AliasOf+">"+m.Upstream)
		}
		if want := "triage>> small>>small-model mid>>mid-model large>>large-model gpt-4o>mid>mid-model"; strings.Join(got, " ") != want {
			t.Errorf("models %v, want %s", got, want)
		}
	})
	t.Run("a name the config does not serve is a 400 listing the tiers", func(t *testing.T) {
		r := newLadder(t)
		got := (&rig{}).do(t, context.Background(), r.url, chatBody("T0 hi", `,"model":"fast"`))
		if _, msg := errorBody(t, got.body); got.status != 400 || !strings.Contains(msg, `"triage", "small", "mid", "large", "gpt-4o"`) {
			t.Errorf("status %d: %s", got.status, msg)
		}
	})
}
