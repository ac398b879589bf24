package serve

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/serve/proxy"
)

func TestRoute(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name string
		body string
	}{
		{"a prompt is routed", `{"prompt":"What is 2+2?"}`},
		{"messages are routed", `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`},
		{"meta with numbers and booleans is accepted", `{"prompt":"x","meta":{"tenant":"a","tier":2,"beta":true}}`},
		{"a client id becomes the request id", `{"prompt":"x","id":"client-7"}`},
		// OpenAI's legacy completions take "prompt": "" (a missing prompt
		// is a 400 there, and here) and the proxy routes it; it was
		// refused as "prompt is empty".
		{"an empty prompt is routed", `{"prompt":""}`},
		{"an empty prompt the strict decoder reads is routed", `{"Prompt":"","explain":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/v1/route", tt.body)
			var got map[string]json.RawMessage
			decodeJSON(t, w, &got)
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			// The two-tier fields as before, and the tiers chosen: a
			// speculation names the one raced too.
			if want := "accept_confidence,decision,model_version,p_hard,race,request_id,tier,tiers"; strings.Join(keys, ",") != want {
				t.Errorf("keys = %v, want %s", keys, want)
			}
			var r struct {
				RequestID        string            `json:"request_id"`
				Decision         string            `json:"decision"`
				PHard            float64           `json:"p_hard"`
				Tiers            map[string]string `json:"tiers"`
				AcceptConfidence float64           `json:"accept_confidence"`
				ModelVersion     string            `json:"model_version"`
				Tier             string            `json:"tier"`
				Race             string            `json:"race"`
			}
			decodeJSON(t, w, &r)
			if r.Tier != "mixtral" || r.Race != "gpt-4" {
				t.Errorf("tier %q race %q, want a speculation choosing mixtral, raced with gpt-4", r.Tier, r.Race)
			}
			// The test model is zero weights with bias 0: p_hard = σ(0).
			if r.Decision != "speculate" || r.PHard != 0.5 || r.ModelVersion != "v1" || r.AcceptConfidence != 0.8 {
				t.Errorf("got %+v, want speculate, p_hard 0.5, v1, accept 0.8", r)
			}
			if r.Tiers["fast"] != "mixtral" || r.Tiers["strong"] != "gpt-4" {
				t.Errorf("tiers = %v, want mixtral/gpt-4", r.Tiers)
			}
			if strings.Contains(tt.body, `"id"`) {
				if r.RequestID != "client-7" {
					t.Errorf("request_id = %q, want the client's id", r.RequestID)
				}
			} else if len(r.RequestID) != 32 {
				t.Errorf("request_id = %q, want 32 hex characters", r.RequestID)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}

	t.Run("explain adds a list of contributions", func(t *testing.T) {
		w := ts.do(t, "POST", "/v1/route", `{"prompt":"x","explain":true}`)
		var r struct {
			Explain *[]json.RawMessage `json:"explain"`
		}
		decodeJSON(t, w, &r)
		// Zero weights contribute nothing, so the list is present and empty.
		if r.Explain == nil || len(*r.Explain) != 0 {
			t.Errorf("explain = %v, want an empty list", r.Explain)
		}
	})

	t.Run("generated request ids differ", func(t *testing.T) {
		seen := map[string]bool{}
		for range 100 {
			var r struct {
				RequestID string `json:"request_id"`
			}
			decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"prompt":"x"}`), &r)
			if seen[r.RequestID] {
				t.Fatalf("request id %s repeated", r.RequestID)
			}
			seen[r.RequestID] = true
		}
	})

	t.Run("every route is logged with its decision", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do(t, "POST", "/v1/route", `{"prompt":"first","meta":{"tenant":"a"},"id":"r1"}`)
		ts.do(t, "POST", "/v1/route", `{"messages":[{"role":"user","content":"second"}],"id":"r2"}`)
		recs := ts.export(t)
		if len(recs) != 2 {
			t.Fatalf("export has %d records, want 2", len(recs))
		}
		r1, r2 := recs[0], recs[1]
		if r1.ID != "r1" || r1.Prompt != "first" || r1.Meta["tenant"] != "a" || r1.TS.IsZero() {
			t.Errorf("r1 = %+v, want its prompt, meta and time", r1)
		}
		if d := r1.Decision; d == nil || d.Kind != "speculate" || d.PHard != 0.5 || d.ModelVersion != "v1" || d.Propensity != 1 {
			t.Errorf("r1.decision = %+v, want speculate 0.5 v1 propensity 1", d)
		}
		if r2.ID != "r2" || len(r2.Messages) != 1 || r2.Messages[0].Content != "second" {
			t.Errorf("r2 = %+v, want its messages", r2)
		}
	})
}

