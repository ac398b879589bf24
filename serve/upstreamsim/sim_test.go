package upstreamsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
)

func loadLog(tb testing.TB) []datasets.Record {
	tb.Helper()
	recs, _, err := datasets.ReadFile("testdata/log.jsonl", datasets.ReadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

func newSim(tb testing.TB, opts Options) (*Server, *httptest.Server) {
	tb.Helper()
	if opts.Records == nil {
		opts.Records = loadLog(tb)
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	return s, ts
}

// reply is the decoded non-streamed answer.
type reply struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
			} `json:"content"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func post(tb testing.TB, ctx context.Context, url, body string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, b
}

func meanLogprob(tb testing.TB, r *reply) float64 {
	tb.Helper()
	lp := r.Choices[0].Logprobs
	if lp == nil || len(lp.Content) == 0 {
		tb.Fatal("answer has no logprobs")
	}
	var s float64
	for _, c := range lp.Content {
		s += c.Logprob
	}
	return s / float64(len(lp.Content))
}

func TestAnswers(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast"})
	tests := []struct {
		name     string
		body     string
		want     string
		wantConf float64
	}{
		{"a prompt record answers a one-message chat with its response",
			`{"model":"x","messages":[{"role":"user","content":"What is 2+2?"}],"logprobs":true}`, "The answer is 4.", -0.2},
		{"a chat record matches on its last user message",
			`{"messages":[{"role":"user","content":"Name a prime above 10."}],"logprobs":true}`, "[sim] recorded score 0 for fast on q2", -1.5},
		{"a chat record matches on its messages joined",
			`{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Name a prime above 10."}]}],"logprobs":true}`, "[sim] recorded score 0 for fast on q2", -1.5},
		{"an unknown prompt gets the default answer",
			`{"messages":[{"role":"user","content":"never logged"}],"logprobs":true}`, DefaultAnswer, DefaultConfidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), ts.URL, tt.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var r reply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if got := r.Choices[0].Message.Content; got != tt.want {
				t.Errorf("content = %q, want %q", got, tt.want)
			}
			if r.Model != "fast" {
				t.Errorf("model = %q, want fast", r.Model)
			}
			// The per-token values are built to average to the logged
			// confidence; 1e-12 allows for summation order.
			if got := meanLogprob(t, &r); math.Abs(got-tt.wantConf) > 1e-12 {
				t.Errorf("mean logprob = %v, want %v", got, tt.wantConf)
			}
			if n := len(r.Choices[0].Logprobs.Content); r.Usage.CompletionTokens != n || r.Usage.TotalTokens != r.Usage.PromptTokens+n {
				t.Errorf("usage = %+v with %d logprob tokens", r.Usage, n)
			}
		})
	}
}

func TestPlaceholderReply(t *testing.T) {
	_, ts := newSim(t, Options{Model: "strong", Reply: ReplyPlaceholder})
	resp, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"What is 2+2?"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var r reply
	json.Unmarshal(b, &r)
	if got, want := r.Choices[0].Message.Content, "[sim] recorded score 1 for strong on q1"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if r.Choices[0].Logprobs != nil {
		t.Errorf("logprobs present without logprobs: true")
	}
}

func TestMaxTokensTruncates(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast"})
	_, b := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":"What is 2+2?"}],"max_tokens":2}`)
	var r reply
	json.Unmarshal(b, &r)
	if got, want := r.Choices[0].Message.Content, "The answer"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if got := r.Choices[0].FinishReason; got != "length" {
		t.Errorf("finish_reason = %q, want length", got)
	}
}

