package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// postFeedbackWhenStored posts a feedback body, again while the request
// id is unknown (404): the server records off the request path, so until
// its batch is committed the id is not found. It gives up after about
// five seconds and returns the last answer.
func postFeedbackWhenStored(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	code, b := 404, []byte(nil)
	for i := 0; code == 404 && i < 250; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		code, b = post(t, url+"/v1/feedback", body)
	}
	return code, b
}

// ladderKinds are the requests of ladderLog: each kind's cheapest tier
// that answers it well is the tier it should get.
var ladderKinds = []struct {
	kind, text string
	// scores of small, mid, large
	scores [3]float64
	// tier is the one the router should choose, decision its label.
	tier, decision string
}{
	{"easy", "what is the capital of France", [3]float64{1, 1, 1}, "small", "fast"},
	{"medium", "write a sonnet about autumn leaves", [3]float64{0, 1, 1}, "mid", "escalate"},
	{"hard", "prove the prime number theorem", [3]float64{0, 0, 1}, "large", "escalate"},
}

// ladderLog writes a log of n records cycling through ladderKinds, each
// model answering "<model> on <id>". A few records of each kind flip
// the cheaper tiers' scores, so the heads are not fit to a constant.
// With smallConf the small tier logs its confidence: -0.05 when right,
// -3 when wrong.
func ladderLog(t *testing.T, dir string, n int, smallConf bool) (string, []datasets.Record) {
	t.Helper()
	var b strings.Builder
	var recs []datasets.Record
	for i := range n {
		k := ladderKinds[i%len(ladderKinds)]
		rec := datasets.Record{ID: fmt.Sprintf("l%d", i), Prompt: fmt.Sprintf("%s (number %d)", k.text, i), Outcomes: map[string]datasets.Outcome{}}
		for j, m := range []string{"small", "mid", "large"} {
			s := k.scores[j]
			if i%17 == 0 && j < 2 {
				s = 1 - s
			}
			o := datasets.Outcome{Score: datasets.Float(s), Response: fmt.Sprintf("%s on %s", m, rec.ID)}
			if smallConf && m == "small" {
				o.Confidence = datasets.Float(-3 + 2.95*s)
			}
			rec.Outcomes[m] = o
		}
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
		recs = append(recs, rec)
	}
	return writeFile(t, dir, "ladder.jsonl", b.String()), recs
}

