package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

const token = "s3cret-token"

func withAdmin(o *Options) { o.AdminToken = token }

func TestAdminAuth(t *testing.T) {
	t.Run("admin routes do not exist without a token", func(t *testing.T) {
		ts := newTestServer(t, nil)
		for _, r := range []struct{ method, path string }{{"POST", "/admin/reload"}, {"GET", "/admin/feedback/export"}, {"GET", "/admin/feedback/snapshot"}} {
			w := ts.do(t, r.method, r.path, "", "Authorization", "Bearer "+token)
			if w.Code != 404 {
				t.Errorf("%s %s: status %d, want 404", r.method, r.path, w.Code)
			}
		}
	})
	ts := newTestServer(t, withAdmin)
	for _, tt := range []struct {
		name, header string
		status       int
	}{
		{"no header is 401", "", 401},
		{"a wrong token is 401", "Bearer nope", 401},
		{"a token without Bearer is 401", token, 401},
		{"a longer token sharing the prefix is 401", "Bearer " + token + "x", 401},
		{"the right token is let in", "Bearer " + token, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/admin/reload", "", "Authorization", tt.header)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.status == 401 {
				if e := errorOf(t, w); e.Code != CodeUnauthorized {
					t.Errorf("code = %s, want %s", e.Code, CodeUnauthorized)
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	// Refused attempts are what an operator watches for.
	if got := testutil.ToFloat64(ts.m.requests.WithLabelValues("/admin/reload", "POST", "401")); got != 4 {
		t.Errorf(`triage_http_requests_total{route="/admin/reload",method="POST",code="401"} = %v, want the 4 refused`, got)
	}
}

func modelVersion(tb testing.TB, ts *testServer) string {
	tb.Helper()
	var m struct {
		Version string `json:"version"`
	}
	decodeJSON(tb, ts.do(tb, "GET", "/v1/model", ""), &m)
	return m.Version
}

// The log of a reload says whether it changed the version served. A
// reload of the same file said "model reloaded" too, while its answer
// said changed: false: an operator reading the log after a retrain took
// the new model to be serving.
func TestReloadLogSaysWhetherTheVersionChanged(t *testing.T) {
	ts := newTestServer(t, withAdmin)
	auth := []string{"Authorization", "Bearer " + token}
	for _, tt := range []struct {
		name, version string
		res           ReloadResult
		log           string
	}{
		{"the same file", "v1", ReloadResult{Version: "v1", Previous: "v1"}, `level=INFO msg="model file read again, version unchanged" version=v1`},
		{"a new version", "v2", ReloadResult{Version: "v2", Previous: "v1", Changed: true}, `level=INFO msg="model reloaded" version=v2 previous=v1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeArtifact(t, ts.model, tt.version, 0)
			since := len(ts.logs.String())
			var res ReloadResult
			decodeJSON(t, ts.do(t, "POST", "/admin/reload", "", auth...), &res)
			if res != tt.res {
				t.Errorf("reload = %+v, want %+v", res, tt.res)
			}
			if got := ts.logs.String()[since:]; !strings.HasSuffix(got, tt.log+"\n") || strings.Count(got, "\n") != 1 {
				t.Errorf("the reload logged\n%s\nwant one line ending in\n%s", got, tt.log)
			}
		})
	}
}

func TestReload(t *testing.T) {
	ts := newTestServer(t, withAdmin)
	auth := []string{"Authorization", "Bearer " + token}

	t.Run("a good file is swapped in", func(t *testing.T) {
		writeArtifact(t, ts.model, "v2", 3) // p_hard σ(3) = 0.95: escalate
		w := ts.do(t, "POST", "/admin/reload", "", auth...)
		var res ReloadResult
		decodeJSON(t, w, &res)
		if res != (ReloadResult{Version: "v2", Previous: "v1", Changed: true}) {
			t.Errorf("reload = %+v, want v1 -> v2", res)
		}
		if v := modelVersion(t, ts); v != "v2" {
			t.Errorf("/v1/model version = %s, want v2", v)
		}
		var r struct {
			Decision     string `json:"decision"`
			ModelVersion string `json:"model_version"`
		}
		decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"prompt":"x"}`), &r)
		if r.Decision != "escalate" || r.ModelVersion != "v2" {
			t.Errorf("route after reload = %+v, want escalate from v2", r)
		}
	})

	t.Run("a corrupt file keeps the old model and says why", func(t *testing.T) {
		b, err := os.ReadFile(ts.model)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(ts.model, bytes.Replace(b, []byte(`"v2"`), []byte(`"v9"`), 1), 0o644)
		w := ts.do(t, "POST", "/admin/reload", "", auth...)
		if w.Code != 422 {
			t.Fatalf("status = %d, want 422 (%s)", w.Code, w.Body)
		}
		e := errorOf(t, w)
		if e.Code != CodeBadArtifact || !strings.Contains(e.Message, "still serving v2") || !strings.Contains(e.Message, "checksum mismatch") {
			t.Errorf("error = %+v, want bad_artifact saying v2 still serves and the checksum is wrong", e)
		}
		if v := modelVersion(t, ts); v != "v2" {
			t.Errorf("version after a refused reload = %s, want v2", v)
		}
	})

	t.Run("a missing file keeps the old model", func(t *testing.T) {
		os.Remove(ts.model)
		w := ts.do(t, "POST", "/admin/reload", "", auth...)
		if w.Code != 500 {
			t.Fatalf("status = %d, want 500", w.Code)
		}
		if e := errorOf(t, w); e.Code != CodeReloadFailed || !strings.Contains(e.Message, "no such file") {
			t.Errorf("error = %+v, want reload_failed saying the file is missing", e)
		}
		if _, err := ts.Reload(); err == nil || !strings.Contains(err.Error(), "still serving v2") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Reload() = %v, want a not-exist error naming v2", err)
		}
	})

	t.Run("threshold overrides are reapplied on reload", func(t *testing.T) {
		hi := 0.99
		ts := newTestServer(t, func(o *Options) { o.Config.Thresholds.EscalateAbove = &hi })
		writeArtifact(t, ts.model, "v2", 3)
		if _, err := ts.Reload(); err != nil {
			t.Fatal(err)
		}
		var r struct{ Decision string }
		decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"prompt":"x"}`), &r)
		if r.Decision != "speculate" {
			t.Errorf("decision = %s, want speculate (0.95 is under the overridden escalate_above 0.99)", r.Decision)
		}
	})

	t.Run("metrics count reloads by result and name the version", func(t *testing.T) {
		want := `
# HELP triage_model_info The router artifact being served (value 1, version label).
# TYPE triage_model_info gauge
triage_model_info{version="v2"} 1
# HELP triage_model_reloads_total Model reloads by result (ok, error).
# TYPE triage_model_reloads_total counter
triage_model_reloads_total{result="error"} 3
triage_model_reloads_total{result="ok"} 1
`
		if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "triage_model_info", "triage_model_reloads_total"); err != nil {
			t.Error(err)
		}
	})
}

func TestReloadUnderConcurrentRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	writeArtifact(t, a, "va", -3)
	writeArtifact(t, b, "vb", 3)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if w := ts.do(t, "POST", "/v1/route", `{"prompt":"x"}`); w.Code != 200 {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 20 {
		src := a
		if i%2 == 1 {
			src = b
		}
		data, _ := os.ReadFile(src)
		os.WriteFile(ts.model, data, 0o644)
		if _, err := ts.Reload(); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d routes failed during reloads, want 0", bad)
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"a"}`)
	ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"b"}`)
	ts.do(t, "POST", "/v1/route", `{}`)
	ts.do(t, "POST", "/v1/feedback", `{"request_id":"a","model":"mixtral","score":1}`)
	want := `