func TestAppendCompletionMatchesMarshal(t *testing.T) {
	inTok, outTok := 7, 99
	recs := []datasets.Record{
		{ID: "plain", Prompt: "p1", Outcomes: map[string]datasets.Outcome{"m<&>": {Response: "The answer is 4."}}},
		{ID: "escapes", Prompt: "p2", Outcomes: map[string]datasets.Outcome{"m<&>": {
			Response: "a <b> & \"c\"\n\u2028 é\t\x01 end", InputTokens: &inTok, OutputTokens: &outTok}}},
	}
	s, err := New(Options{Model: "m<&>", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for _, prompt := range []string{"p1", "p2", "not in the log"} {
		for _, lp := range []bool{false, true} {
			for _, maxTok := range []int{0, 2} {
				t.Run(fmt.Sprintf("%s, logprobs %v, max_tokens %d, is what encoding/json makes", prompt, lp, maxTok), func(t *testing.T) {
					e := s.index[prompt]
					if e == nil {
						e = s.def
					}
					a := &answer{e: e, tokens: e.tokens, logprobs: e.logprobs, finish: "stop", id: "chatcmpl-sim-12", created: 1795766298}
					if maxTok > 0 {
						a.tokens, a.logprobs, a.finish = a.tokens[:maxTok], a.logprobs[:maxTok], "length"
					}
					a.usage = usage{PromptTokens: 3, CompletionTokens: len(a.tokens), TotalTokens: 3 + len(a.tokens)}
					// Twice: the second from the cached choices.
					for range 2 {
						got, want := s.appendCompletion(nil, a, lp), s.marshalCompletion(a, lp)
						if !bytes.Equal(got, want) {
							t.Fatalf("got  %s\nwant %s", got, want)
						}
					}
				})
			}
		}
	}
}

func TestBadRequests(t *testing.T) {
	s, ts := newSim(t, Options{Model: "fast", Fault: func(p string) *Fault {
		if p == "fail me" {
			return &Fault{Status: 503, Message: "injected"}
		}
		return nil
	}})
	tests := []struct {
		name, body string
		status     int
	}{
		{"invalid JSON is a 400", `{"messages":`, 400},
		{"no messages is a 400", `{"messages":[]}`, 400},
		{"max_tokens 0 is a 400", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400},
		{"a content of the wrong type is a 400", `{"messages":[{"role":"user","content":7}]}`, 400},
		{"an injected fault answers its status", `{"messages":[{"role":"user","content":"fail me"}]}`, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), ts.URL, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, b)
			}
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			if json.Unmarshal(b, &e); e.Error.Message == "" {
				t.Errorf("error body has no message: %s", b)
			}
		})
	}
	if got := s.Stats().Failed; got != int64(len(tests)) {
		t.Errorf("failed = %d, want %d", got, len(tests))
	}
}

// A Responses request without a message item is refused in the words of
// that API (input), not of the chat request the sim converts it to.
func TestResponsesWithoutMessagesNamesInput(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast"})
	for _, body := range []string{`{"input":[]}`, `{"input":[{"type":"function_call_output","call_id":"c","output":"x"}]}`} {
		resp, err := http.Post(ts.URL+"/v1/responses", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "input holds no message") || strings.Contains(string(b), "messages") {
			t.Errorf("%s: %d %s, want a 400 naming input", body, resp.StatusCode, b)
		}
	}
}

