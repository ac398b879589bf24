package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/triage-router/triage/datasets"
)

func TestWithoutLogprobs(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantOK         bool
	}{
		{"every choice's logprobs become null and the rest stays as sent",
			`{"id":"x", "choices": [ {"index":0,"logprobs":{"content":[{"token":"}\"]","logprob":-1}]},"message":{"content":"a"}}, {"index":1,"logprobs" : null} ],"usage":{"n":1}}`,
			`{"id":"x", "choices": [ {"index":0,"logprobs":null,"message":{"content":"a"}}, {"index":1,"logprobs" : null} ],"usage":{"n":1}}`, true},
		{"a choice without logprobs is left alone", `{"choices":[{"index":0}]}`, `{"choices":[{"index":0}]}`, true},
		{"no choices is not an answer", `{"id":"x"}`, "", false},
		{"choices that are not objects are not an answer", `{"choices":[1]}`, "", false},
		{"an array is not an answer", `[{"choices":[]}]`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := withoutLogprobs([]byte(tt.in))
			if ok != tt.wantOK || string(got) != tt.want {
				t.Errorf("got %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzWithoutLogprobs checks the spliced answer against decoding: the
// same JSON with every choice's logprobs null.
func FuzzWithoutLogprobs(f *testing.F) {
	f.Add([]byte(benchAnswer))
	f.Add([]byte(`{"choices":[{"logprobs":1,"logprobs":{"a":"\u005d"}},{}],"x":[{"logprobs":2}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		got, ok := withoutLogprobs(b)
		var top map[string]json.RawMessage
		var choices []map[string]any
		wantOK := decodeNumbers(b, &top) == nil && top != nil && decodeNumbers(top["choices"], &choices) == nil && !hasNil(choices)
		if ok != wantOK {
			t.Fatalf("%s: ok = %v, want %v", b, ok, wantOK)
		}
		if !ok {
			return
		}
		var want, gotV map[string]any
		decodeNumbers(b, &want)
		for _, ch := range choices {
			if _, has := ch["logprobs"]; has {
				ch["logprobs"] = nil
			}
		}
		want["choices"] = choices
		wb, _ := json.Marshal(want)
		want = nil
		decodeNumbers(wb, &want)
		if err := decodeNumbers(got, &gotV); err != nil {
			t.Fatalf("%s became %s, not JSON: %v", b, got, err)
		}
		if !reflect.DeepEqual(gotV, want) {
			t.Fatalf("%s became %s, want %v", b, got, want)
		}
	})
}

// hasNil reports whether a choice was JSON null, which decodes into a nil
// map but is not an object.
// decodeNumbers is json.Unmarshal keeping numbers as written: a valid
// number beyond float64's range (-0.8e25577, found by the fuzzer in a
// member the proxy passes through untouched) fails to decode as float64,
// and that is the oracle's limit, not the splice's.
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func hasNil(choices []map[string]any) bool {
	for _, c := range choices {
		if c == nil {
			return true
		}
	}
	return false
}

// TestDecodeOpenAILogprobs: an answer in OpenAI's exact shape (logprobs
// with "refusal", tokens with top_logprobs) is read by the scanner, not
// left to encoding/json, and its logprobs are stripped at the spans.
func TestDecodeOpenAILogprobs(t *testing.T) {
	b := []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.25,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.25,"bytes":[72,105]},{"token":"Hello","logprob":-1.5,"bytes":null}]},{"token":"!","logprob":-0.5,"bytes":[33],"top_logprobs":[]}],"refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
	var a completion
	if !decodeCompletionFast(b, &a) {
		t.Fatal("the scanner left OpenAI's shape to encoding/json")
	}
	if len(a.lpSpans) != 1 {
		t.Fatalf("logprobs spans %v, want one", a.lpSpans)
	}
	sp := a.lpSpans[0]
	var direct choiceLogprobs
	if end := readLogprobs(b[:sp[1]], sp[0], &direct); end != sp[1] {
		t.Fatalf("readLogprobs ended at %d, want %d: the logprobs went to encoding/json", end, sp[1])
	}
	lp := a.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != 2 || lp.Content[0].Logprob != -0.25 || lp.Content[1].Logprob != -0.5 {
		t.Fatalf("logprobs %+v, want the two tokens' -0.25 and -0.5 (not the top_logprobs' own)", lp)
	}
	got := string(withoutLogprobsAt(b, a.lpSpans))
	want := `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`
	if got != want {
		t.Fatalf("stripped:\n%s\nwant\n%s", got, want)
	}
}

// FuzzDecodeCompletion checks the scanner's reading of an answer against
// encoding/json's.
func FuzzDecodeCompletion(f *testing.F) {
	f.Add([]byte(benchAnswer))
	f.Add([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi \u00e9\n"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":null},{"index":1,"delta":{}}],"usage":null}`))
	f.Add([]byte(`{"choices":[{"text":" x","index":0,"logprobs":{"token_logprobs":[-0.5,-1]}}],"Usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":{"prompt_tokens":5}}`))
	f.Add([]byte(`{"choices":[{"logprobs":{"content":[{"logprob":-1,"token":"a"},{"logprob":0}]}},{"logprobs":{}},{"logprobs":{"content":null}}]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":"a","content":"b"}},{"index":1,"Index":2},{"logprobs":{"content":[{"logprob":1,"logprob":2}]}}]}`))
	f.Add([]byte(`{"choices":[{"logprobs":{"content":[],"content":[{"logprob":1}]},"delta":null,"text":null,"index":null}]}`))
	// OpenAI's shape with top_logprobs asked: their own "logprob" members are not the token's.
	f.Add([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.25,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.25,"bytes":[72,105]},{"token":"Hello","logprob":-1.5,"bytes":null}]}],"refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast completion
		if !json.Valid(b) || !decodeCompletionFast(b, &fast) {
			return
		}
		var slow completion
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("the scanner read %s, encoding/json refuses it: %v", b, err)
		}
		// The spans it found strip the logprobs as withoutLogprobs does.
		if !fast.lpKnown {
			t.Fatalf("%s: read without its logprobs' spans", b)
		}
		if want, ok := withoutLogprobs(b); ok {
			if got := withoutLogprobsAt(b, fast.lpSpans); !bytes.Equal(got, want) {
				t.Fatalf("%s: stripped at the spans %v: %s, want %s", b, fast.lpSpans, got, want)
			}
		}
		fast.lpSpans, fast.lpKnown = nil, false
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: scanner %+v, encoding/json %+v", b, fast, slow)
		}
	})
}