# HELP triage_decisions_total Routing decisions by kind.
# TYPE triage_decisions_total counter
triage_decisions_total{decision="escalate"} 0
triage_decisions_total{decision="fast"} 0
triage_decisions_total{decision="speculate"} 2
# HELP triage_feedback_writes_total Feedback records committed to the db.
# TYPE triage_feedback_writes_total counter
triage_feedback_writes_total 1
# HELP triage_p_hard Calibrated probability that a routed request needs the strong tier.
# TYPE triage_p_hard histogram
triage_p_hard_bucket{le="0.1"} 0
triage_p_hard_bucket{le="0.2"} 0
triage_p_hard_bucket{le="0.3"} 0
triage_p_hard_bucket{le="0.4"} 0
triage_p_hard_bucket{le="0.5"} 2
triage_p_hard_bucket{le="0.6"} 2
triage_p_hard_bucket{le="0.7"} 2
triage_p_hard_bucket{le="0.8"} 2
triage_p_hard_bucket{le="0.9"} 2
triage_p_hard_bucket{le="1"} 2
triage_p_hard_bucket{le="+Inf"} 2
triage_p_hard_sum 1
triage_p_hard_count 2
# HELP triage_http_requests_total HTTP requests by route, method and status code (499: the client went away first).
# TYPE triage_http_requests_total counter
triage_http_requests_total{code="200",method="GET",route="/healthz"} 0
triage_http_requests_total{code="200",method="GET",route="/metrics"} 0
triage_http_requests_total{code="200",method="GET",route="/readyz"} 0
triage_http_requests_total{code="200",method="POST",route="/v1/feedback"} 1
triage_http_requests_total{code="200",method="GET",route="/v1/model"} 0
triage_http_requests_total{code="200",method="POST",route="/v1/route"} 2
triage_http_requests_total{code="200",method="POST",route="/v1/route/batch"} 0
triage_http_requests_total{code="400",method="POST",route="/v1/route"} 1
`
	if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "triage_decisions_total", "triage_feedback_writes_total", "triage_p_hard", "triage_http_requests_total"); err != nil {
		t.Error(err)
	}
	t.Run("a client that went away counts as 499, not as the status written for it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequest("POST", "/v1/route", strings.NewReader(`{"prompt":"x"}`)).WithContext(ctx)
		ts.Handler().ServeHTTP(httptest.NewRecorder(), req)
		if got := testutil.ToFloat64(ts.m.requests.WithLabelValues("/v1/route", "POST", "499")); got != 1 {
			t.Errorf("499s on /v1/route = %v, want 1", got)
		}
		if got := testutil.ToFloat64(ts.m.requests.WithLabelValues("/v1/route", "POST", "200")); got != 2 {
			t.Errorf("200s on /v1/route = %v, want still 2", got)
		}
	})
	t.Run("the endpoint serves the registry", func(t *testing.T) {
		w := ts.do(t, "GET", "/metrics", "")
		for _, name := range []string{"triage_db_size_bytes", "triage_decision_log_queue_depth", "triage_decision_log_dropped_total", "triage_http_request_duration_seconds_bucket", "triage_feedback_write_failures_total"} {
			if !strings.Contains(w.Body.String(), name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
	})
}

func TestHealthAndErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tt := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"healthz is up", "GET", "/healthz", 200, ""},
		{"readyz is ready", "GET", "/readyz", 200, ""},
		{"model info is served", "GET", "/v1/model", 200, ""},
		{"an unknown path is a JSON 404", "GET", "/v2/route", 404, CodeNotFound},
		{"a wrong method is a JSON 405", "GET", "/v1/route", 405, CodeMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, tt.method, tt.path, "")
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.code != "" {
				if e := errorOf(t, w); e.Code != tt.code {
					t.Errorf("code = %s, want %s", e.Code, tt.code)
				}
			}
		})
	}
	t.Run("model info has version, tiers and thresholds", func(t *testing.T) {
		var m modelInfo
		decodeJSON(t, ts.do(t, "GET", "/v1/model", ""), &m)
		if m.Version != "v1" || m.Tiers.Fast != "mixtral" || m.Thresholds == nil || *m.Thresholds != testPolicy {
			t.Errorf("model = %+v", m)
		}
	})
	t.Run("readyz is 503 once the db is closed", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.store.Close()
		if w := ts.do(t, "GET", "/readyz", ""); w.Code != 503 {
			t.Errorf("status = %d, want 503", w.Code)
		}
	})
}

// stuckLog is a store whose decision-log writes block until released.
type stuckLog struct {
	Store
	release chan struct{}
	mu      sync.Mutex
	written int
}

func (s *stuckLog) AppendDecisions(e []datasets.LogEntry) error {
	<-s.release
	s.mu.Lock()
	s.written += len(e)
	s.mu.Unlock()
	return s.Store.AppendDecisions(e)
}

// TestDecisionLogNeverBlocksRoutes: a stuck disk never holds a route; what
// the full queue drops is counted, and said in the server log (it used to
// move only triage_decision_log_dropped_total), once per dropWarnEvery
// with how many, and at shutdown for the drops the rate limit held back,
// so the counts in the log add up to the metric.
func TestDecisionLogNeverBlocksRoutes(t *testing.T) {
	var stuck *stuckLog
	ts := newTestServer(t, func(o *Options) {
		stuck = &stuckLog{Store: o.Store, release: make(chan struct{})}
		o.Store = stuck
		// A batch of 1 makes the writer block on its first record instead
		// of gathering the rest for logLinger: then at most 1 + 2 records
		// are taken, whatever the timing, and the others must be dropped.
		o.Config.DecisionLog.QueueSize = 2
		o.Config.DecisionLog.BatchSize = 1
	})
	const n = 20
	for i := range n {
		if w := ts.do(t, "POST", "/v1/route", fmt.Sprintf(`{"prompt":"x","id":"r%d"}`, i)); w.Code != 200 {
			t.Fatalf("route %d with a stuck disk: status %d, want 200", i, w.Code)
		}
	}
	dropped := testutil.ToFloat64(ts.m.logDropped)
	if dropped < n-3 {
		t.Errorf("dropped = %v with a queue of 2, batches of 1 and a stuck writer, want at least %d", dropped, n-3)
	}
	logs := ts.logs.String()
	if got := strings.Count(logs, "decision log queue full"); got != 1 {
		t.Errorf("the server log says %d times that the queue is full, want once (rate-limited); log:\n%s", got, logs)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "dropped=1 ") || !strings.Contains(logs, "queue_size=2") {
		t.Errorf("the warning lacks its level, count or queue size; log:\n%s", logs)
	}
	close(stuck.release)
	ts.Shutdown(context.Background())
	if got := float64(stuck.written) + dropped; got != n {
		t.Errorf("written %d + dropped %v = %v, want every one of the %d routes accounted for", stuck.written, dropped, got, n)
	}
	if got := testutil.ToFloat64(ts.m.logWritten); got != float64(stuck.written) {
		t.Errorf("written metric = %v, want %d", got, stuck.written)
	}
	said := 0
	for _, m := range regexp.MustCompile(`dropped=(\d+)`).FindAllStringSubmatch(ts.logs.String(), -1) {
		k, _ := strconv.Atoi(m[1])
		said += k
	}
	if float64(said) != dropped {
		t.Errorf("the server log says %d records were dropped, the metric %v; log:\n%s", said, dropped, ts.logs.String())
	}
}

func TestShutdownDrainsTheDecisionLog(t *testing.T) {
	ts := newTestServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	const n = 50
	for i := range n {
		resp, err := http.Post(url+"/v1/route", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"p%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after a graceful shutdown, want nil", err)
	}
	var buf bytes.Buffer
	if _, err := ts.store.Export(ctx, &buf, datasets.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if recs := readExport(t, &buf); len(recs) != n {
		t.Errorf("after shutdown the log has %d records, want %d", len(recs), n)
	}
	if w := ts.do(t, "GET", "/readyz", ""); w.Code != 503 {
		t.Errorf("readyz after shutdown = %d, want 503", w.Code)
	}
}

// A Shutdown whose time ran out on a long proxied request used to hand
// its spent context to the proxy's recorder, which then did not wait:
// the recordings of requests already answered were lost when the caller
// closed the store. They are written now, and the error says what the
// requests still in flight lose.
func TestShutdownKeepsAnsweredProxyRecordings(t *testing.T) {
	release := make(chan struct{})
	slowArrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte("slow")) {
			select {
			case slowArrived <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	defer up.Close()
	defer close(release)
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: up.URL, Model: "f"}, Strong: proxy.Tier{BaseURL: up.URL, Model: "s"}}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.Serve(ln)
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"
	slowCtx, cancelSlow := context.WithCancel(context.Background())
	defer cancelSlow()
	slowReq, _ := http.NewRequestWithContext(slowCtx, "POST", url, strings.NewReader(`{"model":"fast","messages":[{"role":"user","content":"slow"}]}`))
	slowReq.Header.Set("Content-Type", "application/json")
	go func() {
		if resp, err := http.DefaultClient.Do(slowReq); err == nil {
			resp.Body.Close()
		}
	}()
	var ids []string
	for i := range 3 {
		resp, err := http.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"model":"fast","messages":[{"role":"user","content":"quick %d"}]}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ids = append(ids, resp.Header.Get(proxy.HeaderRequestID))
	}
	// The slow request is sent from its own goroutine: on a loaded
	// machine it may not have reached the server when the quick ones are
	// answered, and a Shutdown then finds nothing in flight. Wait until
	// the upstream holds it.
	select {
	case <-slowArrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the upstream within 10s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = ts.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "still in flight") {
		t.Errorf("Shutdown with a request in flight = %v, want an error saying what those requests lose", err)
	}
	var buf bytes.Buffer
	if _, err := ts.store.Export(context.Background(), &buf, datasets.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range readExport(t, &buf) {
		got[r.ID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("answered request %s is not in the store after Shutdown (has %v)", id, got)
		}
	}
}

func TestAdminExportAndSnapshot(t *testing.T) {
	ts := newTestServer(t, withAdmin)
	auth := []string{"Authorization", "Bearer " + token}
	ts.do(t, "POST", "/v1/route", `{"prompt":"a","id":"r1"}`)
	ts.do(t, "POST", "/v1/feedback", `{"request_id":"r1","model":"mixtral","score":1}`)
	ts.do(t, "POST", "/v1/route", `{"prompt":"b","id":"r2"}`)

	t.Run("export streams JSONL records with outcomes", func(t *testing.T) {
		w := ts.do(t, "GET", "/admin/feedback/export", "", auth...)
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("status %d type %q", w.Code, w.Header().Get("Content-Type"))
		}
		recs := readExport(t, w.Body)
		if len(recs) != 2 || recs[0].ID != "r1" || recs[0].Outcomes["mixtral"].Score == nil || recs[1].ID != "r2" {
			t.Errorf("export = %+v, want r1 with feedback then r2", recs)
		}
	})
	t.Run("export rejects a bad since", func(t *testing.T) {
		w := ts.do(t, "GET", "/admin/feedback/export?since=yesterday", "", auth...)
		if w.Code != 400 {
			t.Errorf("status = %d, want 400", w.Code)
		}
	})
	t.Run("export rejects a misspelt since rather than export everything", func(t *testing.T) {
		w := ts.do(t, "GET", "/admin/feedback/export?sinse=2099-01-01T00:00:00Z", "", auth...)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `unknown query parameter \"sinse\"`) {
			t.Errorf("%d %s, want 400 naming the parameter", w.Code, w.Body)
		}
	})
	t.Run("the snapshot opens as a bbolt db", func(t *testing.T) {
		w := ts.do(t, "GET", "/admin/feedback/snapshot", "", auth...)
		if w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		path := filepath.Join(t.TempDir(), "snap.db")
		os.WriteFile(path, w.Body.Bytes(), 0o600)
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatalf("snapshot does not open: %v", err)
		}
		defer db.Close()
		db.View(func(tx *bolt.Tx) error {
			if n := tx.Bucket([]byte("ids")).Stats().KeyN; n != 2 {
				t.Errorf("snapshot holds %d request ids, want 2", n)
			}
			return nil
		})
	})
}

