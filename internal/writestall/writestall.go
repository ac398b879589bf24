// Package writestall bounds each write of a long response instead of the
// whole response.
//
// A proxied answer or an admin export may rightly take longer than any
// fixed write deadline (a long stream, a slow upstream, a large db), so
// the server's write timeout is lifted for them. With no deadline at all,
// though, a client that stops reading (a stuck consumer, a half-open
// connection) holds its handler in Write for ever, with the connection
// and everything the handler holds. A Writer gives each write and flush
// its own deadline instead: a client that reads nothing for that long is
// cut off.
package writestall

import (
	"net/http"
	"time"
)

// Writer is an http.ResponseWriter whose writes and flushes each get
// stall to make progress.
type Writer struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

// New wraps w. Its current write deadline is lifted.
func New(w http.ResponseWriter, stall time.Duration) *Writer {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	return &Writer{ResponseWriter: w, rc: rc, stall: stall}
}

// Arm gives the next writes stall from now (none if stall is not
// positive: writes are then unbounded). net/http writes a chunked
// response's last chunk after the handler returns, which may be long
// after its last write: a handler defers Arm for it.
func (w *Writer) Arm() {
	if w.stall > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	}
}

func (w *Writer) Write(p []byte) (int, error) {
	w.Arm()
	return w.ResponseWriter.Write(p)
}

// FlushError is what http.ResponseController.Flush calls.
func (w *Writer) FlushError() error {
	w.Arm()
	return w.rc.Flush()
}

// Flush is for callers that use http.Flusher.
func (w *Writer) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
