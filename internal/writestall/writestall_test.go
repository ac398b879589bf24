package writestall

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A handler writing to a client that stops reading gets an error once a
// write has made no progress for the stall, and a client that reads gets
// the whole response, however long it takes, also with the handler's last
// write long before it returns.
func TestStalledClientIsCutOff(t *testing.T) {
	const total = 32 << 20 // more than loopback's socket buffers hold
	chunk := []byte(strings.Repeat("x", 64<<10))
	ended := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := New(rw, 200*time.Millisecond)
		defer w.Arm()
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return
			}
			if r.URL.Path == "/slow" && n == 0 {
				// A pause longer than the stall between writes is not
				// a stall: no write was waiting.
				w.Flush()
				time.Sleep(400 * time.Millisecond)
			}
		}
		if r.URL.Path == "/slow" {
			// The last chunk, written after the handler returns, gets its
			// own stall (the deferred Arm).
			w.Flush()
			time.Sleep(400 * time.Millisecond)
		}
		ended <- nil
	}))
	// The server's own write timeout is shorter than the whole response:
	// New lifts it.
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != total {
		t.Fatalf("a reading client got %d bytes (%v), want %d", n, err, total)
	}
	if err := <-ended; err != nil {
		t.Fatalf("the handler of a reading client: %v", err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q (%v)", line, err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the handler wrote the whole response to a client that read none of it")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler is still writing to a client that stopped reading")
	}
}
