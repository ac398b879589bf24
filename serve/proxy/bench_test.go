package proxy

import (
	"context"
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