func TestConfig(t *testing.T) {
	t.Run("YAML sets limits and thresholds over the defaults", func(t *testing.T) {
		cfg, err := ParseConfig([]byte("addr: 0.0.0.0:9000\nlimits:\n  max_batch: 8\n  read_timeout: 2s\nthresholds:\n  escalate_above: 0.9\n"), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Addr != "0.0.0.0:9000" || cfg.Limits.MaxBatch != 8 || cfg.Limits.ReadTimeout != 2*time.Second || *cfg.Thresholds.EscalateAbove != 0.9 {
			t.Errorf("cfg = %+v", cfg)
		}
		if cfg.Limits.MaxBodyBytes != DefaultMaxBodyBytes || cfg.Thresholds.SpeculateAbove != nil {
			t.Errorf("keys absent from the file changed: %+v", cfg)
		}
	})
	t.Run("JSON is read too", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(`{"limits": {"max_prompt_bytes": 100, "write_timeout": "1m"}, "decision_log": {"queue_size": 10}}`), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Limits.MaxPromptBytes != 100 || cfg.Limits.WriteTimeout != time.Minute || cfg.DecisionLog.QueueSize != 10 {
			t.Errorf("cfg = %+v", cfg)
		}
	})
	for _, tt := range []struct{ name, in, msg string }{
		{"an unknown key is named by its path, with the keys allowed there", "limits:\n  max_bytes: 3\n", "line 2: limits.max_bytes is not a known setting (the settings in limits are idle_timeout, max_artifact_bytes, max_batch, max_body_bytes, max_connections,"},
		{"a misspelt key suggests the nearest", "limits:\n  max_bodybytes: 3\n", "line 2: limits.max_bodybytes is not a known setting; did you mean max_body_bytes?"},
		{"a misspelt tier key names no Go type", "tiers:\n  fast:\n    base_ur: http://x\n", "line 3: tiers.fast.base_ur is not a known setting; did you mean base_url? (the settings in tiers.fast are api_key_env, base_url,"},
		{"a misspelt top-level key", "adr: 127.0.0.1:1\n", "line 1: adr is not a known setting; did you mean addr? (the settings at the top level are addr,"},
		{"a JSON config's unknown key", `{"tiers": {"strong": {"modle": "x"}}}`, "tiers.strong.modle is not a known setting; did you mean model?"},
		{"a misspelt key of a listed tier names its place", "tiers:\n  - name: a\n    base_ur: http://x\n", "line 3: tiers[0].base_ur is not a known setting; did you mean base_url?"},
		{"a key of a listed tier is not one of the two-tier form", "tiers:\n  mid: {base_url: http://x/v1, model: m}\n", "line 2: tiers.mid is not a known setting (the settings in tiers are fast, strong;"},
		{"a listed tier without a name is refused", "tiers:\n  - {base_url: http://x/v1, model: a}\n  - {base_url: http://x/v1, model: b}\n", "tiers[0].name is empty"},
		{"two listed tiers of one name are refused", "tiers:\n  - {name: a, base_url: http://x/v1, model: a}\n  - {name: a, base_url: http://x/v1, model: b}\n", "tiers[0].name and tiers[1].name are both \"a\""},
		{"a list of one tier is refused", "tiers:\n  - {name: a, base_url: http://x/v1, model: a}\n", "tiers lists 1 tier; want two or more"},
		{"a listed tier's bad base_url names its place", "tiers:\n  - {name: a, base_url: x, model: a}\n  - {name: b, base_url: http://x/v1, model: b}\n", "tiers[0].base_url \"x\" is not an http(s) URL"},
		{"an alias to a tier not listed is refused", "tiers:\n  - {name: a, base_url: http://x/v1, model: a}\n  - {name: b, base_url: http://x/v1, model: b}\naliases: {gpt-4o: fast}\n", `aliases.gpt-4o is "fast"; want "triage" (routed) or a tier's name ("a", "b")`},
		{"a section given a number says it wants a mapping", "limits: 5\n", "line 1: limits is 5, a number; want a mapping of settings"},
		{"a section given a list says it wants a mapping", "limits: [1, 2]\n", "line 1: limits is a list; want a mapping of settings"},
		{"a section given a block list says so too", "limits:\n  - 1\n", "line 2: limits is a list; want a mapping of settings"},
		{"a setting given a mapping says what it wants", "limits:\n  read_timeout: {a: 1}\n", `line 2: limits.read_timeout is a mapping; want a duration such as "5s"`},
		{"a bad value inside a flow mapping names its key", "limits: {read_timeout: soon}\n", `line 1: limits.read_timeout is soon, a string; want a duration such as "5s"`},
		{"a negative limit is refused", "limits:\n  max_batch: -1\n", "limits.max_batch is -1"},
		{"a negative timeout is named as a duration", "limits:\n  read_timeout: -5s\n", "limits.read_timeout is -5s, want a positive duration (e.g. 30s)"},
		{"a threshold outside [0,1] is refused", "thresholds:\n  speculate_above: 2\n", "thresholds.speculate_above is 2"},
		{"a bad duration names the line and key", "limits:\n  read_timeout: soon\n", `line 2: limits.read_timeout is soon, a string; want a duration such as "5s"`},
		{"a bad number names the line and key", "limits:\n  max_batch: many\n", "line 2: limits.max_batch is many, a string; want a whole number"},
		// The YAML decoder reads past these without a word, and the
		// settings in them would not be applied.
		{"a second document is refused", "limits:\n  max_batch: 8\n---\nlimits:\n  max_body_bytes: 9\n", "line 3: a second YAML document starts here"},
		{"a second JSON object is refused", `{"limits": {"max_batch": 8}} {"limits": {"max_body_bytes": 9}}`, "line 1: the config's top-level mapping is followed by more content"},
		{"YAML keys below a JSON config are refused", "{\"limits\": {\"max_batch\": 8}}\nexploration: {epsilon: 0.1}\n", "followed by more content after its closing bracket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in), DefaultConfig())
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want an error containing %q", err, tt.msg)
			}
		})
	}
	// An empty --config file (a failed copy, a write cut short) started
	// the server on the defaults: another address, no retention.
	t.Run("an empty config file is refused, naming it", func(t *testing.T) {
		for _, in := range []string{"", "\n  \n"} {
			path := filepath.Join(t.TempDir(), "triage.yaml")
			if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path, DefaultConfig())
			if want := "config " + path + " is empty (" + strconv.Itoa(len(in)) + " bytes)"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q: got %v, want an error containing %q", in, err, want)
			}
		}
	})
	t.Run("a comment, a document end or an empty document after the config is fine", func(t *testing.T) {
		for _, in := range []string{"{\"limits\": {\"max_batch\": 8}} # the batch size\n", "limits: {max_batch: 8}\n...\n", "---\nlimits: {max_batch: 8}\n", "limits: {max_batch: 8}\n---\n# an empty document drops nothing\n"} {
			if cfg, err := ParseConfig([]byte(in), DefaultConfig()); err != nil || cfg.Limits.MaxBatch != 8 {
				t.Errorf("%q: max_batch %d, %v; want 8", in, cfg.Limits.MaxBatch, err)
			}
		}
	})
	t.Run("tiers as a list are read in order, with their names", func(t *testing.T) {
		cfg, err := ParseConfig([]byte("tiers:\n  - {name: small, base_url: http://127.0.0.1:1/v1, model: s}\n  - {name: mid, base_url: http://127.0.0.1:2/v1, model: m, record_as: mm}\n  - {name: large, base_url: http://127.0.0.1:3/v1, model: l}\naliases: {gpt-4o: mid}\nembeddings: {tier: small}\n"), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tier := range cfg.Proxy.Tiers.List() {
			got = append(got, tier.Name+"="+tier.Model+"/"+tier.RecordAs)
		}
		if strings.Join(got, " ") != "small=s/ mid=m/mm large=l/" || !cfg.Proxy.Enabled() {
			t.Errorf("tiers %v, want small, mid, large in order", got)
		}
	})
	t.Run("the two-tier form reads as a list of fast then strong", func(t *testing.T) {
		cfg, err := ParseConfig([]byte("tiers:\n  strong: {base_url: http://127.0.0.1:2/v1, model: s}\n  fast: {base_url: http://127.0.0.1:1/v1, model: f}\n"), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tier := range cfg.Proxy.Tiers.List() {
			got = append(got, tier.Name+"="+tier.Model)
		}
		if strings.Join(got, " ") != "fast=f strong=s" {
			t.Errorf("tiers %v, want fast=f strong=s", got)
		}
	})
	t.Run("thresholds that cross the model's are refused at start", func(t *testing.T) {
		lo := 0.1
		dir := t.TempDir()
		model := filepath.Join(dir, "m.json")
		writeArtifact(t, model, "v1", 0)
		store, err := datasets.OpenBoltStore(filepath.Join(dir, "f.db"), datasets.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		cfg := DefaultConfig()
		cfg.Thresholds.EscalateAbove = &lo // below the model's speculate_above 0.3
		_, err = New(Options{Config: cfg, ModelPath: model, Store: store, Registry: newRegistry()})
		if err == nil || !strings.Contains(err.Error(), "speculate_above") {
			t.Errorf("New = %v, want an error about the crossed thresholds", err)
		}
	})
}

func TestFeedbackWaitsForAQueuedDecision(t *testing.T) {
	var stuck *stuckLog
	ts := newTestServer(t, func(o *Options) {
		stuck = &stuckLog{Store: o.Store, release: make(chan struct{})}
		o.Store = stuck
	})
	if w := ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"queued"}`); w.Code != 200 {
		t.Fatalf("route: %d", w.Code)
	}
	// The writer is stuck holding the decision: the feedback must wait for
	// it rather than answer 404.
	got := make(chan int, 1)
	go func() {
		got <- ts.do(t, "POST", "/v1/feedback", `{"request_id":"queued","model":"mixtral","score":1}`).Code
	}()
	select {
	case code := <-got:
		t.Fatalf("feedback answered %d while its decision was still queued, want it to wait", code)
	case <-time.After(50 * time.Millisecond):
	}
	close(stuck.release)
	if code := <-got; code != 200 {
		t.Errorf("feedback after the decision was written: %d, want 200", code)
	}
}

// fullDisk is a store whose decision-log commits fail while full is set.
type fullDisk struct {
	Store
	full atomic.Bool
}

func (s *fullDisk) AppendDecisions(e []datasets.LogEntry) error {
	if s.full.Load() {
		return fmt.Errorf("append decisions: write /data/feedback.db: %w", syscall.ENOSPC)
	}
	return s.Store.AppendDecisions(e)
}

// A full disk loses routed decisions but not routing. Feedback about a
// lost one was told "route it first" (it had been), and /readyz said
// nothing: both now say the decisions are not being recorded, and why.
func TestDecisionLogFailureIsSaid(t *testing.T) {
	var disk *fullDisk
	ts := newTestServer(t, func(o *Options) {
		disk = &fullDisk{Store: o.Store}
		o.Store = disk
	})
	disk.full.Store(true)
	if w := ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"lost"}`); w.Code != 200 {
		t.Fatalf("route on a full disk: status %d, want 200", w.Code)
	}
	w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"lost","model":"mixtral","score":1}`)
	if w.Code != 404 || !strings.Contains(w.Body.String(), "not being recorded since") || !strings.Contains(w.Body.String(), "no space left on device") ||
		strings.Contains(w.Body.String(), "route it first") || strings.Contains(w.Body.String(), "/data/") {
		t.Errorf("feedback for a lost decision: %d %s, want a 404 saying decisions are not recorded (without the path)", w.Code, w.Body)
	}
	w = ts.do(t, "GET", "/readyz", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"decision_log":"routed requests are not being recorded since`) {
		t.Errorf("readyz on a full disk: %d %s, want 200 (routing goes on) saying the decisions are lost", w.Code, w.Body)
	}
	disk.full.Store(false)
	if w := ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"kept"}`); w.Code != 200 {
		t.Fatalf("route: status %d", w.Code)
	}
	if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"kept","model":"mixtral","score":1}`); w.Code != 200 {
		t.Errorf("feedback once the disk has room: %d %s, want 200", w.Code, w.Body)
	}
	if w := ts.do(t, "GET", "/readyz", ""); w.Code != 200 || strings.Contains(w.Body.String(), "decision_log") {
		t.Errorf("readyz once the disk has room: %d %s, want 200 without the warning", w.Code, w.Body)
	}
	if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"never","model":"mixtral","score":1}`); w.Code != 404 || !strings.Contains(w.Body.String(), "route it first") {
		t.Errorf("feedback for an id never routed: %d %s, want the usual 404", w.Code, w.Body)
	}
}

func TestErrorStatusOfADiskError(t *testing.T) {
	status, code, msg := ErrorStatus(fmt.Errorf("feedback log /data/f.db-wal: %w", syscall.ENOSPC))
	if status != 500 || code != CodeInternal || msg != "internal error: a disk error: no space left on device; see the server log" {
		t.Errorf("a full disk = %d %s %q, want 500 naming the errno without the path", status, code, msg)
	}
	if _, _, msg := ErrorStatus(errors.New("at /data/x: broken")); msg != "internal error; see the server log" {
		t.Errorf("another internal error = %q, want nothing of it shown", msg)
	}
}

// Model ids hold slashes (meta-llama/Llama-3.1-8B-Instruct): GET
// /v1/models listed one that GET /v1/models/{id} then could not find.
func TestModelIDsWithSlashes(t *testing.T) {
	cfg, err := ParseConfig([]byte("tiers:\n  fast: {base_url: http://127.0.0.1:1/v1, model: f}\n  strong: {base_url: http://127.0.0.1:2/v1, model: s}\naliases: {meta-llama/Llama-3.1-8B-Instruct: triage}\n"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.Config.Proxy = cfg.Proxy })
	if w := ts.do(t, "GET", "/v1/models", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"id":"meta-llama/Llama-3.1-8B-Instruct"`) {
		t.Fatalf("GET /v1/models: %d %s, want the alias listed", w.Code, w.Body)
	}
	for _, path := range []string{"/v1/models/meta-llama/Llama-3.1-8B-Instruct", "/v1/models/meta-llama%2FLlama-3.1-8B-Instruct", "/v1/models/fast"} {
		if w := ts.do(t, "GET", path, ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"object":"model"`) {
			t.Errorf("GET %s: %d %s, want the model", path, w.Code, w.Body)
		}
	}
	if w := ts.do(t, "GET", "/v1/models/meta-llama/nothing", ""); w.Code != 404 || !strings.Contains(w.Body.String(), `"unknown_model"`) {
		t.Errorf("GET an unknown id with a slash: %d %s, want 404 unknown_model", w.Code, w.Body)
	}
}

// TestTierOrderChecked: tiers are matched by position, so a config that
// lists the model's tiers in another order would send each request to
// another tier's upstream and record its answer under the chosen tier's
// name. It is refused at start; the model's own order, and upstream
// models that are not the tier names, start.
func TestTierOrderChecked(t *testing.T) {
	start := func(t *testing.T, tiers proxy.Tiers) error {
		t.Helper()
		dir := t.TempDir()
		model := filepath.Join(dir, "m.json")
		writeArtifact(t, model, "v1", 0) // tiers mixtral (fast), gpt-4 (strong)
		store, err := datasets.OpenBoltStore(filepath.Join(dir, "f.db"), datasets.StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		cfg := DefaultConfig()
		cfg.Proxy.Tiers = tiers
		s, err := New(Options{Config: cfg, ModelPath: model, Store: store, Registry: newRegistry()})
		if err == nil {
			s.Shutdown(t.Context())
		}
		return err
	}
	up := func(name, model string) proxy.Tier {
		return proxy.Tier{Name: name, BaseURL: "http://127.0.0.1:9/v1", Model: model}
	}
	for _, c := range []struct {
		name  string
		tiers proxy.Tiers
		want  string // "" starts
	}{
		{"list named in the model's order", proxy.Tiers{Ordered: []proxy.Tier{up("mixtral", "mixtral"), up("gpt-4", "gpt-4")}}, ""},
		{"list with names of its own", proxy.Tiers{Ordered: []proxy.Tier{up("cheap", "m-8x7b"), up("dear", "gpt-4o")}}, ""},
		{"list named in reverse", proxy.Tiers{Ordered: []proxy.Tier{up("gpt-4", "a"), up("mixtral", "b")}}, `tiers[0] is named "gpt-4", which is the model's tier 1`},
		{"fast and strong serving each other's model", proxy.Tiers{Fast: up("", "gpt-4"), Strong: up("", "mixtral")}, "upstream models are gpt-4, mixtral, the model's tiers in another order"},
		{"fast and strong serving their own model", proxy.Tiers{Fast: up("", "mixtral"), Strong: up("", "gpt-4")}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := start(t, c.tiers)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("New = %v, want it to start", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, models.ErrBadArtifact)):
				t.Errorf("New = %v, want an ErrBadArtifact saying %q", err, c.want)
			}
		})
	}
}

