package serve

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/models"
)

func TestExplorerDecide(t *testing.T) {
	const eps = 0.1
	tests := []struct {
		name          string
		policy        models.Decision
		coin          float64
		wantTaken     models.Decision
		wantProp      float64
		wantExplored  bool
		epsOverride   *float64
		wantNoExplore bool
	}{
		{name: "a fast request the coin spares stays fast with propensity 1-ε", policy: models.Fast, coin: 0.5, wantTaken: models.Fast, wantProp: 1 - eps},
		{name: "a fast request the coin hits speculates with propensity ε", policy: models.Fast, coin: 0.05, wantTaken: models.Speculate, wantProp: eps, wantExplored: true},
		{name: "an escalated request the coin hits speculates with propensity ε", policy: models.Escalate, coin: 0, wantTaken: models.Speculate, wantProp: eps, wantExplored: true},
		{name: "an escalated request the coin spares escalates with propensity 1-ε", policy: models.Escalate, coin: eps, wantTaken: models.Escalate, wantProp: 1 - eps},
		{name: "a speculated request has propensity 1 whatever the coin", policy: models.Speculate, coin: 0, wantTaken: models.Speculate, wantProp: 1},
		{name: "ε = 0 never explores and every propensity is 1", policy: models.Fast, coin: 0, wantTaken: models.Fast, wantProp: 1, epsOverride: new(float64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := eps
			if tt.epsOverride != nil {
				e = *tt.epsOverride
			}
			ex := newExplorer(ExplorationConfig{Epsilon: e}, func() float64 { return tt.coin })
			taken, prop, explored := ex.decide(tt.policy)
			if taken != tt.wantTaken || math.Abs(prop-tt.wantProp) > 1e-12 || explored != tt.wantExplored {
				t.Errorf("got %s %v %v, want %s %v %v", taken, prop, explored, tt.wantTaken, tt.wantProp, tt.wantExplored)
			}
		})
	}
	t.Run("over many requests the speculated share is ε plus the band", func(t *testing.T) {
		// The default generator: a share, not a sequence, is checkable.
		ex := newExplorer(ExplorationConfig{Epsilon: eps}, nil)
		n, spec := 20000, 0
		for range n {
			if d, _, _ := ex.decide(models.Fast); d == models.Speculate {
				spec++
			}
		}
		// Binomial(20000, 0.1): sd 0.0021, so ±0.01 is over 4 sd.
		if got := float64(spec) / float64(n); math.Abs(got-eps) > 0.01 {
			t.Errorf("explored share %.4f, want about %v", got, eps)
		}
	})
}

// coinSequence returns the values in order, then 1 (never explore).
func coinSequence(vs ...float64) func() float64 {
	var i atomic.Int64
	return func() float64 {
		k := int(i.Add(1) - 1)
		if k < len(vs) {
			return vs[k]
		}
		return 1
	}
}

