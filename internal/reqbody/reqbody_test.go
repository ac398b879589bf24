package reqbody

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func read(body io.Reader, encoding string) ([]byte, error) {
	r := httptest.NewRequest("POST", "/v1/route", body)
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	dec, err := Open(r, 1<<20)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(dec)
}

func TestOpenDecodes(t *testing.T) {
	want := []byte(`{"prompt":"what is 2+2?"}`)
	for _, c := range []struct {
		encoding string
		body     []byte
	}{
		{"", want},
		{"identity", want},
		{"gzip", gzipped(t, want)},
		{"GZIP", gzipped(t, want)},
		{"x-gzip", gzipped(t, want)},
		{" gzip ", gzipped(t, want)},
		{"deflate", deflated(t, want)},
	} {
		got, err := read(bytes.NewReader(c.body), c.encoding)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Content-Encoding %q: %q, %v; want %q", c.encoding, got, err, want)
		}
	}
}

func TestOpenRefusesWhatItCannotDecode(t *testing.T) {
	for _, enc := range []string{"br", "zstd", "compress", "gzip, br", "gzip, gzip"} {
		_, err := read(bytes.NewReader([]byte("x")), enc)
		var u *UnsupportedError
		if !errors.As(err, &u) || u.Encoding != enc {
			t.Errorf("Content-Encoding %q: %v, want an UnsupportedError naming it", enc, err)
		}
	}
}

func TestOpenSaysADamagedBodyIsDamaged(t *testing.T) {
	good := gzipped(t, bytes.Repeat([]byte(`{"prompt":"a long prompt"} `), 100))
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-6] ^= 0xff // the CRC-32 in the trailer
	for _, c := range []struct {
		name, encoding string
		body           []byte
	}{
		{"plain JSON sent as gzip", "gzip", []byte(`{"prompt":"hi"}`)},
		{"an empty gzip body", "gzip", nil},
		{"a cut gzip stream", "gzip", good[:len(good)/2]},
		{"a gzip stream without its trailer", "gzip", good[:len(good)-4]},
		{"a wrong checksum", "gzip", flipped},
		{"gzip bytes sent as deflate", "deflate", good},
		{"a cut deflate stream", "deflate", deflated(t, []byte("hello hello hello"))[:5]},
	} {
		_, err := read(bytes.NewReader(c.body), c.encoding)
		var d *DamagedError
		if !errors.As(err, &d) || d.Encoding != c.encoding {
			t.Errorf("%s: %v, want a DamagedError for %s", c.name, err, c.encoding)
		}
	}
}

// TestOpenReadsGzipAsTheLogReadersDo: a gzip body is read as gzip -dc
// and the log readers (package gunzip) read a file: members in turn, and
// zero bytes after the last one ignored (compress/gzip alone refused them,
// "invalid header", or "unexpected EOF" for fewer than ten); any other
// byte after a member is a DamagedError that says at which byte.
func TestOpenReadsGzipAsTheLogReadersDo(t *testing.T) {
	want := []byte(`{"prompt":"what is 2+2?"}`)
	one := gzipped(t, want)
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	zeros := func(n int) []byte { return make([]byte, n) }
	for _, c := range []struct {
		name string
		body []byte
		want []byte
	}{
		{"one zero byte after the member", cat(one, zeros(1)), want},
		{"nine zero bytes, fewer than a header", cat(one, zeros(9)), want},
		{"a block of zero padding", cat(one, zeros(10_000)), want},
		{"two members", cat(one, one), cat(want, want)},
		{"two members and zero padding", cat(one, one, zeros(512)), cat(want, want)},
	} {
		got, err := read(bytes.NewReader(c.body), "gzip")
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		body []byte
		msg  string
	}{
		{"bytes after the member", cat(one, []byte("junk")), fmt.Sprintf("byte %d, after gzip member 1, starts neither", len(one))},
		{"a byte after zero padding", cat(one, zeros(100), []byte("x")), fmt.Sprintf("byte %d is not zero", len(one)+100)},
		{"zero padding between members", cat(one, zeros(4), one), fmt.Sprintf("byte %d is not zero", len(one)+4)},
	} {
		_, err := read(bytes.NewReader(c.body), "gzip")
		var d *DamagedError
		if !errors.As(err, &d) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want a DamagedError saying %q", c.name, err, c.msg)
		}
	}
}

