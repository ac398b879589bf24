package gunzip

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gz compresses each part as a member of its own, as cat a.gz b.gz does.
func gz(parts ...string) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(p))
		zw.Close()
	}
	return b.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func zeros(n int) []byte { return make([]byte, n) }

func readAll(b []byte) (string, error) {
	z, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	out, err := io.ReadAll(z)
	return string(out), err
}

// TestReadsAsGNUGzipDoes: members in turn, and zero bytes after the last
// one ignored, however many (fewer than a header's ten failed as "unexpected
// EOF", more as "invalid header"); what else follows a member, and a member
// cut or damaged, is an error that says where.
func TestReadsAsGNUGzipDoes(t *testing.T) {
	one := gz("line 1\nline 2\n") // 35 bytes
	if len(one) != 35 {
		t.Fatalf("the member is %d bytes; the offsets below count on 35", len(one))
	}
	two := gz("line 1\n", "line 2\n")
	flipped := bytes.Clone(one)
	flipped[len(flipped)/2] ^= 0xff
	for _, tt := range []struct {
		name string
		in   []byte
		want string // the content, or with err a part of the error
		err  bool
	}{
		{"one member", one, "line 1\nline 2\n", false},
		{"two members", two, "line 1\nline 2\n", false},
		{"an empty member between two", cat(gz("line 1\n"), gz(""), gz("line 2\n")), "line 1\nline 2\n", false},
		{"one zero byte after the member", cat(one, zeros(1)), "line 1\nline 2\n", false},
		{"five zero bytes after the member", cat(one, zeros(5)), "line 1\nline 2\n", false},
		{"a 512-byte block's padding", cat(one, zeros(512-len(one))), "line 1\nline 2\n", false},
		{"more zeros than a buffer holds", cat(two, zeros(100_000)), "line 1\nline 2\n", false},
		{"garbage after a member", cat(one, []byte("hello")), "byte 35, after gzip member 1, starts neither another member nor zero padding (it is 68 65 6c 6c 6f)", true},
		{"a lone first magic byte after a member", cat(one, []byte{0x1f}), "byte 35, after gzip member 1, starts neither", true},
		{"zeros then something else", cat(one, zeros(3), []byte("x"), zeros(3)), "byte 38 is not zero (it is 78 00 00 00): zero bytes after gzip member 1 from byte 35 are padding only if they run to the end", true},
		{"zeros then another member", cat(one, zeros(3), one), "byte 38 is not zero (it is 1f 8b", true},
		{"a member cut short", one[:20], "gzip member 1, from byte 0, is cut short: the file ends at byte 20", true},
		{"the second member's header cut short", cat(one, one[:5]), "gzip member 2, from byte 35, is cut short: the file ends at byte 40", true},
		{"the second member cut short", cat(one, one[:20]), "gzip member 2, from byte 35, is cut short: the file ends at byte 55", true},
		{"a damaged member", flipped, "gzip member 1, from byte 0:", true},
		{"not gzip past its magic", []byte("\x1f\x8bnot gzip at all"), "gzip member 1, from byte 0: gzip: invalid header", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(tt.in)
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			case !tt.err && (err != nil || got != tt.want):
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestReadsWhatGzipWrites: files made by gzip(1) and padded by head -c N
// /dev/zero and by dd conv=sync read as 'gzip -dc' reads them (and a
// bufio.Reader that peeked at the magic number loses no byte).
func TestReadsWhatGzipWrites(t *testing.T) {
	for _, tool := range []string{"gzip", "head", "dd", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here: %v", tool, err)
		}
	}
	dir := t.TempDir()
	text := strings.Repeat(`{"id":"r","prompt":"a question"}`+"\n", 1000)
	if err := os.WriteFile(filepath.Join(dir, "log.jsonl"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, script := range map[string]string{
		"padded by head":    "(gzip -c log.jsonl; head -c 7000 /dev/zero) > f",
		"padded by dd":      "gzip -c log.jsonl > m && dd conv=sync bs=10240 if=m of=f 2>/dev/null",
		"two members by dd": "(gzip -c log.jsonl; gzip -c log.jsonl) > m && dd conv=sync bs=512 if=m of=f 2>/dev/null",
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", script, err, out)
			}
			want, err := exec.Command("gzip", "-dc", filepath.Join(dir, "f")).Output() // it warns on stderr, and exits 0 or 2
			if len(want) == 0 {
				t.Fatalf("gzip -dc read nothing: %v", err)
			}
			f, err := os.Open(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			br := bufio.NewReaderSize(f, 64<<10)
			if _, err := br.Peek(2); err != nil {
				t.Fatal(err)
			}
			z, err := NewReader(br)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(z)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, %v; want gzip -dc's %d", len(got), err, len(want))
			}
		})
	}
}

// FuzzAgreesWithCompressGzip: whatever compress/gzip reads (members in
// turn), this reads the same; what it reads that compress/gzip refuses is
// a file compress/gzip reads once zero bytes at its end are cut.
func FuzzAgreesWithCompressGzip(f *testing.F) {
	f.Add(gz("a\n"), 0)
	f.Add(gz("a\n", "b\n"), 12)
	f.Add(cat(gz("a\n"), []byte("x")), 3)
	f.Add(gz("")[:15], 1)
	f.Fuzz(func(t *testing.T, in []byte, pad int) {
		in = cat(in, zeros(pad&0xfff))
		got, gotErr := readAll(in)
		want, wantErr := stdlibRead(in)
		if wantErr == nil {
			if gotErr != nil || got != want {
				t.Fatalf("got %q, %v; compress/gzip reads %q", got, gotErr, want)
			}
			return
		}
		if gotErr != nil {
			return
		}
		for k := len(in); k > 0 && in[k-1] == 0; k-- {
			if w, err := stdlibRead(in[:k-1]); err == nil && w == got {
				return
			}
		}
		t.Fatalf("read %q where compress/gzip fails (%v), and not by leaving out zero bytes at the end", got, wantErr)
	})
}

func stdlibRead(b []byte) (string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	out, err := io.ReadAll(zr)
	return string(out), err
}