// events reads an SSE body into its data payloads.
func events(tb testing.TB, b []byte) []string {
	tb.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestStream(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast", StreamChunks: 2})
	tests := []struct {
		name      string
		withUsage bool
	}{{"a stream without usage", false}, {"a stream with include_usage ends with a usage chunk", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"stream":true,"logprobs":true,"messages":[{"role":"user","content":"What is 2+2?"}]`
			if tt.withUsage {
				body += `,"stream_options":{"include_usage":true}`
			}
			resp, b := post(t, context.Background(), ts.URL, body+"}")
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			ev := events(t, b)
			if ev[len(ev)-1] != "[DONE]" {
				t.Fatalf("last event %q, want [DONE]", ev[len(ev)-1])
			}
			var text strings.Builder
			var lps []float64
			var finish string
			var usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			}
			for _, e := range ev[:len(ev)-1] {
				var c struct {
					Choices []struct {
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
						Logprobs *struct {
							Content []struct{ Logprob float64 } `json:"content"`
						} `json:"logprobs"`
						FinishReason *string `json:"finish_reason"`
					} `json:"choices"`
					Usage *struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal([]byte(e), &c); err != nil {
					t.Fatalf("chunk %q: %v", e, err)
				}
				if c.Usage != nil {
					usage = c.Usage
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
					if ch.Logprobs != nil {
						for _, l := range ch.Logprobs.Content {
							lps = append(lps, l.Logprob)
						}
					}
					if ch.FinishReason != nil {
						finish = *ch.FinishReason
					}
				}
			}
			if got := text.String(); got != "The answer is 4." {
				t.Errorf("streamed text = %q", got)
			}
			if finish != "stop" {
				t.Errorf("finish_reason = %q, want stop", finish)
			}
			var s float64
			for _, v := range lps {
				s += v
			}
			// Same construction as the non-streamed case.
			if got := s / float64(len(lps)); math.Abs(got-(-0.2)) > 1e-12 {
				t.Errorf("mean streamed logprob = %v, want -0.2", got)
			}
			if (usage != nil) != tt.withUsage {
				t.Fatalf("usage chunk present = %v, want %v", usage != nil, tt.withUsage)
			}
			if usage != nil && usage.CompletionTokens != len(lps) {
				t.Errorf("usage completion tokens = %d, want %d", usage.CompletionTokens, len(lps))
			}
		})
	}
}

// waitStats polls the counters until cond holds; the server notices a
// client's disconnect asynchronously.
func waitStats(tb testing.TB, s *Server, cond func(Stats) bool) Stats {
	tb.Helper()
	for range 500 {
		if st := s.Stats(); cond(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	tb.Fatalf("stats never reached the condition: %+v", st)
	return st
}

func TestCancelledRequestsAreCounted(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "a non-streamed request"
		if stream {
			name = "a streamed request"
		}
		t.Run(name+" whose client goes away is counted as cancelled", func(t *testing.T) {
			s, ts := newSim(t, Options{Model: "fast"})
			ctx, cancel := context.WithCancel(context.Background())
			body := `{"messages":[{"role":"user","content":"Slow question"}],"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(body))
			done := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			waitStats(t, s, func(st Stats) bool { return st.InFlight == 1 })
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the cancelled request succeeded")
			}
			st := waitStats(t, s, func(st Stats) bool { return st.Cancelled == 1 && st.InFlight == 0 })
			if st.Answered != 0 {
				t.Errorf("answered = %d, want 0", st.Answered)
			}
			resp, b := func() (*http.Response, []byte) {
				r, err := http.Get(ts.URL + "/sim/stats")
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				b, _ := io.ReadAll(r.Body)
				return r, b
			}()
			var got Stats
			if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /sim/stats: %d %s", resp.StatusCode, b)
			}
			if got.Cancelled != 1 || got.Requests != 1 {
				t.Errorf("/sim/stats = %+v, want 1 request, 1 cancelled", got)
			}
		})
	}
}

func TestWait(t *testing.T) {
	recs := loadLog(t)
	s, err := New(Options{Model: "fast", Records: recs, LatencyScale: 0.5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a recorded latency is scaled", func(t *testing.T) {
		if got, want := s.wait(s.index["Slow question"], "Slow question"), 30*time.Second; got != want {
			t.Errorf("wait = %v, want %v", got, want)
		}
	})
	t.Run("a draw depends only on the seed and the prompt", func(t *testing.T) {
		a, b := s.wait(s.def, "some prompt"), s.wait(s.def, "some prompt")
		if a != b || a <= 0 {
			t.Errorf("draws %v and %v, want the same positive wait", a, b)
		}
		s2, _ := New(Options{Model: "fast", Records: recs, LatencyScale: 0.5, Seed: 4})
		if c := s2.wait(s2.def, "some prompt"); c == a {
			t.Errorf("seeds 3 and 4 drew the same wait %v", c)
		}
	})
	t.Run("a fixed latency overrides everything", func(t *testing.T) {
		f, _ := New(Options{Model: "fast", Records: recs, FixedLatency: 50 * time.Millisecond, LatencyScale: 3})
		if got := f.wait(f.index["Slow question"], "Slow question"); got != 50*time.Millisecond {
			t.Errorf("wait = %v, want 50ms", got)
		}
	})
	t.Run("a default latency applies to unknown prompts", func(t *testing.T) {
		d, _ := New(Options{Model: "fast", Records: recs, DefaultLatency: 20 * time.Millisecond})
		if got := d.wait(d.def, "unknown"); got != 20*time.Millisecond {
			t.Errorf("wait = %v, want 20ms", got)
		}
	})
}

