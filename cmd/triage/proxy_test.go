package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// proxyScale shrinks the sample log's latencies (fast ~1 s, strong ~4 s).
const proxyScale = 0.05

// proxyModel writes a router for the sample's tiers with a confidence
// calibration (Platt, sigmoid(4 raw + 4): a mean log-probability above
// about -0.65 clears 0.8) and thresholds at p_hard's 40% and 70%
// quantiles over the sample, so all three decisions occur.
func proxyModel(t *testing.T, dir string, recs []datasets.Record) (string, *models.Router) {
	t.Helper()
	spec := features.DefaultSpec()
	spec.HashBits = 12
	w := make(models.Weights, spec.Dim())
	for i := range w {
		w[i] = math.Sin(float64(i)*12.9898) * 0.3
	}
	conf := classifier.Calibration{Method: classifier.CalibPlatt, A: 4, B: 4}
	a := &models.Artifact{
		FormatVersion: models.FormatVersion, Version: models.NewVersion(time.Now()), CreatedAt: time.Now().UTC(),
		Features: spec, Weights: w, Calibration: classifier.Identity(), ConfidenceCalibration: &conf,
		Tiers: models.Tiers{Fast: sampleFast, Strong: sampleStrong}, Label: "strong-wins",
		Policy: models.Policy{SpeculateAbove: 0.5, EscalateAbove: 0.5, AcceptConfidence: 0.8},
	}
	r, err := models.NewRouter(a)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float64, len(recs))
	for i := range recs {
		p[i] = r.Route(retrain.RecordInput(&recs[i])).PHard
	}
	a.Policy.SpeculateAbove, a.Policy.EscalateAbove = models.Quantile(p, 0.4), models.Quantile(p, 0.7)
	path := filepath.Join(dir, "router.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	if r, err = models.NewRouter(a); err != nil {
		t.Fatal(err)
	}
	return path, r
}

// pickPrompts finds, among the sample's first records of each prompt,
// one per case the test needs.
func pickPrompts(t *testing.T, recs []datasets.Record, r *models.Router) map[string]*datasets.Record {
	t.Helper()
	seen := map[string]bool{}
	out := map[string]*datasets.Record{}
	for i := range recs {
		rec := &recs[i]
		if seen[rec.Prompt] {
			continue
		}
		seen[rec.Prompt] = true
		f, s := rec.Outcomes[sampleFast], rec.Outcomes[sampleStrong]
		if f.LatencyMS == nil || s.LatencyMS == nil || f.Confidence == nil {
			continue
		}
		// A margin of 2 s in the log is 100 ms after scaling: the order
		// of the two answers is not a race.
		fastFirst := *s.LatencyMS-*f.LatencyMS > 2000
		var key string
		switch d := r.Route(retrain.RecordInput(rec)).Decision; {
		case d == models.Fast:
			key = "fast"
		case d == models.Escalate:
			key = "escalate"
		case fastFirst && *f.Confidence > -0.3:
			key = "accept"
		case fastFirst && *f.Confidence < -1.5:
			key = "reject"
		}
		if _, ok := out[key]; key != "" && !ok {
			out[key] = rec
		}
	}
	for _, k := range []string{"fast", "escalate", "accept", "reject"} {
		if out[k] == nil {
			t.Fatalf("the sample log has no %s prompt for this router", k)
		}
	}
	return out
}

