package serve

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A request body gets the same answer however it is framed: with a
// Content-Length or chunked. limits.max_body_bytes bounds the body on the
// wire and decoded alike, so a few bytes of gzip followed by more zero
// padding than the limit is a 413 both ways; it was refused by its
// Content-Length and taken, its padding read to the end, when chunked.
func TestBodyLimitIsTheSameWithOrWithoutContentLength(t *testing.T) {
	const limit = 4096
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxBodyBytes = limit })
	// The length the server saw: -1 for a chunked body.
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.ContentLength)
		ts.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	small := gz(`{"prompt":"x"}`)
	bomb := gz(`{"prompt":"` + strings.Repeat("a", 100_000) + `"}`)
	pad := func(b []byte, n int) []byte { return append(bytes.Clone(b), make([]byte, n)...) }
	for _, c := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"gzip with zero padding under the limit is taken", pad(small, 512), 200},
		{"gzip whose zero padding takes the wire bytes past the limit is a 413", pad(small, 2*limit), 413},
		{"gzip whose wire bytes are exactly the limit is taken", pad(small, limit-len(small)), 200},
		{"gzip that expands past the limit is a 413", bomb, 413},
	} {
		for _, framing := range []string{"Content-Length", "chunked"} {
			t.Run(c.name+", sent with "+framing, func(t *testing.T) {
				var rd io.Reader = bytes.NewReader(c.body)
				if framing == "chunked" {
					// A reader of unknown length: the client sends it chunked.
					rd = io.MultiReader(rd)
				}
				req, err := http.NewRequest("POST", srv.URL+"/v1/route", rd)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Encoding", "gzip")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				if n := seen.Load(); (n < 0) != (framing == "chunked") {
					t.Fatalf("the server saw Content-Length %d, want the body %s", n, framing)
				}
				if resp.StatusCode != c.status {
					t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, got)
				}
				if c.status == 413 && !strings.Contains(string(got), "limits.max_body_bytes") {
					t.Errorf("a 413 that does not name the limit: %s", got)
				}
			})
		}
	}
}