// TestServeThreeTiers trains a three-tier router on a small log, serves
// it with the proxy in front of three upstream sims (one per tier, in
// the list form of tiers) and checks that /v1/route and the proxy send
// each kind of request to the tier it should get, that the recording
// keeps every tier's outcome under its name, and that feedback about any
// tier is accepted.
func TestServeThreeTiers(t *testing.T) {
	dir := t.TempDir()
	log, recs := ladderLog(t, dir, 300, false)
	model := filepath.Join(dir, "ladder.json")
	// λ 0.05 per unit of price: the mid tier must be predicted 0.045
	// better than the small one to be worth it, the large 0.1 better than
	// the mid one.
	if _, stderr, code := run(t, "train", "--data", log, "--folds", "3", "--tiers", "small=0.1,mid=1,large=3", "--lambda", "0.05", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	sims := map[string]*upstreamsim.Server{}
	servers := map[string]*httptest.Server{}
	// No exploration: a request it turns into a race would not show the
	// tier chosen for it.
	cfg := "exploration: {epsilon: 0}\ntiers:\n"
	for _, name := range []string{"small", "mid", "large"} {
		sim, err := upstreamsim.New(upstreamsim.Options{Model: name, Records: recs, FixedLatency: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(sim)
		t.Cleanup(ts.Close)
		sims[name] = sim
		servers[name] = ts
		cfg += fmt.Sprintf("  - {name: %s, base_url: %s/v1, model: %s-upstream, timeout: 20s}\n", name, ts.URL, name)
	}
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "ladder.yaml", cfg), "--addr", "127.0.0.1:0")

	// Prompts of the log: the sims answer them with their recorded text.
	ids := map[string]string{}
	for i, k := range ladderKinds {
		rec := recs[len(recs)-len(ladderKinds)+i]
		if !strings.HasPrefix(rec.Prompt, k.text) {
			t.Fatalf("record %s is not a %s prompt", rec.ID, k.kind)
		}
		p, _ := json.Marshal(rec.Prompt)
		t.Run(fmt.Sprintf("/v1/route sends the %s prompt to %s", k.kind, k.tier), func(t *testing.T) {
			code, body := post(t, url+"/v1/route", `{"prompt":`+string(p)+`}`)
			var got struct {
				Decision  string             `json:"decision"`
				Tier      string             `json:"tier"`
				PHard     *float64           `json:"p_hard"`
				Predicted map[string]float64 `json:"predicted"`
			}
			if err := json.Unmarshal(body, &got); code != 200 || err != nil {
				t.Fatalf("status %d (%v): %s", code, err, body)
			}
			if got.Tier != k.tier || got.Decision != k.decision || got.PHard != nil || len(got.Predicted) != 3 {
				t.Errorf("got %s, want tier %s, decision %s, p_hard null and three predictions", body, k.tier, k.decision)
			}
		})
		t.Run(fmt.Sprintf("the proxy answers the %s prompt from %s", k.kind, k.tier), func(t *testing.T) {
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":`+string(p)+`}]}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			want := k.tier + " on " + rec.ID
			if resp.StatusCode != 200 || resp.Header.Get("X-Triage-Model") != k.tier+"-upstream" || resp.Header.Get("X-Triage-Decision") != k.decision ||
				!bytes.Contains(body, []byte(want)) {
				t.Fatalf("status %d, X-Triage-Model %q, X-Triage-Decision %q, want 200, %s-upstream, %s and %q: %s", resp.StatusCode,
					resp.Header.Get("X-Triage-Model"), resp.Header.Get("X-Triage-Decision"), k.tier, k.decision, want, body)
			}
			ids[k.kind] = resp.Header.Get("X-Triage-Request-Id")
		})
	}
	for name, sim := range sims {
		if st := sim.Stats(); st.Answered != 1 || st.Unknown != 0 {
			t.Errorf("sim %s: %+v, want one answer to a known prompt", name, st)
		}
	}
	t.Run("/v1/route/batch chooses each kind's tier", func(t *testing.T) {
		var reqs []string
		for i := range ladderKinds {
			p, _ := json.Marshal(recs[len(recs)-len(ladderKinds)+i].Prompt)
			reqs = append(reqs, `{"prompt":`+string(p)+`}`)
		}
		code, body := post(t, url+"/v1/route/batch", `{"requests":[`+strings.Join(reqs, ",")+`]}`)
		var got struct {
			Decisions []struct{ Tier string }
		}
		if err := json.Unmarshal(body, &got); code != 200 || err != nil || len(got.Decisions) != len(ladderKinds) {
			t.Fatalf("status %d (%v): %s", code, err, body)
		}
		for i, k := range ladderKinds {
			if got.Decisions[i].Tier != k.tier {
				t.Errorf("the %s prompt went to %s, want %s", k.kind, got.Decisions[i].Tier, k.tier)
			}
		}
	})
	t.Run("GET /v1/model lists the tiers with their prices and the policy, and no two-tier thresholds", func(t *testing.T) {
		code, body := get(t, url+"/v1/model")
		if code != 200 || !strings.Contains(string(body), `"tier_list":[{"name":"small","price":0.1},{"name":"mid","price":1},{"name":"large","price":3}]`) ||
			!strings.Contains(string(body), `"lambda":0.05`) {
			t.Errorf("status %d: %s", code, body)
		}
		// Not the two-tier thresholds the artifact carries unused: at 0
		// they would read as "escalate every request".
		if strings.Contains(string(body), `"thresholds"`) || strings.Contains(string(body), `"label"`) {
			t.Errorf("an N-tier model's /v1/model shows two-tier thresholds or label: %s", body)
		}
	})
	// A grader scores what the mid tier would have done on the easy
	// request (it was not called): any tier's name is accepted.
	t.Run("feedback about the middle tier is accepted, about a model that is no tier refused", func(t *testing.T) {
		code, body := postFeedbackWhenStored(t, url, `{"request_id":"`+ids["easy"]+`","model":"mid","score":1}`)
		if code/100 != 2 {
			t.Errorf("feedback on mid: %d %s", code, body)
		}
		if code, body := post(t, url+"/v1/feedback", `{"request_id":"`+ids["medium"]+`","model":"gpt-4","score":1}`); code != 400 || !strings.Contains(string(body), "tiers small, mid, large") {
			t.Errorf("feedback on gpt-4: %d %s, want 400 naming the tiers", code, body)
		}
	})
	t.Run("/metrics keeps a feedback window per tier, by name, and no mean p_hard", func(t *testing.T) {
		_, m := get(t, url+"/metrics")
		for _, want := range []string{`triage_drift_tier_feedback{tier="mid"} 1`, `triage_drift_tier_feedback{tier="large"} 0`,
			`triage_proxy_upstream_duration_seconds_count{result="ok",tier="mid"} 1`} {
			if !strings.Contains(string(m), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(string(m), "triage_drift_mean_p_hard ") {
			t.Errorf("/metrics has a mean p_hard for an N-tier model")
		}
	})
	t.Run("with the middle tier down its prompt is answered by the next cheaper tier", func(t *testing.T) {
		servers["mid"].Close()
		p, _ := json.Marshal(recs[len(recs)-2].Prompt)
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":`+string(p)+`}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Triage-Model") != "small-upstream" || resp.Header.Get("X-Triage-Decision") != "escalate+fallback" {
			t.Errorf("status %d, X-Triage-Model %q, X-Triage-Decision %q, want 200, small-upstream, escalate+fallback: %s", resp.StatusCode,
				resp.Header.Get("X-Triage-Model"), resp.Header.Get("X-Triage-Decision"), body)
		}
	})
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	t.Run("a config with two upstreams refuses the three-tier model", func(t *testing.T) {
		two := writeFile(t, dir, "two.yaml", "tiers:\n  fast: {base_url: http://127.0.0.1:9/v1, model: f}\n  strong: {base_url: http://127.0.0.1:9/v1, model: s}\n")
		_, stderr, code := run(t, "serve", "--model", model, "--db", filepath.Join(dir, "other.db"), "--config", two, "--addr", "127.0.0.1:0")
		if code == 0 || !strings.Contains(stderr, "has 3 tiers (small, mid, large) but the config's tiers list 2 upstreams") {
			t.Errorf("serve exited %d: %s", code, stderr)
		}
	})

	exported := exportedRecords(t, db)
	for _, k := range ladderKinds {
		r := exported[ids[k.kind]]
		if r.Decision == nil || r.Decision.Tier != k.tier || r.Decision.Kind != k.decision {
			t.Errorf("the %s request was recorded with decision %+v, want tier %s", k.kind, r.Decision, k.tier)
			continue
		}
		if o, ok := r.Outcomes[k.tier]; !ok || !strings.HasPrefix(o.Response, k.tier+" on ") || o.LatencyMS == nil {
			t.Errorf("the %s request's outcomes %+v, want %s's answer", k.kind, r.Outcomes, k.tier)
		}
	}
	if s := exported[ids["easy"]].Outcomes["mid"].Score; s == nil || *s != 1 {
		t.Errorf("the easy request's mid outcome has score %v, want the feedback's 1", s)
	}
}

// TestServeThreeTiersRace serves a three-tier router trained to race
// (--race 0.2) in front of three sims, the small one quick and logging
// its confidence, the mid one slow: the easy prompt races small with mid
// and keeps small's confident answer, cancelling mid; the medium prompt
// races mid with large, whose answer comes first and is kept.
func TestServeThreeTiersRace(t *testing.T) {
	dir := t.TempDir()
	log, recs := ladderLog(t, dir, 300, true)
	model := filepath.Join(dir, "race.json")
	if _, stderr, code := run(t, "train", "--data", log, "--folds", "3", "--tiers", "small=0.1,mid=1,large=3", "--lambda", "0.05", "--race", "0.2", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	sims := map[string]*upstreamsim.Server{}
	// No exploration: a request it turns into a race would not show the
	// tier chosen for it.
	cfg := "exploration: {epsilon: 0}\ntiers:\n"
	for _, s := range []struct {
		name string
		lat  time.Duration
	}{{"small", time.Millisecond}, {"mid", 300 * time.Millisecond}, {"large", 20 * time.Millisecond}} {
		sim, err := upstreamsim.New(upstreamsim.Options{Model: s.name, Records: recs, FixedLatency: s.lat})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(sim)
		t.Cleanup(ts.Close)
		sims[s.name] = sim
		cfg += fmt.Sprintf("  - {name: %s, base_url: %s/v1, model: %s-upstream, timeout: 20s}\n", s.name, ts.URL, s.name)
	}
	db := filepath.Join(dir, "race.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "race.yaml", cfg), "--addr", "127.0.0.1:0")
	// Each request's id, the two tiers its race ran (the policy's, each
	// sent the request surely), and the tiers recorded as ran: both on
	// /v1/route (the server sees no answer), the one that answered on
	// the proxy (the loser, cancelled, produced none).
	raced, answered := map[string][]string{}, map[string][]string{}
	for i, tt := range []struct{ kind, answers string }{{"easy", "small"}, {"medium", "large"}} {
		rec := recs[len(recs)-len(ladderKinds)+i]
		p, _ := json.Marshal(rec.Prompt)
		code, body := post(t, url+"/v1/route", `{"prompt":`+string(p)+`}`)
		if k := ladderKinds[i]; code != 200 || !strings.Contains(string(body), `"decision":"speculate","p_hard":null,"tier":"`+k.tier+`","race":"`) {
			t.Fatalf("route %s: %d %s, want a race of %s with the next tier up", tt.kind, code, body, k.tier)
		}
		pair := []string{"small", "mid"}
		if i == 1 {
			pair = []string{"mid", "large"}
		}
		var routed struct {
			ID string `json:"request_id"`
		}
		json.Unmarshal(body, &routed)
		raced[routed.ID], answered[routed.ID] = pair, pair
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":`+string(p)+`}]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Triage-Decision") != "speculate" || resp.Header.Get("X-Triage-Model") != tt.answers+"-upstream" {
			t.Errorf("the %s prompt: decision %q model %q, want speculate answered by %s: %s", tt.kind,
				resp.Header.Get("X-Triage-Decision"), resp.Header.Get("X-Triage-Model"), tt.answers, b)
		}
		id := resp.Header.Get("X-Triage-Request-Id")
		raced[id], answered[id] = pair, []string{tt.answers}
	}
	// The easy race cancelled mid's call, the medium race mid's again
	// (large, quicker, answered first).
	for i := 0; sims["mid"].Stats().Cancelled != 2 && i < 1000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if st := sims["mid"].Stats(); st.Cancelled != 2 {
		t.Errorf("mid sim %+v, want both of its calls cancelled", st)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	// A race the policy chose sent the request to both of its tiers
	// surely, and to no third.
	exported := exportedRecords(t, db)
	for id, pair := range raced {
		d := exported[id].Decision
		third := map[string]string{"small": "large", "mid": "small"}[pair[0]]
		if want := map[string]float64{pair[0]: 1, pair[1]: 1, third: 0}; d == nil || !slices.Equal(d.Ran, answered[id]) || d.PolicyTier != pair[0] || !maps.Equal(d.TierPropensity, want) {
			t.Errorf("record %s's decision is %+v, want ran %v, policy_tier %s, tier_propensity %v", id, d, answered[id], pair[0], want)
		}
	}
}
