package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// seen is what a reader passed on: each record's position and its JSON,
// then how it ended.
type seen struct {
	Pos     []Position
	Recs    []string
	Skipped int
	// Skips are the errors OnSkip was given, under SkipBad.
	Skips []string
	Err   string
}

// onSkip sets opts.OnSkip, under SkipBad, to note each error in s.
func onSkip(opts ReadOptions, s *seen) ReadOptions {
	if opts.SkipBad {
		opts.OnSkip = func(err error) { s.Skips = append(s.Skips, err.Error()) }
	}
	return opts
}

// readSequential reads in with the one-at-a-time Reader, tracking each
// record's position as EachFileParallel reports it.
func readSequential(tb testing.TB, in string, opts ReadOptions) seen {
	tb.Helper()
	var s seen
	rd := NewReader(strings.NewReader(in), "log.jsonl", onSkip(opts, &s))
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Err = err.Error()
			break
		}
		s.Pos = append(s.Pos, Position{Line: rd.Line(), End: rd.off})
		s.Recs = append(s.Recs, mustJSON(tb, &rec))
	}
	s.Skipped = rd.Skipped()
	return s
}

func readParallel(tb testing.TB, in string, opts ReadOptions, workers int) seen {
	tb.Helper()
	var s seen
	rd := NewReader(strings.NewReader(in), "log.jsonl", onSkip(opts, &s))
	skipped, err := eachParallel(rd, workers, func() func(*Record) string {
		return func(r *Record) string { return mustJSON(tb, r) }
	}, func(p Position, rec string) error {
		s.Pos = append(s.Pos, p)
		s.Recs = append(s.Recs, rec)
		return nil
	})
	if err != nil {
		s.Err = err.Error()
	}
	s.Skipped = skipped
	return s
}

func mustJSON(tb testing.TB, r *Record) string {
	b, err := json.Marshal(r)
	if err != nil {
		tb.Errorf("marshal %q: %v", r.ID, err)
	}
	return string(b)
}

// bigLog is n good lines with the given lines (1-based) replaced.
func bigLog(n int, replace map[int]string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if s, ok := replace[i]; ok {
			b.WriteString(s)
		} else {
			fmt.Fprintf(&b, `{"id":"r%d","prompt":"prompt %d","meta":{"k":"v%d"},"outcomes":{"f":{"score":%d},"s":{"score":1}}}`, i, i, i%7, i%2)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestEachFileParallelMatchesReader(t *testing.T) {
	long := `{"id":"long","prompt":"` + strings.Repeat("x", 2000) + `"}`
	for _, tc := range []struct {
		name string
		in   string
		opts ReadOptions
	}{
		{"an empty file gives nothing", "", ReadOptions{}},
		{"a file of blank lines gives nothing", "\n\r\n  \n", ReadOptions{}},
		{"a last line without a newline is read", `{"id":"a","prompt":"x"}` + "\n" + `{"id":"b","prompt":"y"}`, ReadOptions{}},
		{"good lines over several batches come in file order", bigLog(3*parallelBatchLines+17, nil), ReadOptions{}},
		{"a bad field stops at its line", bigLog(1500, map[int]string{1200: `{"id":"x","prompt":"p","outcomes":{"f":{"score":7}}}`}), ReadOptions{}},
		{"the first of two bad lines is reported", bigLog(1500, map[int]string{700: `{"id":5}`, 1300: `not json`}), ReadOptions{}},
		{"a repeated id is reported at the second line", bigLog(1500, map[int]string{1400: `{"id":"r3","prompt":"again"}`}), ReadOptions{}},
		{"a too-long line is reported", bigLog(900, map[int]string{600: long}), ReadOptions{MaxLineBytes: 1000}},
		{"with skip-bad every bad line is counted and named", bigLog(2000, map[int]string{
			3: `{"id":5}`, 513: `not json`, 514: "", 900: `{"id":"r3","prompt":"again"}`, 901: `{"id":"r900","prompt":"third"}`,
			1024: long, 1025: `{"id":"x","prompt":"p","outcomes":{"f":{"score":-1}}}`,
		}), ReadOptions{SkipBad: true, MaxLineBytes: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := readSequential(t, tc.in, tc.opts)
			for _, workers := range []int{1, 2, 3, 8} {
				got := readParallel(t, tc.in, tc.opts, workers)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%d workers: got %d records, skipped %d %q, error %q; want %d, %d %q, %q",
						workers, len(got.Recs), got.Skipped, got.Skips, got.Err, len(want.Recs), want.Skipped, want.Skips, want.Err)
				}
				if len(got.Skips) != got.Skipped {
					t.Errorf("%d workers: skipped %d lines, OnSkip named %d: %q", workers, got.Skipped, len(got.Skips), got.Skips)
				}
			}
		})
	}
}

func TestEachFileParallelStopsOnCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if err := os.WriteFile(path, []byte(bigLog(5000, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("enough")
	var worked atomic.Int64
	calls := 0
	_, err := EachFileParallel(path, ReadOptions{}, 2, func() func(*Record) string {
		return func(r *Record) string { worked.Add(1); return r.ID }
	}, func(p Position, id string) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("got error %v, want %v", err, stop)
	}
	if calls != 10 {
		t.Errorf("got %d calls, want 10", calls)
	}
	// The pipeline stops reading soon after: a few batches per worker at
	// most, far from the whole file.
	if n := worked.Load(); n > 8*parallelBatchLines {
		t.Errorf("worked on %d records after the callback stopped, want at most %d", n, 8*parallelBatchLines)
	}
}

func TestEachFileParallelEndsAtPosition(t *testing.T) {
	in := "{\"id\":\"a\",\"prompt\":\"x\"}\r\n\n{\"id\":\"b\",\"prompt\":\"yy\"}"
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []Position
	_, err := EachFileParallel(path, ReadOptions{}, 2, func() func(*Record) struct{} {
		return func(*Record) struct{} { return struct{}{} }
	}, func(p Position, _ struct{}) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Position{{Line: 1, End: 25}, {Line: 3, End: int64(len(in))}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzEachFileParallel checks the parallel reader against the sequential
// one on arbitrary input.
func FuzzEachFileParallel(f *testing.F) {
	f.Add([]byte(bigLog(20, map[int]string{4: `{"id":"r2","prompt":"x"}`, 9: "{"})), true)
	f.Add([]byte("{\"id\":\"a\",\"prompt\":\"x\"}\r\n\r\n{\"id\":\"a\",\"prompt\":\"y\"}\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, skipBad bool) {
		opts := ReadOptions{SkipBad: skipBad, MaxLineBytes: 1 << 10}
		// Repeat the input so that it spans batches.
		in := string(bytes.Repeat(append(data, '\n'), 1+2*parallelBatchLines/max(1, 1+bytes.Count(data, []byte("\n")))))
		want := readSequential(t, in, opts)
		if got := readParallel(t, in, opts, 3); !reflect.DeepEqual(got, want) {
			t.Errorf("got %d records, skipped %d, error %q; want %d, %d, %q", len(got.Recs), got.Skipped, got.Err, len(want.Recs), want.Skipped, want.Err)
		}
	})
}