func TestExplorationThroughTheServer(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		writeArtifact(t, o.ModelPath, "v-fast", -3) // p_hard 0.047: fast
		o.Config.Exploration.Epsilon = 0.25
		o.Uniform = coinSequence(0.9, 0.1, 0.9, 0.1) // route, route, batch[0], batch[1]
	})
	var first, second struct {
		Decision     string `json:"decision"`
		Explored     bool   `json:"explored"`
		ModelVersion string `json:"model_version"`
	}
	decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"id":"spared","prompt":"hi"}`), &first)
	decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"id":"explored","prompt":"hi"}`), &second)
	var batch struct {
		Decisions []struct {
			RequestID    string `json:"request_id"`
			Decision     string `json:"decision"`
			Explored     bool   `json:"explored"`
			ModelVersion string `json:"model_version"`
		} `json:"decisions"`
	}
	decodeJSON(t, ts.do(t, "POST", "/v1/route/batch", `{"requests":[{"id":"b-spared","prompt":"a"},{"id":"b-explored","prompt":"b"}]}`), &batch)

	t.Run("the answer is the taken decision, flagged when explored, with the model version", func(t *testing.T) {
		if first.Decision != "fast" || first.Explored || second.Decision != "speculate" || !second.Explored {
			t.Errorf("answers %+v and %+v, want fast then an explored speculate", first, second)
		}
		if batch.Decisions[0].Decision != "fast" || batch.Decisions[1].Decision != "speculate" || !batch.Decisions[1].Explored {
			t.Errorf("batch %+v, want fast then an explored speculate", batch.Decisions)
		}
		for _, v := range []string{first.ModelVersion, second.ModelVersion, batch.Decisions[0].ModelVersion, batch.Decisions[1].ModelVersion} {
			if v != "v-fast" {
				t.Errorf("model_version %q, want v-fast on every decision", v)
			}
		}
	})
	t.Run("the decision records carry propensity, explored, the policy's decision and the model version", func(t *testing.T) {
		want := map[string]struct {
			kind     string
			prop     float64
			explored bool
			policy   string // what the policy decided before exploration
		}{
			"spared": {"fast", 0.75, false, ""}, "explored": {"speculate", 0.25, true, "fast"},
			"b-spared": {"fast", 0.75, false, ""}, "b-explored": {"speculate", 0.25, true, "fast"},
		}
		recs := ts.export(t)
		if len(recs) != len(want) {
			t.Fatalf("%d records, want %d", len(recs), len(want))
		}
		for _, r := range recs {
			w, d := want[r.ID], r.Decision
			if d == nil || d.Kind != w.kind || d.Propensity != w.prop || d.Explored != w.explored || d.ModelVersion != "v-fast" || d.Policy != w.policy {
				t.Errorf("%s: decision %+v, want %s propensity %v explored %v policy %q version v-fast", r.ID, d, w.kind, w.prop, w.explored, w.policy)
			}
			// A two-tier record is as it always was: the N-tier fields
			// are left out.
			if d != nil && (d.Ran != nil || d.PolicyTier != "" || d.TierPropensity != nil) {
				t.Errorf("%s: a two-tier decision has N-tier fields: %+v", r.ID, d)
			}
		}
	})
	t.Run("explored requests are counted", func(t *testing.T) {
		if got := testutil.ToFloat64(ts.loop.explored); got != 2 {
			t.Errorf("triage_explored_total %v, want 2", got)
		}
	})
	t.Run("the drift window sees the policy's decisions, not exploration's", func(t *testing.T) {
		want := `
# HELP triage_drift_decision_share Share of each policy decision (before exploration) over the latest routed requests (drift.window); absent before any.
# TYPE triage_drift_decision_share gauge
triage_drift_decision_share{decision="escalate"} 0
triage_drift_decision_share{decision="fast"} 1
triage_drift_decision_share{decision="speculate"} 0
`
		if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "triage_drift_decision_share"); err != nil {
			t.Error(err)
		}
	})
}

