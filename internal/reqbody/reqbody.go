// Package reqbody opens an HTTP request body as its sender encoded it.
//
// Go's server hands a handler the body as it arrived on the wire: a client
// (or a gateway in front of the server) that compresses its request and
// says so in Content-Encoding would otherwise have its gzip bytes parsed as
// JSON, and be told its body "is not valid UTF-8". The route server and the
// proxy both read bodies through Open, so both take the same encodings and
// word the same refusal.
package reqbody

import (
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/triage-router/triage/internal/gunzip"
)

// Accepted lists the content codings Open decodes, for the Accept-Encoding
// header of a 415 answer (RFC 7694).
const Accepted = "gzip, deflate"

// UnsupportedError is a Content-Encoding Open does not decode: the answer
// is 415 with Accepted.
type UnsupportedError struct{ Encoding string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("request body has Content-Encoding %q, which this server does not decode; send it uncompressed or with gzip or deflate", e.Encoding)
}

// DamagedError is a body whose Content-Encoding is supported but whose
// bytes do not decode: a cut or corrupt compressed stream.
type DamagedError struct {
	Encoding string
	Err      error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("request body says Content-Encoding %s but does not decode as %s (%v); send a complete %s stream, or the body uncompressed", e.Encoding, e.Encoding, e.Err, e.Encoding)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Open returns a reader of r's body decoded by its Content-Encoding
// (none, identity, gzip, x-gzip or deflate). Its errors, from Open or from
// the reader's Read, are *UnsupportedError and *DamagedError; any other
// error a Read returns is the connection's, unwrapped, so a caller still
// tells a timeout from a short body. A caller that limits the body's size
// limits the decoded bytes: those are what it holds in memory.
func Open(r *http.Request) (io.Reader, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		return r.Body, nil
	case "gzip", "x-gzip":
		// As the log readers read a gzip file (package gunzip):
		// members in turn, zero padding after the last ignored, and
		// any other byte after a member an error naming its offset.
		// compress/gzip alone refused the padding ("invalid header").
		return newDecoder("gzip", r.Body, func(src io.Reader) (io.Reader, error) {
			zr, err := gunzip.NewReader(src)
			if err != nil {
				return nil, err
			}
			return zr, nil
		})
	case "deflate":
		// HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2).
		return newDecoder("deflate", r.Body, func(src io.Reader) (io.Reader, error) { return zlib.NewReader(src) })
	}
	return nil, &UnsupportedError{Encoding: r.Header.Get("Content-Encoding")}
}

// decoder reads a compressed body, telling the wire's errors (passed
// through as they are) from the stream's (wrapped in DamagedError).
type decoder struct {
	name string
	wire *wireReader
	dec  io.Reader
}

func newDecoder(name string, body io.Reader, open func(io.Reader) (io.Reader, error)) (io.Reader, error) {
	w := &wireReader{r: body}
	dec, err := open(w)
	if err != nil {
		return nil, classify(name, w, err)
	}
	return &decoder{name: name, wire: w, dec: dec}, nil
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if err != nil && err != io.EOF {
		err = classify(d.name, d.wire, err)
	}
	return n, err
}

// classify returns the connection's own error where the wire failed, and
// a DamagedError where the bytes that did arrive do not decode. A stream
// that ends early is damaged too (io.ErrUnexpectedEOF from the decoder,
// the wire having reached a clean end).
func classify(name string, w *wireReader, err error) error {
	if w.err != nil && w.err != io.EOF {
		return w.err
	}
	if errors.Is(err, io.EOF) {
		// gzip.NewReader on an empty body (which gunzip wraps).
		err = errors.New("the body is empty")
	}
	return &DamagedError{Encoding: name, Err: err}
}

// wireReader remembers the first error the body itself returned.
type wireReader struct {
	r   io.Reader
	err error
}

func (w *wireReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
