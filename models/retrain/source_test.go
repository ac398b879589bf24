package retrain

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/triage-router/triage/models"
)

// NamesSource knows a training log by its path (as given or absolute) and,
// through the artifact's digests, by its bytes under any other path; never
// standard input, which is no particular log.
func TestNamesSource(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log.jsonl")
	if err := os.WriteFile(log, []byte(`{"id":"a","prompt":"p"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	digests, err := DigestFiles([]string{log, "-"})
	if err != nil || len(digests) != 1 {
		t.Fatalf("DigestFiles = %v, %v; want one digest (standard input left out)", digests, err)
	}
	a := &models.Artifact{Training: models.Fingerprint{Sources: []string{log, "-"}, SourceDigests: digests}}
	copyOf := func(name string, extra string) string {
		b, _ := os.ReadFile(log)
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, append(b, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, path string
		want       bool
	}{
		{"the path as given", log, true},
		{"a byte-identical copy elsewhere", copyOf("copy.jsonl", ""), true},
		{"an edited copy", copyOf("edited.jsonl", "\n"), false},
		{"standard input, even when the artifact lists it", "-", false},
		{"a file that does not exist", filepath.Join(dir, "none.jsonl"), false},
	} {
		if got := NamesSource(a, tt.path); got != tt.want {
			t.Errorf("%s: NamesSource(%s) = %v, want %v", tt.name, tt.path, got, tt.want)
		}
	}
	// The same log compressed (or, trained on a compressed log, a plain
	// copy): its content is the training log's.
	gzOf := func(name string, level int, content []byte) string {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, level)
		zw.Write(content)
		zw.Close()
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain, _ := os.ReadFile(log)
	if !NamesSource(a, gzOf("log.jsonl.gz", gzip.BestSpeed, plain)) {
		t.Error("a gzip copy of the training log is taken as new")
	}
	// Zero bytes after the member (dd conv=sync, a tape block) are
	// padding, which the log readers skip: the content is the same.
	padded := gzOf("padded.jsonl.gz", gzip.BestSpeed, plain)
	if raw, err := os.ReadFile(padded); err != nil || os.WriteFile(padded, append(raw, make([]byte, 700)...), 0o644) != nil {
		t.Fatal("pad", padded, err)
	}
	if !NamesSource(a, padded) {
		t.Error("a gzip copy of the training log padded with zero bytes is taken as new")
	}
	if NamesSource(a, gzOf("other.jsonl.gz", gzip.BestSpeed, append(plain, '\n'))) {
		t.Error("a gzip copy of an edited log matched")
	}
	gzLog := gzOf("train.jsonl.gz", gzip.BestCompression, plain)
	gzDigests, err := DigestFiles([]string{gzLog})
	if err != nil || gzDigests[0].ContentBytes != int64(len(plain)) {
		t.Fatalf("DigestFiles of a gzip log = %+v, %v; want its content's size too", gzDigests, err)
	}
	b := &models.Artifact{Training: models.Fingerprint{Sources: []string{gzLog}, SourceDigests: gzDigests}}
	for _, p := range []string{copyOf("plain.jsonl", ""), gzOf("again.jsonl.gz", gzip.BestSpeed, plain)} {
		if !NamesSource(b, p) {
			t.Errorf("%s, the content of the gzip training log, is taken as new", p)
		}
	}
	// Without digests (an artifact from before them) a copy is another log.
	a.Training.SourceDigests = nil
	if NamesSource(a, copyOf("copy2.jsonl", "")) {
		t.Error("a copy matched an artifact without digests")
	}
}