func TestRouteRejectsBadInput(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Config.Limits.MaxBodyBytes = 4096
		o.Config.Limits.MaxPromptBytes = 1000
		o.Config.Limits.MaxMetaKeys = 3
		o.Config.Limits.MaxMessages = 3
	})
	tests := []struct {
		name    string
		body    string
		status  int
		code    string
		message string
	}{
		{"invalid JSON names the byte", `{"prompt": "x",}`, 400, CodeInvalidJSON, "malformed JSON at byte"},
		{"truncated JSON says so", `{"prompt": "x"`, 400, CodeInvalidJSON, "truncated"},
		{"an empty body says so", ``, 400, CodeInvalidJSON, "empty"},
		{"a number prompt names the field", `{"prompt": 5}`, 400, CodeInvalidRequest, "prompt is a JSON number, want a string"},
		{"a string for messages names the field", `{"messages": "hi"}`, 400, CodeInvalidRequest, "messages is a JSON string, want an array"},
		{"a list for a meta value names the key", `{"prompt":"x","meta":{"k":[1]}}`, 400, CodeInvalidRequest, "meta.k"},
		{"a boolean explain of the wrong type", `{"prompt":"x","explain":"yes"}`, 400, CodeInvalidRequest, "explain is a JSON string, want a boolean"},
		{"an array body wants an object", `[1,2]`, 400, CodeInvalidRequest, "want an object"},
		{"a null body wants an object", ` null `, 400, CodeInvalidRequest, "JSON null, want an object"},
		{"no prompt at all", `{"meta":{"a":"b"}}`, 400, CodeInvalidRequest, "prompt is missing; send a prompt or messages"},
		{"a null prompt is no prompt", `{"prompt":null}`, 400, CodeInvalidRequest, "prompt is missing; send a prompt or messages"},
		{"an empty messages array says it is the messages", `{"messages":[]}`, 400, CodeInvalidRequest, "messages is an empty array; send at least one"},
		{"an empty messages array the strict decoder reads says so too", `{"messages":[],"explain":null}`, 400, CodeInvalidRequest, "messages is an empty array"},
		{"messages without content", `{"messages":[{"role":"user","content":""}]}`, 400, CodeInvalidRequest, "no content"},
		{"an image alone has no text to route on", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, CodeInvalidRequest, "image, audio and file parts carry none"},
		{"a message without a role", `{"messages":[{"content":"hi"}]}`, 400, CodeInvalidRequest, "messages[0].role is empty"},
		{"prompt and messages together", `{"prompt":"a","messages":[{"role":"user","content":"b"}]}`, 400, CodeInvalidRequest, "both set"},
		{"an unknown field is named", `{"prompt":"x","promt":"y"}`, 400, CodeUnknownField, `unknown field "promt"`},
		{"an unknown nested field is named", `{"messages":[{"role":"user","contnet":"x"}]}`, 400, CodeUnknownField, `unknown field "contnet"`},
		{"content of the wrong kind says what it may be", `{"messages":[{"role":"user","content":5}]}`, 400, CodeInvalidRequest, "messages.content is a JSON number, want a string or an array of content parts"},
		{"an array of other things is not content", `{"messages":[{"role":"user","content":[1,2]}]}`, 400, CodeInvalidRequest, "messages.content is a JSON array of something other than content parts"},
		{"invalid UTF-8 gives its offset", "{\"prompt\":\"caf\xe9\"}", 400, CodeInvalidUTF8, "offset 14"},
		{"data after the object", `{"prompt":"x"} {"prompt":"y"}`, 400, CodeInvalidJSON, "after the JSON object"},
		{"an id with a control character", `{"prompt":"x","id":"a\u0000b"}`, 400, CodeInvalidRequest, "control character"},
		{"an oversized body is 413", `{"prompt":"` + strings.Repeat("a", 5000) + `"}`, 413, CodeBodyTooLarge, "limit is 4096"},
		{"an oversized prompt is 413", `{"prompt":"` + strings.Repeat("a", 1001) + `"}`, 413, CodePromptTooLarge, "limit is 1000"},
		{"more meta keys than the limit", `{"prompt":"x","meta":{"a":"1","b":"2","c":"3","d":"4"}}`, 400, CodeInvalidRequest, "meta has 4 keys, the limit is 3 (limits.max_meta_keys)"},
		{"more messages than the limit", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"}]}`, 400, CodeInvalidRequest, "messages has 4 messages, the limit is 3 (limits.max_messages)"},
		{"oversized messages are 413", `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 600) + `"},{"role":"user","content":"` + strings.Repeat("a", 600) + `"}]}`, 413, CodePromptTooLarge, "1200 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/v1/route", tt.body)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tt.status, w.Body)
			}
			e := errorOf(t, w)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Errorf("error = %+v, want code %s and a message containing %q", e, tt.code, tt.message)
			}
		})
	}
	t.Run("a body over the limit without Content-Length is 413", func(t *testing.T) {
		req := chunkedRequest("/v1/route", `{"prompt":"`+strings.Repeat("a", 5000)+`"}`)
		w := ts.serve(req)
		if w.Code != 413 {
			t.Fatalf("status = %d, want 413", w.Code)
		}
	})
	t.Run("rejected requests are not logged", func(t *testing.T) {
		if recs := ts.export(t); len(recs) != 0 {
			t.Errorf("export has %d records, want 0", len(recs))
		}
	})
}

