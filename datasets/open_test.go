package datasets

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLogsCompressedOrWithABOM: a gzip-compressed log (whatever its name,
// and made of several members, as cat a.gz b.gz writes) and a log that
// starts with a UTF-8 byte-order mark read as the plain log does, on one
// worker or several, and so does one padded with zero bytes; a damaged or
// truncated one, or one with other bytes after its end, is an error that
// says so.
func TestLogsCompressedOrWithABOM(t *testing.T) {
	dir := t.TempDir()
	var plain bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&plain, `{"id":"r%d","prompt":"question %d","outcomes":{"f":{"score":%d},"s":{"score":1}}}`+"\n", i, i, i%2)
	}
	gz := func(parts ...[]byte) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			zw := gzip.NewWriter(&b)
			zw.Write(p)
			zw.Close()
		}
		return b.Bytes()
	}
	half := bytes.Index(plain.Bytes()[plain.Len()/2:], []byte("\n")) + plain.Len()/2 + 1
	whole := gz(plain.Bytes())
	files := map[string][]byte{
		"plain.jsonl":     plain.Bytes(),
		"log.jsonl.gz":    whole,
		"no-suffix.jsonl": whole,
		"two-members.gz":  gz(plain.Bytes()[:half], plain.Bytes()[half:]),
		"bom.jsonl":       append([]byte("\ufeff"), plain.Bytes()...),
		"bom.jsonl.gz":    gz(append([]byte("\ufeff"), plain.Bytes()...)),
		"cut.gz":          whole[:len(whole)/2],
		"fake.gz":         []byte("\x1f\x8bnot gzip at all"),
		// dd conv=sync and tape archivers pad the last block with zeros,
		// which gzip -dc ignores.
		"padded.gz": append(bytes.Clone(whole), make([]byte, 10240-len(whole)%10240)...),
		"junk.gz":   append(bytes.Clone(whole), "junk"...),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := ReadFile(filepath.Join(dir, "plain.jsonl"), ReadOptions{})
	if err != nil || len(want) != 300 {
		t.Fatalf("plain log: %d records, %v", len(want), err)
	}
	for _, name := range []string{"log.jsonl.gz", "no-suffix.jsonl", "two-members.gz", "bom.jsonl", "bom.jsonl.gz", "padded.gz"} {
		for _, workers := range []int{1, 2} {
			var got []Record
			_, err := EachFileParallel(filepath.Join(dir, name), ReadOptions{}, workers,
				func() func(*Record) Record { return func(r *Record) Record { return *r } },
				func(_ Position, r Record) error { got = append(got, r); return nil })
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %d workers: %d records, %v; want the plain log's %d", name, workers, len(got), err, len(want))
			}
		}
		if compressed := strings.Contains(name, ".gz") || name == "no-suffix.jsonl"; IsCompressed(filepath.Join(dir, name)) != compressed {
			t.Errorf("IsCompressed(%s) = %v, want %v", name, !compressed, compressed)
		}
	}
	for name, msg := range map[string]string{
		"cut.gz":  "cut.gz: the compressed log is damaged or cut short after line",
		"fake.gz": "it starts like gzip but is not",
		"junk.gz": fmt.Sprintf("junk.gz: the compressed log is damaged or cut short after line 300 (byte %d, after gzip member 1, starts neither another member nor zero padding", len(whole)),
	} {
		if _, _, err := ReadFile(filepath.Join(dir, name), ReadOptions{}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, msg)
		}
	}
}

// TestDashReadsOptsStdin: the path "-" reads ReadOptions.Stdin, plain or
// gzip, so a command run in-process reads the standard input it was given
// rather than the process's.
func TestDashReadsOptsStdin(t *testing.T) {
	line := `{"id":"a","prompt":"p","outcomes":{"f":{"score":1}}}` + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(line))
	zw.Close()
	for name, in := range map[string][]byte{"plain": []byte(line), "gzip": gz.Bytes()} {
		recs, _, err := ReadFile("-", ReadOptions{Stdin: bytes.NewReader(in)})
		if err != nil || len(recs) != 1 || recs[0].ID != "a" {
			t.Errorf("%s: %+v, %v; want the record a", name, recs, err)
		}
	}
}
