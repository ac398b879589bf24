package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

const (
	mixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1"
	gpt4    = "gpt-4-1106-preview"
)

// readLog reads a JSONL log strictly (valid records, unique ids) and indexes
// it by id.
func readLog(tb testing.TB, path string) ([]datasets.Record, map[string]datasets.Record) {
	tb.Helper()
	recs, _, err := datasets.ReadFile(path, datasets.ReadOptions{})
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	byID := make(map[string]datasets.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	return recs, byID
}

// importLog runs "triage import ARGS -o FILE" in a temporary folder, fails
// the test unless it succeeds, and returns the log it wrote and its stderr.
func importLog(tb testing.TB, args ...string) ([]datasets.Record, map[string]datasets.Record, string) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "log.jsonl")
	_, stderr, code := run(tb, append(append([]string{"import"}, args...), "-o", out)...)
	if code != 0 {
		tb.Fatalf("exit status %d: %s", code, stderr)
	}
	recs, byID := readLog(tb, out)
	return recs, byID, stderr
}

func scoreOf(tb testing.TB, r datasets.Record, model string) float64 {
	tb.Helper()
	o, ok := r.Outcomes[model]
	if !ok || o.Score == nil {
		tb.Fatalf("record %q has no score for %s", r.ID, model)
	}
	return *o.Score
}

func TestImportRouteLLMOnSharedData(t *testing.T) {
	skipSlow(t)
	dir := filepath.Join(sharedDatasets(t), "routellm")
	tests := []struct {
		bench   string
		records int
		check   func(t *testing.T, byID map[string]datasets.Record)
	}{
		{"mmlu", 14042, func(t *testing.T, byID map[string]datasets.Record) {
			r := byID["mmlu/abstract_algebra/0"]
			want := "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
			if r.Prompt != want || r.Meta["source"] != "mmlu" || r.Meta["subject"] != "abstract_algebra" {
				t.Errorf("mmlu/abstract_algebra/0 = %q %v, want %q from subject abstract_algebra", r.Prompt, r.Meta, want)
			}
			// The first data row of mmlu_abstract_algebra.csv is True,True.
			if scoreOf(t, r, mixtral) != 1 || scoreOf(t, r, gpt4) != 1 {
				t.Errorf("mmlu/abstract_algebra/0 outcomes %+v, want both 1", r.Outcomes)
			}
			if r := byID["mmlu/anatomy/0"]; !strings.HasPrefix(r.Prompt, "A lesion causing compression of the facial nerve") {
				t.Errorf("mmlu/anatomy/0 prompt %q, want the first anatomy question", r.Prompt)
			}
		}},
		{"gsm8k", 1319, func(t *testing.T, byID map[string]datasets.Record) {
			r := byID["gsm8k/0"]
			if !strings.HasPrefix(r.Prompt, "Janet’s ducks lay 16 eggs per day.") || r.Meta["source"] != "gsm8k" {
				t.Errorf("gsm8k/0 = %q %v, want Janet's ducks from gsm8k", r.Prompt, r.Meta)
			}
			if scoreOf(t, r, mixtral) != 1 || scoreOf(t, r, gpt4) != 1 || !strings.HasSuffix(r.Outcomes[mixtral].Response, "#### 18") {
				t.Errorf("gsm8k/0 outcomes %+v, want both correct and Mixtral's response ending #### 18", r.Outcomes)
			}
			// Row 2 (Josh flips a house) is False for both models.
			if r := byID["gsm8k/2"]; scoreOf(t, r, mixtral) != 0 || scoreOf(t, r, gpt4) != 0 {
				t.Errorf("gsm8k/2 outcomes %+v, want both 0", r.Outcomes)
			}
		}},
		{"mt-bench", 160, func(t *testing.T, byID map[string]datasets.Record) {
			// judgements.jsonl grades question 81: GPT-4 10 and 10, Mixtral
			// 10.0 (turn 1) and 9.0 (turn 2).
			r1, r2 := byID["mt-bench/81/1"], byID["mt-bench/81/2"]
			if !strings.HasPrefix(r1.Prompt, "Compose an engaging travel blog post") || r1.Meta["turn"] != "1" || r1.Meta["category"] != "writing" {
				t.Errorf("mt-bench/81/1 = %q %v", r1.Prompt, r1.Meta)
			}
			if len(r2.Messages) != 2 || r2.Messages[0].Content != r1.Prompt || r2.Meta["turn"] != "2" {
				t.Errorf("mt-bench/81/2 messages %+v meta %v, want both user turns", r2.Messages, r2.Meta)
			}
			if scoreOf(t, r1, mixtral) != 1 || scoreOf(t, r1, gpt4) != 1 || scoreOf(t, r2, mixtral) != 0.9 || scoreOf(t, r2, gpt4) != 1 {
				t.Errorf("question 81 scores %+v / %+v, want 1,1 and 0.9,1", r1.Outcomes, r2.Outcomes)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.bench+" writes every record and the golden one", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tt.bench+".jsonl")
			stdout, stderr, code := run(t, "import", "routellm", "--bench", tt.bench, "--dir", dir, "-o", out)
			if code != 0 {
				t.Fatalf("exit status %d: %s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing with -o", stdout)
			}
			recs, byID := readLog(t, out)
			if len(recs) != tt.records {
				t.Errorf("%d records, want %d", len(recs), tt.records)
			}
			for _, want := range []string{"triage import routellm: ", " records", gpt4, mixtral, "written to " + out} {
				if !strings.Contains(stderr, want) {
					t.Errorf("summary %q does not contain %q", stderr, want)
				}
			}
			if n := strings.Count(stderr, "\n"); n != 1 {
				t.Errorf("summary has %d lines, want 1: %q", n, stderr)
			}
			tt.check(t, byID)
		})
	}
	t.Run("contaminated prompts are dropped and counted", func(t *testing.T) {
		stdout, stderr, code := run(t, "import", "routellm", "--bench", "mmlu", "--dir", dir, "--exclude-contaminated", filepath.Join(dir, "contaminated", "mmlu.jsonl"))
		if code != 0 {
			t.Fatalf("exit status %d: %s", code, stderr)
		}
		if got := strings.Count(stdout, "\n"); got != 14042-5 {
			t.Errorf("%d lines on stdout, want %d", got, 14042-5)
		}
		if want := "dropped 5 contaminated records (5 of 5 listed prompts found); written to stdout"; !strings.Contains(stderr, want) {
			t.Errorf("summary %q does not contain %q", stderr, want)
		}
	})
}