// TestRouteTakesOpenAIMessages: a client passes the messages it sends to
// the model as they are. Content parts are routed on their text (an image
// part has none), the other members of an OpenAI message are accepted and
// not used, and the decision log keeps the text, so the export reads back
// as a log.
func TestRouteTakesOpenAIMessages(t *testing.T) {
	ts := newTestServer(t, nil)
	plain := `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is in\nthis picture?"}]}`
	bodies := []struct{ name, body string }{
		{"content parts", `{"messages":[{"role":"system","content":[{"type":"text","text":"be brief"}]},{"role":"user","content":[{"type":"text","text":"what is in"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"this picture?"}]}]}`},
		{"name, tool calls and a null content", `{"messages":[{"role":"system","content":"be brief","name":"house-rules"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}],"refusal":null},{"role":"tool","tool_call_id":"c1","content":""},{"role":"user","content":"what is in\nthis picture?"}]}`},
	}
	var want struct {
		PHard float64 `json:"p_hard"`
	}
	decodeJSON(t, ts.do(t, "POST", "/v1/route", plain), &want)
	for _, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			var got struct {
				PHard float64 `json:"p_hard"`
			}
			decodeJSON(t, ts.do(t, "POST", "/v1/route", b.body), &got)
			// The test artifact routes on the text of the messages (their
			// contents joined), which is the same in each body: empty
			// turns add no text.
			if got.PHard != want.PHard {
				t.Errorf("p_hard = %v, want %v (the plain messages')", got.PHard, want.PHard)
			}
		})
	}
	recs := ts.export(t)
	if len(recs) != 3 {
		t.Fatalf("export has %d records, want 3", len(recs))
	}
	if got := recs[1].Messages; len(got) != 2 || got[1].Content != "what is in\nthis picture?" || got[0].Content != "be brief" {
		t.Errorf("the content parts' record has messages %+v, want their text", got)
	}
	if got := recs[2].Messages; len(got) != 4 || got[1].Role != "assistant" || got[1].Content != "" {
		t.Errorf("the tool-call record has messages %+v, want four turns, the assistant's empty", got)
	}
}

