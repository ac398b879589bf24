package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxy measures the proxy's own cost per request, sims
// answering at once: client, proxy and sims share the CPU, so compare
// with BenchmarkDirect, the same request straight to a sim.
func BenchmarkProxy(b *testing.B) {
	for _, tc := range []struct{ name, prompt string }{{"fast", "F hello"}, {"speculate", "S accept"}, {"escalate", "E hard"}} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b, rigOptions{fixedLatency: time.Nanosecond})
			benchPost(b, r.url, chatBody(tc.prompt, ""))
			r.h.Close(context.Background())
		})
	}
}

func BenchmarkDirect(b *testing.B) {
	r := newRig(b, rigOptions{fixedLatency: time.Nanosecond})
	benchPost(b, r.fastURL, chatBody("F hello", ""))
}

func benchPost(b *testing.B, url, body string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// benchAnswer is a fast tier's answer with the logprobs a speculation
// asks for, as the upstream sim writes it.
const benchAnswer = `{"id":"chatcmpl-sim-2","object":"chat.completion","created":1795766298,"model":"synthetic/fast-small","choices":[{"index":0,"message":{"role":"assistant","content":"[sim] recorded score 0 for synthetic/fast-small on synth/1/000000"},"logprobs":{"content":[{"token":"[sim]","logprob":-1.278052322872867,"bytes":[91,115,105,109,93],"top_logprobs":[]},{"token":" recorded","logprob":-1.6197785249255146,"bytes":[32,114,101,99,111,114,100,101,100],"top_logprobs":[]},{"token":" score","logprob":-0.8185274647825577,"bytes":[32,115,99,111,114,101],"top_logprobs":[]},{"token":" 0","logprob":-0.6,"bytes":[32,48],"top_logprobs":[]},{"token":" for","logprob":-0.9,"bytes":[32,102,111,114],"top_logprobs":[]}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}`

// BenchmarkSpeculateJSON is the JSON work of a speculation without the
// network: parse the client's body, build both upstream bodies, read the
// fast answer and hide the logprobs the client did not ask for.
func BenchmarkSpeculateJSON(b *testing.B) {
	body := []byte(`{"model":"triage","messages":[{"role":"user","content":"Goran is taller than Emeka. Emeka is shorter than Emeka. Goran is not the shortest unless Hana is older than Alice. Farah is not the shortest unless Chen is older than Chen. Who is the tallest? Explain why."}]}`)
	b.ReportAllocs()
	for b.Loop() {
		req, err := parseRequest(body, apiChat, caps{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := req.upstreamBody("fast", true); err != nil {
			b.Fatal(err)
		}
		if _, err := req.upstreamBody("strong", false); err != nil {
			b.Fatal(err)
		}
		c := &call{body: []byte(benchAnswer), status: 200, stripLogprobs: true}
		c.parseAnswer()
		if c.lpN != 5 {
			b.Fatalf("%d logprobs read, want 5", c.lpN)
		}
	}
}

// BenchmarkParseAnswerLogprobs reads a plain answer of 40 tokens with
// their log-probabilities in OpenAI's shape (token, logprob, bytes,
// top_logprobs; about 3 KB), as a routed fast call gets it, and hides
// them from the client: the proxy's per-answer JSON work.
func BenchmarkParseAnswerLogprobs(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"id":"chatcmpl-1","object":"chat.completion","created":1796348487,"model":"fast","choices":[{"index":0,"message":{"role":"assistant","content":"`)
	for i := range 40 {
		fmt.Fprintf(&sb, "word%d ", i)
	}
	sb.WriteString(`"},"logprobs":{"content":[`)
	for i := range 40 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"token":"word%d ","logprob":-0.%d278052322872867,"bytes":[119,111,114,100,%d,32],"top_logprobs":[]}`, i, i+1, 48+i%10)
	}
	sb.WriteString(`]},"finish_reason":"stop"}],"usage":{"prompt_tokens":52,"completion_tokens":40,"total_tokens":92}}`)
	answer := []byte(sb.String())
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		c := &call{body: answer, status: 200, stripLogprobs: true}
		c.parseAnswer()
		if c.lpN != 40 || c.usage == nil || bytes.Contains(c.body, []byte(`"top_logprobs"`)) {
			b.Fatalf("%d logprobs, usage %v, body %s", c.lpN, c.usage, c.body)
		}
	}
}