func TestImportWideCSVOnArenaBench(t *testing.T) {
	file := filepath.Join(sharedDatasets(t), "arena-bench-v1", "scores_wide.csv")
	recs, byID, stderr := importLog(t, "wide-csv", "--file", file, "--prompt-col", "prompt", "--id-col", "question_id", "--score-scale", "10")
	if len(recs) != 300 {
		t.Errorf("%d records, want 300", len(recs))
	}
	// The first row grades gpt-4-0314 10 and claude-1 1.
	r := byID["66c00ddde3dc4128a14d6afd5e899342"]
	if scoreOf(t, r, "gpt-4-0314") != 1 || scoreOf(t, r, "claude-1") != 0.1 || r.Meta["category"] != "arena-bench-v1" {
		t.Errorf("first arena record %+v", r)
	}
	for _, want := range []string{"300 records", "27 empty cells skipped", "2 grades of -1 (judge could not grade) skipped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary %q does not contain %q", stderr, want)
		}
	}
	t.Run("a subset of models keeps only those outcomes", func(t *testing.T) {
		stdout, stderr, code := run(t, "import", "wide-csv", "--file", file, "--prompt-col", "prompt", "--score-scale", "10", "--models", "gpt-4-0314,claude-2")
		if code != 0 {
			t.Fatalf("exit status %d: %s", code, stderr)
		}
		if strings.Contains(stdout, `"claude-1"`) || !strings.Contains(stdout, `"id":"scores_wide/0"`) {
			t.Errorf("output has other models or lacks row-number ids: %.300s", stdout)
		}
	})
}