func TestRouteBatch(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxBatch = 3 })
	t.Run("decisions come back in request order", func(t *testing.T) {
		w := ts.do(t, "POST", "/v1/route/batch", `{"requests":[{"prompt":"a","id":"b1"},{"messages":[{"role":"user","content":"b"}],"id":"b2"},{"prompt":"c","id":"b3","explain":true}]}`)
		var r struct {
			Decisions []struct {
				RequestID string            `json:"request_id"`
				Decision  string            `json:"decision"`
				Explain   []json.RawMessage `json:"explain"`
			} `json:"decisions"`
		}
		decodeJSON(t, w, &r)
		var ids []string
		for _, d := range r.Decisions {
			ids = append(ids, d.RequestID)
			if d.Decision != "speculate" {
				t.Errorf("%s decision = %s, want speculate", d.RequestID, d.Decision)
			}
		}
		if got := strings.Join(ids, ","); got != "b1,b2,b3" {
			t.Errorf("ids = %s, want b1,b2,b3", got)
		}
		if r.Decisions[2].Explain == nil {
			t.Errorf("the third element asked for explain and has none")
		}
		recs := ts.export(t)
		if len(recs) != 3 || recs[1].Messages[0].Content != "b" {
			t.Errorf("export = %+v, want the three requests", recs)
		}
	})
	t.Run("an element with an empty prompt is routed, and exported as an empty prompt", func(t *testing.T) {
		w := ts.do(t, "POST", "/v1/route/batch", `{"requests":[{"prompt":"","id":"e1"},{"prompt":"a","id":"e2"},{"PROMPT":"","id":"e3"}]}`)
		var r struct {
			Decisions []struct {
				Decision string `json:"decision"`
			} `json:"decisions"`
		}
		decodeJSON(t, w, &r)
		if len(r.Decisions) != 3 {
			t.Errorf("%d decisions, want 3: %s", len(r.Decisions), w.Body)
		}
		// As /v1/route's {"prompt": ""} is, which is logged as sent: the
		// batch's elements were logged without an empty prompt's key,
		// and exported as one empty user message.
		want := map[string]string{"e1": "", "e2": "a", "e3": ""}
		for _, rec := range ts.export(t) {
			if p, ok := want[rec.ID]; ok && (rec.Prompt != p || rec.Messages != nil) {
				t.Errorf("exported %+v, want the prompt %q and no messages", rec, p)
			}
		}
	})
	for _, tt := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"a batch over the limit is 413", `{"requests":[{"prompt":"a"},{"prompt":"b"},{"prompt":"c"},{"prompt":"d"}]}`, 413, CodeBatchTooLarge, "4 requests, the limit is 3"},
		{"an empty batch is 400", `{"requests":[]}`, 400, CodeInvalidRequest, "requests is empty"},
		{"a bad element is named by index", `{"requests":[{"prompt":"a"},{}]}`, 400, CodeInvalidRequest, "requests[1].prompt is missing"},
		{"an empty messages array is named by index", `{"requests":[{"prompt":"a"},{"messages":[]}]}`, 400, CodeInvalidRequest, "requests[1].messages is an empty array"},
		{"an unknown field in an element", `{"requests":[{"prompt":"a","x":1}]}`, 400, CodeUnknownField, `unknown field "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/v1/route/batch", tt.body)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if e := errorOf(t, w); e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("error = %+v, want %s containing %q", e, tt.code, tt.msg)
			}
		})
	}
}

func TestRouteDecoderAcceptsExactLimits(t *testing.T) {
	lim := DefaultConfig().Limits
	lim.MaxPromptBytes = 10
	if _, err := decodeRoute([]byte(`{"prompt":"0123456789"}`), lim); err != nil {
		t.Errorf("a prompt of exactly the limit: %v, want accepted", err)
	}
}

func FuzzRouteDecode(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"x"}`, `{"messages":[{"role":"user","content":"x"}],"meta":{"a":1,"b":true,"c":null},"id":"i","explain":true}`,
		`{"prompt":5}`, `[]`, `{"prompt":"\ud800"}`, "{\"prompt\":\"\xff\"}", `{"prompt":"x"} x`, `{"meta":{"a":{}}}`,
	} {
		f.Add([]byte(s))
	}
	lim := DefaultConfig().Limits
	lim.MaxPromptBytes = 64
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeRoute(body, lim)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkAcceptedInput(t, r.input(), lim)
	})
}

// checkRefusal fails unless a refused body's error maps to a 4xx with a
// code and a message.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	status, code, msg := ErrorStatus(err)
	if status < 400 || status >= 500 || code == "" || msg == "" {
		t.Fatalf("error %v maps to %d %q: want a 4xx with a message", err, status, code)
	}
}

// checkAcceptedInput fails unless an accepted request has a prompt or
// messages, not both, within the size limit.
func checkAcceptedInput(t *testing.T, in features.Input, lim Limits) {
	t.Helper()
	n := len(in.Prompt)
	for _, m := range in.Messages {
		n += len(m.Content)
	}
	if n == 0 || n > lim.MaxPromptBytes {
		t.Fatalf("accepted a prompt of %d bytes", n)
	}
	if in.Prompt != "" && len(in.Messages) > 0 {
		t.Fatalf("accepted both prompt and messages")
	}
}