// A deflate (zlib) body ends at its checksum, and compress/zlib stops
// there: bytes after it were ignored, where the same bytes after a gzip
// member are refused. They are judged by gzip's rule: zero padding to
// the end is ignored, anything else is a DamagedError naming its byte.
func TestOpenReadsWhatFollowsADeflateStream(t *testing.T) {
	want := []byte(`{"prompt":"what is 2+2?"}`)
	z := deflated(t, want)
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	for _, n := range []int{1, 4, 10_000} {
		if got, err := read(bytes.NewReader(cat(z, make([]byte, n))), "deflate"); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d zero bytes after the stream: %q, %v; want %q", n, got, err, want)
		}
	}
	for _, c := range []struct {
		name string
		body []byte
		msg  string
	}{
		{"bytes after the stream", cat(z, []byte("junk")), fmt.Sprintf("byte %d, after the deflate stream, is not zero padding", len(z))},
		{"a byte after zero padding", cat(z, make([]byte, 100), []byte("x")), fmt.Sprintf("byte %d, after the deflate stream, is not zero padding", len(z)+100)},
		{"a second stream", cat(z, z), fmt.Sprintf("byte %d, after the deflate stream, is not zero padding", len(z))},
	} {
		_, err := read(bytes.NewReader(c.body), "deflate")
		var d *DamagedError
		if !errors.As(err, &d) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want a DamagedError saying %q", c.name, err, c.msg)
		}
	}
}

// failingReader gives n bytes of b, then fails with err.
type failingReader struct {
	b   []byte
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, f.err
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// A timeout on the wire is the caller's to word (a 408), not a damaged
// stream (a 400): Open must pass the connection's error through.
func TestOpenPassesTheWiresErrorsThrough(t *testing.T) {
	good := gzipped(t, bytes.Repeat([]byte("abcdefgh"), 1000))
	for _, cut := range []int{0, 5, len(good) / 2} {
		_, err := read(&failingReader{b: good[:cut], err: os.ErrDeadlineExceeded}, "gzip")
		var d *DamagedError
		if !errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &d) {
			t.Errorf("a timeout after %d bytes: %v, want os.ErrDeadlineExceeded unwrapped", cut, err)
		}
	}
}

// FuzzOpen: whatever the bytes, decoding ends in the data or in one of the
// two errors a caller words, never a panic or another error.
func FuzzOpen(f *testing.F) {
	f.Add(gzipped(f, []byte(`{"prompt":"hi"}`)), true)
	f.Add(deflated(f, []byte(`{"prompt":"hi"}`)), false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, true)
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		enc := "deflate"
		if gz {
			enc = "gzip"
		}
		_, err := read(bytes.NewReader(body), enc)
		var d *DamagedError
		if err != nil && !errors.As(err, &d) {
			t.Fatalf("%v (%T), want nil or a DamagedError", err, err)
		}
	})
}

// TestOpenLimitsTheWireBytes: Open reads at most its limit of the body
// as sent, with a Content-Length or chunked, and says a body past it is
// too large: a gzip member's zero padding decodes to nothing, so a cap on
// the decoded bytes alone let a chunked body of any length through.
func TestOpenLimitsTheWireBytes(t *testing.T) {
	const limit = 1000
	member := gzipped(t, []byte(`{"prompt":"x"}`))
	for _, c := range []struct {
		name, encoding string
		body           []byte
		tooLarge       bool
	}{
		{"gzip padded to the limit", "gzip", append(bytes.Clone(member), make([]byte, limit-len(member))...), false},
		{"gzip padded one byte past the limit", "gzip", append(bytes.Clone(member), make([]byte, limit+1-len(member))...), true},
		{"gzip padded far past the limit", "gzip", append(bytes.Clone(member), make([]byte, 100*limit)...), true},
		{"deflate padded past the limit", "deflate", append(deflated(t, []byte(`{"prompt":"x"}`)), make([]byte, 2*limit)...), true},
		{"plain bytes at the limit", "", bytes.Repeat([]byte(" "), limit), false},
		{"plain bytes past the limit", "", bytes.Repeat([]byte(" "), limit+1), true},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, chunked %v", c.name, chunked), func(t *testing.T) {
				r := httptest.NewRequest("POST", "/v1/route", bytes.NewReader(c.body))
				if chunked {
					r.ContentLength = -1
				}
				if c.encoding != "" {
					r.Header.Set("Content-Encoding", c.encoding)
				}
				var err error
				dec, err := Open(r, limit)
				if err == nil {
					_, err = io.ReadAll(dec)
				}
				var tl *TooLargeError
				if got := errors.As(err, &tl); got != c.tooLarge {
					t.Fatalf("err %v, want a TooLargeError: %v", err, c.tooLarge)
				}
				if c.tooLarge && tl.Limit != limit {
					t.Errorf("TooLargeError names limit %d, want %d", tl.Limit, limit)
				}
				if !c.tooLarge && err != nil {
					t.Errorf("err %v, want none", err)
				}
			})
		}
	}
}
