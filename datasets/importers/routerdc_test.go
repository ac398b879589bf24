package importers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestRouterDC(t *testing.T) {
	src := datasets.Meta{"source": "gsm8k-train"}
	outcomes := func(a, b, c float64) map[string]datasets.Outcome {
		return map[string]datasets.Outcome{"org/model-a": score(a), "org/model-b": score(b), "model-c": score(c)}
	}
	tests := []struct {
		name string
		opts RouterDCOptions
		want []datasets.Record
	}{
		{"ids are the file name and index, and cluster_id is dropped",
			RouterDCOptions{File: "testdata/routerdc/gsm8k-train.json"},
			[]datasets.Record{
				{ID: "gsm8k-train/0", Prompt: "Janet has 3 apples. How many?", Meta: src, Outcomes: outcomes(0, 1, 0.3)},
				{ID: "gsm8k-train/1", Prompt: "Line one\nline two", Meta: src, Outcomes: outcomes(1, 0.25, 1)},
				{ID: "gsm8k-train/2", Prompt: "Say hi.", Meta: src, Outcomes: outcomes(0.5, 0, 0)},
			}},
		{"an id prefix replaces the file name in ids but not in meta.source",
			RouterDCOptions{File: "testdata/routerdc/gsm8k-train.json", IDPrefix: "dc/gsm8k"},
			[]datasets.Record{
				{ID: "dc/gsm8k/0", Prompt: "Janet has 3 apples. How many?", Meta: src, Outcomes: outcomes(0, 1, 0.3)},
				{ID: "dc/gsm8k/1", Prompt: "Line one\nline two", Meta: src, Outcomes: outcomes(1, 0.25, 1)},
				{ID: "dc/gsm8k/2", Prompt: "Say hi.", Meta: src, Outcomes: outcomes(0.5, 0, 0)},
			}},
		{"without meta the records carry no source",
			RouterDCOptions{File: "testdata/routerdc/gsm8k-train.json", NoMeta: true},
			[]datasets.Record{
				{ID: "gsm8k-train/0", Prompt: "Janet has 3 apples. How many?", Outcomes: outcomes(0, 1, 0.3)},
				{ID: "gsm8k-train/1", Prompt: "Line one\nline two", Outcomes: outcomes(1, 0.25, 1)},
				{ID: "gsm8k-train/2", Prompt: "Say hi.", Outcomes: outcomes(0.5, 0, 0)},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) { return RouterDC(tt.opts, fn) })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(recs, tt.want) {
				t.Errorf("records:\n got %+v\nwant %+v", recs, tt.want)
			}
			want := Stats{Records: 3, Outcomes: map[string]int{"org/model-a": 3, "org/model-b": 3, "model-c": 3}, NoGrade: map[string]int{}}
			if !reflect.DeepEqual(st, want) {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

func TestRouterDCErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"an empty file", "", []string{"x.json: the file is empty", "want RouterDC's layout"}},
		{"a string instead of an array", `"q"`, []string{"x.json: the file starts with the string \"q\", not an array or an object"}},
		{"JSON Lines are read one object at a time", `{"question": "q"}`, []string{"x.json: element 0: scores is missing or empty"}},
		{"JSON Lines with something else after an object", "{\"question\": \"q\", \"scores\": {\"m\": 1}}\n[1]\n", []string{"x.json: element 1: is an array, not an object"}},
		{"a score above 1", `[{"question": "q", "scores": {"m": 1}}, {"question": "r", "scores": {"m": 0.5, "n": 7}}]`,
			[]string{`x.json: element 1: scores["n"] is 7, want a score in [0,1]`}},
		{"a score too large for a float", `[{"question": "q", "scores": {"m": 1e999}}]`, []string{`element 0: scores["m"] is 1e999, want a score in [0,1]`}},
		{"a negative score", `[{"question": "q", "scores": {"m": -0.1}}]`, []string{`element 0: scores["m"] is -0.1`}},
		{"a null score", `[{"question": "q", "scores": {"m": null}}]`, []string{`element 0: scores["m"] is null, want a score in [0,1]`}},
		{"a score that is a string", `[{"question": "q", "scores": {"m": "1"}}]`, []string{`element 0: scores["m"] is a string, want a score in [0,1]`}},
		{"scores that are not an object", `[{"question": "q", "scores": [1]}]`, []string{"element 0: scores is a JSON array, want object"}},
		{"a question that is a number", `[{"question": 3, "scores": {"m": 1}}]`, []string{"element 0: question is a JSON number, want string"}},
		{"a missing question", `[{"scores": {"m": 1}}]`, []string{"element 0: question is missing"}},
		{"a blank question", `[{"question": " \n", "scores": {"m": 1}}]`, []string{"element 0: question is empty"}},
		{"missing scores", `[{"question": "q"}]`, []string{"element 0: scores is missing or empty"}},
		{"empty scores", `[{"question": "q", "scores": {}}]`, []string{"element 0: scores is missing or empty"}},
		{"an empty model name", `[{"question": "q", "scores": {"": 1}}]`, []string{"element 0: scores has an empty model name"}},
		{"an element that is not an object", `[{"question": "q", "scores": {"m": 1}}, [1]]`, []string{"element 1: is an array, not an object"}},
		{"a missing comma", `[{"question": "q", "scores": {"m": 1}} {"question": "r", "scores": {"m": 1}}]`, []string{"element 1:", "not valid JSON"}},
		{"a truncated file", `[{"question": "q", "scores": {"m": 1}}, {"question": "r", "sc`, []string{"element 1:", "unexpected EOF"}},
		{"an unclosed array", `[{"question": "q", "scores": {"m": 1}}`, []string{"after element 0", "the array is not closed"}},
		{"data after the array", `[{"question": "q", "scores": {"m": 1}}] [`, []string{`after the array: unexpected "["`}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an error naming the file and element", func(t *testing.T) {
			_, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
				return readRouterDC(strings.NewReader(tt.json), "x.json", "x", "x", BadRows{}, fn)
			})
			wantError(t, err, tt.want...)
		})
	}
	t.Run("a missing file is an error naming it", func(t *testing.T) {
		_, err := RouterDC(RouterDCOptions{File: "testdata/routerdc/absent.json"}, func(datasets.Record) error { return nil })
		wantError(t, err, "open routerdc file", "absent.json")
	})
	t.Run("an empty array gives no records and no error", func(t *testing.T) {
		recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return readRouterDC(strings.NewReader(" [ ] \n"), "x.json", "x", "x", BadRows{}, fn)
		})
		if err != nil || len(recs) != 0 || st.Records != 0 {
			t.Errorf("%d records, stats %+v, error %v; want none and no error", len(recs), st, err)
		}
	})
	t.Run("the callback's error stops the import", func(t *testing.T) {
		stop := strings.NewReader(`[{"question": "q", "scores": {"m": 1}}, {"question": "r", "scores": {"m": 1}}]`)
		n := 0
		_, err := readRouterDC(stop, "x.json", "x", "x", BadRows{}, func(datasets.Record) error {
			n++
			return errStop
		})
		if err != errStop || n != 1 {
			t.Errorf("error %v after %d records, want errStop after 1", err, n)
		}
	})
}