// FuzzRouteBatchDecode: a batch body is refused with a 4xx that says
// why, or accepted with each request within the limits, ids unique.
func FuzzRouteBatchDecode(f *testing.F) {
	for _, s := range []string{
		`{"requests":[{"prompt":"x"},{"id":"b","messages":[{"role":"user","content":[{"type":"text","text":"y"}]}]}]}`,
		`{"requests":[{"id":"a","prompt":"x"},{"id":"a","prompt":"y"}]}`, `{"requests":[]}`, `{"requests":null}`,
		`{"requests":[{"messages":[{"role":"user","content":"x","x":1}]}]}`, `{"requests":[{"prompt":1}]}`, `null`, `{"requests":{}}`,
	} {
		f.Add([]byte(s))
	}
	lim := DefaultConfig().Limits
	lim.MaxPromptBytes, lim.MaxBatch = 64, 4
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeBatch(body, lim)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(b.Requests) == 0 || len(b.Requests) > lim.MaxBatch {
			t.Fatalf("accepted a batch of %d", len(b.Requests))
		}
		if n, ok := batchLen(body); ok && n != len(b.Requests) {
			t.Fatalf("batchLen counted %d requests, the decoder %d", n, len(b.Requests))
		}
		ids := map[string]bool{}
		for _, r := range b.Requests {
			checkAcceptedInput(t, r.input(), lim)
			if r.ID != "" {
				if ids[r.ID] {
					t.Fatalf("accepted id %q twice", r.ID)
				}
				ids[r.ID] = true
			}
		}
	})
}

func TestRouteP(t *testing.T) {
	// p_hard values reach the client exactly: the response is written by
	// hand, so check it against encoding/json for awkward values.
	for _, p := range []float64{0, 1, 0.5, 1e-7, 0.123456789012345678, math.Nextafter(1, 0)} {
		st := &state{suffix: []byte(`,"x":1`), tiers: []string{"f", "s"}}
		b := appendDecision(nil, `id"q`, resultOf(p), 0, proxy.NoRace, st)
		b = append(b, '}')
		var got struct {
			ID    string  `json:"request_id"`
			PHard float64 `json:"p_hard"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("p=%v: %s is not JSON: %v", p, b, err)
		}
		if got.PHard != p || got.ID != `id"q` {
			t.Errorf("p=%v: decoded %+v from %s", p, got, b)
		}
	}
}

func ExampleErrorStatus() {
	status, code, _ := ErrorStatus(Errorf(CodePromptTooLarge, "prompt is too long"))
	fmt.Println(status, code)
	// Output: 413 prompt_too_large
}

