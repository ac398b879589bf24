package proxy

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// failingBody fails its first read with err.
type failingBody struct{ err error }

func (b failingBody) Read([]byte) (int, error) { return 0, b.err }

func TestReadBodyErrorsShowNoAddresses(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8000}
	for _, c := range []struct {
		name   string
		err    error
		status int
	}{
		{"a read timeout is 408", &net.OpError{Op: "read", Net: "tcp", Source: addr, Addr: addr, Err: os.ErrDeadlineExceeded}, 408},
		{"a reset connection is 400", &net.OpError{Op: "read", Net: "tcp", Source: addr, Addr: addr, Err: errors.New("connection reset by peer")}, 400},
		{"a short body is 400", io.ErrUnexpectedEOF, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/chat/completions", io.NopCloser(failingBody{c.err}))
			r.ContentLength = -1
			_, err := readBody(r, 1<<20)
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != c.status {
				t.Fatalf("readBody: %v, want an apiError with status %d", err, c.status)
			}
			if strings.Contains(ae.msg, "10.0.0.7") || strings.Contains(ae.msg, "tcp") {
				t.Errorf("message %q shows the connection", ae.msg)
			}
		})
	}
}

// TestReadBodyDecodesCompressedBodies: a gzip body is read decoded and
// limited decoded; an encoding the proxy does not decode is a 415 whose
// answer lists the ones it does; a body that does not decode is a 400.
func TestReadBodyDecodesCompressedBodies(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	for _, c := range []struct {
		name, body, encoding string
		status               int
		code                 string
	}{
		{"gzip is decoded", gz(body), "gzip", 0, ""},
		{"zero padding after the gzip member is read as gzip -dc reads it", gz(body) + strings.Repeat("\x00", 512), "gzip", 0, ""},
		{"other bytes after the gzip member are a 400", gz(body) + "junk", "gzip", 400, codeInvalidRequest},
		// The same bytes with a Content-Length or chunked: the limit
		// holds on the wire too, so padding that decodes to nothing
		// cannot be sent without end.
		{"zero padding that takes the body past the limit is a 413", gz(body) + strings.Repeat("\x00", 2000), "gzip", 413, codeBodyTooLarge},
		{"the limit is on the decoded size, zero padding or not", gz(strings.Repeat(" ", 2000)+body) + "\x00", "gzip", 413, codeBodyTooLarge},
		{"the limit is on the decoded size", gz(strings.Repeat(" ", 2000) + body), "gzip", 413, codeBodyTooLarge},
		{"plain bytes labelled gzip are a 400", body, "gzip", 400, codeInvalidRequest},
		{"zstd is a 415", body, "zstd", 415, codeUnsupportedEncoding},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, chunked %v", c.name, chunked), func(t *testing.T) {
				r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(c.body))
				if chunked {
					// As the server hands a chunked body on: no length.
					r.ContentLength = -1
				}
				r.Header.Set("Content-Encoding", c.encoding)
				got, err := readBody(r, 1000)
				if c.status == 0 {
					if err != nil || string(got) != body {
						t.Fatalf("readBody: %q, %v; want the decoded body", got, err)
					}
					return
				}
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != c.status || ae.code != c.code {
					t.Fatalf("readBody: %v, want an apiError %d %s", err, c.status, c.code)
				}
				w := httptest.NewRecorder()
				writeError(w, ae)
				if ae.status == 415 && w.Header().Get("Accept-Encoding") != "gzip, deflate" {
					t.Errorf("Accept-Encoding %q, want the encodings taken", w.Header().Get("Accept-Encoding"))
				}
			})
		}
	}
}