var errStop = &json.UnsupportedValueError{Str: "stop"}

// FuzzRouterDC feeds arbitrary bytes to the RouterDC decoder: it must never
// panic, every record must validate, and ids must be unique.
func FuzzRouterDC(f *testing.F) {
	for _, s := range []string{
		`[{"question": "q", "scores": {"m": 1, "n": 0.5}, "cluster_id": 3}]`,
		`[{"question": "q", "scores": {"m": 2}}]`,
		`[{"question": "q", "scores": {"m": null}}, 1]`,
		`[] []`,
		`{"question": "q"}`,
		`[{"question": "\ud800", "scores": {"\xff": 0}}]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check, seen := recordChecker(t)
		st, err := readRouterDC(bytes.NewReader(data), "fuzz.json", "p", "p", BadRows{}, check)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.json: ") {
			t.Fatalf("error %q does not name the file", err)
		}
		if st.Records != len(seen) {
			t.Fatalf("stats count %d records, the callback saw %d", st.Records, len(seen))
		}
	})
}

// TestRouterDCJSONLines: the same elements one object per line give the
// same records as the array.
func TestRouterDCJSONLines(t *testing.T) {
	data, err := os.ReadFile("testdata/routerdc/gsm8k-train.json")
	if err != nil {
		t.Fatal(err)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	lines.WriteString("\n ")
	for _, e := range elems {
		var c bytes.Buffer
		if err := json.Compact(&c, e); err != nil {
			t.Fatal(err)
		}
		lines.Write(c.Bytes())
		lines.WriteString("\r\n")
	}
	read := func(r io.Reader) []datasets.Record {
		recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return readRouterDC(r, "gsm8k-train.jsonl", "gsm8k-train", "gsm8k-train", BadRows{}, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	want := read(bytes.NewReader(data))
	if got := read(&lines); len(want) != 3 || !reflect.DeepEqual(got, want) {
		t.Errorf("JSON Lines gave\n%+v\nthe array\n%+v", got, want)
	}
}

// TestRouterDCAcceptsAByteOrderMark: a file saved with a byte-order mark,
// as an array or as JSON Lines, reads as the file without one (it failed
// with "invalid character 'ï' looking for beginning of value").
func TestRouterDCAcceptsAByteOrderMark(t *testing.T) {
	data, err := os.ReadFile("testdata/routerdc/gsm8k-train.json")
	if err != nil {
		t.Fatal(err)
	}
	read := func(b []byte) []datasets.Record {
		t.Helper()
		recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return readRouterDC(bytes.NewReader(b), "gsm8k-train.json", "gsm8k-train", "gsm8k-train", BadRows{}, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	want := read(data)
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		t.Fatal(err)
	}
	lines := []byte("\ufeff")
	for _, e := range elems {
		var c bytes.Buffer
		if err := json.Compact(&c, e); err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, c.Bytes()...), '\n')
	}
	for name, b := range map[string][]byte{"array": append([]byte("\ufeff"), data...), "json lines": lines} {
		if got := read(b); !reflect.DeepEqual(got, want) {
			t.Errorf("%s with a byte-order mark gave\n%+v\nwant\n%+v", name, got, want)
		}
	}
}

// failingFile reads as a file whose reads fail does: an *fs.PathError
// naming it.
type failingFile struct{ name string }

func (f failingFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EIO}
}

// TestRouterDCReadErrorIsNotALayoutError reads a RouterDC file whose first
// read fails: the error named the file twice and asked for RouterDC's
// layout, which was not what was wrong.
func TestRouterDCReadErrorIsNotALayoutError(t *testing.T) {
	_, err := readRouterDC(failingFile{"x.json"}, "x.json", "x", "x", BadRows{}, func(datasets.Record) error { return nil })
	if err == nil {
		t.Fatal("a failing read imported")
	}
	if got, want := err.Error(), "read x.json: "+syscall.EIO.Error(); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("error %q does not wrap the read's cause", err)
	}
}