// TestRouteTakesCompressedBodies: a client or gateway that compresses its
// request and says so gets the same answer as an uncompressed one; the
// size limit holds for the decoded body, so a small body that expands
// past it is a 413; an encoding the server cannot decode is a 415 naming
// it, and a body that does not decode is a 400 saying so, not "not valid
// UTF-8" about gzip bytes.
func TestRouteTakesCompressedBodies(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxBodyBytes = 4096 })
	body := `{"prompt":"what is 2+2?"}`
	var want, got struct {
		PHard float64 `json:"p_hard"`
	}
	decodeJSON(t, ts.do(t, "POST", "/v1/route", body), &want)
	for _, enc := range []string{"gzip", "deflate"} {
		var b bytes.Buffer
		var zw io.WriteCloser = gzip.NewWriter(&b)
		if enc == "deflate" {
			zw = zlib.NewWriter(&b)
		}
		zw.Write([]byte(body))
		zw.Close()
		decodeJSON(t, ts.do(t, "POST", "/v1/route", b.String(), "Content-Encoding", enc), &got)
		if got.PHard != want.PHard {
			t.Errorf("%s: p_hard %v, want %v (the plain body's)", enc, got.PHard, want.PHard)
		}
		if enc == "gzip" {
			// Zero padding after the member is read as gzip -dc and
			// the log readers read it (internal/gunzip).
			w := ts.do(t, "POST", "/v1/route", b.String()+strings.Repeat("\x00", 512), "Content-Encoding", enc)
			if decodeJSON(t, w, &got); got.PHard != want.PHard {
				t.Errorf("gzip and zero padding: p_hard %v, want %v (the plain body's)", got.PHard, want.PHard)
			}
		}
	}
	var plain bytes.Buffer
	zw0 := gzip.NewWriter(&plain)
	zw0.Write([]byte(body))
	zw0.Close()

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte(`{"prompt":"` + strings.Repeat("a", 100_000) + `"}`))
	zw.Close()
	if bomb.Len() > 4096 {
		t.Fatalf("the compressed body is %d bytes; the test needs it under the limit", bomb.Len())
	}
	for _, c := range []struct {
		name, body, encoding string
		status               int
		code, message        string
	}{
		{"a body that expands past the limit", bomb.String(), "gzip", 413, CodeBodyTooLarge, "limit of 4096"},
		{"a body that expands past the limit, zero padded", bomb.String() + "\x00\x00", "gzip", 413, CodeBodyTooLarge, "limit of 4096"},
		{"bytes after the gzip member", plain.String() + "junk", "gzip", 400, CodeInvalidRequest, fmt.Sprintf("byte %d, after gzip member 1", plain.Len())},
		{"plain JSON labelled gzip", body, "gzip", 400, CodeInvalidRequest, "does not decode as gzip"},
		{"an encoding the server does not decode", body, "br", 415, CodeUnsupportedEncoding, `Content-Encoding "br"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := ts.do(t, "POST", "/v1/route", c.body, "Content-Encoding", c.encoding)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d (body %s)", w.Code, c.status, w.Body)
			}
			if e := errorOf(t, w); e.Code != c.code || !strings.Contains(e.Message, c.message) {
				t.Errorf("error %+v, want code %s and a message containing %q", e, c.code, c.message)
			}
			if c.status == 415 && w.Header().Get("Accept-Encoding") != "gzip, deflate" {
				t.Errorf("Accept-Encoding %q, want the encodings taken", w.Header().Get("Accept-Encoding"))
			}
		})
	}
}

// A batch over limits.max_batch was decoded whole before it was counted:
// a body of max_body_bytes holding ~70,000 tiny requests allocated 27 MB
// (and 80 ms of CPU) only to be refused, and 64 such posts at once took
// the server to 1.9 GB. It is counted first now.
func TestOversizedBatchIsRefusedBeforeItIsDecoded(t *testing.T) {
	lim := DefaultConfig().Limits
	var b strings.Builder
	b.WriteString(`{"requests":[`)
	const n = 60000
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"prompt":"a"}`)
	}
	b.WriteString(`]}`)
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decodeBatch(body, lim)
	runtime.ReadMemStats(&after)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBatchTooLarge || !strings.Contains(e.Message, fmt.Sprintf("batch has %d requests", n)) {
		t.Fatalf("decodeBatch of %d requests = %v, want batch_too_large with the count", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing a batch of %d requests (%d bytes) allocated %d bytes, want under 1 MiB", n, len(body), alloc)
	}
}

func TestBatchLenCountsAsTheDecoderDoes(t *testing.T) {
	for _, body := range []string{
		`{"requests":[{"prompt":"a"}]}`,
		` { "requests" : [ {"prompt":"a"} , {"prompt":"b]}\"[{"} ] } `,
		`{"Requests":[{"prompt":"a"},{"prompt":"b"}]}`,
		`{"\u0072equests":[{"prompt":"a"},{"prompt":"b"},{"prompt":"c"}]}`,
		`{"requests":[{"prompt":"a"}],"requests":[{"prompt":"a"},{"prompt":"b"}]}`,
		`{"requests":[{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"meta":{"k":"v,]"}},{"prompt":"\\"}]}`,
		`{"requests":[]}`,
	} {
		var want batchRequest
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if n, ok := batchLen([]byte(body)); !ok || n != len(want.Requests) {
			t.Errorf("batchLen(%s) = %d, %v; want %d, true", body, n, ok, len(want.Requests))
		}
	}
	// No array to count: the strict decode says what is wrong.
	for _, body := range []string{``, `[]`, `{}`, `{"requests":null}`, `{"requests":{}}`, `{"requests":[1],"requests":null}`} {
		if n, ok := batchLen([]byte(body)); ok {
			t.Errorf("batchLen(%q) = %d, true; want it to leave the word to the strict decode", body, n)
		}
	}
}
