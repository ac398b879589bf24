package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	const next = "HTTP/1.1 204 No Content\r\n\r\n"
	tests := []struct {
		name     string
		in       string
		want     response
		wantKeep bool
		wantErr  error
	}{
		{name: "a Content-Length body is read whole and the headers picked",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-triage-model: fast\r\nX-Triage-Decision:  speculate \r\n\r\nhello" + next,
			want: response{status: 200, model: "fast", decision: "speculate"}, wantKeep: true},
		{name: "a chunked body is read to its last chunk and trailers",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n" + next,
			want: response{status: 200}, wantKeep: true},
		{name: "an error status is returned with its body read",
			in:   "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2\r\n\r\n{}" + next,
			want: response{status: 502}, wantKeep: true},
		{name: "Connection close ends the connection",
			in:   "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" + next,
			want: response{status: 200}},
		{name: "a body without a length runs to EOF",
			in:   "HTTP/1.0 200 OK\r\n\r\nall of it",
			want: response{status: 200}},
		{name: "a short body is an error",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
			want: response{status: 200}, wantErr: io.EOF},
		{name: "a response cut in its headers is an error",
			in:   "HTTP/1.1 200 OK\r\nContent-Le",
			want: response{status: 200}, wantErr: io.ErrUnexpectedEOF},
		{name: "a bad status line is an error",
			in: "SMTP ready\r\n\r\n", wantErr: errMalformed},
		{name: "a bad chunk size is an error",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			want: response{status: 200}, wantErr: errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			got, keep, err := readResponse(br)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("response = %+v, want %+v", got, tt.want)
			}
			if err != nil {
				return
			}
			if keep != tt.wantKeep {
				t.Errorf("keep = %v, want %v", keep, tt.wantKeep)
			}
			if keep {
				// The next response starts right after the body.
				if next, _, err := readResponse(br); err != nil || next.status != 204 {
					t.Errorf("next response = %+v, %v; want a 204", next, err)
				}
			}
		})
	}
}

// TestConnAgainstNetHTTP checks the client against Go's server: keep-alive
// reuse, a chunked answer, a POST body the server reads whole, and a
// redial after the server closes.
func TestConnAgainstNetHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	srv := &http.Server{
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Triage-Model", r.URL.Query().Get("m"))
			switch string(b) {
			case "chunked":
				w.Write([]byte("part one"))
				w.(http.Flusher).Flush()
				w.Write([]byte("part two"))
			case "close":
				w.Header().Set("Connection", "close")
				w.Write([]byte("bye"))
			default:
				w.WriteHeader(http.StatusTeapot)
			}
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := &conn{addr: ln.Addr().String(), timeout: 10 * time.Second}
	defer c.close()
	steps := []struct {
		body, model string
		status      int
	}{
		{"chunked", "a", 200}, {"other", "b", 418}, {"close", "c", 200}, {"chunked", "d", 200},
	}
	for i, s := range steps {
		got, err := c.do(request(c.addr, "/v1/chat/completions?m="+s.model, []byte(s.body)))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got.status != s.status || got.model != s.model {
			t.Errorf("step %d: got %+v, want status %d model %q", i, got, s.status, s.model)
		}
	}
	// The close answer forced one redial: two connections in all.
	if n := accepted.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}