func TestDriftMetrics(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		a := testArtifact(t, "v1", 0) // p_hard 0.5: speculate
		a.ExpectedShares = map[models.Decision]float64{models.Fast: 0.5, models.Speculate: 0.2, models.Escalate: 0.3}
		if err := a.Save(o.ModelPath); err != nil {
			t.Fatal(err)
		}
		o.Config.Drift = DriftConfig{Window: 4, FeedbackWindow: 2}
	})
	t.Run("before any request or feedback the means and shares are absent, not NaN", func(t *testing.T) {
		for _, name := range []string{"triage_drift_decision_share", "triage_drift_mean_p_hard", "triage_drift_tier_accuracy"} {
			if n, err := testutil.GatherAndCount(ts.reg, name); err != nil || n != 0 {
				t.Errorf("%d %s series (err %v), want none", n, name, err)
			}
		}
		want := `
# HELP triage_drift_tier_feedback Scored feedbacks in the tier's accuracy window.
# TYPE triage_drift_tier_feedback gauge
triage_drift_tier_feedback{tier="fast"} 0
triage_drift_tier_feedback{tier="strong"} 0
# HELP triage_drift_window_decisions Routed requests in the drift window; it restarts when another model version is loaded.
# TYPE triage_drift_window_decisions gauge
triage_drift_window_decisions 0
`
		if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "triage_drift_tier_feedback", "triage_drift_window_decisions"); err != nil {
			t.Error(err)
		}
	})
	for i := range 6 {
		ts.do(t, "POST", "/v1/route", fmt.Sprintf(`{"id":"r%d","prompt":"hi"}`, i))
	}
	for i, fb := range []string{
		`{"request_id":"r0","model":"mixtral","score":0}`,
		`{"request_id":"r1","model":"mixtral","score":1}`,
		`{"request_id":"r2","model":"mixtral","score":1}`, // the window of 2 drops r0's 0
		`{"request_id":"r3","model":"gpt-4","score":1}`,
		`{"request_id":"r4","model":"gpt-4","confidence":-0.2}`, // no score: not counted
		`{"request_id":"r3","model":"gpt-4","score":0}`,         // a retry of a counted key: not counted again
	} {
		if w := ts.do(t, "POST", "/v1/feedback", fb); w.Code != 200 {
			t.Fatalf("feedback %d: %d %s", i, w.Code, w.Body)
		}
	}
	// Expected values: 6 speculate decisions through a window of 4; the
	// artifact's shares; mean p_hard σ(0) = 0.5; fast scores {1, 1},
	// strong {1}.
	want := `
# HELP triage_drift_decision_share Share of each policy decision (before exploration) over the latest routed requests (drift.window); absent before any.
# TYPE triage_drift_decision_share gauge
triage_drift_decision_share{decision="escalate"} 0
triage_drift_decision_share{decision="fast"} 0
triage_drift_decision_share{decision="speculate"} 1
# HELP triage_drift_expected_share Share of each decision the serving model's thresholds were calibrated for (its expected_shares).
# TYPE triage_drift_expected_share gauge
triage_drift_expected_share{decision="escalate"} 0.3
triage_drift_expected_share{decision="fast"} 0.5
triage_drift_expected_share{decision="speculate"} 0.2
# HELP triage_drift_mean_p_hard Mean p_hard over the latest routed requests (drift.window); absent before any.
# TYPE triage_drift_mean_p_hard gauge
triage_drift_mean_p_hard 0.5
# HELP triage_drift_tier_accuracy Mean score of the latest scored feedbacks (drift.feedback_window) for a tier (fast or strong; an N-tier model's tier names); absent before any.
# TYPE triage_drift_tier_accuracy gauge
triage_drift_tier_accuracy{tier="fast"} 1
triage_drift_tier_accuracy{tier="strong"} 1
# HELP triage_drift_tier_feedback Scored feedbacks in the tier's accuracy window.
# TYPE triage_drift_tier_feedback gauge
triage_drift_tier_feedback{tier="fast"} 2
triage_drift_tier_feedback{tier="strong"} 1
# HELP triage_drift_window_decisions Routed requests in the drift window; it restarts when another model version is loaded.
# TYPE triage_drift_window_decisions gauge
triage_drift_window_decisions 4
`
	names := []string{"triage_drift_decision_share", "triage_drift_expected_share", "triage_drift_mean_p_hard",
		"triage_drift_tier_accuracy", "triage_drift_tier_feedback", "triage_drift_window_decisions"}
	if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	t.Run("a reload to another version restarts the decision window", func(t *testing.T) {
		writeArtifact(t, ts.model, "v2", 3) // p_hard 0.95: escalate, no expected shares
		if _, err := ts.Reload(); err != nil {
			t.Fatal(err)
		}
		ts.do(t, "POST", "/v1/route", `{"prompt":"hi"}`)
		want := `
# HELP triage_drift_decision_share Share of each policy decision (before exploration) over the latest routed requests (drift.window); absent before any.
# TYPE triage_drift_decision_share gauge
triage_drift_decision_share{decision="escalate"} 1
triage_drift_decision_share{decision="fast"} 0
triage_drift_decision_share{decision="speculate"} 0
# HELP triage_drift_window_decisions Routed requests in the drift window; it restarts when another model version is loaded.
# TYPE triage_drift_window_decisions gauge
triage_drift_window_decisions 1
`
		if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "triage_drift_decision_share", "triage_drift_window_decisions"); err != nil {
			t.Error(err)
		}
		if n, err := testutil.GatherAndCount(ts.reg, "triage_drift_expected_share"); err != nil || n != 0 {
			t.Errorf("%d expected-share series (err %v), want none for a model without expected_shares", n, err)
		}
	})
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if !math.IsNaN(r.mean()) {
		t.Errorf("empty mean %v, want NaN", r.mean())
	}
	for i, tt := range []struct {
		push, mean float64
	}{{1, 1}, {2, 1.5}, {3, 2}, {4, 3}, {5, 4}, {6, 5}, {7, 6}} {
		r.push(tt.push)
		if got := r.mean(); math.Abs(got-tt.mean) > 1e-12 {
			t.Errorf("after push %d (%v): mean %v, want %v", i, tt.push, got, tt.mean)
		}
	}
}