// TestProxyCapsMetadataAndMessages: limits.max_meta_keys and max_messages
// capped /v1/route, but the proxy, which routes and records the same
// meta ("metadata") and messages, took any number: 5,000 metadata keys
// were recorded whole.
func TestProxyCapsMetadataAndMessages(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	defer up.Close()
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: up.URL, Model: "f"}, Strong: proxy.Tier{BaseURL: up.URL, Model: "s"}}
		o.Config.Limits.MaxMetaKeys = 3
		o.Config.Limits.MaxMessages = 3
	})
	msgs := func(n int) string {
		m := make([]string, n)
		for i := range m {
			m[i] = `{"role":"user","content":"hi"}`
		}
		return `"messages":[` + strings.Join(m, ",") + `]`
	}
	for _, tt := range []struct {
		name, body string
		status     int
		message    string
	}{
		{"more metadata keys than the limit", `{"model":"fast",` + msgs(1) + `,"metadata":{"a":"1","b":"2","c":"3","d":"4"}}`, 400, "metadata has more than 3 entries (limits.max_meta_keys)"},
		{"more messages than the limit", `{"model":"fast",` + msgs(4) + `}`, 400, "messages has more than 3 entries (limits.max_messages)"},
		{"within both limits", `{"model":"fast",` + msgs(3) + `,"metadata":{"a":"1","b":"2","c":"3"}}`, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/v1/chat/completions", tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.message) {
				t.Errorf("status %d, body %s; want %d and %q", w.Code, w.Body, tt.status, tt.message)
			}
		})
	}
}
