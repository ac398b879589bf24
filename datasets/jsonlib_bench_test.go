package datasets

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"

	"github.com/triage-router/triage/internal/racetest"
)

// BenchmarkJSONLibraries weighs jsonscan, the hand-written fast path of
// the log reader (and, through the same scanner, of the route and
// feedback bodies), against the well-kept JSON libraries that could
// replace it, decoding the same lines into the same Record. Each library
// is tried two ways: into Record as it is (Meta and Message have
// UnmarshalJSON methods, which a drop-in replacement calls), and into a
// plain mirror of it with no such methods, the most the library can give
// (meta values stay as any, so it does less than Record needs). The
// libraries are already in the module graph through gin. Figures and the
// decision: docs/design.md, "JSON decoding".
func BenchmarkJSONLibraries(b *testing.B) {
	long := strings.Repeat("Prove that a continuous function on a closed interval attains its maximum. ", 27) // ~2 KB, a long prompt
	lines := []struct{ name, line string }{
		{"short line", fastDecodeSeeds[0]},
		{"2KB prompt", `{"id":"mmlu/college_mathematics/17","prompt":` + string(mustMarshal(b, long)) + `,"meta":{"source":"mmlu","subject":"college_mathematics"},"outcomes":{"mistralai/Mixtral-8x7B-Instruct-v0.1":{"score":0,"latency_ms":812,"cost_usd":0.00021,"confidence":-0.41},"gpt-4-1106-preview":{"score":1,"latency_ms":2411,"cost_usd":0.0093}},"ts":"2026-11-27T10:00:00Z"}`},
		{"messages", `{"id":"chat/9","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"What is the capital of Australia, and why not Sydney?"}],"meta":{"tenant":"acme","tier":2},"outcomes":{"fast":{"score":1},"strong":{"score":1}}}`},
	}
	type plainRecord struct {
		ID       string `json:"id"`
		Prompt   string `json:"prompt"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		Meta     map[string]any     `json:"meta"`
		Outcomes map[string]Outcome `json:"outcomes"`
		TS       time.Time          `json:"ts"`
		Decision *Decision          `json:"decision"`
	}
	libs := []struct {
		name      string
		unmarshal func([]byte, any) error
	}{
		{"encoding/json", json.Unmarshal},
		{"goccy/go-json", gojson.Unmarshal},
		{"json-iterator", jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal},
		{"sonic", sonic.ConfigStd.Unmarshal},
	}
	for _, l := range lines {
		line := []byte(l.line)
		b.Run(l.name+"/jsonscan", func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				var rec Record
				if !fastDecode(line, &rec) {
					b.Fatal("the fast path refused the line")
				}
			}
		})
		for _, lib := range libs {
			b.Run(l.name+"/"+lib.name+"/Record", func(b *testing.B) {
				b.SetBytes(int64(len(line)))
				b.ReportAllocs()
				for b.Loop() {
					var rec Record
					if err := lib.unmarshal(line, &rec); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(l.name+"/"+lib.name+"/plain", func(b *testing.B) {
				b.SetBytes(int64(len(line)))
				b.ReportAllocs()
				for b.Loop() {
					var rec plainRecord
					if err := lib.unmarshal(line, &rec); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestJSONLibrariesAgree keeps the benchmark honest: every library decodes
// each line into the Record jsonscan gives.
func TestJSONLibrariesAgree(t *testing.T) {
	for _, line := range fastDecodeSeeds {
		var want Record
		if !fastDecode([]byte(line), &want) {
			continue
		}
		for name, unmarshal := range map[string]func([]byte, any) error{
			"goccy/go-json": gojson.Unmarshal, "json-iterator": jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal, "sonic": sonic.ConfigStd.Unmarshal,
		} {
			if name == "goccy/go-json" && racetest.Enabled {
				// Its unsafe pointer arithmetic fails -race's checkptr
				// ("pointer arithmetic result points to invalid
				// allocation"): one more reason it is not a dependency.
				continue
			}
			var got Record
			if err := unmarshal([]byte(line), &got); err != nil {
				t.Errorf("%s: %s: %v", name, line, err)
				continue
			}
			if g, w := mustMarshal(t, got), mustMarshal(t, want); string(g) != string(w) {
				t.Errorf("%s decoded %s\nas   %s\nwant %s", name, line, g, w)
			}
		}
	}
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