// proxySample reads the sample log, trains a router on it in dir and picks
// one prompt per path.
func proxySample(t *testing.T, dir string) ([]datasets.Record, string, map[string]*datasets.Record) {
	t.Helper()
	recs, _, err := datasets.ReadFile(sampleLog, datasets.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	model, router := proxyModel(t, dir, recs)
	return recs, model, pickPrompts(t, recs, router)
}

func startSim(t *testing.T, recs []datasets.Record, model string) (*upstreamsim.Server, string) {
	t.Helper()
	sim, err := upstreamsim.New(upstreamsim.Options{Model: model, Records: recs, LatencyScale: proxyScale})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return sim, ts.URL
}

// TestServeProxy runs the real triage serve with tiers pointing at two
// in-process upstream sims, sends one request per path, stops the server
// and reads what it recorded from the db.
//
// Exploration is off: at the default ε each of the four fast and escalate
// requests is speculated one time in fifty, which moved the decision
// counts checked below in about one run in twelve
// (TestProxiedFeedbackRightAfterTheAnswer covers explored requests).
func TestServeProxy(t *testing.T) {
	dir := t.TempDir()
	recs, model, picks := proxySample(t, dir)
	fastSim, fastURL := startSim(t, recs, sampleFast)
	strongSim, strongURL := startSim(t, recs, sampleStrong)
	cfg := fmt.Sprintf(`tiers:
  fast: {base_url: %s/v1, model: %s, timeout: 20s, price_in_per_1k: 0.001, price_out_per_1k: 0.002}
  strong: {base_url: %s/v1, model: %s, timeout: 20s, price_in_per_1k: 0.01, price_out_per_1k: 0.03}
record_responses: true
exploration: {epsilon: 0}
`, fastURL, sampleFast, strongURL, sampleStrong)
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--config", writeFile(t, dir, "proxy.yaml", cfg), "--addr", "127.0.0.1:0")

	// The record's meta goes as the request's metadata: the router's meta
	// features then see what they saw when the picks were made.
	chat := func(rec *datasets.Record, extra string) (*http.Response, []byte) {
		t.Helper()
		p, _ := json.Marshal(rec.Prompt)
		m, _ := json.Marshal(rec.Meta)
		resp, err := http.Post(url+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"triage","messages":[{"role":"user","content":`+string(p)+`}],"metadata":`+string(m)+extra+`}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	tests := []struct {
		key, decision, model string
		stream               bool
	}{
		{"fast", "fast", sampleFast, false},
		{"escalate", "escalate", sampleStrong, false},
		{"accept", "speculate", sampleFast, false},
		{"reject", "speculate", sampleStrong, false},
		{"fast", "fast", sampleFast, true},
		{"escalate", "escalate", sampleStrong, true},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		name := fmt.Sprintf("the %s prompt (stream %v) is answered by %s", tt.key, tt.stream, tt.model)
		t.Run(name, func(t *testing.T) {
			extra := ""
			if tt.stream {
				extra = `,"stream":true`
			}
			resp, body := chat(picks[tt.key], extra)
			if resp.StatusCode != 200 || resp.Header.Get("X-Triage-Decision") != tt.decision || resp.Header.Get("X-Triage-Model") != tt.model {
				t.Fatalf("status %d decision %q model %q, want 200 %q %q: %s", resp.StatusCode,
					resp.Header.Get("X-Triage-Decision"), resp.Header.Get("X-Triage-Model"), tt.decision, tt.model, body)
			}
			if tt.stream && (!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n"))) {
				t.Errorf("stream: content type %q, body %q", resp.Header.Get("Content-Type"), body)
			}
			if !tt.stream {
				ids[tt.key] = resp.Header.Get("X-Triage-Request-Id")
			}
		})
	}
	// The accepted speculation cancelled its strong call: the strong sim
	// sees the connection close (asynchronously).
	for i := 0; strongSim.Stats().Cancelled != 1 && i < 1000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if st := strongSim.Stats(); st.Cancelled != 1 {
		t.Errorf("strong sim %+v, want 1 cancelled call", st)
	}
	if st := fastSim.Stats(); st.Cancelled != 0 {
		t.Errorf("fast sim %+v, want no cancelled call", st)
	}
	t.Run("GET /v1/models lists triage and the tiers, and /v1/models/{id} one of them", func(t *testing.T) {
		code, body := get(t, url+"/v1/models")
		var list struct {
			Object string
			Data   []struct{ ID, Object, Upstream string }
		}
		if err := json.Unmarshal(body, &list); code != 200 || err != nil {
			t.Fatalf("status %d, %v: %s", code, err, body)
		}
		got := fmt.Sprint(list)
		if want := fmt.Sprintf("{list [{triage model } {fast model %s} {strong model %s}]}", sampleFast, sampleStrong); got != want {
			t.Errorf("models = %s, want %s", got, want)
		}
		if code, body := get(t, url+"/v1/models/strong"); code != 200 || !strings.Contains(string(body), `"upstream":"`+sampleStrong+`"`) {
			t.Errorf("GET /v1/models/strong: %d %s", code, body)
		}
		if code, body := get(t, url+"/v1/models/gpt-4"); code != 404 || !strings.Contains(string(body), `"unknown_model"`) {
			t.Errorf("GET /v1/models/gpt-4: %d %s, want 404 unknown_model", code, body)
		}
	})
	_, metrics := get(t, url+"/metrics")
	for _, want := range []string{`triage_proxy_speculations_total{outcome="fast_accepted"} 1`, `triage_proxy_speculations_total{outcome="strong_used"} 1`,
		`triage_proxy_upstream_cancelled_total{reason="loser",tier="strong"} 1`,
		// Proxied routing counts in the decision metrics as /v1/route's does.
		`triage_decisions_total{decision="fast"} 2`, `triage_decisions_total{decision="escalate"} 2`, `triage_decisions_total{decision="speculate"} 2`,
		`triage_p_hard_count 6`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr)
	}

	// What the proxy recorded, read back from the db after shutdown.
	exported := exportedRecords(t, db)
	if len(exported) != len(tests) {
		t.Errorf("%d records exported, want %d (one per proxied request)", len(exported), len(tests))
	}
	acc := exported[ids["accept"]]
	if acc.Decision == nil || acc.Decision.Kind != "speculate" || acc.Text() != picks["accept"].Prompt {
		t.Fatalf("accepted speculation exported as %+v", acc)
	}
	f, s := acc.Outcomes[sampleFast], acc.Outcomes[sampleStrong]
	// The sim's log-probabilities average to the logged confidence.
	if f.Confidence == nil || math.Abs(*f.Confidence-*picks["accept"].Outcomes[sampleFast].Confidence) > 1e-9 ||
		f.Response == "" || f.LatencyMS == nil || f.InputTokens == nil || f.CostUSD == nil || f.Cancelled {
		t.Errorf("fast outcome %+v", f)
	}
	if !s.Cancelled || s.LatencyMS == nil || s.Response != "" {
		t.Errorf("strong outcome %+v, want cancelled with its run time", s)
	}
	rej := exported[ids["reject"]]
	if o := rej.Outcomes[sampleStrong]; o.Cancelled || o.Response == "" {
		t.Errorf("rejected speculation's strong outcome %+v, want the answer", o)
	}
	if o := rej.Outcomes[sampleFast]; o.Cancelled || o.Confidence == nil {
		t.Errorf("rejected speculation's fast outcome %+v, want completed with its confidence", o)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}

// Feedback posted as soon as a proxied answer arrives finds its request,
// and an export right after the traffic holds every request: the proxy
// records a request after its tiers finish, and commits recordings in
// batches, so both must wait for the recording instead of answering 404 or
// leaving it out. So does an explored request's, with both tiers'
// outcomes. A score posted for a proxied answer keeps what the proxy
// recorded with it (latency, cost, confidence, the answer).
func TestProxiedFeedbackRightAfterTheAnswer(t *testing.T) {
	recs, model, picks := proxySample(t, t.TempDir())
	fast := func() *upstreamsim.Server {
		s, err := upstreamsim.New(upstreamsim.Options{Model: sampleFast, Records: recs, FixedLatency: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	strong, err := upstreamsim.New(upstreamsim.Options{Model: sampleStrong, Records: recs, FixedLatency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fastTS, strongTS := httptest.NewServer(fast), httptest.NewServer(strong)
	t.Cleanup(fastTS.Close)
	t.Cleanup(strongTS.Close)
	run := func(t *testing.T, epsilon string) (string, func(string) (string, *http.Response)) {
		cfg := fmt.Sprintf(`tiers:
  fast: {base_url: %s/v1, model: %s, timeout: 20s}
  strong: {base_url: %s/v1, model: %s, timeout: 20s}
exploration: {epsilon: %s}
`, fastTS.URL, sampleFast, strongTS.URL, sampleStrong, epsilon)
		url, _, _ := startServe(t, "--model", model, "--db", filepath.Join(t.TempDir(), "f.db"),
			"--config", writeFile(t, t.TempDir(), "proxy.yaml", cfg), "--addr", "127.0.0.1:0")
		chat := func(key string) (string, *http.Response) {
			t.Helper()
			rec := picks[key]
			p, _ := json.Marshal(rec.Prompt)
			m, _ := json.Marshal(rec.Meta)
			resp, err := http.Post(url+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"triage","messages":[{"role":"user","content":`+string(p)+`}],"metadata":`+string(m)+`}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d", key, resp.StatusCode)
			}
			return resp.Header.Get("X-Triage-Request-Id"), resp
		}
		return url, chat
	}
	feedback := func(t *testing.T, url, id, model string) {
		t.Helper()
		resp, err := http.Post(url+"/v1/feedback", "application/json",
			strings.NewReader(`{"request_id":"`+id+`","model":"`+model+`","score":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("feedback right after the answer: %d %s, want 200", resp.StatusCode, b)
		}
	}
	export := func(t *testing.T, url string) map[string]datasets.Record {
		t.Helper()
		status, body := get(t, url+"/admin/feedback/export", "Authorization", "Bearer "+adminToken)
		if status != 200 {
			t.Fatalf("export: %d %s", status, body)
		}
		return recordsByID(t, bytes.NewReader(body))
	}

	t.Run("a fast answer's feedback and the export right after it", func(t *testing.T) {
		url, chat := run(t, "0")
		var ids []string
		for range 3 {
			id, resp := chat("fast")
			if d := resp.Header.Get("X-Triage-Decision"); d != "fast" {
				t.Fatalf("decision %q, want fast", d)
			}
			feedback(t, url, id, sampleFast)
			ids = append(ids, id)
		}
		// Two more without feedback, exported at once.
		for range 2 {
			id, _ := chat("escalate")
			ids = append(ids, id)
		}
		got := export(t, url)
		for i, id := range ids {
			r, ok := got[id]
			if !ok {
				t.Errorf("request %d (%s) is not in the export taken right after it", i, id)
				continue
			}
			if i >= 3 {
				continue
			}
			o := r.Outcomes[sampleFast]
			if o.Score == nil || *o.Score != 1 || o.LatencyMS == nil || o.Confidence == nil || o.Response == "" {
				t.Errorf("request %d's fast outcome %+v: want the posted score with the proxy's latency, confidence and answer", i, o)
			}
		}
	})
	t.Run("an explored request's feedback right after the answer", func(t *testing.T) {
		url, chat := run(t, "1")
		id, resp := chat("fast")
		if resp.Header.Get("X-Triage-Explored") != "true" || resp.Header.Get("X-Triage-Model") != sampleFast {
			t.Fatalf("explored %q model %q, want an explored request answered by the fast tier",
				resp.Header.Get("X-Triage-Explored"), resp.Header.Get("X-Triage-Model"))
		}
		feedback(t, url, id, sampleFast)
		r := export(t, url)[id]
		if o := r.Outcomes[sampleStrong]; o.LatencyMS == nil || o.Cancelled {
			t.Errorf("strong outcome %+v, want the completed exploration call", o)
		}
		if o := r.Outcomes[sampleFast]; o.Score == nil || o.Confidence == nil {
			t.Errorf("fast outcome %+v, want the score and the recorded confidence", o)
		}
	})
}
