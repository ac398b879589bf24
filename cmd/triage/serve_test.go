package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/syncbuf"
	"github.com/triage-router/triage/models"
)

const adminToken = "test-admin-token"

// serveModel writes a small valid router for the sample's tiers. Training
// one (trainSample) takes minutes under -race; serving does not care how
// the weights were found.
func serveModel(t *testing.T, dir string) string {
	t.Helper()
	spec := features.DefaultSpec()
	spec.HashBits = 12
	w := make(models.Weights, spec.Dim())
	w[7], w[99] = 0.5, -0.25 // a few non-zero weights so prompts differ
	a := &models.Artifact{
		FormatVersion: models.FormatVersion,
		Version:       models.NewVersion(time.Now()),
		CreatedAt:     time.Now().UTC(),
		Features:      spec,
		Weights:       w,
		Bias:          -0.5,
		Calibration:   classifier.Identity(),
		Tiers:         models.Tiers{Fast: sampleFast, Strong: sampleStrong},
		Label:         "strong-wins",
		Policy:        models.Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.8},
	}
	path := filepath.Join(dir, "router.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServe runs 'triage serve args' in-process with the admin token set
// and returns its base URL and a stop func giving the exit status.
func startServe(t *testing.T, args ...string) (url string, stderr *syncbuf.Buffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncbuf.Buffer{}
	env := &Env{Stdout: io.Discard, Stderr: stderr, Getenv: func(k string) string {
		if k == "TRIAGE_ADMIN_TOKEN" {
			return adminToken
		}
		return ""
	}}
	code := make(chan int, 1)
	go func() { code <- Main(ctx, append([]string{"serve"}, args...), env) }()
	stopped := false
	stop = func() int {
		if stopped {
			return -1
		}
		stopped = true
		cancel()
		return <-code
	}
	t.Cleanup(func() { stop() })
	re := regexp.MustCompile(`triage serve: listening on (127\.0\.0\.1:\d+)`)
	deadline := time.After(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1], stderr, stop
		}
		select {
		case c := <-code:
			stopped = true
			t.Fatalf("serve exited with %d before listening: %s", c, stderr)
		case <-deadline:
			t.Fatalf("serve did not print its address: %s", stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func post(t *testing.T, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func get(t *testing.T, url string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func exportRecords(t *testing.T, url string) []datasets.Record {
	t.Helper()
	status, body := get(t, url+"/admin/feedback/export", "Authorization", "Bearer "+adminToken)
	if status != 200 {
		t.Fatalf("export: status %d %s", status, body)
	}
	recs, _, err := readRecordsFrom(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("export is not a valid log: %v\n%s", err, body)
	}
	return recs
}

func readRecordsFrom(r io.Reader) ([]datasets.Record, int, error) {
	rd := datasets.NewReader(r, "export", datasets.ReadOptions{AllowMissingScore: true})
	var out []datasets.Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out, rd.Skipped(), nil
		}
		if err != nil {
			return out, 0, err
		}
		out = append(out, rec)
	}
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	db := filepath.Join(dir, "feedback.db")
	url, stderr, stop := startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0")

	status, body := post(t, url+"/v1/route", `{"prompt":"What is the capital of France?","meta":{"tenant":"acme"}}`)
	if status != 200 {
		t.Fatalf("route: %d %s", status, body)
	}
	var routed struct {
		RequestID    string  `json:"request_id"`
		Decision     string  `json:"decision"`
		PHard        float64 `json:"p_hard"`
		ModelVersion string  `json:"model_version"`
		Tiers        models.Tiers
	}
	if err := json.Unmarshal(body, &routed); err != nil {
		t.Fatal(err)
	}
	if routed.Tiers.Fast != sampleFast || routed.Tiers.Strong != sampleStrong || routed.RequestID == "" {
		t.Fatalf("route answer = %s, want the sample's tiers and a request id", body)
	}
	status, body = post(t, url+"/v1/feedback", `{"request_id":"`+routed.RequestID+`","model":"`+sampleFast+`","score":1,"latency_ms":210,"confidence":-0.2}`)
	if status != 200 {
		t.Fatalf("feedback: %d %s", status, body)
	}
	post(t, url+"/v1/feedback", `{"request_id":"`+routed.RequestID+`","model":"`+sampleStrong+`","score":1}`)
	status, _ = post(t, url+"/v1/route", `{"messages":[{"role":"user","content":"Prove Fermat's last theorem."}],"id":"second"}`)
	if status != 200 {
		t.Fatalf("second route: %d", status)
	}

	recs := exportRecords(t, url)
	if len(recs) != 2 {
		t.Fatalf("export has %d records, want 2", len(recs))
	}
	first := recs[0]
	if first.ID != routed.RequestID || first.Prompt != "What is the capital of France?" || first.Meta["tenant"] != "acme" {
		t.Errorf("first record = %+v, want the routed prompt and meta", first)
	}
	if d := first.Decision; d == nil || d.Kind != routed.Decision || d.PHard != routed.PHard || d.ModelVersion != routed.ModelVersion {
		t.Errorf("first decision = %+v, want what the route answered (%s %v %s)", d, routed.Decision, routed.PHard, routed.ModelVersion)
	}
	if fo := first.Outcomes[sampleFast]; fo.Score == nil || *fo.Score != 1 || *fo.LatencyMS != 210 || *fo.Confidence != -0.2 {
		t.Errorf("fast outcome = %+v, want the posted feedback", fo)
	}
	if _, ok := first.Outcomes[sampleStrong]; !ok || len(first.Outcomes) != 2 {
		t.Errorf("outcomes = %v, want both tiers", first.Outcomes)
	}
	if recs[1].ID != "second" || len(recs[1].Messages) != 1 || recs[1].Outcomes != nil {
		t.Errorf("second record = %+v, want its messages and no outcomes", recs[1])
	}

	status, body = get(t, url+"/metrics")
	if status != 200 || !strings.Contains(string(body), `triage_feedback_writes_total 2`) || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("metrics: %d, want feedback writes 2 and Go runtime metrics", status)
	}

	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d after SIGINT-equivalent, want 0: %s", code, stderr)
	}

	t.Run("the data survives a restart", func(t *testing.T) {
		url, _, _ := startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0")
		if recs := exportRecords(t, url); len(recs) != 2 || len(recs[0].Outcomes) != 2 {
			t.Errorf("after restart the export has %d records, want the same 2 with their feedback", len(recs))
		}
	})
}

func TestServeSecondInstanceOnTheSameDB(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	db := filepath.Join(dir, "feedback.db")
	startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0")
	_, stderr, code := run(t, "serve", "--model", model, "--db", db, "--addr", "127.0.0.1:0", "--db-timeout", "100ms")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := "triage serve: feedback db " + db + " is locked by another process (is a triage serve running?)"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestServeReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	url, stderr, _ := startServe(t, "--model", model, "--db", filepath.Join(dir, "f.db"), "--addr", "127.0.0.1:0")
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	next := a.Derive(time.Now())
	if err := next.Save(model); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for range 400 {
		_, body := get(t, url+"/v1/model")
		if strings.Contains(string(body), `"version":"`+next.Version+`"`) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("after SIGHUP the model is not %s: %s", next.Version, stderr)
}

func TestServeAdminReloadRefusesACorruptFile(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	url, _, _ := startServe(t, "--model", model, "--db", filepath.Join(dir, "f.db"), "--addr", "127.0.0.1:0")
	a, _ := models.Load(model)
	if err := os.WriteFile(model, []byte(`{"format_version":1,"version":"half`), 0o644); err != nil {
		t.Fatal(err)
	}
	status, body := post(t, url+"/admin/reload", "", "Authorization", "Bearer "+adminToken)
	if status != 422 || !strings.Contains(string(body), "still serving "+a.Version) {
		t.Errorf("reload = %d %s, want 422 saying %s still serves", status, body, a.Version)
	}
	if _, body := get(t, url+"/v1/model"); !strings.Contains(string(body), a.Version) {
		t.Errorf("model after a refused reload: %s, want %s", body, a.Version)
	}
}

func TestServeFlagsWinOverTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	cfg := writeFile(t, dir, "serve.yaml", "addr: 127.0.0.1:1\nlimits:\n  max_batch: 1\n  max_prompt_bytes: 20\n")
	url, _, _ := startServe(t, "--model", model, "--db", filepath.Join(dir, "f.db"), "--config", cfg, "--addr", "127.0.0.1:0", "--max-batch", "2")
	if status, body := post(t, url+"/v1/route/batch", `{"requests":[{"prompt":"a"},{"prompt":"b"}]}`); status != 200 {
		t.Errorf("a batch of 2 with --max-batch 2 over the file's 1: %d %s, want 200", status, body)
	}
	if status, _ := post(t, url+"/v1/route", `{"prompt":"`+strings.Repeat("x", 21)+`"}`); status != 413 {
		t.Errorf("a 21-byte prompt with the file's max_prompt_bytes 20: %d, want 413", status)
	}
}

func TestServeBusyPortLeavesNoDB(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	db := filepath.Join(dir, "feedback.db")
	_, stderr, code := run(t, "serve", "--model", model, "--db", db, "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "port 0 picks a free one") {
		t.Errorf("exit %d stderr %q, want 1, address already in use and what to do", code, stderr)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("serve that could not bind its port created %s (stat err %v)", db, err)
	}
}

// A serve that fails after it opened the db (the model is not a router,
// an upstream's key is not set) removes the db file it created, and
// leaves one that was there alone.
func TestServeThatFailsLeavesNoNewDB(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	notARouter := writeFile(t, dir, "log.jsonl", `{"id":"a","prompt":"x"}`+"\n")
	keyless := writeFile(t, dir, "proxy.yaml", `tiers:
  fast: {base_url: http://127.0.0.1:9/v1, model: a, api_key_env: TRIAGE_TEST_UNSET_KEY}
  strong: {base_url: http://127.0.0.1:9/v1, model: b}
`)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"a model that is a log", []string{"--model", notARouter}, "this is a log"},
		{"an upstream key that is not set", []string{"--model", model, "--config", keyless}, "TRIAGE_TEST_UNSET_KEY, which is not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "feedback.db")
			_, stderr, code := run(t, append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, tt.args...)...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d stderr %q, want 1 and %q", code, stderr, tt.want)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("serve that failed left %s behind (stat err %v)", db, err)
			}
		})
	}
	t.Run("a db that was there stays", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "feedback.db")
		url, stderr, stop := startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0")
		if code, _ := post(t, url+"/v1/route", `{"prompt":"kept"}`); code != 200 {
			t.Fatalf("route: %d", code)
		}
		if code := stop(); code != 0 {
			t.Fatalf("serve exited %d: %s", code, stderr)
		}
		if _, _, code := run(t, "serve", "--db", db, "--addr", "127.0.0.1:0", "--model", notARouter); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		if n := len(exportedRecords(t, db)); n != 1 {
			t.Errorf("the db holds %d records after the failed start, want its 1", n)
		}
	})
}

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.json", `{"format_version":1}`)
	cfg := writeFile(t, dir, "bad.yaml", "limits:\n  max_bodybytes: 3\n")
	db := filepath.Join(dir, "f.db")
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model is a usage error", []string{"--db", db}, 2, "serve needs --model FILE"},
		{"no db is a usage error", []string{"--model", bad}, 2, "serve needs --db FILE"},
		{"a bad flag value is a usage error", []string{"--model", bad, "--db", db, "--max-batch", "0"}, 2, "limits.max_batch is 0"},
		{"an unknown config key is named", []string{"--model", bad, "--db", db, "--config", cfg}, 1, "limits.max_bodybytes is not a known setting; did you mean max_body_bytes?"},
		{"a bare port suggests the colon", []string{"--model", bad, "--db", db, "--addr", "19012"}, 2, "--addr 19012 is a port without a host (for port 19012 write 127.0.0.1:19012 (this machine only) or :19012 (every interface))"},
		{"an address without a port is not host:port", []string{"--model", bad, "--db", db, "--addr", "localhost"}, 2, `--addr "localhost" is not host:port`},
		{"an address with a bad port says so", []string{"--model", bad, "--db", db, "--addr", "127.0.0.1:99999"}, 2, `--addr "127.0.0.1:99999" has no usable port`},
		{"a bare ops port suggests the colon", []string{"--model", bad, "--db", db, "--ops-addr", "19013"}, 2, "--ops-addr 19013 is a port without a host"},
		{"the ops listener needs a port of its own", []string{"--model", bad, "--db", db, "--addr", "127.0.0.1:19014", "--ops-addr", "127.0.0.1:19014"}, 2, "ops_addr 127.0.0.1:19014 is addr too"},
		{"a bad model says what is wrong", []string{"--model", bad, "--db", db, "--addr", "127.0.0.1:0"}, 1, "bad router artifact"},
		{"a missing model file", []string{"--model", filepath.Join(dir, "none.json"), "--db", db, "--addr", "127.0.0.1:0"}, 1, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, append([]string{"serve"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, stderr, tt.code, tt.msg)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); tt.code == 2 && n > 0 && !strings.HasPrefix(stderr, "triage serve:") {
				t.Errorf("usage error is not one line: %q", stderr)
			}
		})
	}
}

