package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/syncbuf"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// The server's needs, met by the bbolt store.
var _ Store = (*datasets.BoltStore)(nil)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// testPolicy puts p_hard = σ(bias) of a zero-weight model in a known band:
// bias -3 → 0.047 fast, 0 → 0.5 speculate, 3 → 0.95 escalate.
var testPolicy = models.Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.8}

// testArtifact is a valid artifact whose p_hard is σ(bias) for every
// prompt: zero weights, identity calibration.
func testArtifact(tb testing.TB, version string, bias float64) *models.Artifact {
	tb.Helper()
	spec := features.DefaultSpec()
	spec.HashBits = 12 // small: reload tests load and validate it many times
	return &models.Artifact{
		FormatVersion: models.FormatVersion,
		Version:       version,
		CreatedAt:     time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Features:      spec,
		Weights:       make(models.Weights, spec.Dim()),
		Bias:          bias,
		Calibration:   classifier.Identity(),
		Tiers:         models.Tiers{Fast: "mixtral", Strong: "gpt-4"},
		Label:         "strong-wins",
		Policy:        testPolicy,
		Metrics:       map[string]float64{"apgr": 0.61},
	}
}

func writeArtifact(tb testing.TB, path, version string, bias float64) {
	tb.Helper()
	if err := testArtifact(tb, version, bias).Save(path); err != nil {
		tb.Fatal(err)
	}
}

type testServer struct {
	*Server
	store *datasets.BoltStore
	reg   *prometheus.Registry
	model string
	logs  *syncbuf.Buffer // background goroutines (retention, readiness) write it while a test reads it
}

// newTestServer starts a server on a fresh store with a speculate-band
// model ("v1", bias 0). edit may change the options before New.
func newTestServer(tb testing.TB, edit func(*Options)) *testServer {
	tb.Helper()
	dir := tb.TempDir()
	model := filepath.Join(dir, "router.json")
	writeArtifact(tb, model, "v1", 0)
	store, err := datasets.OpenBoltStore(filepath.Join(dir, "feedback.db"), datasets.StoreOptions{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	opts := Options{
		Config:    DefaultConfig(),
		ModelPath: model,
		Store:     store,
		Registry:  prometheus.NewRegistry(),
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		Now:       func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) },
		// The exploration coin never lands (1 is not below ε), so
		// decisions are the policy's; explore_test.go sets its own.
		Uniform: func() float64 { return 1 },
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Shutdown(tb.Context())
		store.Close()
	})
	return &testServer{Server: s, store: store, reg: opts.Registry, model: model, logs: logs}
}

// do sends one request through the handler and returns the recorder.
func (ts *testServer) do(tb testing.TB, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, req)
	return w
}

// errorOf decodes an error body, failing if it is not one.
// Its type must be OpenAI's for the status.
func errorOf(tb testing.TB, w *httptest.ResponseRecorder) proxy.ErrorDetail {
	tb.Helper()
	var e proxy.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" || e.Error.Type != proxy.ErrorType(w.Code) {
		tb.Fatalf("body %q is not an error body: %v", w.Body.String(), err)
	}
	return e.Error
}

func decodeJSON(tb testing.TB, w *httptest.ResponseRecorder, v any) {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d, body %s; want 200", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		tb.Fatalf("body %q: %v", w.Body, err)
	}
}

// export reads the store's export.
func (ts *testServer) export(tb testing.TB) []datasets.Record {
	tb.Helper()
	if err := ts.dlog.Flush(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := ts.store.Export(tb.Context(), &buf, datasets.ExportOptions{}); err != nil {
		tb.Fatal(err)
	}
	return readExport(tb, &buf)
}

func readExport(tb testing.TB, r io.Reader) []datasets.Record {
	tb.Helper()
	rd := datasets.NewReader(r, "export", datasets.ReadOptions{AllowMissingScore: true})
	var out []datasets.Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("export line: %v", err)
		}
		out = append(out, rec)
	}
}

// serve sends a prepared request through the handler.
func (ts *testServer) serve(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, req)
	return w
}

// chunkedRequest is a POST whose length is unknown to the server, as with
// Transfer-Encoding: chunked.
func chunkedRequest(path, body string) *http.Request {
	req := httptest.NewRequest("POST", path, io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	return req
}

func resultOf(p float64) models.Result {
	return models.Result{PHard: p, Decision: testPolicy.Decide(p)}
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
