package serve

import (
	"reflect"
	"testing"
	"unicode/utf8"
)

var fastSeeds = []string{
	`{"prompt":"x"}`,
	` { "prompt" : "a\nb\t\"q\" \\ \/ \b\f\r" , "id" : "i-1", "explain" : true } `,
	`{"prompt":"caf\u00e9 \ud83d\ude00 \ud800 \udc00x \ud800\u0041 \uD834\uDD1E"}`,
	`{"messages":[{"role":"user","content":"hi"},{"content":"x","role":"assistant"}],"meta":{"a":"b","":"","a":"c"}}`,
	`{"messages":[],"meta":{}}`,
	`{"messages":[{}]}`,
	`{"prompt":"a","prompt":"b","explain":false}`,
	`{"Prompt":"x"}`,
	`{"prompt":null}`,
	`{"meta":{"n":1}}`,
	`{"prompt":"x",}`,
	`{"prompt":"x"}x`,
	`{"prompt":"\u00"}`,
	`{"prompt":"\x"}`,
	"{\"prompt\":\"a\x01\"}",
	`{"explain":truex}`,
	`{"messages":[{"role":"u","content":"c"},]}`,
	`{"":1}`,
	`{"meta":{"n":1.50,"b":false,"k":"v","k":null,"e\u00e9":"x"}}`,
	`{"pr\u006fmpt":"x"}`,
}

func TestFastDecodeRoute(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
		want routeRequest
	}{
		{"a plain prompt", `{"prompt":"hello"}`, true, routeRequest{Prompt: "hello"}},
		{"escapes and a surrogate pair", `{"prompt":"a\n\u00e9\ud83d\ude00"}`, true, routeRequest{Prompt: "a\né😀"}},
		{"a lone surrogate becomes U+FFFD", `{"prompt":"\ud800x"}`, true, routeRequest{Prompt: "\uFFFDx"}},
		{"messages, meta and explain", `{"messages":[{"role":"user","content":"c"}],"meta":{"k":"v"},"explain":true,"id":"i"}`, true,
			routeRequest{ID: "i", Messages: []message{{Role: "user", Content: "c"}}, Meta: map[string]string{"k": "v"}, Explain: true}},
		{"another case goes to encoding/json", `{"PROMPT":"x"}`, false, routeRequest{}},
		{"numbers and booleans in meta are kept as text, as datasets.Meta keeps them", `{"prompt":"x","meta":{"n":1.50,"b":false}}`, true,
			routeRequest{Prompt: "x", Meta: map[string]string{"n": "1.50", "b": "false"}}},
		{"null in meta means absent", `{"prompt":"x","meta":{"k":"v","k":null}}`, true, routeRequest{Prompt: "x", Meta: map[string]string{}}},
		{"an escaped key goes to encoding/json", `{"pr\u006fmpt":"x"}`, false, routeRequest{}},
		{"null goes to encoding/json", `{"prompt":null}`, false, routeRequest{}},
		{"trailing data is not accepted", `{"prompt":"x"} {}`, false, routeRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got routeRequest
			ok := fastDecodeRoute([]byte(tt.body), &got)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzFastDecodeMatchesEncodingJSON: whatever the fast path accepts, the
// strict encoding/json decoder accepts too, with the same result.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return
		}
		var fast routeRequest
		if !fastDecodeRoute(body, &fast) {
			return
		}
		var slow routeRequest
		if err := decodeStrict(body, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json says %v", body, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, slow)
		}
	})
}

var fastFeedbackSeeds = []string{
	`{"request_id":"r","model":"m","score":1}`,
	`{"request_id":"r","model":"m","score":0.5,"confidence":-1.25e-3,"latency_ms":120,"cost_usd":1E+2,"response":"a\n"}`,
	`{"request_id":"r","model":"m","score":1,"prompt":"p","messages":[{"role":"user","content":"c"}],"meta":{"k":"v"}}`,
	`{"request_id":"r","model":"m","score":null}`,
	`{"request_id":"r","model":"m","score":01}`,
	`{"request_id":"r","model":"m","score":1.}`,
	`{"request_id":"r","model":"m","score":-}`,
	`{"request_id":"r","model":"m","score":1e}`,
	`{"request_id":"r","model":"m","score":1e999}`,
	`{"request_id":"r","model":"m","score":"1"}`,
	`{"request_id":"r","model":"m","score":1,"score":0}`,
	`{"Score":1}`,
	`{"request_id":"r","extra":1}`,
}

func TestFastDecodeFeedback(t *testing.T) {
	one, half, lat := 1.0, 0.5, 120.0
	tests := []struct {
		name string
		body string
		ok   bool
		want feedbackRequest
	}{
		{"ids and a score", `{"request_id":"r","model":"m","score":1}`, true, feedbackRequest{RequestID: "r", Model: "m", Score: &one}},
		{"every number field", `{"request_id":"r","model":"m","score":0.5,"confidence":0.5,"latency_ms":1.2e2,"cost_usd":1}`, true,
			feedbackRequest{RequestID: "r", Model: "m", Score: &half, Confidence: &half, LatencyMS: &lat, CostUSD: &one}},
		{"a prompt with messages and meta", `{"request_id":"r","model":"m","prompt":"p","messages":[{"role":"user","content":"c"}],"meta":{"k":"v"}}`, true,
			feedbackRequest{RequestID: "r", Model: "m", Prompt: "p", Messages: []message{{Role: "user", Content: "c"}}, Meta: map[string]string{"k": "v"}}},
		{"null goes to encoding/json", `{"request_id":"r","model":"m","score":null}`, false, feedbackRequest{}},
		{"a leading zero is not a number", `{"request_id":"r","model":"m","score":01}`, false, feedbackRequest{}},
		{"a number out of range goes to encoding/json", `{"request_id":"r","model":"m","score":1e999}`, false, feedbackRequest{}},
		{"an unknown key goes to encoding/json", `{"request_id":"r","model":"m","score":1,"scor":1}`, false, feedbackRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got feedbackRequest
			ok := fastDecodeFeedback([]byte(tt.body), &got)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzFastDecodeFeedbackMatchesEncodingJSON: whatever the fast path
// accepts, the strict encoding/json decoder accepts too, with the same
// result.
func FuzzFastDecodeFeedbackMatchesEncodingJSON(f *testing.F) {
	for _, s := range append(fastFeedbackSeeds, fastSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return
		}
		var fast feedbackRequest
		if !fastDecodeFeedback(body, &fast) {
			return
		}
		var slow feedbackRequest
		if err := decodeStrict(body, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json says %v", body, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, slow)
		}
	})
}