func TestImportRouterDCOnSharedData(t *testing.T) {
	file := filepath.Join(sharedDatasets(t), "routerdc-7models", "humaneval_test.json")
	recs, byID, stderr := importLog(t, "routerdc", "--file", file, "--id-prefix", "dc/he")
	if len(recs) != 49 {
		t.Errorf("%d records, want 49", len(recs))
	}
	// Element 0 of humaneval_test.json is vowels_count, which
	// dolphin-2.9-llama3-8b solved in 6 of 10 samples.
	r := byID["dc/he/0"]
	if !strings.Contains(r.Prompt, "def vowels_count(s):") || r.Meta["source"] != "humaneval_test" || len(r.Outcomes) != 7 {
		t.Errorf("dc/he/0 = %.80q %v with %d outcomes, want vowels_count from humaneval_test with 7", r.Prompt, r.Meta, len(r.Outcomes))
	}
	if got := scoreOf(t, r, "cognitivecomputations/dolphin-2.9-llama3-8b"); got != 0.6 {
		t.Errorf("dolphin-2.9-llama3-8b score %v, want 0.6", got)
	}
	for _, want := range []string{"triage import routerdc: 49 records", "meta-llama/Meta-Llama-3-8B 49", "written to "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary %q does not contain %q", stderr, want)
		}
	}
	t.Run("--no-meta leaves the source out", func(t *testing.T) {
		recs, _, _ := importLog(t, "routerdc", "--file", file, "--no-meta")
		if len(recs) != 49 {
			t.Fatalf("%d records, want 49", len(recs))
		}
		if recs[0].ID != "humaneval_test/0" || recs[0].Meta != nil {
			t.Errorf("first record %q with meta %v, want humaneval_test/0 without meta", recs[0].ID, recs[0].Meta)
		}
	})
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	csv := writeFile(t, dir, "w.csv", "prompt,a,b\np1,0.5,1\np2,7,0\n")
	dcDir := t.TempDir()
	dc := writeFile(t, dcDir, "dc.json", `[{"question": "q1", "scores": {"a": 0, "b": 1}}, {"question": "q2", "scores": {"a": 1, "b": 7}}]`)
	// Imports of nothing exited 0 with an empty log, or with records
	// and no score (MT-Bench's judgements.jsonl emptied).
	nothingDir := t.TempDir()
	headerOnly := writeFile(t, nothingDir, "header.csv", "prompt,a,b\n")
	emptyDC := writeFile(t, t.TempDir(), "empty.json", "[]\n")
	noScores := writeFile(t, t.TempDir(), "noscores.csv", "prompt,a,b\np1,,\np2,NA,\n")
	mtDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(mtDir, "mt_bench"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, mtDir, "mt_bench/question.jsonl", `{"question_id": 81, "category": "writing", "turns": ["Write a haiku.", "Now another."]}`+"\n")
	writeFile(t, mtDir, "mt_bench/judgements.jsonl", "")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"import without a format is a usage error listing the formats", []string{"import"}, 2, "import needs a subcommand (use 'triage import routellm', 'triage import routerdc' or 'triage import wide-csv'"},
		{"an unknown import format is a usage error", []string{"import", "parquet"}, 2, `import subcommand "parquet" is not known`},
		{"routellm without --bench is a usage error", []string{"import", "routellm", "--dir", dir}, 2, "--bench is required"},
		{"routellm with an unknown bench is a usage error", []string{"import", "routellm", "--bench", "hellaswag", "--dir", dir}, 2, `--bench "hellaswag" is not known (want mmlu, gsm8k or mt-bench)`},
		{"routellm without --dir is a usage error", []string{"import", "routellm", "--bench", "mmlu"}, 2, "--dir is required"},
		{"routellm takes the bench in any case, and mt_bench for mt-bench", []string{"import", "routellm", "--bench", "MT_Bench", "--dir", dir}, 1, "no mt_bench in"},
		{"routellm on a folder without the files is a data error", []string{"import", "routellm", "--bench", "mmlu", "--dir", dir}, 1, "no mmlu/mmlu_<subject>.csv files"},
		{"wide-csv without --file is a usage error", []string{"import", "wide-csv", "--prompt-col", "prompt"}, 2, "--file is required"},
		{"wide-csv without --prompt-col is a usage error", []string{"import", "wide-csv", "--file", csv}, 2, "--prompt-col is required"},
		{"wide-csv with a zero scale is a usage error", []string{"import", "wide-csv", "--file", csv, "--prompt-col", "prompt", "--score-scale", "0"}, 2, "--score-scale is 0"},
		{"wide-csv with a stray argument is a usage error", []string{"import", "wide-csv", "--file", csv, "--prompt-col", "prompt", "extra"}, 2, `unexpected argument "extra"`},
		{"a grade out of range is a data error suggesting a scale", []string{"import", "wide-csv", "--file", csv, "--prompt-col", "prompt"}, 1, `w.csv:3: column "a" is 7, want a score in [0,1]; grades on 1-10 need --score-scale 10`},
		{"routerdc without --file is a usage error", []string{"import", "routerdc"}, 2, "--file is required"},
		{"routerdc on a folder says to import one of its files", []string{"import", "routerdc", "--file", dcDir}, 2, "is a directory (import one file at a time, e.g. --file " + filepath.Join(dcDir, "dc.json")},
		{"a routerdc score out of range is a data error naming the element", []string{"import", "routerdc", "--file", dc}, 1, `dc.json: element 1: scores["b"] is 7, want a score in [0,1]`},
		{"a CSV with a header and no rows imports nothing and fails", []string{"import", "wide-csv", "--file", headerOnly, "--prompt-col", "prompt"}, 1, "header.csv holds no records to import; nothing was written"},
		{"an empty routerdc list imports nothing and fails", []string{"import", "routerdc", "--file", emptyDC}, 1, "empty.json holds no records to import; nothing was written"},
		{"a CSV without one score fails", []string{"import", "wide-csv", "--file", noScores, "--prompt-col", "prompt"}, 1, "noscores.csv gave 2 records but not one score; nothing was written"},
		{"MT-Bench with an empty judgements file fails", []string{"import", "routellm", "--bench", "mt-bench", "--dir", mtDir}, 1, "mt-bench in " + mtDir + " gave 2 records but not one score"},
		{"an unknown model is a data error listing the models", []string{"import", "wide-csv", "--file", csv, "--prompt-col", "prompt", "--models", "a,zz"}, 1, `model "zz" (--models) is not a score column; the model columns are "a", "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.inStderr)
			}
		})
	}
	t.Run("import -h and triage help list every format", func(t *testing.T) {
		stdout, _, code := run(t, "import", "-h")
		for _, want := range []string{"  routellm ", "  routerdc ", "  wide-csv "} {
			if code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("import -h: status %d, %q; want 0 and %q", code, stdout, want)
			}
		}
		stdout, _, _ = run(t, "help")
		for _, want := range []string{"import routellm", "import wide-csv", "import routerdc"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("help %q does not list %q", stdout, want)
			}
		}
	})
	for _, tt := range []struct {
		name, dir, input string
		args             []string
	}{
		{"a failed import leaves no output file", dir, "w.csv", []string{"wide-csv", "--file", csv, "--prompt-col", "prompt"}},
		{"a routerdc import failing after its first record leaves no output file", dcDir, "dc.json", []string{"routerdc", "--file", dc}},
		{"an import of no records leaves no output file", nothingDir, "header.csv", []string{"wide-csv", "--file", headerOnly, "--prompt-col", "prompt"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"import"}, tt.args...), "-o", filepath.Join(tt.dir, "out.jsonl"))
			if _, _, code := run(t, args...); code != 1 {
				t.Fatalf("exit status %d, want 1", code)
			}
			entries, err := os.ReadDir(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != tt.input {
					t.Errorf("found %s after a failed import, want only %s", e.Name(), tt.input)
				}
			}
		})
	}
	t.Run("a successful import to -o replaces the file whole", func(t *testing.T) {
		out := writeFile(t, dir, "old.jsonl", "stale\n")
		if _, stderr, code := run(t, "import", "wide-csv", "--file", csv, "--prompt-col", "prompt", "--score-scale", "10", "-o", out); code != 0 {
			t.Fatalf("exit status %d: %s", code, stderr)
		}
		recs, _ := readLog(t, out)
		if len(recs) != 2 || recs[0].ID != "w/0" || scoreOf(t, recs[1], "a") != 0.7 {
			t.Errorf("records %+v, want w/0 and w/1 with a = 0.05 and 0.7", recs)
		}
		os.Remove(out)
	})
}

func TestParseDelimiter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rune
		ok   bool
	}{
		{",", ',', true}, {"tab", '\t', true}, {`\t`, '\t', true}, {"\t", '\t', true}, {";", ';', true}, {"|", '|', true},
		{"", 0, false}, {"ab", 0, false}, {`"`, 0, false}, {"\n", 0, false}, {"\xff", 0, false},
	} {
		if got, ok := parseDelimiter(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseDelimiter(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestImportFromStdin: --file - was a usage error ("the importers read a
// file, not standard input"), where Unix tools read standard input. It
// reads it now, plain or gzip-compressed (told by its first bytes, as
// the log readers tell a .jsonl.gz), through Main with a pipe.
func TestImportFromStdin(t *testing.T) {
	const csvText = "prompt,a,b\nwhat is 2+2?,1,0\nprove it,0,1\n"
	const dcText = `[{"question": "what is 2+2?", "scores": {"a": 1, "b": 0}}, {"question": "prove it", "scores": {"a": 0, "b": 1}}]`
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	for _, tt := range []struct {
		name    string
		stdin   []byte
		args    []string
		ids     []string
		source  string // meta.source of the records
		summary string
	}{
		{"wide-csv reads standard input", []byte(csvText), []string{"wide-csv", "--file", "-", "--prompt-col", "prompt"}, []string{"stdin/0", "stdin/1"}, "", "2 records"},
		{"wide-csv reads a gzip stream", gz(csvText), []string{"wide-csv", "--file", "-", "--prompt-col", "prompt"}, []string{"stdin/0", "stdin/1"}, "", "2 records"},
		{"routerdc reads standard input", []byte(dcText), []string{"routerdc", "--file", "-", "--id-prefix", "gsm8k-test"}, []string{"gsm8k-test/0", "gsm8k-test/1"}, "gsm8k-test", "2 records"},
		{"routerdc reads a gzip stream", gz(dcText), []string{"routerdc", "--file", "-", "--id-prefix", "gsm8k-test"}, []string{"gsm8k-test/0", "gsm8k-test/1"}, "gsm8k-test", "2 records"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go func() {
				w.Write(tt.stdin)
				w.Close()
			}()
			out := filepath.Join(t.TempDir(), "log.jsonl")
			var stderr bytes.Buffer
			args := append(append([]string{"import"}, tt.args...), "-o", out)
			if code := Main(context.Background(), args, &Env{Stdin: r, Stdout: io.Discard, Stderr: &stderr}); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			recs, _ := readLog(t, out)
			var ids []string
			for _, rec := range recs {
				ids = append(ids, rec.ID)
				if got := rec.Meta["source"]; got != tt.source {
					t.Errorf("%s: meta.source %q, want %q", rec.ID, got, tt.source)
				}
				if scoreOf(t, rec, "a")+scoreOf(t, rec, "b") != 1 {
					t.Errorf("%s: outcomes %v", rec.ID, rec.Outcomes)
				}
			}
			if !slices.Equal(ids, tt.ids) {
				t.Errorf("ids %q, want %q", ids, tt.ids)
			}
			if !strings.Contains(stderr.String(), tt.summary) {
				t.Errorf("stderr %q, want the summary", stderr.String())
			}
		})
	}
	t.Run("an empty standard input is named as such", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "log.jsonl")
		var stderr bytes.Buffer
		code := Main(context.Background(), []string{"import", "wide-csv", "--file", "-", "--prompt-col", "prompt", "-o", out}, &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
		if code != 1 || !strings.Contains(stderr.String(), "stdin: the file is empty") {
			t.Errorf("exit %d, stderr %q; want 1 and that stdin is empty", code, stderr.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("an import of nothing wrote its output")
		}
	})
}

// --exclude-contaminated - reads the list from standard input, as --file
// - does (it said "open -: no such file"), gzip-compressed here: the
// import drops what the same list read from its file drops.
func TestImportRouteLLMContaminationFromStdin(t *testing.T) {
	dir := filepath.Join(sharedDatasets(t), "routellm")
	list := filepath.Join(dir, "contaminated", "gsm8k.jsonl")
	raw, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	summary := func(stderr string) string {
		_, s, _ := strings.Cut(stderr, "dropped ")
		s, _, _ = strings.Cut(s, ";")
		return s
	}
	_, fromFile, code := run(t, "import", "routellm", "--bench", "gsm8k", "--dir", dir, "--exclude-contaminated", list, "-o", filepath.Join(t.TempDir(), "a.jsonl"))
	if code != 0 || summary(fromFile) == "" {
		t.Fatalf("from the file: exit %d: %s", code, fromFile)
	}
	var stderr bytes.Buffer
	code = Main(context.Background(), []string{"import", "routellm", "--bench", "gsm8k", "--dir", dir, "--exclude-contaminated", "-", "-o", filepath.Join(t.TempDir(), "b.jsonl")},
		&Env{Stdin: &gz, Stdout: io.Discard, Stderr: &stderr})
	if code != 0 || summary(stderr.String()) != summary(fromFile) {
		t.Errorf("from standard input: exit %d, %q; want 0 and %q as from the file", code, stderr.String(), summary(fromFile))
	}
}
