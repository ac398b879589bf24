package datasets

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readAll reads every record and error from a reader until io.EOF; it stops
// at the first error unless SkipBad is set.
func readAll(tb testing.TB, in string, opts ReadOptions) ([]Record, int, error) {
	tb.Helper()
	rd := NewReader(strings.NewReader(in), "log.jsonl", opts)
	var recs []Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return recs, rd.Skipped(), nil
		}
		if err != nil {
			return recs, rd.Skipped(), err
		}
		recs = append(recs, rec)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	recs := []Record{
		{
			ID:     "mmlu/abstract_algebra/7",
			Prompt: "Find the degree for the given field extension ...",
			Meta:   Meta{"source": "mmlu", "subject": "abstract_algebra"},
			Outcomes: map[string]Outcome{
				"mistralai/Mixtral-8x7B-Instruct-v0.1": {Score: Float(0), LatencyMS: Float(812), CostUSD: Float(0.00021), Confidence: Float(-0.41)},
				"gpt-4-1106-preview":                   {Score: Float(1)},
			},
			TS: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		},
		{
			ID:       "chat/1",
			Messages: []Message{{Role: "user", Content: "hi <b>&</b>"}, {Role: "assistant", Content: "hello"}, {Role: "user", Content: "again\nand \"quoted\""}},
			Outcomes: map[string]Outcome{
				"fast": {Score: Float(0.5), Response: "answer", InputTokens: new(12), OutputTokens: new(0), Cancelled: true},
			},
			Decision: &Decision{Kind: "speculate", PHard: 0.42, ModelVersion: "v3", Propensity: 0.9, Explored: true},
		},
		{ID: "bare", Prompt: "no outcomes at all"},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Run("each record is one line", func(t *testing.T) {
		if got, want := strings.Count(buf.String(), "\n"), len(recs); got != want {
			t.Errorf("got %d lines, want %d:\n%s", got, want, buf.String())
		}
	})
	t.Run("HTML characters are not escaped", func(t *testing.T) {
		if !strings.Contains(buf.String(), "hi <b>&</b>") {
			t.Errorf("output escapes HTML: %s", buf.String())
		}
	})
	t.Run("reading the output gives the records back", func(t *testing.T) {
		got, _, err := readAll(t, buf.String(), ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, recs) {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, recs)
		}
	})
}

