package datasets

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastDecodeSeeds are lines of the shapes logs hold, and near misses the
// fast path must leave to encoding/json.
var fastDecodeSeeds = []string{
	`{"id":"synth/11/000000","prompt":"Prove that a continuous function on [a,b] attains its maximum.","meta":{"source":"synthetic","subject":"proof","tenant":"acme"},"outcomes":{"synthetic/fast-small":{"score":0},"synthetic/strong-large":{"score":0}},"ts":"2026-11-01T00:00:00Z"}`,
	`{"id":"mmlu/abstract_algebra/7","prompt":"Find the degree \"quoted\"\n\tand caf\u00e9 — ok \/ \\","meta":{"source":"mmlu","n":3,"t":true,"f":false,"z":null,"x":-1.5e3},"outcomes":{"m":{"score":0.5,"latency_ms":812,"cost_usd":0.00021,"confidence":-0.41,"response":"r","input_tokens":3,"output_tokens":4,"cancelled":true}}}`,
	` { "id" : "a" , "messages" : [ { "role" : "user" , "content" : "hi" } , {} ] , "outcomes" : { } , "meta" : { } } `,
	`{"id":"b","messages":[],"decision":{"decision":"fast","p_hard":0.1,"model_version":"v1","propensity":0.98,"explored":true},"ts":"2026-11-27T10:00:00+02:00"}`,
	`{"id":"c","prompt":"x","decision":{"decision":"escalate","p_hard":0.9,"model_version":"v1","fallback":"fast","error":"stream_broken"}}`,
	`{"id":"c","prompt":"x","decision":{"decision":"speculate","tier":"mid","p_hard":0.4,"model_version":"v2"}}`,
	`{"id":"d","prompt":"x","decision":{"decision":"speculate","tier":"fast","p_hard":0.8,"model_version":"v2","propensity":0.02,"explored":true,"policy":"escalate"}}`,
	`{"id":"e","prompt":"x","decision":{"decision":"escalate","tier":"strong","p_hard":0.1,"model_version":"v2","pinned":true}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"speculate","tier":"mid","p_hard":0,"model_version":"v3","propensity":0.3,"explored":true,"policy":"escalate","ran":["mid","large"],"policy_tier":"large","tier_propensity":{"large":1,"mid":0.3,"small":0}}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"fast","p_hard":0,"model_version":"v3","ran":[],"tier_propensity":{}}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"fast","p_hard":0,"model_version":"v3","ran":null,"tier_propensity":null}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"fast","p_hard":0,"model_version":"v3","tier_propensity":{"a":1,"a":0}}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"fast","p_hard":0,"model_version":"v3","ran":["a",1],"tier_propensity":{"a":"1"}}}`,
	`{"id":"f","prompt":"x","decision":{"decision":"fast","p_hard":0,"model_version":"v3","tier_propensity":{"caf\u00e9":1,"Mid":0.5}}}`,
	`{"id":"c","prompt":"x","outcomes":{"m":{"score":1},"m":{"score":0,"confidence":2}}}`,
	`{"id":"c","prompt":"x","meta":{"k":"a","k":null,"j":null,"j":"b"}}`,
	`{"id":"d","id":"e","prompt":"x"}`,
	`{"ID":"d","prompt":"x"}`,
	`{"id":"d","prompt":"x","other":1}`,
	`{"id":"d","prompt":null}`,
	`{"id":"d","prompt":"x","outcomes":{"m":{"score":01}}}`,
	`{"id":"d","prompt":"x","outcomes":{"m":{"score":1e999}}}`,
	`{"id":"d","prompt":"x","outcomes":{"m":{"input_tokens":1.5}}}`,
	`{"id":"d","prompt":"\ud83d\ude00 and \ud800"}`,
	"{\"id\":\"d\",\"prompt\":\"\xff\"}",
	`{"id":"d","prompt":"x","ts":"yesterday"}`,
	`{"id":"d","prompt":"x","meta":{"k":[1]}}`,
	`{"id":"d","prompt":"x",}`,
	`{"id":"d","prompt":"x"} {}`,
	`null`,
	`[]`,
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, s := range fastDecodeSeeds {
		if checkFastDecode(t, []byte(s)) {
			fast++
		}
	}
	// The first seeds are the usual shapes: they must take the fast path,
	// or it is not worth having.
	if fast < 6 {
		t.Errorf("%d seeds took the fast path, want at least the first 6", fast)
	}
	for _, s := range fastDecodeSeeds[:6] {
		var rec Record
		if !fastDecode([]byte(s), &rec) {
			t.Errorf("the fast path refused %s", s)
		}
	}
}

// checkFastDecode fails when fastDecode accepts b and encoding/json
// rejects it or decodes something else; it reports whether fastDecode
// accepted it.
func checkFastDecode(tb testing.TB, b []byte) bool {
	tb.Helper()
	var got Record
	if !fastDecode(b, &got) {
		return false
	}
	var want Record
	if err := json.Unmarshal(b, &want); err != nil {
		tb.Errorf("fast path accepted %q, encoding/json says %v", b, err)
		return true
	}
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("fast path decoded %q as\n%#v\nwant\n%#v", b, got, want)
	}
	return true
}

func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastDecode(t, b)
	})
}

// BenchmarkDecodeLine decodes a synthetic log line with the fast path and
// with encoding/json alone.
func BenchmarkDecodeLine(b *testing.B) {
	line := []byte(fastDecodeSeeds[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rec Record
			if !fastDecode(line, &rec) {
				b.Fatal("fast path refused the line")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
