package serve

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
)

// benchPrompt is about 2 KB of MMLU-like text, the size the acceptance
// throughput figure uses.
var benchPrompt = strings.Repeat("Which of the following statements about the citric acid cycle is correct? A. It occurs in the cytoplasm. B. It produces most ATP directly. C. It oxidises acetyl-CoA to CO2. D. It requires no oxygen.\n", 10)

// BenchmarkRoute2KB is one POST /v1/route through the whole handler with a
// ~2 KB prompt and the default feature spec, decision log included.
func BenchmarkRoute2KB(b *testing.B) {
	dir := b.TempDir()
	a := testArtifact(b, "bench", 0)
	a.Features = features.DefaultSpec()
	a.Weights = make([]float64, a.Features.Dim())
	model := filepath.Join(dir, "router.json")
	if err := a.Save(model); err != nil {
		b.Fatal(err)
	}
	store, err := datasets.OpenBoltStore(filepath.Join(dir, "f.db"), datasets.StoreOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	s, err := New(Options{Config: DefaultConfig(), ModelPath: model, Store: store, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	body := `{"prompt":` + string(mustJSON(benchPrompt)) + `}`
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/v1/route", strings.NewReader(body))
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkFastDecodeRoute is the fast body decoders alone, on the
// BenchmarkRoute2KB body and on a feedback body with messages and meta.
func BenchmarkFastDecodeRoute(b *testing.B) {
	route := []byte(`{"prompt":` + string(mustJSON(benchPrompt)) + `}`)
	feedback := []byte(`{"request_id":"r-1","model":"mixtral","score":0.75,"latency_ms":120,"prompt":"p",` +
		`"messages":[{"role":"system","content":"be brief"},{"role":"user","content":` + string(mustJSON(benchPrompt[:400])) + `}],` +
		`"meta":{"subject":"biology","tenant":"acme"}}`)
	b.Run("route 2KB", func(b *testing.B) {
		b.SetBytes(int64(len(route)))
		b.ReportAllocs()
		for b.Loop() {
			var r routeRequest
			if !fastDecodeRoute(route, &r) {
				b.Fatal("fast path refused the body")
			}
		}
	})
	b.Run("feedback", func(b *testing.B) {
		b.SetBytes(int64(len(feedback)))
		b.ReportAllocs()
		for b.Loop() {
			var f feedbackRequest
			if !fastDecodeFeedback(feedback, &f) {
				b.Fatal("fast path refused the body")
			}
		}
	})
}