// --ops-addr opens a second listener for health, readiness, metrics and
// admin calls, and says where on stderr.
func TestServeOpsAddr(t *testing.T) {
	dir := t.TempDir()
	url, stderr, stop := startServe(t, "--model", serveModel(t, dir), "--db", filepath.Join(dir, "f.db"), "--addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
	re := regexp.MustCompile(`triage serve: ops endpoints \(/healthz, /readyz, /metrics, /admin\) on (127\.0\.0\.1:\d+)`)
	var ops string
	for deadline := time.Now().Add(10 * time.Second); ops == ""; time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			ops = "http://" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not print the ops address: %s", stderr)
		}
	}
	if ops == url {
		t.Fatalf("the ops listener is the client listener (%s)", ops)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := get(t, ops+path); code != http.StatusOK {
			t.Errorf("GET %s on the ops listener: %d %s", path, code, body)
		}
	}
	if code, body := post(t, ops+"/admin/reload", "", "Authorization", "Bearer "+adminToken); code != http.StatusOK {
		t.Errorf("POST /admin/reload on the ops listener: %d %s", code, body)
	}
	if code, _ := post(t, ops+"/v1/route", `{"prompt":"hi"}`); code != http.StatusNotFound {
		t.Errorf("POST /v1/route on the ops listener: %d, want 404", code)
	}
	if code, body := post(t, url+"/v1/route", `{"prompt":"hi"}`); code != http.StatusOK {
		t.Errorf("POST /v1/route on addr: %d %s", code, body)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after a stop, want 0: %s", code, stderr)
	}
}
