package serve

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFeedback(t *testing.T) {
	t.Run("feedback for a routed request is recorded", func(t *testing.T) {
		ts := newTestServer(t, nil)
		var r struct {
			RequestID string `json:"request_id"`
		}
		decodeJSON(t, ts.do(t, "POST", "/v1/route", `{"prompt":"2+2?"}`), &r)
		// Posted at once: the decision may still be in the log queue, and
		// must not make this a 404.
		w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"`+r.RequestID+`","model":"mixtral","score":1,"latency_ms":120,"cost_usd":0.0002,"confidence":-0.3,"response":"4"}`)
		var got map[string]string
		decodeJSON(t, w, &got)
		if got["status"] != "recorded" || got["request_id"] != r.RequestID || got["model"] != "mixtral" {
			t.Errorf("response = %v, want recorded with the id and model", got)
		}
		recs := ts.export(t)
		if len(recs) != 1 {
			t.Fatalf("export has %d records, want 1", len(recs))
		}
		o := recs[0].Outcomes["mixtral"]
		if o.Score == nil || *o.Score != 1 || *o.LatencyMS != 120 || *o.CostUSD != 0.0002 || *o.Confidence != -0.3 || o.Response != "4" {
			t.Errorf("outcome = %+v, want every posted field", o)
		}
		if recs[0].Decision == nil || recs[0].Prompt != "2+2?" {
			t.Errorf("record = %+v, want the routed prompt and decision", recs[0])
		}
	})

	t.Run("the answer is the bytes encoding/json gives, content type included", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.Config.Feedback.AllowOtherModels = true })
		for _, tt := range []struct{ id, model string }{
			{"r1", "mixtral"},
			{"r<2>&", "mod\u00e8le \u2028 \"q\""},
		} {
			ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":`+jsonString(t, tt.id)+`}`)
			w := ts.do(t, "POST", "/v1/feedback", `{"request_id":`+jsonString(t, tt.id)+`,"model":`+jsonString(t, tt.model)+`,"score":1}`)
			want, _ := json.Marshal(map[string]string{"status": "recorded", "request_id": tt.id, "model": tt.model})
			if got := w.Body.String(); got != string(want) {
				t.Errorf("body = %s, want %s", got, want)
			}
			if got, want := w.Header().Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("content type = %q, want %q", got, want)
			}
		}
	})

	t.Run("a second post for the same request and model replaces the first", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"r1"}`)
		for _, body := range []string{
			`{"request_id":"r1","model":"mixtral","score":0}`,
			`{"request_id":"r1","model":"mixtral","score":1}`,
			`{"request_id":"r1","model":"gpt-4","confidence":-2}`,
		} {
			if w := ts.do(t, "POST", "/v1/feedback", body); w.Code != 200 {
				t.Fatalf("%s: status %d %s", body, w.Code, w.Body)
			}
		}
		recs := ts.export(t)
		if n := len(recs[0].Outcomes); n != 2 {
			t.Fatalf("outcomes = %v, want 2 models", recs[0].Outcomes)
		}
		if s := recs[0].Outcomes["mixtral"].Score; s == nil || *s != 1 {
			t.Errorf("score of mixtral = %v, want the second post's 1", s)
		}
	})

	t.Run("an unknown request id is 404", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"never-routed","model":"mixtral","score":1}`)
		if w.Code != 404 {
			t.Fatalf("status = %d, want 404", w.Code)
		}
		if e := errorOf(t, w); e.Code != CodeNotFound || !strings.Contains(e.Message, "never-routed") || !strings.Contains(e.Message, "prompt") {
			t.Errorf("error = %+v, want not_found naming the id and the prompt remedy", e)
		}
	})

	t.Run("an unknown request id with its prompt creates the record", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"elsewhere-1","model":"mixtral","score":0.5,"messages":[{"role":"user","content":"hi"}],"meta":{"tenant":"t"}}`)
		if w.Code != 200 {
			t.Fatalf("status = %d %s, want 200", w.Code, w.Body)
		}
		recs := ts.export(t)
		if len(recs) != 1 || recs[0].ID != "elsewhere-1" || recs[0].Messages[0].Content != "hi" || recs[0].Meta["tenant"] != "t" || recs[0].Decision != nil {
			t.Errorf("export = %+v, want the created record without a decision", recs)
		}
	})

	// Feedback can come before the route of its id (a client that
	// scores as it goes): the route must still record its decision,
	// which the record takes, or the loop cannot use the record as a
	// routed one. The claim took the stored prompt as "already logged".
	t.Run("routing an id feedback created records the decision once", func(t *testing.T) {
		ts := newTestServer(t, nil)
		if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"conv-9","model":"gpt-4","score":1,"prompt":"same prompt"}`); w.Code != 200 {
			t.Fatalf("feedback: %d %s", w.Code, w.Body)
		}
		for range 2 { // the second route of the id logs nothing
			if w := ts.do(t, "POST", "/v1/route", `{"id":"conv-9","prompt":"same prompt"}`); w.Code != 200 {
				t.Fatalf("route: %d %s", w.Code, w.Body)
			}
		}
		if w := ts.do(t, "POST", "/v1/route", `{"id":"conv-9","prompt":"another prompt"}`); w.Code != 409 {
			t.Errorf("route with another prompt: %d %s, want 409", w.Code, w.Body)
		}
		recs := ts.export(t)
		if len(recs) != 1 || recs[0].Decision == nil || recs[0].Prompt != "same prompt" || recs[0].Outcomes["gpt-4"].Score == nil {
			t.Fatalf("export = %+v, want one record with the route's decision and the posted score", recs)
		}
		if d := recs[0].Decision; d.Propensity <= 0 || d.ModelVersion == "" {
			t.Errorf("decision %+v lacks its propensity or model version", *d)
		}
	})

	// One id holds one prompt: a score posted with another prompt would
	// label the prompt the id holds (it was stored with a 200).
	t.Run("a prompt other than the one the id holds is 409", func(t *testing.T) {
		ts := newTestServer(t, nil)
		for _, c := range []struct {
			body string
			want int
		}{
			{`{"request_id":"ext-1","model":"mixtral","score":1,"prompt":"external prompt"}`, 200},
			{`{"request_id":"ext-1","model":"mixtral","score":0.5,"prompt":"external prompt"}`, 200},
			{`{"request_id":"ext-1","model":"mixtral","score":0,"prompt":"different prompt"}`, 409},
			{`{"request_id":"ext-1","model":"gpt-4","score":1}`, 200},
		} {
			if w := ts.do(t, "POST", "/v1/feedback", c.body); w.Code != c.want {
				t.Fatalf("%s: %d %s, want %d", c.body, w.Code, w.Body, c.want)
			} else if c.want == 409 && errorOf(t, w).Code != CodeIDConflict {
				t.Errorf("%s: %s, want id_conflict", c.body, w.Body)
			}
		}
		if w := ts.do(t, "POST", "/v1/route", `{"id":"routed-1","messages":[{"role":"user","content":"hi"}]}`); w.Code != 200 {
			t.Fatalf("route: %d %s", w.Code, w.Body)
		}
		if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"routed-1","model":"mixtral","score":1,"messages":[{"role":"user","content":"bye"}]}`); w.Code != 409 {
			t.Errorf("feedback with other messages: %d %s, want 409", w.Code, w.Body)
		}
		if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"routed-1","model":"mixtral","score":1,"messages":[{"role":"user","content":"hi"}]}`); w.Code != 200 {
			t.Errorf("feedback with the same messages: %d %s, want 200", w.Code, w.Body)
		}
		recs := ts.export(t)
		for _, r := range recs {
			if r.ID == "ext-1" && (r.Prompt != "external prompt" || *r.Outcomes["mixtral"].Score != 0.5) {
				t.Errorf("ext-1 = %+v, want its prompt scored 0.5 (the refused 0 not stored)", r)
			}
		}
	})

	t.Run("bad feedback is 400 with the reason", func(t *testing.T) {
		ts := newTestServer(t, nil)
		for _, tt := range []struct{ body, code, msg string }{
			{`{"request_id":"r","model":"m"}`, CodeInvalidRequest, "score and confidence are both missing"},
			{`{"request_id":"r","model":"m","score":2}`, CodeInvalidRequest, "score is 2, want a value in [0,1]"},
			{`{"request_id":"r","model":"m","score":1,"latency_ms":-1}`, CodeInvalidRequest, "latency_ms is -1"},
			// The log reader refuses it: stored, it would stop every export's training.
			{`{"request_id":"r","model":"m","score":1,"cost_usd":1e308}`, CodeInvalidRequest, "cost_usd is 1e+308, want a non-negative number up to 1e+09"},
			{`{"request_id":"r","model":"m","score":1,"cost_usd":-0.1}`, CodeInvalidRequest, "cost_usd is -0.1"},
			{`{"request_id":"","model":"m","score":1}`, CodeInvalidRequest, "request_id is empty"},
			{`{"request_id":"r","score":1}`, CodeInvalidRequest, "model is empty"},
			{`{"request_id":"r","model":"m","score":"1"}`, CodeInvalidRequest, "score is a JSON string, want a number"},
			{`{"request_id":"r","model":"m","score":1e400}`, CodeInvalidRequest, "score is 1e400, beyond the range of a number"},
			{`{"request_id":"r","model":"m","score":1,"grade":1}`, CodeUnknownField, `unknown field "grade"`},
			// A body shaped like a log record: the fix is one post per model.
			{`{"request_id":"r","outcomes":{"m":{"score":1}}}`, CodeUnknownField, "one model per post"},
			{`null`, CodeInvalidRequest, "JSON null, want an object"},
			{`{"request_id":"r","model":"m","score":1,"prompt":"a","messages":[{"role":"user","content":"b"}]}`, CodeInvalidRequest, "both set"},
			{"{\"request_id\":\"r\",\"model\":\"m\xff\",\"score\":1}", CodeInvalidUTF8, "UTF-8"},
		} {
			w := ts.do(t, "POST", "/v1/feedback", tt.body)
			if w.Code != 400 {
				t.Errorf("%s: status %d, want 400", tt.body, w.Code)
				continue
			}
			if e := errorOf(t, w); e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("%s: error %+v, want %s containing %q", tt.body, e, tt.code, tt.msg)
			}
		}
	})
}

