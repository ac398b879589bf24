package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// TestServeThreeTiersRecordsWhatRan serves a three-tier router with
// exploration on (ε = 0.3), routes the easy and the hard prompt through
// /v1/route and the proxy until each has been explored and not, exports
// the feedback db with feedback export and reads every record back: it
// names the tiers that ran (both of an explored race), the tier the
// policy chose, and each tier's probability of having run (1 for the
// policy's tier, ε for the one exploration races it with, 0 for the
// third), which per-tier inverse propensity weights need.
func TestServeThreeTiersRecordsWhatRan(t *testing.T) {
	dir := t.TempDir()
	log, recs := ladderLog(t, dir, 300, false)
	model := filepath.Join(dir, "ladder.json")
	if _, stderr, code := run(t, "train", "--data", log, "--folds", "3", "--tiers", "small=0.1,mid=1,large=3", "--lambda", "0.05", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	cfg := "exploration: {epsilon: 0.3}\ntiers:\n"
	for _, name := range []string{"small", "mid", "large"} {
		sim, err := upstreamsim.New(upstreamsim.Options{Model: name, Records: recs, FixedLatency: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(sim)
		t.Cleanup(ts.Close)
		cfg += fmt.Sprintf("  - {name: %s, base_url: %s/v1, model: %s-upstream, timeout: 20s}\n", name, ts.URL, name)
	}
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "ladder.yaml", cfg), "--addr", "127.0.0.1:0")

	// The easy prompt's policy tier is small (explored: raced with mid),
	// the hard one's large (explored: mid raced with it).
	easy, hard := recs[len(recs)-3], recs[len(recs)-1]
	type want struct {
		policy, partner string
		raced           []string // cheapest first
	}
	wants := map[string]want{}
	routed := map[string]bool{} // id -> explored
	for _, c := range []struct {
		rec datasets.Record
		w   want
	}{{easy, want{"small", "mid", []string{"small", "mid"}}}, {hard, want{"large", "mid", []string{"mid", "large"}}}} {
		p, _ := json.Marshal(c.rec.Prompt)
		// Until both an explored and a plain request of each path: with
		// ε = 0.3, 200 tries miss one with probability 0.7^200.
		var seen [2][2]bool // [proxy][explored]
		for i := 0; i < 200 && !(seen[0][0] && seen[0][1] && seen[1][0] && seen[1][1]); i++ {
			if !(seen[0][0] && seen[0][1]) {
				code, body := post(t, url+"/v1/route", `{"prompt":`+string(p)+`}`)
				var got struct {
					ID       string `json:"request_id"`
					Explored bool   `json:"explored"`
				}
				if err := json.Unmarshal(body, &got); code != 200 || err != nil {
					t.Fatalf("status %d (%v): %s", code, err, body)
				}
				seen[0][b2i(got.Explored)] = true
				routed[got.ID], wants[got.ID] = got.Explored, c.w
				continue
			}
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":`+string(p)+`}]}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("proxy: status %d", resp.StatusCode)
			}
			explored := resp.Header.Get("X-Triage-Explored") == "true"
			seen[1][b2i(explored)] = true
			id := resp.Header.Get("X-Triage-Request-Id")
			routed[id], wants[id] = explored, c.w
		}
		if !(seen[0][0] && seen[0][1] && seen[1][0] && seen[1][1]) {
			t.Fatalf("after 200 requests of %s: seen [route, proxy][plain, explored] = %v", c.rec.ID, seen)
		}
	}
	// Feedback about the partner of a plain request: the export holds a
	// score for a tier that did not run, and the record still says so.
	var plainID string
	for id, ex := range routed {
		if !ex {
			plainID = id
			break
		}
	}
	code, body := postFeedbackWhenStored(t, url, `{"request_id":"`+plainID+`","model":"mid","score":1}`)
	if code/100 != 2 {
		t.Fatalf("feedback: %d %s", code, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	out := filepath.Join(dir, "export.jsonl")
	if _, stderr, code := run(t, "feedback", "export", "--db", db, "-o", out); code != 0 {
		t.Fatalf("feedback export exited %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exported := recordsByID(t, f)
	if len(exported) != len(routed) {
		t.Fatalf("the export has %d records, want the %d routed", len(exported), len(routed))
	}
	for id, explored := range routed {
		w, d := wants[id], exported[id].Decision
		if d == nil {
			t.Errorf("record %s has no decision", id)
			continue
		}
		third := map[string]string{"small": "large", "large": "small"}[w.policy]
		wantP := map[string]float64{w.policy: 1, w.partner: 0.3, third: 0}
		wantRan := []string{w.policy}
		if explored {
			wantRan = w.raced
		}
		if !slices.Equal(d.Ran, wantRan) || d.PolicyTier != w.policy || !maps.Equal(d.TierPropensity, wantP) || d.Explored != explored {
			t.Errorf("record %s (explored %v): ran %v, policy_tier %q, tier_propensity %v, explored %v; want ran %v, policy_tier %q, tier_propensity %v",
				id, explored, d.Ran, d.PolicyTier, d.TierPropensity, d.Explored, wantRan, w.policy, wantP)
		}
	}
	if s := exported[plainID].Outcomes["mid"].Score; s == nil || *s != 1 {
		t.Errorf("record %s: mid's score %v, want the feedback's 1", plainID, s)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestServeThreeTiersFallbackRecordsWhatAnswered serves a three-tier
// router whose top tier fails (500) behind the proxy: the hard prompt,
// which the policy sends to large, is answered by mid (the fallback),
// and the exported record says so: ran names mid, the tier that
// answered, not large, which produced nothing; policy_tier and
// tier_propensity stay the policy's (large, surely); the outcome the
// proxy recorded, and the score posted for it, are keyed by mid as ran
// is.
func TestServeThreeTiersFallbackRecordsWhatAnswered(t *testing.T) {
	dir := t.TempDir()
	log, recs := ladderLog(t, dir, 300, false)
	model := filepath.Join(dir, "ladder.json")
	if _, stderr, code := run(t, "train", "--data", log, "--folds", "3", "--tiers", "small=0.1,mid=1,large=3", "--lambda", "0.05", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	cfg := "exploration: {epsilon: 0}\ntiers:\n"
	for _, name := range []string{"small", "mid", "large"} {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":{"message":"large is down"}}`, http.StatusInternalServerError)
		})
		if name != "large" {
			sim, err := upstreamsim.New(upstreamsim.Options{Model: name, Records: recs, FixedLatency: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			h = sim
		}
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		cfg += fmt.Sprintf("  - {name: %s, base_url: %s/v1, model: %s-upstream, timeout: 20s}\n", name, ts.URL, name)
	}
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "ladder.yaml", cfg), "--addr", "127.0.0.1:0")

	hard := recs[len(recs)-1]
	p, _ := json.Marshal(hard.Prompt)
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":`+string(p)+`}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Triage-Decision") != "escalate+fallback" || resp.Header.Get("X-Triage-Model") != "mid-upstream" {
		t.Fatalf("proxy: status %d decision %q model %q, want 200 escalate+fallback from mid-upstream: %s",
			resp.StatusCode, resp.Header.Get("X-Triage-Decision"), resp.Header.Get("X-Triage-Model"), b)
	}
	id := resp.Header.Get("X-Triage-Request-Id")
	code, body := postFeedbackWhenStored(t, url, `{"request_id":"`+id+`","model":"mid","score":1}`)
	if code/100 != 2 {
		t.Fatalf("feedback: %d %s", code, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	out := filepath.Join(dir, "export.jsonl")
	if _, stderr, code := run(t, "feedback", "export", "--db", db, "-o", out); code != 0 {
		t.Fatalf("feedback export exited %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, ok := recordsByID(t, f)[id]
	if !ok || rec.Decision == nil {
		t.Fatalf("the export has no record %s with a decision", id)
	}
	d := rec.Decision
	wantP := map[string]float64{"small": 0, "mid": 0, "large": 1}
	if !slices.Equal(d.Ran, []string{"mid"}) || d.PolicyTier != "large" || !maps.Equal(d.TierPropensity, wantP) || d.Fallback != "mid" {
		t.Errorf("decision %+v, want ran [mid], policy_tier large, tier_propensity %v, fallback mid", d, wantP)
	}
	if keys := slices.Sorted(maps.Keys(rec.Outcomes)); !slices.Equal(keys, d.Ran) {
		t.Errorf("outcomes keyed %v, ran %v: want the same tiers", keys, d.Ran)
	}
	if s := rec.Outcomes["mid"].Score; s == nil || *s != 1 {
		t.Errorf("mid's score %v, want the feedback's 1", s)
	}
}

// TestServeThreeTiersBatchRecordsWhatRan: /v1/route/batch records the
// N-tier fields as /v1/route does (TestServeThreeTiersRecordsWhatRan),
// element by element: ran is the tier and race its answer gives (both
// of an explored one), policy_tier the policy's tier, tier_propensity 1,
// ε and 0; with ε = 0.3, batches of the easy and the hard prompt until
// each has been explored and not.
func TestServeThreeTiersBatchRecordsWhatRan(t *testing.T) {
	dir := t.TempDir()
	log, recs := ladderLog(t, dir, 300, false)
	model := filepath.Join(dir, "ladder.json")
	if _, stderr, code := run(t, "train", "--data", log, "--folds", "3", "--tiers", "small=0.1,mid=1,large=3", "--lambda", "0.05", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "ladder.yaml", "exploration: {epsilon: 0.3}\n"), "--addr", "127.0.0.1:0")

	easy, hard := recs[len(recs)-3], recs[len(recs)-1]
	policyOf := map[string]string{easy.Prompt: "small", hard.Prompt: "large"}
	partnerOf := map[string]string{"small": "mid", "large": "mid"}
	thirdOf := map[string]string{"small": "large", "large": "small"}
	type answer struct {
		ID       string `json:"request_id"`
		Tier     string `json:"tier"`
		Race     string `json:"race"`
		Explored bool   `json:"explored"`
	}
	answers := map[string]answer{}
	policies := map[string]string{}
	seen := map[string]bool{} // policy tier + explored
	for b := 0; b < 20 && len(seen) < 4; b++ {
		var body strings.Builder
		body.WriteString(`{"requests":[`)
		for i := range 20 {
			rec := easy
			if i%2 == 1 {
				rec = hard
			}
			p, _ := json.Marshal(rec.Prompt)
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"id":"b%d-%d","prompt":%s}`, b, i, p)
			policies[fmt.Sprintf("b%d-%d", b, i)] = policyOf[rec.Prompt]
		}
		body.WriteString(`]}`)
		code, out := post(t, url+"/v1/route/batch", body.String())
		var got struct{ Decisions []answer }
		if err := json.Unmarshal(out, &got); code != 200 || err != nil || len(got.Decisions) != 20 {
			t.Fatalf("batch: status %d (%v): %s", code, err, out)
		}
		for _, a := range got.Decisions {
			answers[a.ID] = a
			seen[policies[a.ID]+fmt.Sprint(a.Explored)] = true
		}
	}
	if len(seen) < 4 {
		t.Fatalf("after 20 batches, seen only %v of each policy tier explored and not", seen)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}
	exported := exportedRecords(t, db)
	if len(exported) != len(answers) {
		t.Fatalf("the db has %d records, want the %d routed", len(exported), len(answers))
	}
	for id, a := range answers {
		d, policy := exported[id].Decision, policies[id]
		if d == nil {
			t.Errorf("record %s has no decision", id)
			continue
		}
		wantRan := []string{policy}
		if a.Explored {
			wantRan = []string{"mid", policy}
			if policy == "small" {
				wantRan = []string{"small", "mid"}
			}
		}
		wantP := map[string]float64{policy: 1, partnerOf[policy]: 0.3, thirdOf[policy]: 0}
		if d.Tier != a.Tier || !slices.Equal(d.Ran, wantRan) || !slices.Equal(d.Ran, slices.DeleteFunc([]string{a.Tier, a.Race}, func(s string) bool { return s == "" })) ||
			d.PolicyTier != policy || !maps.Equal(d.TierPropensity, wantP) || d.Explored != a.Explored {
			t.Errorf("record %s (answer %+v): tier %q ran %v policy_tier %q tier_propensity %v explored %v; want tier %q ran %v policy_tier %q tier_propensity %v",
				id, a, d.Tier, d.Ran, d.PolicyTier, d.TierPropensity, d.Explored, a.Tier, wantRan, policy, wantP)
		}
	}
}
