package importers

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestWideCSVArenaLayout(t *testing.T) {
	// arena.csv has CRLF line ends and a CRLF inside a quoted prompt, which
	// encoding/csv reads as "\n".
	hard := datasets.Meta{"category": "hard"}
	tests := []struct {
		name string
		opts WideCSVOptions
		want []datasets.Record
	}{
		{"ids come from the id column and grades are divided by the scale",
			WideCSVOptions{File: "testdata/wide/arena.csv", PromptCol: "prompt", IDCol: "question_id", ScoreScale: 10},
			[]datasets.Record{
				{ID: "q1", Prompt: "Explain, briefly, recursion.", Meta: hard, Outcomes: map[string]datasets.Outcome{"model-x": score(0.3), "org/model-y": score(1)}},
				{ID: "q2", Prompt: "Line one\nline two", Meta: hard, Outcomes: map[string]datasets.Outcome{"org/model-y": score(0.7), "model-z": score(0.95)}},
				{ID: "q3", Prompt: "Say hi.", Meta: datasets.Meta{"category": "easy"}, Outcomes: map[string]datasets.Outcome{"model-x": score(0.1), "model-z": score(1)}},
			}},
		{"without an id column ids are the file name and row",
			WideCSVOptions{File: "testdata/wide/arena.csv", PromptCol: "prompt", ScoreScale: 10, Models: []string{"model-z"}},
			[]datasets.Record{
				{ID: "arena/0", Prompt: "Explain, briefly, recursion.", Meta: hard, Outcomes: map[string]datasets.Outcome{}},
				{ID: "arena/1", Prompt: "Line one\nline two", Meta: hard, Outcomes: map[string]datasets.Outcome{"model-z": score(0.95)}},
				{ID: "arena/2", Prompt: "Say hi.", Meta: datasets.Meta{"category": "easy"}, Outcomes: map[string]datasets.Outcome{"model-z": score(1)}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) { return WideCSV(tt.opts, fn) })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(recs, tt.want) {
				t.Errorf("records:\n got %+v\nwant %+v", recs, tt.want)
			}
		})
	}
	t.Run("empty cells and -1 grades are counted, not imported", func(t *testing.T) {
		_, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: "testdata/wide/arena.csv", PromptCol: "prompt", ScoreScale: 10}, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := Stats{Records: 3, Outcomes: map[string]int{"model-x": 2, "org/model-y": 2, "model-z": 2}, Empty: 2, NoGrade: map[string]int{"model-x": 1}}
		if !reflect.DeepEqual(st, want) {
			t.Errorf("stats %+v, want %+v", st, want)
		}
	})
}

func TestWideCSVRouterBenchLayout(t *testing.T) {
	recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return WideCSV(WideCSVOptions{File: "testdata/wide/routerbench.csv", PromptCol: "prompt", IDCol: "sample_id"}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	// oracle_model_to_route_to is derived from the scores and must not
	// reach meta (it would leak the label into the features).
	want := []datasets.Record{
		{ID: "mmlu.1", Prompt: "What is 2+2?", Meta: datasets.Meta{"eval_name": "mmlu"}, Outcomes: map[string]datasets.Outcome{
			"fast-1": {Score: datasets.Float(1), CostUSD: datasets.Float(0.00001), Response: "4"},
			"big-2":  {Score: datasets.Float(1), CostUSD: datasets.Float(0.0003), Response: "4, clearly"},
		}},
		{ID: "gsm8k.7", Prompt: "Add 3 and 5, then double.", Meta: datasets.Meta{"eval_name": "gsm8k"}, Outcomes: map[string]datasets.Outcome{
			"fast-1": {Score: datasets.Float(0), CostUSD: datasets.Float(0.00002), Response: "15"},
			"big-2":  {Score: datasets.Float(1), Response: "16"},
		}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("records:\n got %+v\nwant %+v", recs, want)
	}
	if got := sortedKeys(st.Outcomes); !reflect.DeepEqual(got, []string{"big-2", "fast-1"}) {
		t.Errorf("models %q, want big-2 and fast-1 only", got)
	}
}

// TestWideCSVBooleansAndNA: correctness columns written as booleans (pandas'
// True/False) are scores 1 and 0, and the missing-value marks of R, pandas
// and SQL exports give no outcome, counted, like an empty cell.
func TestWideCSVBooleansAndNA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.csv")
	content := "prompt,a,b\np1,True,FALSE\np2,false,NA\np3,NaN,1\np4,null,n/a\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, scale := range []float64{1, 10} {
		recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: path, PromptCol: "prompt", ScoreScale: scale}, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, r := range recs {
			for m, o := range r.Outcomes {
				got[r.Prompt+"/"+m] = *o.Score
			}
		}
		want := map[string]float64{"p1/a": 1, "p1/b": 0, "p2/a": 0, "p3/b": 1 / scale}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("--score-scale %v: scores %v, want %v", scale, got, want)
		}
		if st.NA != 4 || !strings.Contains(st.String(), "4 NA cells skipped") {
			t.Errorf("--score-scale %v: NA %d, summary %q; want 4 NA cells skipped", scale, st.NA, st.String())
		}
	}
}