func TestReaderAcceptsLayoutVariations(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantIDs []string
	}{
		{"blank and whitespace-only lines are ignored", "\n{\"id\":\"a\",\"prompt\":\"x\"}\n\n   \n\t\n{\"id\":\"b\",\"prompt\":\"y\"}\n\n", []string{"a", "b"}},
		{"CRLF line ends are accepted", "{\"id\":\"a\",\"prompt\":\"x\"}\r\n\r\n{\"id\":\"b\",\"prompt\":\"y\"}\r\n", []string{"a", "b"}},
		{"a last line without a newline is read", "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"y\"}", []string{"a", "b"}},
		{"a last line ending in a bare CR is read", "{\"id\":\"a\",\"prompt\":\"x\"}\r", []string{"a"}},
		{"an empty input has no records", "", nil},
		{"messages stand in for a prompt", `{"id":"a","messages":[{"role":"user","content":"hi"}]}`, []string{"a"}},
		{"unknown fields are ignored", `{"id":"a","prompt":"x","extra":{"deep":[1,2]}}`, []string{"a"}},
		{"the same key in two objects is not a repeat", `{"id":"a","prompt":"x","meta":{"score":"1"},"outcomes":{"m":{"score":1},"n":{"score":1}},"extra":[{"k":1},{"k":2}]}`, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, _, err := readAll(t, tt.in, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ids %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func TestReaderKeepsMetaValuesAsStrings(t *testing.T) {
	recs, _, err := readAll(t, `{"id":"a","prompt":"x","meta":{"s":"text","n":3,"f":1.50,"neg":-2e3,"t":true,"b":false,"z":null,"w" : null }}`, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Numbers keep their literal spelling; null means absent.
	want := Meta{"s": "text", "n": "3", "f": "1.50", "neg": "-2e3", "t": "true", "b": "false"}
	if got := recs[0].Meta; !reflect.DeepEqual(got, want) {
		t.Errorf("meta = %v, want %v", got, want)
	}
}

func TestReaderErrors(t *testing.T) {
	good := `{"id":"ok","prompt":"x"}` + "\n"
	tests := []struct {
		name     string
		in       string
		opts     ReadOptions
		wantLine int
		want     string // the exact error text, or a prefix ending in "..."
	}{
		{"a score out of range names file, line, model and field",
			good + `{"id":"b","prompt":"x"}` + "\n" + `{"id":"c","prompt":"x","outcomes":{"gpt-4":{"score":7}}}` + "\n", ReadOptions{}, 3,
			"log.jsonl:3: outcomes.gpt-4.score is 7, want a value in [0,1]; rescale the log's scores to [0,1] (grades on 1-10: divide by 10)"},
		{"a negative score is out of range", `{"id":"c","prompt":"x","outcomes":{"m":{"score":-0.1}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.score is -0.1, want a value in [0,1]; rescale the log's scores to [0,1] (grades on 1-10: divide by 10)"},
		{"a missing score names the model", `{"id":"c","prompt":"x","outcomes":{"m":{"latency_ms":3}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.score is missing; every outcome needs a score in [0,1]"},
		{"a served record's missing score says what to do with an export", `{"id":"c","prompt":"x","outcomes":{"m":{"confidence":-0.3}},"decision":{"decision":"fast","p_hard":0.1,"model_version":"v"}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.score is missing; every outcome needs a score in [0,1]; this record is from a feedback export (it has a decision), where an outcome without a posted score is usual: retrain learns from such records; to measure or train on the scored records only, pass --skip-bad, or post the scores to /v1/feedback first"},
		{"a ts in Unix seconds names the field and the fix", `{"id":"c","prompt":"x","ts":1733300000}`, ReadOptions{}, 1,
			`log.jsonl:1: ts: is the number 1733300000, want an RFC 3339 time string such as "2026-11-27T10:00:00Z" (Unix seconds convert with jq -c '.ts |= todate')`},
		{"a ts of another JSON kind names it", `{"id":"c","prompt":"x","ts":{"s":1}}`, ReadOptions{}, 1,
			`log.jsonl:1: ts: is a JSON object, want an RFC 3339 time string such as "2026-11-27T10:00:00Z"`},
		{"a ts that is not a time", `{"id":"c","prompt":"x","ts":"yesterday"}`, ReadOptions{}, 1,
			"log.jsonl:1: ts is yesterday, want an RFC 3339 time such as 2026-11-27T10:00:00Z"},
		{"a missing id is named", `{"prompt":"x"}`, ReadOptions{}, 1,
			"log.jsonl:1: id is missing; every record needs a unique id"},
		{"an empty id counts as missing", `{"id":"","prompt":"x"}`, ReadOptions{}, 1,
			"log.jsonl:1: id is missing; every record needs a unique id"},
		{"a missing prompt is named", `{"id":"a"}`, ReadOptions{}, 1,
			"log.jsonl:1: prompt is missing; give prompt or messages"},
		{"a null prompt is a missing one", `{"id":"a","prompt":null}`, ReadOptions{}, 1,
			"log.jsonl:1: prompt is missing; give prompt or messages"},
		{"an empty messages array is named as such", `{"id":"a","messages":[]}`, ReadOptions{}, 1,
			"log.jsonl:1: messages is an empty array; give at least one message, or a prompt"},
		{"an empty messages array the slow decoder reads is named too", `{"id":"a","messages":[],"Prompt":""}`, ReadOptions{}, 1,
			"log.jsonl:1: messages is an empty array; give at least one message, or a prompt"},
		{"an empty message is named by index", `{"id":"a","messages":[{"role":"user","content":"x"},{}]}`, ReadOptions{}, 1,
			"log.jsonl:1: messages[1] is empty; want role and content"},
		{"a duplicate id names the first line", good + "\n" + good, ReadOptions{}, 3,
			`log.jsonl:3: id "ok" repeats the id of line 1; ids must be unique within a file`},
		{"malformed JSON gives the byte offset", good + `{"id":"a","prompt":"x"`, ReadOptions{}, 2,
			"log.jsonl:2: malformed JSON at byte 22: unexpected end of JSON input; the line ends inside the record: each record must be one JSON object on one line (JSON Lines)"},
		{"a record broken over lines says a record is one line", `{"id": "req-7", "prompt": "Find the degree",` + "\n" + ` "outcomes": {}}`, ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 44: unexpected end of JSON input; the line ends inside the record: each record must be one JSON object on one line (JSON Lines)"},
		{"a CSV header points to import wide-csv", "id,prompt,gpt-4\n1,hi,1\n", ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 1: invalid character 'i' looking for beginning of value; this looks like CSV, and a log is JSON Lines: convert a CSV with 'triage import wide-csv' (RouteLLM's published CSVs: 'triage import routellm')"},
		{"a JSON array file says a log is one object per line", "[\n" + `{"id":"a","prompt":"x"},` + "\n]\n", ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 1: unexpected end of JSON input; a log holds one JSON object per line (JSON Lines), not an array"},
		{"trailing text after the object is malformed", `{"id":"a","prompt":"x"} trailing`, ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 25: invalid character 't' after top-level value"},
		// The record is whole: the line does not end inside it, whatever
		// follows (a JSON array cut into lines leaves a comma on each).
		{"a comma after a whole record is not called a record cut short", good + `{"id":"a","prompt":"x"},`, ReadOptions{}, 2,
			"log.jsonl:2: malformed JSON at byte 24: invalid character ',' after top-level value"},
		{"a stray closing brace after a whole record is not called a record cut short", `{"id":"a","prompt":"x"}}`, ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 24: invalid character '}' after top-level value"},
		{"a control byte is not called a record cut short", "\x00\n", ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 1: invalid character '\\x00' looking for beginning of value; this is a binary file, not a log: a log is JSON Lines text, plain or gzip-compressed (decompress another compression first)"},
		// A feedback db or another binary file given as a log was called a
		// CSV (its first "line" holds a comma or a tab) and sent to
		// 'triage import wide-csv': 'retrain --feedback feedback.db'.
		{"a feedback db says to export it", boltFirstPage(), ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 1: invalid character '\\x00' looking for beginning of value; this is a feedback db (a bbolt file), not a log: 'triage feedback export --db log.jsonl -o feedback.jsonl' writes its records as a log"},
		{"a bzip2 file is not called a CSV", "BZh91AY&SY\x93,\x01\xa2\tx\n", ReadOptions{}, 1,
			"log.jsonl:1: malformed JSON at byte 1: invalid character 'B' looking for beginning of value; this is a binary file, not a log: a log is JSON Lines text, plain or gzip-compressed (decompress another compression first)"},
		{"zeros after a record are not called a binary file", good + "\x00\x00,\x00\n", ReadOptions{}, 2,
			"log.jsonl:2: malformed JSON at byte 1: invalid character '\\x00' looking for beginning of value"},
		{"a number id is a type error naming the field", `{"id":5,"prompt":"x"}`, ReadOptions{}, 1,
			"log.jsonl:1: id: is a JSON number, want a string"},
		{"a string score is a type error naming the field", `{"id":"a","prompt":"x","outcomes":{"gpt-4":{"score":"1"}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes...."},
		{"a fractional token count is a type error", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"input_tokens":1.5}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes...."},
		{"a score too large for a number says so", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1e400}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.score: is 1e400, beyond the range of a number"},
		{"a meta list is rejected with its key", `{"id":"a","prompt":"x","meta":{"k":[1]}}`, ReadOptions{}, 1,
			"log.jsonl:1: meta.k: want a string, number or boolean"},
		{"messages as a string is a type error", `{"id":"a","prompt":"x","messages":"hi"}`, ReadOptions{}, 1,
			"log.jsonl:1: messages: is a JSON string, want an array"},
		{"a line that is not an object is rejected", `[1,2]`, ReadOptions{}, 1,
			"log.jsonl:1: is a JSON array, want an object; a log holds one JSON object per line (JSON Lines), not an array"},
		{"a negative latency is rejected", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"latency_ms":-1}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.latency_ms is -1, want a non-negative number of milliseconds up to 1e+09 (11 days)"},
		{"a negative cost is rejected", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"cost_usd":-1}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.cost_usd is -1, want a non-negative number of dollars up to 1e+09"},
		// Finite, but their sums over a log were not: curves then hung.
		{"a cost of 1e308 is rejected", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"cost_usd":1e308}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.cost_usd is 1e+308, want a non-negative number of dollars up to 1e+09"},
		{"a latency of 1e308 is rejected", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"latency_ms":1e308}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.latency_ms is 1e+308, want a non-negative number of milliseconds up to 1e+09 (11 days)"},
		{"a negative token count is rejected", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"input_tokens":-3}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.input_tokens is -3, want a count of 0 or more"},
		// encoding/json keeps a repeated key's last value: which score,
		// id or meta value the user meant would be a guess.
		{"a model named twice in outcomes is named", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1},"n":{"score":1},"m":{"score":0}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m: appears twice in this record; keep one (a record holds one value per key, and one outcome per model)"},
		{"a repeated id key is named", `{"id":"a","prompt":"x","id":"b"}`, ReadOptions{}, 1,
			"log.jsonl:1: id: appears twice in this record; keep one (a record holds one value per key, and one outcome per model)"},
		{"a repeated score in one outcome is named", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"score":0}}}`, ReadOptions{}, 1,
			"log.jsonl:1: outcomes.m.score: appears twice in this record; keep one (a record holds one value per key, and one outcome per model)"},
		{"a repeated meta key is named", `{"id":"a","prompt":"x","meta":{"t":"1","u":"2","t":"3"}}`, ReadOptions{}, 1,
			"log.jsonl:1: meta.t: appears twice in this record; keep one (a record holds one value per key, and one outcome per model)"},
		{"a repeated key in a message is named with its index", `{"id":"a","messages":[{"role":"user","content":"x"},{"role":"user","content":"y","content":"z"}]}`, ReadOptions{}, 1,
			"log.jsonl:1: messages[1].content: appears twice in this record; keep one (a record holds one value per key, and one outcome per model)"},
		// encoding/json matches a struct's keys in any case, so "ID"
		// after "id" silently replaced it.
		{"an id key repeated in another case is named", `{"id":"a","prompt":"x","ID":"b"}`, ReadOptions{}, 1,
			`log.jsonl:1: ID: appears twice in this record (as "id" and "ID": a record's keys match in any case); keep one (a record holds one value per key, and one outcome per model)`},
		{"a score key repeated in another case is named", `{"id":"a","prompt":"x","outcomes":{"m":{"score":1,"Score":0}}}`, ReadOptions{}, 1,
			`log.jsonl:1: outcomes.m.Score: appears twice in this record (as "score" and "Score": a record's keys match in any case); keep one (a record holds one value per key, and one outcome per model)`},
		{"a message's content repeated in another case is named", `{"id":"a","messages":[{"role":"user","content":"x","CONTENT":"y"}]}`, ReadOptions{}, 1,
			`log.jsonl:1: messages[0].CONTENT: appears twice in this record (as "content" and "CONTENT": a record's keys match in any case); keep one (a record holds one value per key, and one outcome per model)`},
		{"an over-long line names file and line", good + strings.Repeat("x", 100) + "\n", ReadOptions{MaxLineBytes: 50}, 2,
			"log.jsonl:2: line is longer than 50 bytes"},
		{"line numbers count CRLF lines", good + "\r\n" + "{\r\n", ReadOptions{}, 3,
			"log.jsonl:3: malformed JSON at byte 1: unexpected end of JSON input; the line ends inside the record: each record must be one JSON object on one line (JSON Lines)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(t, tt.in, tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %q is not a *LineError", err, err)
			}
			if le.File != "log.jsonl" || le.Line != tt.wantLine {
				t.Errorf("error at %s:%d, want log.jsonl:%d", le.File, le.Line, tt.wantLine)
			}
			got := err.Error()
			if prefix, ok := strings.CutSuffix(tt.want, "..."); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Errorf("error %q, want it to start with %q", got, prefix)
				}
				if !strings.Contains(got, "score") && !strings.Contains(got, "input_tokens") {
					t.Errorf("error %q does not name the field", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Map keys are not folded: models, meta keys and keys encoding/json
// ignores may differ only in case.
func TestReaderKeepsKeysThatDifferInCaseWhereTheyAreDistinct(t *testing.T) {
	recs, _, err := readAll(t, `{"id":"a","prompt":"x","outcomes":{"gpt-4":{"score":1},"GPT-4":{"score":0}},"meta":{"k":"1","K":"2"},"extra":1,"EXTRA":2,"h":{"Content-Type":"a","content-type":"b"}}`, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs[0].Outcomes) != 2 || len(recs[0].Meta) != 2 {
		t.Errorf("outcomes %v, meta %v: want two of each", recs[0].Outcomes, recs[0].Meta)
	}
}

func TestReaderAllowMissingScore(t *testing.T) {
	in := `{"id":"a","prompt":"x","outcomes":{"fast":{"confidence":-0.3}}}`
	t.Run("an outcome without a score is rejected by default", func(t *testing.T) {
		if _, _, err := readAll(t, in, ReadOptions{}); err == nil {
			t.Error("no error")
		}
	})
	t.Run("an outcome without a score is accepted when allowed", func(t *testing.T) {
		recs, _, err := readAll(t, in, ReadOptions{AllowMissingScore: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := recs[0].Outcomes["fast"]; got.Score != nil || got.Confidence == nil || *got.Confidence != -0.3 {
			t.Errorf("outcome = %+v, want no score and confidence -0.3", got)
		}
	})
	t.Run("a score out of range is still rejected when missing scores are allowed", func(t *testing.T) {
		if _, _, err := readAll(t, `{"id":"a","prompt":"x","outcomes":{"m":{"score":2}}}`, ReadOptions{AllowMissingScore: true}); err == nil {
			t.Error("no error")
		}
	})
}

func TestReaderSkipBad(t *testing.T) {
	in := strings.Join([]string{
		`{"id":"a","prompt":"x"}`,
		`not json`,
		`{"id":"b"}`,
		strings.Repeat("y", 200),
		`{"id":"a","prompt":"duplicate"}`,
		`{"id":"c","prompt":"x","outcomes":{"m":{"score":3}}}`,
		``,
		`{"id":"d","prompt":"z"}`,
	}, "\n")
	var named []string
	recs, skipped, err := readAll(t, in, ReadOptions{SkipBad: true, MaxLineBytes: 100, OnSkip: func(err error) {
		named = append(named, strings.SplitN(err.Error(), ": ", 2)[0])
	}})
	if err != nil {
		t.Fatalf("SkipBad returned %v", err)
	}
	if want := []string{"log.jsonl:2", "log.jsonl:3", "log.jsonl:4", "log.jsonl:5", "log.jsonl:6"}; !reflect.DeepEqual(named, want) {
		t.Errorf("OnSkip named %q, want %q", named, want)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	if want := []string{"a", "d"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %q, want %q", ids, want)
	}
	// Five bad lines: malformed, no prompt, over-long, duplicate, bad score;
	// the blank line is not bad.
	if got, want := skipped, 5; got != want {
		t.Errorf("skipped %d, want %d", got, want)
	}
}

func TestReaderLongLines(t *testing.T) {
	if testing.Short() {
		t.Skip("reads lines of 15-17 MiB")
	}
	prompt := strings.Repeat("a", 15<<20)
	t.Run("a 15 MiB prompt line reads under the default limit", func(t *testing.T) {
		in := `{"id":"big","prompt":"` + prompt + `"}` + "\n" + `{"id":"next","prompt":"x"}` + "\n"
		recs, _, err := readAll(t, in, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || len(recs[0].Prompt) != len(prompt) || recs[1].ID != "next" {
			t.Errorf("got %d records (first prompt %d bytes), want 2 with a %d-byte prompt", len(recs), len(recs[0].Prompt), len(prompt))
		}
	})
	longer := `{"id":"huge","prompt":"` + strings.Repeat("b", 17<<20) + `"}`
	in := `{"id":"a","prompt":"x"}` + "\n" + longer + "\n" + `{"id":"c","prompt":"x"}` + "\n" + `{"id":"d"}` + "\n"
	t.Run("a 17 MiB line is a LineError naming file and line, and the next lines keep their numbers", func(t *testing.T) {
		rd := NewReader(strings.NewReader(in), "log.jsonl", ReadOptions{})
		if rec, err := rd.Next(); err != nil || rec.ID != "a" {
			t.Fatalf("first Next = %q, %v; want a", rec.ID, err)
		}
		_, err := rd.Next()
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %v, want a *LineError", err)
		}
		if got, want := err.Error(), "log.jsonl:2: line is longer than 16777216 bytes"; got != want {
			t.Errorf("error %q, want %q", got, want)
		}
		if rec, err := rd.Next(); err != nil || rec.ID != "c" {
			t.Errorf("Next after the long line = %q, %v; want c", rec.ID, err)
		}
		if _, err := rd.Next(); err == nil || !strings.HasPrefix(err.Error(), "log.jsonl:4: prompt is missing") {
			t.Errorf("error %v, want log.jsonl:4: prompt is missing", err)
		}
	})
	t.Run("with SkipBad the reader continues after a 17 MiB line", func(t *testing.T) {
		recs, skipped, err := readAll(t, in, ReadOptions{SkipBad: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[1].ID != "c" || skipped != 2 {
			t.Errorf("got %d records, %d skipped; want a and c, 2 skipped", len(recs), skipped)
		}
	})
}

func writeLog(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "log.jsonl")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := NewWriter(f)
	for i := 0; i < n; i++ {
		rec := Record{ID: fmt.Sprintf("r%d", i), Prompt: "p", Outcomes: map[string]Outcome{"m": {Score: Float(float64(i % 2))}}}
		if err := w.Write(&rec); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestEachFile(t *testing.T) {
	const n = 20000
	path := writeLog(t, n)
	t.Run("every record reaches the callback in order", func(t *testing.T) {
		i, sum := 0, 0.0
		skipped, err := EachFile(path, ReadOptions{}, func(r Record) error {
			if want := fmt.Sprintf("r%d", i); r.ID != want {
				return fmt.Errorf("record %d has id %q, want %q", i, r.ID, want)
			}
			i++
			sum += *r.Outcomes["m"].Score
			return nil
		})
		if err != nil || skipped != 0 {
			t.Fatalf("EachFile: %d skipped, %v", skipped, err)
		}
		if i != n || sum != n/2 {
			t.Errorf("saw %d records with score sum %v, want %d and %d", i, sum, n, n/2)
		}
	})
	t.Run("a callback error stops the walk and is returned", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		_, err := EachFile(path, ReadOptions{}, func(Record) error {
			calls++
			if calls == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 3 {
			t.Errorf("got %v after %d calls, want stop after 3", err, calls)
		}
	})
	t.Run("a missing file is an error naming it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.jsonl")
		_, err := EachFile(missing, ReadOptions{}, func(Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
			t.Errorf("error %v, want one naming nope.jsonl", err)
		}
	})
	t.Run("ReadFile returns the records and the skipped count", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.jsonl")
		if err := os.WriteFile(bad, []byte("{\"id\":\"a\",\"prompt\":\"x\"}\nnope\n{\"id\":\"b\",\"prompt\":\"y\"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		recs, skipped, err := ReadFile(bad, ReadOptions{SkipBad: true})
		if err != nil || len(recs) != 2 || skipped != 1 {
			t.Errorf("ReadFile = %d records, %d skipped, %v; want 2, 1, nil", len(recs), skipped, err)
		}
		_, _, err = ReadFile(bad, ReadOptions{})
		if err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") {
			t.Errorf("strict ReadFile error %v, want it to start with %s:2:", err, bad)
		}
	})
}

func TestReaderNamesTheModelOfAnOutcomeTypeError(t *testing.T) {
	line := `{"id":"a","prompt":"p","outcomes":{"gpt-4":{"score":1},"mixtral":{"score":"high"}}}` + "\n"
	_, err := NewReader(strings.NewReader(line), "log.jsonl", ReadOptions{}).Next()
	want := "log.jsonl:1: outcomes.mixtral.score: is a JSON string, want a number"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

func TestMetaPlainStringsMatchTheDecoder(t *testing.T) {
	// plainString takes a shortcut past json.Unmarshal; every case must
	// give what the decoder gives.
	tests := []struct {
		name string
		raw  string
	}{
		{"a plain string", `"acme"`},
		{"an empty string", `""`},
		{"an escaped quote", `"a\"b"`},
		{"a unicode escape", `"caf\u00e9"`},
		{"UTF-8 text", `"café"`},
		{"invalid UTF-8", "\"a\xffb\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Meta
			if err := json.Unmarshal([]byte(`{"k":`+tc.raw+`}`), &m); err != nil {
				t.Fatal(err)
			}
			var want string
			if err := json.Unmarshal([]byte(tc.raw), &want); err != nil {
				t.Fatal(err)
			}
			if got := m["k"]; got != want {
				t.Errorf("meta value = %q, want %q", got, want)
			}
		})
	}
}

func TestReadFileOfAFolder(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadFile(dir, ReadOptions{}); err == nil || err.Error() != "log "+dir+" is a folder, not a file" {
		t.Errorf("ReadFile(folder) = %v, want the folder named once", err)
	}
}

// TestOutcomeTypeErrorNamesTheFirstBadModel: with several models' outcomes
// of the wrong type, the error names the first in the line, every time
// (it ranged over a map and named a random one).
func TestOutcomeTypeErrorNamesTheFirstBadModel(t *testing.T) {
	line := `{"id":"a","prompt":"x","outcomes":{"m0":{"score":1},"m1":{"score":"1"},"m2":{"score":"0"},"m3":{"score":"1"},"m4":{"score":"0"}}}`
	for range 50 {
		_, _, err := readAll(t, line, ReadOptions{})
		if err == nil || !strings.Contains(err.Error(), "outcomes.m1.score") {
			t.Fatalf("error %v, want it to name outcomes.m1.score", err)
		}
	}
}

// TestMaxLineBytesIsTheLineWithoutItsEnding: a line of exactly the limit
// passes whether it ends in "\n", "\r\n" or the end of the file, and one
// byte more fails in each case (CRLF failed at the limit, and a last line
// with no newline passed one byte over it).
func TestMaxLineBytesIsTheLineWithoutItsEnding(t *testing.T) {
	rec := func(n int) string { // a valid record of exactly n bytes
		s := `{"id":"a","prompt":""}`
		return s[:len(s)-2] + strings.Repeat("x", n-len(s)) + `"}`
	}
	const limit = 64
	for _, end := range []string{"\n", "\r\n", ""} {
		for _, n := range []int{limit, limit + 1} {
			_, _, err := readAll(t, rec(n)+end, ReadOptions{MaxLineBytes: limit})
			if tooLong := err != nil && strings.Contains(err.Error(), "longer than"); tooLong != (n > limit) {
				t.Errorf("a %d-byte line ending %q with limit %d: error %v", n, end, limit, err)
			}
		}
	}
}

// boltFirstPage is the start of a bbolt file: page 0, a meta page holding
// the magic number, then a comma and a newline as a real file's first
// page has somewhere.
func boltFirstPage() string {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint16(b[8:], boltMetaFlag)
	binary.NativeEndian.PutUint32(b[boltPageHeader:], boltMagic)
	return string(b) + ",\t\n"
}

// TestReaderNamesAnUnreadableLogOnce reads a log whose reads fail: the
// error named the path twice ("read d: read d: is a directory").
func TestReaderNamesAnUnreadableLogOnce(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = NewReader(f, dir, ReadOptions{}).Next()
	if err == nil {
		t.Fatal("reading a folder as a log succeeded")
	}
	if got, want := err.Error(), "read "+dir+": is a directory"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

// TestReaderTakesAnEmptyPrompt: "prompt": "" is a legacy completion's
// valid empty prompt (OpenAI's API takes it, and the proxy routes it); it
// was refused as "prompt is missing", the error of a record with no
// prompt, while an empty message's content was taken.
func TestReaderTakesAnEmptyPrompt(t *testing.T) {
	for _, line := range []string{
		`{"id":"a","prompt":""}`,
		`{"id":"a","Prompt":""}`, // the slow decoder, any case
		`{"id":"a","prompt":"","meta":{"k":"v"}}`,
	} {
		recs, _, err := readAll(t, line+"\n", ReadOptions{})
		if err != nil || len(recs) != 1 || recs[0].Prompt != "" || recs[0].Messages != nil {
			t.Errorf("%s: %+v, %v; want one record with an empty prompt", line, recs, err)
		}
	}
}

// TestReaderNamesAFeedbackDBLongerThanALine: a served feedback db is 128
// MiB of mostly zeros, one "line" longer than the limit, so it was
// refused as "line is longer than 16777216 bytes" without the hint a
// short db file gets (export it first).
func TestReaderNamesAFeedbackDBLongerThanALine(t *testing.T) {
	page := strings.TrimSuffix(boltFirstPage(), ",\t\n")
	for _, tt := range []struct {
		name, in string
	}{
		{"longer than the reader's buffer", page + strings.Repeat("\x00", 200<<10)},
		{"longer than the limit, within the buffer, to the end of the file", page + strings.Repeat("\x00", 200)},
		{"longer than the limit, within the buffer, up to a newline", page + strings.Repeat("\x00", 200) + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(t, tt.in, ReadOptions{MaxLineBytes: 128})
			if err == nil || !strings.Contains(err.Error(), "line is longer than 128 bytes; this is a feedback db (a bbolt file), not a log") {
				t.Errorf("error %v, want the feedback db named", err)
			}
		})
	}
	if _, _, err := readAll(t, strings.Repeat("x", 200)+"\n", ReadOptions{MaxLineBytes: 128}); err == nil || strings.Contains(err.Error(), "bbolt") {
		t.Errorf("a long line of text: %v, want no word of a feedback db", err)
	}
}
