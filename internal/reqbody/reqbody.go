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
	"bufio"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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

// TooLargeError is a body whose bytes on the wire run past the limit
// Open was given: the answer is 413.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request body is over the limit of %d bytes", e.Limit)
}

// Open returns a reader of r's body decoded by its Content-Encoding
// (none, identity, gzip, x-gzip or deflate). Its errors, from Open or from
// the reader's Read, are *UnsupportedError, *DamagedError and
// *TooLargeError; any other error a Read returns is the connection's,
// unwrapped, so a caller still tells a timeout from a short body.
//
// At most limit bytes are read from the wire, whatever the framing: a
// Content-Length over limit is refused by the caller before reading, and
// a chunked body (whose length nobody said) is cut at limit+1 bytes with
// a *TooLargeError, so the same bytes get the same answer either way.
// Without this a gzip body's zero padding, which decodes to nothing, was
// read to its end when chunked. A caller that limits the body's size
// limits the decoded bytes as well: those are what it holds in memory.
func Open(r *http.Request, limit int64) (io.Reader, error) {
	body := &capReader{r: r.Body, left: limit, limit: limit}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		// As the log readers read a gzip file (package gunzip):
		// members in turn, zero padding after the last ignored, and
		// any other byte after a member an error naming its offset.
		// compress/gzip alone refused the padding ("invalid header").
		return newDecoder("gzip", body, func(src *wireReader) (io.Reader, error) {
			zr, err := gunzip.NewReader(src)
			if err != nil {
				return nil, err
			}
			return zr, nil
		})
	case "deflate":
		// HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2).
		return newDecoder("deflate", body, newZlibReader)
	}
	return nil, &UnsupportedError{Encoding: r.Header.Get("Content-Encoding")}
}

// zlibReader reads a zlib stream and then judges what follows it as
// gunzip judges what follows a gzip member: zero bytes to the end are
// padding, any other byte an error naming its offset. compress/zlib
// stops at the stream's checksum and ignored whatever came after it,
// which the gzip path refuses. The stream is read through br, an
// io.ByteReader, so the decompressor takes no byte past its end.
type zlibReader struct {
	zr   io.Reader
	br   *bufio.Reader
	wire *wireReader // counts the bytes taken from the body
	done bool
}

func newZlibReader(w *wireReader) (io.Reader, error) {
	br := bufio.NewReader(w)
	zr, err := zlib.NewReader(br)
	if err != nil {
		return nil, err
	}
	return &zlibReader{zr: zr, br: br, wire: w}, nil
}

func (z *zlibReader) Read(p []byte) (int, error) {
	if z.done {
		return 0, io.EOF
	}
	n, err := z.zr.Read(p)
	if err == io.EOF {
		if err = z.rest(); err == nil {
			z.done, err = true, io.EOF
		}
	}
	return n, err
}

// rest reads what follows the stream: nil for nothing or zero bytes to
// the end.
func (z *zlibReader) rest() error {
	for {
		b, err := z.br.Peek(1)
		if len(b) == 0 {
			if err == io.EOF {
				return nil
			}
			return err
		}
		b, _ = z.br.Peek(z.br.Buffered())
		if i := slices.IndexFunc(b, func(c byte) bool { return c != 0 }); i >= 0 {
			at := z.wire.n - int64(z.br.Buffered()) + int64(i)
			return fmt.Errorf("byte %d, after the deflate stream, is not zero padding (it is %#02x): the body is not deflate from there", at, b[i])
		}
		z.br.Discard(len(b))
	}
}

// decoder reads a compressed body, telling the wire's errors (passed
// through as they are) from the stream's (wrapped in DamagedError).
type decoder struct {
	name string
	wire *wireReader
	dec  io.Reader
}

func newDecoder(name string, body io.Reader, open func(*wireReader) (io.Reader, error)) (io.Reader, error) {
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

// wireReader remembers the first error the body itself returned, and
// counts the bytes it gave.
type wireReader struct {
	r   io.Reader
	n   int64
	err error
}

func (w *wireReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n += int64(n)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// capReader reads at most limit bytes of r, and fails with a
// *TooLargeError where a byte past them arrives. It is under the
// decoder, so the decoder sees the error as the wire's (classify passes
// it through) rather than as a damaged stream.
type capReader struct {
	r     io.Reader
	left  int64 // bytes still allowed
	limit int64
	over  bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.over {
		return 0, &TooLargeError{Limit: c.limit}
	}
	// One byte more than allowed tells "exactly the limit" from "more".
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		n, c.left, c.over = int(c.left), 0, true
		return n, &TooLargeError{Limit: c.limit}
	}
	c.left -= int64(n)
	return n, err
}
