package reqbody

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http/httptest"
	"os"
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
	dec, err := Open(r)
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