// FuzzValidAgrees checks that validJSON (gjson's validator) accepts
// exactly what encoding/json's does.
func FuzzValidAgrees(f *testing.F) {
	f.Add([]byte(benchAnswer))
	for _, s := range []string{`{"a":1}`, `[1,2]`, `{"a":"\u00e9"}`, `01`, `1.`, `-`, `{"a":1,}`, "\"\x01\"", "\"\xff\"",
		`1e5`, `{"a":[]}`, ` {} `, `"\ud800"`, `tru`, `nul`, `{"a" :1}`, `[`, `{"a":1}}`, "\t1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if std, g := json.Valid(b), validJSON(b); std != g {
			t.Fatalf("%q: encoding/json says valid %v, gjson %v", b, std, g)
		}
	})
}

// FuzzAnswerProblem checks that answerProblem never panics on what an
// upstream sends (a body cut after "choices": crashed the server) and
// takes as an answer only a whole JSON object whose choices (or output)
// is an array (the first, of a key given twice: gjson's reading).
func FuzzAnswerProblem(f *testing.F) {
	f.Add([]byte(benchAnswer))
	for _, s := range []string{`{"choices":`, `{"choices": `, `{"choices":[`, `{"choices":[]}`, `{"output":[]}`, `{"output":`,
		`{"choices":[{"message":{"content":"half`, `{"choices":{}}`, `{}`, `{"id":"x","choices":[]} trailing`, `{"choi\u0063es":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range []*api{apiChat, apiResponses} {
			key := "choices"
			if a == apiResponses {
				key = "output"
			}
			if answerProblem(a, b) != "" {
				continue
			}
			var m map[string]json.RawMessage
			if !json.Valid(b) || json.Unmarshal(b, &m) != nil {
				t.Fatalf("%q taken as an answer of %s, but it is not a JSON object", b, a.path)
			}
			if _, ok := m[key]; !ok || !gjson.GetBytes(b, key).IsArray() {
				t.Fatalf("%q taken as an answer of %s, but its %s is not an array", b, a.path, key)
			}
		}
	})
}

// FuzzPartsTextAgrees checks that partsText, which reads content parts
// in place, says what datasets.PartsText, which decodes them, says of
// any valid JSON content: the same text, or the same error.
func FuzzPartsTextAgrees(f *testing.F) {
	for _, s := range []string{`"hi"`, `null`, `[]`, `[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]`,
		`[null,{"type":"text"}]`, `[{"TYPE":"text","Text":"a"}]`, `[{"type":"text","text":"a","text":null}]`, `[{"type":"text","text":"a","text":"b"}]`,
		`[{"type":"text","text":5}]`, `[{"type":7}]`, `[1]`, `["a"]`, `[[]]`, `{}`, `5`, `true`, ` [ { "type" : "te\u0078t" , "t\u0065xt" : "\u00e9\n" } ] `,
		`[{"type":"input_text","text":"a"},{"type":"output_text","text":"b"}]`, `[{"type":"text","text":"","x":[1,{"y":"]"}]},{"type":"text","text":"c"}]`,
		`[{"type":null,"text":"a"}]`, `[{"type":"text","type":"image","text":"a"}]`, `[{"type":"text","text":{"a":1}}]`, "[{\"type\":\"text\",\"text\":\"a\xffb\"}]", "[{\"type\":\"text\",\"text\":\"\\n\xc3\"}]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Invalid UTF-8 too: validJSON lets it through, and decoding
		// makes each such byte U+FFFD.
		if !json.Valid(b) {
			return
		}
		for _, kinds := range [][]string{{"text"}, {"input_text", "output_text"}} {
			want, wantErr := datasets.PartsText(b, kinds...)
			got, err := partsText(b, kinds...)
			if got != want || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("%q %v: partsText %q, %v; PartsText %q, %v", b, kinds, got, err, want, wantErr)
			}
		}
	})
}

// A message's content parts were decoded one value each (152 MB for a
// 16 MiB body of one message of tiny text parts), and no cap counts
// them. Read in place, their allocations do not grow with their number
// (measured in allocations, not time), on both APIs, and the content is
// not copied either (23 and 39 MB at 16 MiB when it was).
func TestContentPartsAreNotDecoded(t *testing.T) {
	parts := func(kind string, n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":%q,"text":"x"}`, kind)
		}
		return b.String()
	}
	for _, tt := range []struct {
		name string
		a    *api
		body string
	}{
		{"a chat message", apiChat, `{"model":"m","messages":[{"role":"user","content":[` + parts("text", 20000) + `]}]}`},
		{"a Responses input message", apiResponses, `{"model":"m","input":[{"role":"user","content":[` + parts("input_text", 20000) + `]}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var req *chatRequest
			var err error
			allocs := testing.AllocsPerRun(3, func() { req, err = parseRequest([]byte(tt.body), tt.a, caps{}) })
			if err != nil {
				t.Fatal(err)
			}
			if got := req.messages[len(req.messages)-1].Content; len(got) != 2*20000-1 {
				t.Errorf("text of %d bytes, want the 20,000 parts' joined", len(got))
			}
			if allocs > 200 {
				t.Errorf("%.0f allocations, want a few dozen: the parts were decoded", allocs)
			}
			// Nor is the content copied: decoding the messages (or
			// input items) copied it, once a chat message and twice a
			// Responses one. The least of three runs, as the runtime
			// counts it, against the body's size.
			body := []byte(tt.body)
			least := uint64(math.MaxUint64)
			for range 3 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				parseRequest(body, tt.a, caps{})
				runtime.ReadMemStats(&after)
				least = min(least, after.TotalAlloc-before.TotalAlloc)
			}
			if least > uint64(len(tt.body))/2 {
				t.Errorf("%d bytes allocated for a body of %d, want well under its size: the content was copied", least, len(tt.body))
			}
		})
	}
}

// decodedReading is what parseRequest read of a request's tools and
// include, and what upstreamBody made of its include and stream_options,
// when it decoded them (before they were read in place): the reference
// of FuzzInPlaceAgreesWithDecoding.
type decodedReading struct {
	tools, logprobs      bool
	include, streamOpts  []byte
	toolsErr, includeErr error
	// includeOK and streamOK: decoding made the member's value.
	includeOK, streamOK bool
}

func decodeAsBefore(body []byte, fields []member) decodedReading {
	var d decodedReading
	raw := func(name string) []byte {
		if i := last(fields, name); i >= 0 {
			if r := body[fields[i].val:fields[i].end]; string(r) != "null" {
				return r
			}
		}
		return nil
	}
	if r := raw("tools"); r != nil {
		var tools []json.RawMessage
		d.toolsErr = json.Unmarshal(r, &tools)
		d.tools = len(tools) > 0
	}
	if r := raw("include"); r != nil {
		var include []string
		d.includeErr = json.Unmarshal(r, &include)
		d.logprobs = slices.Contains(include, includeLogprobs)
	}
	var inc []json.RawMessage
	err := json.Unmarshal(raw("include"), &inc)
	if raw("include") == nil || err == nil {
		lp, _ := json.Marshal(includeLogprobs)
		d.include, _ = json.Marshal(append(inc, lp))
		d.includeOK = true
	}
	opts := map[string]json.RawMessage{}
	if r := raw("stream_options"); r == nil || json.Unmarshal(r, &opts) == nil {
		opts["include_usage"] = json.RawMessage("true")
		d.streamOpts, _ = json.Marshal(opts)
		d.streamOK = true
	}
	return d
}

// sameJSON reports whether a and b decode to the same value, an object's
// later duplicate key replacing an earlier one as the tiers read it.
func sameJSON(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// FuzzInPlaceAgreesWithDecoding: a request's tools, include and
// stream_options read in place (offersTools, includesLogprobs, include,
// streamOptions) say what decoding them said, and give a tier the same
// JSON: the same requests refused (each a 400), the same ones offering
// tools or asking for log-probabilities, and the same include and
// stream_options sent upstream.
func FuzzInPlaceAgreesWithDecoding(f *testing.F) {
	for _, s := range []string{
		`{"input":"hi","tools":[{}],"include":["message.output_text.logprobs"],"stream":true,"stream_options":{"x":1}}`,
		` { "input" : "hi" , "tools" : [ ] , "include" : [ null , "a" ] , "stream_options" : { "include_usage" : false , "x" : [ 1 , 2 ] } } `,
		`{"input":"hi","include":["message.output_text.logprob\u0073","\ud83d\ude00","a\/b","\u0000"],"tools":null}`,
		`{"input":"hi","include":"x","tools":{}}`,
		`{"input":"hi","include":[1],"tools":[[[]]]}`,
		`{"input":"hi","include":[["a"]],"tools":5}`,
		`{"input":"hi","include":[],"include":null,"tools":[],"tools":[1e400,-0.0E-0]}`,
		`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":null,"include_usage":true,"a":{"b":[[[[{}]]]]}}}`,
		`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include\u005fusage":false,"x":1,"x":2}}`,
		`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":[]}`,
		`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"INCLUDE_USAGE":false},"tools":[{"type":"function"}]}`,
		`{"prompt":"hi","stream":true,"stream_options":{}}`,
		`{"input":"hi","tools":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]},null,{"ROLE":"x","Content":null,"content":[],"role":null}]}`,
		`{"messages":[{"role":5,"content":"x"}],"input":[{"role":"user","type":7,"content":[]}]}`,
		`{"messages":[{"r\u006fle":"a\u00e9","content":{"a":[1]},"CONTENT":"b","x":{}}],"messages":[]}`,
		`{"messages":[1,{"role":"u","content":"x"}],"input":[null,{"role":"u","content":"x","content":null},{"Role":"\ud800","type":"message"}]}`,
		"{\"messages\":[{\"role\":\"a\xffb\",\"content\":\"x\"}],\"input\":[{\"role\":\"\xc3\",\"type\":null}]}",
		// A content of parts replaced by a later one, of parts or not:
		// the text read in place must be the later one's.
		`{"messages":[{"role":"u","content":[{"type":"text","text":"a"}],"Content":[{"type":"text","text":"b"}]},{"role":"u","content":[{"type":"text","text":"a"}],"content":"b"}],"input":[{"role":"u","content":[{"type":"input_text","text":"a"}],"CONTENT":"b"},{"role":"u","content":[{"type":"input_text","text":"a"}],"content":[1]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Invalid UTF-8 too: validJSON lets it through, and decoding
		// makes each such byte U+FFFD.
		if !json.Valid(b) {
			return
		}
		fields, ok := members(nil, b, 0)
		if !ok {
			return
		}
		want := decodeAsBefore(b, fields)
		messagesAgree(t, b, fields)
		for _, a := range []*api{apiChat, apiCompletions, apiResponses} {
			req, err := parseRequest(b, a, caps{})
			wantRefused := (a != apiCompletions && want.toolsErr != nil) || (a == apiResponses && want.includeErr != nil)
			if err != nil {
				if ae, ok := err.(*apiError); !ok || ae.status != 400 {
					t.Fatalf("%s: refused with %v, want a 400", a.path, err)
				}
				continue
			}
			if wantRefused {
				t.Fatalf("%s: accepted %s, which decoding refused (tools %v, include %v)", a.path, b, want.toolsErr, want.includeErr)
			}
			if a == apiResponses {
				if req.tools != want.tools || req.logprobs != want.logprobs {
					t.Fatalf("%s: tools %v and logprobs %v, decoded %v and %v", a.path, req.tools, req.logprobs, want.tools, want.logprobs)
				}
				got, err := req.include()
				if err != nil || !want.includeOK || !sameJSON(got, want.include) {
					t.Fatalf("%s: include %s (%v), decoded %s", a.path, got, err, want.include)
				}
			}
			if a == apiChat && last(fields, "functions") < 0 && req.tools != want.tools {
				t.Fatalf("%s: tools %v, decoded %v", a.path, req.tools, want.tools)
			}
			if a != apiResponses && req.stream && !req.includeUsage {
				got, err := req.streamOptions()
				if err != nil || !want.streamOK || !sameJSON(got, want.streamOpts) {
					t.Fatalf("%s: stream_options %s (%v), decoded %s", a.path, got, err, want.streamOpts)
				}
			}
		}
	})
}

// messagesAgree checks that the chat messages and the Responses input
// items read in place (chatMessagesInPlace, messageInPlace) are what
// decoding them makes, wherever they are read rather than left to
// decoding: the same roles and types, and each content as sent.
// textAgrees checks that the text messageInPlace read as it found the
// content's end is partsText's of that content.
func textAgrees(t *testing.T, p partsRead, content []byte, kinds ...string) {
	t.Helper()
	if !p.read {
		return
	}
	if want, err := partsText(content, kinds...); err != nil || p.text != want {
		t.Fatalf("content %s: text read in place %q; partsText: %q, %v", content, p.text, want, err)
	}
}

func messagesAgree(t *testing.T, b []byte, fields []member) {
	t.Helper()
	if i := last(fields, "messages"); i >= 0 {
		req := &chatRequest{body: b, fields: fields}
		if got, ok := req.chatMessagesInPlace(); ok {
			for i := range got {
				textAgrees(t, got[i].partsRead, got[i].Content, "text")
				got[i].partsRead = partsRead{}
			}
			var want []chatMessage
			if err := json.Unmarshal(b[fields[i].val:fields[i].end], &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("messages read in place: %+v; decoded: %+v, %v", got, want, err)
			}
		}
	}
	if i := last(fields, "input"); i >= 0 {
		raw := b[fields[i].val:fields[i].end]
		eachElement(raw, 0, func(e int) int {
			end := valueEnd(raw, e)
			if got, gotEnd, ok := messageInPlace(raw, e, true, "input_text", "output_text"); ok {
				textAgrees(t, got.partsRead, got.Content, "input_text", "output_text")
				got.partsRead = partsRead{}
				var want inputItem
				if err := json.Unmarshal(raw[e:end], &want); err != nil || !reflect.DeepEqual(got, want) || gotEnd != end {
					t.Fatalf("input item %s read in place: %+v, end %d; decoded: %+v, %v, end %d", raw[e:end], got, gotEnd, want, err, end)
				}
			}
			return end
		})
	}
}