func TestWideCSVErrors(t *testing.T) {
	const csv = "id,prompt,a,b\nr1,p1,0.5,1\nr2,p2,7,0\n"
	tests := []struct {
		name    string
		content string
		opts    WideCSVOptions // File is filled in
		want    []string
	}{
		{"a missing prompt column lists the header", csv, WideCSVOptions{PromptCol: "question"},
			[]string{`column "question" (--prompt-col) is not in the header; the header has "id", "prompt", "a", "b"`}},
		{"no prompt column at all says which flag to use", csv, WideCSVOptions{},
			[]string{"no prompt column given", "--prompt-col"}},
		{"a missing id column lists the header", csv, WideCSVOptions{PromptCol: "prompt", IDCol: "qid"},
			[]string{`column "qid" (--id-col) is not in the header`}},
		{"a grade above 1 names row and column and suggests a scale", csv, WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:3: column "a" is 7, want a score in [0,1]; grades on 1-10 need --score-scale 10`}},
		{"a score too large even after scaling says so", csv, WideCSVOptions{PromptCol: "prompt", ScoreScale: 5},
			[]string{`w.csv:3: column "a" is 7 (1.4 after --score-scale 5), want a score in [0,1]`}},
		// strconv.ParseFloat reads Go's number syntax: "0_1" was the
		// score 1 and "0x1p-1" the score 0.5, without a word.
		{"a score with an underscore is not read as Go syntax", "prompt,a\np,0_1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "a" is "0_1", not a score`}},
		{"a hexadecimal score is not read as Go syntax", "prompt,a\np,0x1p-1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "a" is "0x1p-1", not a score`}},
		{"a cost with an underscore is not read as Go syntax", "prompt,a,a|total_cost\np,1,1_000\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "a|total_cost" is "1_000", want a non-negative cost`}},
		{"a percentage suggests a scale of 100", "prompt,a\np,55\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{"percentages need --score-scale 100"}},
		{"a negative grade other than -1 is an error", "prompt,a\np,-2\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "a" is -2, want a score in [0,1]; scores must not be negative`}},
		{"a non-numeric cell suggests --models", "prompt,notes,a\np,good one,1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "notes" is "good one", not a score (a number, true or false, or empty or NA for none); if "notes" is not a model, name the model columns with --models`}},
		{"an unknown model lists the model columns", csv, WideCSVOptions{PromptCol: "prompt", Models: []string{"a", "c"}},
			[]string{`model "c" (--models) is not a score column; the model columns are "a", "b"`}},
		{"the prompt column cannot be a model", csv, WideCSVOptions{PromptCol: "prompt", Models: []string{"prompt"}},
			[]string{`model "prompt" (--models) is not a score column`}},
		{"a model listed twice is an error", csv, WideCSVOptions{PromptCol: "prompt", Models: []string{"b", "b"}},
			[]string{`model "b" is listed twice`}},
		{"an empty prompt names the row", "prompt,a\np,1\n  ,1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:3: column "prompt" (the prompt) is empty`}},
		{"an empty id names the row", csv + ",p3,1,1\n", WideCSVOptions{PromptCol: "prompt", IDCol: "id", Models: []string{"b"}},
			[]string{`w.csv:4: column "id" (the id) is empty`}},
		{"a repeated id names the first row", csv + "r1,p3,1,1\n", WideCSVOptions{PromptCol: "prompt", IDCol: "id", Models: []string{"b"}},
			[]string{`w.csv:4: id "r1" repeats the id on line 2`}},
		{"a negative cost names its column", "prompt,a,a|total_cost\np,1,-0.5\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:2: column "a|total_cost" is "-0.5", want a non-negative cost`}},
		{"a negative scale is rejected", csv, WideCSVOptions{PromptCol: "prompt", ScoreScale: -10},
			[]string{"score scale -10 is not a positive number"}},
		{"a row with an extra field names its line", csv + "r3,p3,1,1,1\n", WideCSVOptions{PromptCol: "prompt", Models: []string{"b"}},
			[]string{"w.csv:4: the row has a different number of fields than the header's 4"}},
		{"a repeated column name is an error", "prompt,a,a\np,1,1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`column "a" appears twice in the header (columns 2 and 3)`}},
		{"an empty file asks for a header", "", WideCSVOptions{PromptCol: "prompt"},
			[]string{"w.csv: the file is empty; want a header row"}},
		{"a header with only metadata has no models", "prompt,category,id\np,c,1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{"no model columns"}},
		{"a tab-separated file read as CSV suggests --delimiter tab", "id\tprompt\ta\nr1\tp1\t1\n", WideCSVOptions{PromptCol: "prompt"},
			[]string{`the header has "id\tprompt\ta" (one column, holding '\t': is the file separated by '\t'? pass --delimiter tab)`}},
		{"a CSV read as tab-separated suggests the comma", csv, WideCSVOptions{PromptCol: "prompt", Delimiter: '\t'},
			[]string{"pass --delimiter ,"}},
		{"a quote cannot be a delimiter", csv, WideCSVOptions{PromptCol: "prompt", Delimiter: '"'},
			[]string{`delimiter '"' cannot separate CSV fields`}},
		// A block of zeros over the end of a quoted prompt and the rows
		// after it was read as part of the prompt: the import succeeded
		// with those rows missing.
		{"a block of zeros in a quoted field names its line", "id,prompt,a\nr1,\"one\ntwo " + strings.Repeat("\x00", 64) + "\nr3,three\",1\nr4,four,0\n", WideCSVOptions{PromptCol: "prompt", IDCol: "id"},
			[]string{`w.csv:3: column "prompt" holds a NUL byte (0x00)`, "damaged"}},
		{"a UTF-16 file is refused at its header", "\xff\xfep\x00r\x00,\x00a\x00\n\x00", WideCSVOptions{PromptCol: "prompt"},
			[]string{`w.csv:1: field 1 of the header holds a NUL byte (0x00)`, "UTF-16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"w.csv": tt.content})
			opts := tt.opts
			opts.File = dir + "/w.csv"
			_, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) { return WideCSV(opts, fn) })
			wantError(t, err, tt.want...)
		})
	}
}

func TestWideCSVReadsOtherDelimiters(t *testing.T) {
	dir := writeFiles(t, map[string]string{"w.tsv": "id\tprompt\ta\tb\nr1\tp, with a comma\t1\t0\n", "w.ssv": "id;prompt;a;b\nr1;p1;0;1\n"})
	for _, tc := range []struct {
		file       string
		delim      rune
		prompt     string
		fast, slow float64
	}{{"w.tsv", '\t', "p, with a comma", 1, 0}, {"w.ssv", ';', "p1", 0, 1}} {
		recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: dir + "/" + tc.file, PromptCol: "prompt", IDCol: "id", Delimiter: tc.delim}, fn)
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(recs) != 1 || recs[0].ID != "r1" || recs[0].Prompt != tc.prompt || *recs[0].Outcomes["a"].Score != tc.fast || *recs[0].Outcomes["b"].Score != tc.slow {
			t.Errorf("%s: records %+v", tc.file, recs)
		}
	}
}

func TestWideCSVAcceptsAByteOrderMark(t *testing.T) {
	dir := writeFiles(t, map[string]string{"bom.csv": "\ufeffprompt,a\np,1\n"})
	recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return WideCSV(WideCSVOptions{File: dir + "/bom.csv", PromptCol: "prompt"}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Prompt != "p" {
		t.Errorf("records %+v, want one with prompt p", recs)
	}
}

// A spreadsheet that quotes every field puts the mark before the first
// quote; csv.Reader then saw a bare quote in an unquoted field.
func TestCSVAcceptsAByteOrderMarkBeforeAQuotedHeader(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bom.csv":             "\ufeff\"id\",\"prompt\",\"a\"\n\"r1\",\"p\",\"1\"\n",
		"gsm8k_responses.csv": "\ufeff\"prompt\",\"m1\"\n\"p\",\"True\"\n",
	})
	recs, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return WideCSV(WideCSVOptions{File: dir + "/bom.csv", PromptCol: "prompt", IDCol: "id"}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "r1" || recs[0].Prompt != "p" {
		t.Errorf("wide-csv records %+v, want r1 with prompt p", recs)
	}
	recs, _, err = collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return RouteLLM(RouteLLMOptions{Bench: BenchGSM8K, Dir: dir}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Prompt != "p" || *recs[0].Outcomes["m1"].Score != 1 {
		t.Errorf("routellm records %+v, want one with prompt p and m1 1", recs)
	}
}

// FuzzWideCSV feeds arbitrary bytes to the wide-CSV importer, with and
// without an id column: it must never panic, every record must validate,
// ids must be unique, the stats must count what fn saw, and an error must
// name the file.
func FuzzWideCSV(f *testing.F) {
	for _, s := range []string{
		"question_id,prompt,category,model-x,org/model-y\r\nq1,\"Explain, briefly, recursion.\",hard,3,10\r\nq2,\"Line one\r\nline two\",hard,,7\r\n",
		"prompt,a,b,a|total_cost,a|model_response\nhi,1,0,0.002,hello\nhey,-1,0.5,,\n",
		"prompt,a\n\"unterminated,1\n",
		"prompt,a,a\nx,1,0\n",
		"prompt\n\n",
		"",
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, idCol bool) {
		path := filepath.Join(t.TempDir(), "fuzz.csv")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		opts := WideCSVOptions{File: path, PromptCol: "prompt", ScoreScale: 10}
		if idCol {
			opts.IDCol = "question_id"
		}
		check, seen := recordChecker(t)
		st, err := WideCSV(opts, check)
		if err != nil && !strings.Contains(err.Error(), "fuzz.csv") {
			t.Fatalf("error %q does not name the file", err)
		}
		if err == nil && st.Records != len(seen) {
			t.Fatalf("stats count %d records, the callback saw %d", st.Records, len(seen))
		}
	})
}

// A gzip-compressed CSV or RouterDC file is read as such, told by its
// first bytes as the log readers tell a .jsonl.gz; its ids drop the
// ".gz" with the extension. Before, its bytes were read as text.
func TestImportersReadGzip(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	dir := writeFiles(t, map[string]string{
		"w.csv.gz":        gz("\ufeffprompt,a\np,1\n"),
		"named-oddly.csv": gz("prompt,a\np,1\n"),
		"dc.json.gz":      gz(`[{"question": "p", "scores": {"a": 1}}]`),
		"padded.csv.gz":   gz("prompt,a\np,1\n") + strings.Repeat("\x00", 512),
		"junk.csv.gz":     gz("prompt,a\np,1\n") + "junk",
	})
	for _, tt := range []struct {
		name, id string
		run      func(fn func(datasets.Record) error) (Stats, error)
	}{
		{"a .csv.gz", "w/0", func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: dir + "/w.csv.gz", PromptCol: "prompt"}, fn)
		}},
		{"a gzip file named .csv", "named-oddly/0", func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: dir + "/named-oddly.csv", PromptCol: "prompt"}, fn)
		}},
		{"a RouterDC .json.gz", "dc/0", func(fn func(datasets.Record) error) (Stats, error) {
			return RouterDC(RouterDCOptions{File: dir + "/dc.json.gz"}, fn)
		}},
		{"a gzip file padded with zero bytes, as dd conv=sync leaves it", "padded/0", func(fn func(datasets.Record) error) (Stats, error) {
			return WideCSV(WideCSVOptions{File: dir + "/padded.csv.gz", PromptCol: "prompt"}, fn)
		}},
		{"a gzip stream as Input", "in/0", func(fn func(datasets.Record) error) (Stats, error) {
			return RouterDC(RouterDCOptions{File: "stdin", Input: strings.NewReader(gz(`{"question": "p", "scores": {"a": 1}}`)), IDPrefix: "in"}, fn)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recs, _, err := collect(t, tt.run)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Prompt != "p" || recs[0].ID != tt.id {
				t.Errorf("records %+v, want one with prompt p and id %s", recs, tt.id)
			}
		})
	}
	t.Run("bytes after the gzip stream other than zeros are refused, with their offset", func(t *testing.T) {
		_, err := WideCSV(WideCSVOptions{File: dir + "/junk.csv.gz", PromptCol: "prompt"}, func(datasets.Record) error { return nil })
		want := fmt.Sprintf("byte %d, after gzip member 1, starts neither another member nor zero padding", len(gz("prompt,a\np,1\n")))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v, want one containing %q", err, want)
		}
	})
	t.Run("Input without an id prefix is refused", func(t *testing.T) {
		_, err := RouterDC(RouterDCOptions{File: "stdin", Input: strings.NewReader("[]")}, func(datasets.Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "give an id prefix") {
			t.Errorf("err %v, want a refusal asking for an id prefix", err)
		}
	})
}
