// Package gunzip reads a gzip file as GNU gzip reads it: its members one
// after another (cat a.gz b.gz > c.gz), and zero bytes after the last one
// ignored, which dd's conv=sync, a tape's blocks and some archivers leave
// ("gzip -dc" says "decompression OK, trailing zero bytes ignored").
//
// compress/gzip alone refuses that padding ("invalid header", or
// "unexpected EOF" for fewer than ten bytes), and says of neither a cut
// member nor bytes after one where in the file they are. Anything after
// a member other than another member or zero bytes to the end is still
// an error, naming its byte offset: it is not a gzip file as written.
// The log readers (package datasets), the importers, the source digests
// of retrain and the servers' gzip request bodies (internal/reqbody) all
// read gzip through this package, so a stream one of them takes is a
// stream all of them take.
package gunzip

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
)

// magic starts every gzip member.
var magic = []byte{0x1f, 0x8b}

// Starts reports whether b starts as a gzip file does, by its magic
// number: how every reader of logs and imports tells a compressed file
// or stream, whatever its name.
func Starts(b []byte) bool { return bytes.HasPrefix(b, magic) }

// Sniff peeks at br's next bytes and, when they start a gzip file,
// returns a Reader of it (read through br, which loses nothing to the
// peek); nil and no error when they do not, for the caller to read br as
// it is.
func Sniff(br *bufio.Reader) (*Reader, error) {
	if b, _ := br.Peek(len(magic)); !Starts(b) {
		return nil, nil
	}
	return NewReader(br)
}

// Reader decompresses a gzip file's members in turn as one stream.
type Reader struct {
	src    *countingReader
	zr     *gzip.Reader
	member int   // 1-based number of the member being read
	start  int64 // byte offset where that member starts
	err    error // sticky: io.EOF at the end, or what went wrong
}

// NewReader reads the gzip file whose first byte is r's next one. A
// *bufio.Reader is read as it is (its buffered bytes are the file's; a
// caller that peeked at the magic number loses nothing), anything else
// through a bufio.Reader. The error of a file whose first member's header
// is not gzip's says so and where.
func NewReader(r io.Reader) (*Reader, error) {
	z := &Reader{src: &countingReader{br: bufio.NewReader(r)}, member: 1}
	zr, err := gzip.NewReader(z.src)
	if err != nil {
		return nil, z.memberErr(err)
	}
	z.zr = zr
	// Members are taken one at a time, so the bytes after each are seen
	// before compress/gzip takes them for a header.
	z.zr.Multistream(false)
	return z, nil
}

// Read reads decompressed bytes: io.EOF after the last member (and any
// zero padding), or an error that names the member or the byte offset
// where the file stops being gzip.
func (z *Reader) Read(p []byte) (int, error) {
	for {
		if z.err != nil {
			return 0, z.err
		}
		n, err := z.zr.Read(p)
		switch {
		case err == io.EOF:
			err = z.next()
		case err != nil:
			err = z.memberErr(err)
		}
		z.err = err
		// An empty member reads as nothing: go on to the next one
		// rather than return 0, nil (next consumed its header, so the
		// loop ends).
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
}

// next looks at what follows a member that ended well: nil when another
// member starts there (its header read), io.EOF at the end of the file or
// of zero padding running to it, else an error at the offset of the first
// byte that is neither.
func (z *Reader) next() error {
	end := z.src.n
	b, err := z.src.br.Peek(len(magic))
	switch {
	case len(b) == 0 && err == io.EOF:
		return io.EOF
	case len(b) == 0:
		return fmt.Errorf("read after gzip member %d, at byte %d: %w", z.member, end, err)
	case bytes.Equal(b, magic):
		z.member++
		z.start = end
		if err := z.zr.Reset(z.src); err != nil {
			return z.memberErr(err)
		}
		z.zr.Multistream(false)
		return nil
	case b[0] == 0:
		return z.skipZeros(end)
	}
	return fmt.Errorf("byte %d, after gzip member %d, starts neither another member nor zero padding (it is %s): the file is not gzip from there; cut it at byte %d to keep what comes before",
		end, z.member, z.showBytes(), end)
}

// skipZeros reads the zero bytes that start at byte from to the end of
// the file: io.EOF if nothing else follows.
func (z *Reader) skipZeros(from int64) error {
	br := z.src.br
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return io.EOF
		} else if err != nil {
			return fmt.Errorf("read the zero padding after gzip member %d, at byte %d: %w", z.member, z.src.n, err)
		}
		b, _ := br.Peek(br.Buffered())
		if i := slices.IndexFunc(b, func(c byte) bool { return c != 0 }); i >= 0 {
			z.src.discard(i)
			return fmt.Errorf("byte %d is not zero (it is %s): zero bytes after gzip member %d from byte %d are padding only if they run to the end of the file; the file is not gzip from there",
				z.src.n, z.showBytes(), z.member, from)
		}
		z.src.discard(len(b))
	}
}

// showBytes prints the next few bytes of the file in hex, for an error
// about them.
func (z *Reader) showBytes() string {
	b, _ := z.src.br.Peek(8)
	return fmt.Sprintf("% x", b)
}

// memberErr says which member err is about: a member cut short says
// where the file ends, and any other fault (a damaged block, a checksum
// that does not match, a header that is not gzip's) where the member
// starts.
func (z *Reader) memberErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("gzip member %d, from byte %d, is cut short: the file ends at byte %d: %w", z.member, z.start, z.src.n, err)
	}
	return fmt.Errorf("gzip member %d, from byte %d: %w", z.member, z.start, err)
}

// countingReader counts the bytes taken from br. It is an io.ByteReader,
// so compress/gzip reads it as it is, without a buffer of its own that
// would read past a member's end.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// discard skips n buffered bytes.
func (c *countingReader) discard(n int) {
	d, _ := c.br.Discard(n)
	c.n += int64(d)
}