func TestFitLognormal(t *testing.T) {
	// ln 100 and ln 400: mean ln 200, sample sd |ln 4| / sqrt 2.
	mu, sigma := fitLognormal([]float64{math.Log(100), math.Log(400)})
	if math.Abs(mu-math.Log(200)) > 1e-12 || math.Abs(sigma-math.Log(4)/math.Sqrt2) > 1e-12 {
		t.Errorf("fit = (%v, %v), want (ln 200, ln 4/sqrt 2)", mu, sigma)
	}
	mu, sigma = fitLognormal([]float64{1})
	if math.Abs(math.Exp(mu)-500) > 1e-9 || sigma != DefaultLatencySigma {
		t.Errorf("fit of one value = (%v, %v), want the defaults", mu, sigma)
	}
}

func TestSpreadLogprobs(t *testing.T) {
	for _, n := range []int{1, 2, 7, 300} {
		for _, mean := range []float64{-0.2, -3, 0} {
			lp := spreadLogprobs(n, mean)
			var s float64
			distinct := map[float64]bool{}
			for _, v := range lp {
				if v > 0 {
					t.Fatalf("n=%d mean=%v: positive logprob %v", n, mean, v)
				}
				s += v
				distinct[v] = true
			}
			if math.Abs(s/float64(n)-mean) > 1e-12 {
				t.Errorf("n=%d: mean %v, want %v", n, s/float64(n), mean)
			}
			if n > 2 && mean != 0 && len(distinct) < 2 {
				t.Errorf("n=%d: all values equal", n)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	recs := loadLog(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"a model not in the log names the log's models", Options{Model: "gpt-9", Records: recs}, "fast (3), strong (4)"},
		{"no model is an error", Options{Records: recs}, "no model given"},
		{"a negative scale is an error", Options{Model: "fast", Records: recs, LatencyScale: -1}, "latency scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTokenize(t *testing.T) {
	for _, s := range []string{"", "a", " a b\n\nc ", "The answer is 4."} {
		toks := tokenize(s)
		if got := strings.Join(toks, ""); got != s {
			t.Errorf("tokens of %q join to %q", s, got)
		}
		if countTokens(s) != len(toks) {
			t.Errorf("countTokens(%q) = %d, want %d", s, countTokens(s), len(toks))
		}
	}
}

func TestTextCompletions(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast", StreamChunks: 2})
	postText := func(body string) []byte {
		t.Helper()
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return b
	}
	type textAnswer struct {
		Object  string
		Choices []struct {
			Text     string
			Logprobs *struct {
				TokenLogprobs []float64 `json:"token_logprobs"`
			}
			FinishReason *string `json:"finish_reason"`
		}
		Usage *struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	t.Run("a prompt gets its record's answer as text with token logprobs", func(t *testing.T) {
		var a textAnswer
		if err := json.Unmarshal(postText(`{"model":"x","prompt":"What is 2+2?","logprobs":1}`), &a); err != nil {
			t.Fatal(err)
		}
		if a.Object != "text_completion" || a.Choices[0].Text != "The answer is 4." || a.Usage == nil {
			t.Fatalf("answer %+v", a)
		}
		lp := a.Choices[0].Logprobs.TokenLogprobs
		var sum float64
		for _, v := range lp {
			sum += v
		}
		if math.Abs(sum/float64(len(lp))-(-0.2)) > 1e-12 {
			t.Errorf("mean token logprob %v, want -0.2", sum/float64(len(lp)))
		}
	})
	t.Run("a stream sends text chunks, the usage chunk and [DONE]", func(t *testing.T) {
		b := postText(`{"prompt":["What is 2+2?"],"stream":true,"stream_options":{"include_usage":true}}`)
		var text string
		var usage bool
		events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
		for _, ev := range events[:len(events)-1] {
			var a textAnswer
			if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &a); err != nil {
				t.Fatalf("event %q: %v", ev, err)
			}
			for _, c := range a.Choices {
				text += c.Text
			}
			usage = usage || a.Usage != nil
		}
		if text != "The answer is 4." || !usage || events[len(events)-1] != "data: [DONE]" {
			t.Errorf("text %q usage %v, last %q", text, usage, events[len(events)-1])
		}
	})
}

func TestFailShare(t *testing.T) {
	status := func(ts *httptest.Server, prompt string) int {
		b, _ := json.Marshal(prompt)
		resp, _ := post(t, context.Background(), ts.URL, `{"messages":[{"role":"user","content":`+string(b)+`}]}`)
		return resp.StatusCode
	}
	t.Run("a share of the prompts fails, each on every call", func(t *testing.T) {
		sim, ts := newSim(t, Options{Model: "fast", FailShare: 0.5, DefaultLatency: time.Millisecond})
		failed := 0
		for i := range 40 {
			p := fmt.Sprintf("prompt %d", i)
			first, again := status(ts, p), status(ts, p)
			if first != again || (first != 200 && first != 503) {
				t.Fatalf("%q answered %d then %d, want the same 200 or 503", p, first, again)
			}
			if first == 503 {
				failed++
			}
		}
		// Binomial(40, 0.5): 10 to 30 holds but for about 2 in 1000 seeds;
		// the seed is fixed, so this cannot flake.
		if failed < 10 || failed > 30 || sim.Stats().Failed != int64(2*failed) {
			t.Errorf("%d of 40 prompts failed (stats %+v), want about half", failed, sim.Stats())
		}
	})
	t.Run("a share of 1 fails every prompt and 0 none", func(t *testing.T) {
		_, all := newSim(t, Options{Model: "fast", FailShare: 1, DefaultLatency: time.Millisecond})
		_, none := newSim(t, Options{Model: "fast", DefaultLatency: time.Millisecond})
		if a, n := status(all, "What is 2+2?"), status(none, "What is 2+2?"); a != 503 || n != 200 {
			t.Errorf("share 1 answered %d, share 0 %d; want 503 and 200", a, n)
		}
	})
	t.Run("a share outside [0,1] is refused", func(t *testing.T) {
		if _, err := New(Options{Model: "fast", Records: loadLog(t), FailShare: 1.5}); err == nil || !strings.Contains(err.Error(), "fail share is 1.5") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestUnknownPathSaysWhatServes: a request meant for triage serve sent
// to an upstream's port got Go's bare "404 page not found".
func TestUnknownPathSaysWhatServes(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast"})
	for _, c := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"POST", "/v1/route", 404, "no route POST /v1/route: this is triage upstream-sim, answering as model \"fast\""},
		{"GET", "/readyz", 404, "triage serve's"},
		{"GET", "/v1/chat/completions", 405, "GET is not allowed on /v1/chat/completions"},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader(`{"prompt":"hi"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e); resp.StatusCode != c.status || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s %s: %d %s; want %d and a message with %q", c.method, c.path, resp.StatusCode, b, c.status, c.want)
		}
	}
}

// TestStoredResponses: the sim keeps the Responses API responses it
// answers, as an upstream does: a follow-up continues one of its own and
// is a 404 for another's (the other sim's, whose ids differ), GET returns
// a stored response and DELETE removes it, and "store": false keeps
// nothing.
func TestStoredResponses(t *testing.T) {
	_, fast := newSim(t, Options{Model: "fast"})
	_, strong := newSim(t, Options{Model: "strong"})
	ask := func(t *testing.T, url, body string) (int, string, []byte) {
		t.Helper()
		resp, err := http.Post(url+"/v1/responses", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r struct{ ID string }
		json.Unmarshal(b, &r)
		return resp.StatusCode, r.ID, b
	}
	call := func(t *testing.T, method, url string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	_, fid, _ := ask(t, fast.URL, `{"input":"What is 2+2?"}`)
	_, sid, _ := ask(t, strong.URL, `{"input":"What is 2+2?"}`)
	if fid == "" || fid == sid {
		t.Fatalf("ids %q and %q; want two different ids", fid, sid)
	}
	if st, id, b := ask(t, fast.URL, `{"input":"and 3+3?","previous_response_id":"`+fid+`"}`); st != 200 || id == "" {
		t.Errorf("a follow-up of its own response: %d %s", st, b)
	}
	if st, _, b := ask(t, fast.URL, `{"input":"and 3+3?","previous_response_id":"`+sid+`"}`); st != 404 || !strings.Contains(string(b), `"param":"previous_response_id"`) {
		t.Errorf("a follow-up of the other sim's response: %d %s; want a 404 naming previous_response_id", st, b)
	}
	if st, b := call(t, "GET", fast.URL+"/v1/responses/"+fid); st != 200 || !strings.Contains(string(b), `"status":"completed"`) {
		t.Errorf("GET: %d %s", st, b)
	}
	if st, b := call(t, "DELETE", fast.URL+"/v1/responses/"+fid); st != 200 || !strings.Contains(string(b), `"deleted":true`) {
		t.Errorf("DELETE: %d %s", st, b)
	}
	if st, _ := call(t, "GET", fast.URL+"/v1/responses/"+fid); st != 404 {
		t.Errorf("GET after DELETE: %d, want 404", st)
	}
	_, nid, _ := ask(t, fast.URL, `{"input":"What is 2+2?","store":false}`)
	if st, _ := call(t, "GET", fast.URL+"/v1/responses/"+nid); st != 404 {
		t.Errorf("GET of a response sent with store false: %d, want 404", st)
	}
}

// TestErrorsEchoClientInputByItsStart: the sim's errors repeat a path,
// a method or an id by its first bytes, escaped, as triage serve's do:
// whole, a client made them as long as what it sent.
func TestErrorsEchoClientInputByItsStart(t *testing.T) {
	_, ts := newSim(t, Options{Model: "fast"})
	long := strings.Repeat("x", 8000)
	cut := long[:echo.MaxBytes] + "..."
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"an unknown path", "GET", "/" + long, "", 404, "no route GET /" + cut[1:]},
		{"a method not allowed", strings.ToUpper(long), "/v1/models", "", 405, strings.ToUpper(cut) + " is not allowed on /v1/models"},
		{"a stored response's id", "GET", "/v1/responses/" + long, "", 404, "Response with id '" + cut + "' not found."},
		{"a previous_response_id", "POST", "/v1/responses", `{"input":"hi","previous_response_id":"` + long + `"}`, 404, "Previous response with id '" + cut + "' not found."},
	} {
		t.Run(c.name+" is repeated by its start", func(t *testing.T) {
			req, _ := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			if json.Unmarshal(b, &e); resp.StatusCode != c.status || !strings.Contains(e.Error.Message, c.want) || len(b) > 1000 {
				t.Errorf("%d, %d bytes: %.300s; want %d with %q, under 1000 bytes", resp.StatusCode, len(b), b, c.status, c.want)
			}
		})
	}
}