func TestLoopConfig(t *testing.T) {
	t.Run("the defaults explore 2% and keep 10,000 decisions", func(t *testing.T) {
		c := DefaultConfig()
		if c.Exploration.Epsilon != DefaultEpsilon || c.Drift.Window != DefaultDriftWindow || c.Drift.FeedbackWindow != DefaultDriftFeedbackWindow {
			t.Errorf("defaults %+v %+v", c.Exploration, c.Drift)
		}
	})
	t.Run("the file sets epsilon and the windows", func(t *testing.T) {
		c, err := ParseConfig([]byte("exploration:\n  epsilon: 0\ndrift:\n  window: 50\n  feedback_window: 7\n"), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if c.Exploration.Epsilon != 0 || c.Drift.Window != 50 || c.Drift.FeedbackWindow != 7 {
			t.Errorf("got %+v %+v", c.Exploration, c.Drift)
		}
	})
	for _, tt := range []struct{ in, want string }{
		{"exploration:\n  epsilon: 1.5\n", "exploration.epsilon is 1.5"},
		{"exploration:\n  epsilon: -0.1\n", "exploration.epsilon is -0.1"},
		{"drift:\n  window: 0\n", "drift.window is 0"},
		{"drift:\n  feedback_window: -3\n", "drift.feedback_window is -3"},
	} {
		t.Run("a bad value is refused: "+tt.want, func(t *testing.T) {
			if _, err := ParseConfig([]byte(tt.in), DefaultConfig()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// watchDebounce is the tests' debounce (watchReloads).
const watchDebounce = 250 * time.Millisecond

// watchReloads watches path and returns its reloads and a wait for the
// next one. The debounce is long enough that a burst of five writes falls
// within it even on a loaded machine (at 20 ms a slow write split the
// burst in two under the race detector with other jobs running). The
// wait fails after a generous deadline: it bounds a hang, it does not
// measure speed.
func watchReloads(t *testing.T, path string) (reloads chan struct{}, wait func(*testing.T)) {
	t.Helper()
	reloads = make(chan struct{}, 16)
	w, err := WatchModel(path, watchDebounce, func() { reloads <- struct{}{} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return reloads, func(t *testing.T) {
		t.Helper()
		select {
		case <-reloads:
		case <-time.After(10 * time.Second):
			t.Fatal("no reload within 10s")
		}
	}
}

func TestWatchModel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "router.json")
	writeArtifact(t, path, "v1", 0)
	reloads, waitReload := watchReloads(t, path)
	quiet := func(t *testing.T) {
		t.Helper()
		select {
		case <-reloads:
			t.Error("an unexpected extra reload")
		case <-time.After(2 * watchDebounce):
		}
	}
	t.Run("a file renamed over the model reloads once", func(t *testing.T) {
		tmp := filepath.Join(dir, "new.json")
		writeArtifact(t, tmp, "v2", 3)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		waitReload(t)
		quiet(t)
	})
	t.Run("a burst of writes reloads once", func(t *testing.T) {
		for i := range 5 {
			writeArtifact(t, path, fmt.Sprintf("v%d", 3+i), 0)
		}
		waitReload(t)
		quiet(t)
	})
	t.Run("other files in the directory do not reload", func(t *testing.T) {
		writeArtifact(t, filepath.Join(dir, "other.json"), "x", 0)
		quiet(t)
	})
	// The reload fails and says the file is gone (the server keeps its
	// model), instead of the removal passing in silence.
	t.Run("removing the model reloads once", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		waitReload(t)
		quiet(t)
	})
}

// A model path that is a symbolic link (router.json -> releases/v1.json,
// a common deploy layout) is replaced through the link: 'triage retrain
// -o router.json' renames its new file over releases/v1.json and keeps
// the link. The watch followed only the link's own name, so a promotion
// was never picked up. Repointing the link moves the watch with it.
func TestWatchModelThroughASymbolicLink(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"releases", "next"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v1 := filepath.Join(dir, "releases", "v1.json")
	writeArtifact(t, v1, "v1", 0)
	link := filepath.Join(dir, "router.json")
	if err := os.Symlink(filepath.Join("releases", "v1.json"), link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	_, waitReload := watchReloads(t, link)
	t.Run("a file written through the link reloads", func(t *testing.T) {
		writeArtifact(t, link, "v2", 3) // renamed over releases/v1.json
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced: %v", err)
		}
		waitReload(t)
	})
	t.Run("after the link is repointed, a write to its new target reloads", func(t *testing.T) {
		v3 := filepath.Join(dir, "next", "v3.json")
		writeArtifact(t, v3, "v3", 0)
		tmp := filepath.Join(dir, "router.json.new")
		if err := os.Symlink(filepath.Join("next", "v3.json"), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
		waitReload(t) // the repointing itself
		writeArtifact(t, link, "v4", 0)
		waitReload(t)
	})
}

// A deploy that repoints a folder link (current -> releases/8, the model
// served as current/router.json) changes nothing in the folder the watch
// followed: the watch now also follows each link on the model's path, in
// its own folder.
func TestWatchModelThroughAFolderLink(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []string{"7", "8"} {
		if err := os.MkdirAll(filepath.Join(dir, "releases", r), 0o755); err != nil {
			t.Fatal(err)
		}
		writeArtifact(t, filepath.Join(dir, "releases", r, "router.json"), "v"+r, 0)
	}
	current := filepath.Join(dir, "current")
	if err := os.Symlink(filepath.Join("releases", "7"), current); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	_, waitReload := watchReloads(t, filepath.Join(current, "router.json"))
	t.Run("repointing the folder link reloads", func(t *testing.T) {
		tmp := filepath.Join(dir, "current.new")
		if err := os.Symlink(filepath.Join("releases", "8"), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, current); err != nil {
			t.Fatal(err)
		}
		waitReload(t)
	})
	t.Run("then a write into the new release reloads", func(t *testing.T) {
		writeArtifact(t, filepath.Join(dir, "releases", "8", "router.json"), "v9", 0)
		waitReload(t)
	})
}

func TestWatchReloadsTheServer(t *testing.T) {
	ts := newTestServer(t, nil)
	w, err := WatchModel(ts.model, 20*time.Millisecond, func() { ts.Reload() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tmp := filepath.Join(filepath.Dir(ts.model), "next.json")
	writeArtifact(t, tmp, "v9", 3)
	if err := os.Rename(tmp, ts.model); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ts.Router().Artifact().Version != "v9" {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s 10s after the rename", ts.Router().Artifact().Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var r struct {
		ModelVersion string `json:"model_version"`
	}
	decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"prompt":"hi"}`), &r)
	if r.ModelVersion != "v9" {
		t.Errorf("model_version %q after the watch reload, want v9", r.ModelVersion)
	}
}
