package proxy

import (
	"errors"
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