func FuzzFeedbackDecode(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r","model":"m","score":1}`,
		`{"request_id":"r","model":"m","confidence":-1,"latency_ms":3,"cost_usd":0,"response":"x","prompt":"p","meta":{"a":1}}`,
		`{"request_id":"r","model":"m","score":1e400}`, `{"request_id":1}`, `null`, `{"request_id":"\u0000","model":"m","score":0}`,
	} {
		f.Add([]byte(s))
	}
	lim := DefaultConfig().Limits
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeFeedback(body, lim)
		if err != nil {
			if status, code, _ := ErrorStatus(err); status < 400 || status >= 500 || code == "" {
				t.Fatalf("error %v maps to %d %q, want a 4xx", err, status, code)
			}
			return
		}
		if r.Score == nil && r.Confidence == nil {
			t.Fatal("accepted feedback without score or confidence")
		}
		if r.Score != nil && (*r.Score < 0 || *r.Score > 1) {
			t.Fatalf("accepted score %v", *r.Score)
		}
		// What is accepted must encode for the store.
		if _, err := json.Marshal(r.feedback().Outcome); err != nil {
			t.Fatalf("accepted feedback does not encode: %v", err)
		}
	})
}

func jsonString(tb testing.TB, s string) string {
	tb.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestFeedbackCapsMeta: a feedback with a prompt creates the record of a
// request the server did not route, with the feedback's meta. Only
// /v1/route was capped by limits.max_meta_keys, so a feedback could still
// store tens of thousands of keys per record, the flood the limit closed
// for routed requests.
func TestFeedbackCapsMeta(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxMetaKeys = 3 })
	w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"new-1","model":"mixtral","score":1,"prompt":"x","meta":{"a":"1","b":"2","c":"3","d":"4"}}`)
	if w.Code != 400 {
		t.Fatalf("status = %d, want 400 (body %s)", w.Code, w.Body)
	}
	if e := errorOf(t, w); e.Code != CodeInvalidRequest || !strings.Contains(e.Message, "meta has 4 keys, the limit is 3 (limits.max_meta_keys)") {
		t.Errorf("error = %+v, want the meta limit named", e)
	}
	if recs := ts.export(t); len(recs) != 0 {
		t.Errorf("export has %d records, want none", len(recs))
	}
	w = ts.do(t, "POST", "/v1/feedback", `{"request_id":"new-2","model":"mixtral","score":1,"prompt":"x","meta":{"a":"1","b":"2","c":"3"}}`)
	if w.Code != 200 {
		t.Errorf("within the limit: status = %d, want 200 (body %s)", w.Code, w.Body)
	}
}
