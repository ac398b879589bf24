package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImportSkipBad: one bad cell of a published table, or one bad line of
// an MT-Bench or RouterDC file, stopped the whole import, and import had
// no --skip-bad where every command that reads logs has one. Without it
// the import still stops at the bad row and writes nothing; with it the
// row is skipped, named on stderr in the words the import stops with, and
// counted, and the log holds the good records only.
func TestImportSkipBad(t *testing.T) {
	tests := []struct {
		name string
		// files are written under a fresh folder, which args name as DIR.
		files map[string]string
		args  []string
		// bad are the skipped rows, as file:line (or file: element) and
		// what is wrong, relative to DIR.
		bad []string
		// skipped is how many rows are skipped; 0 means len(bad).
		skipped int
		want    []string // the ids imported with --skip-bad
	}{
		{
			name:  "wide-csv skips a cell that is not a score and a row short of a field",
			files: map[string]string{"w.csv": "prompt,a,b\nhi,1,0\nho,x,1\nhu,0,1\nhy,1\n"},
			args:  []string{"wide-csv", "--file", "DIR/w.csv", "--prompt-col", "prompt"},
			bad: []string{
				`w.csv:3: column "a" is "x", not a score`,
				"w.csv:5: the row has a different number of fields than the header's 3",
			},
			want: []string{"w/0", "w/2"},
		},
		{
			name:    "wide-csv names the first five rows it skips and counts them all",
			files:   map[string]string{"w.csv": "prompt,a\np0,1\np1,2\np2,3\np3,4\np4,5\np5,6\np6,7\np7,0\n"},
			args:    []string{"wide-csv", "--file", "DIR/w.csv", "--prompt-col", "prompt"},
			bad:     []string{"w.csv:3: ", "w.csv:4: ", "w.csv:5: ", "w.csv:6: ", "w.csv:7: "},
			skipped: 6,
			want:    []string{"w/0", "w/7"},
		},
		{
			name:  "routellm gsm8k skips a cell neither True nor False",
			files: map[string]string{"gsm8k_responses.csv": "prompt,m1,m2\nq0,True,False\nq1,maybe,True\nq2,False,True\n"},
			args:  []string{"routellm", "--bench", "gsm8k", "--dir", "DIR"},
			bad:   []string{`gsm8k_responses.csv:3: column "m1" is "maybe", want True or False`},
			want:  []string{"gsm8k/0", "gsm8k/2"},
		},
		{
			name:  "routellm mmlu skips a row with an empty prompt",
			files: map[string]string{"mmlu/mmlu_art.csv": "prompt,m1,m2\nq0,True,False\n,True,True\nq2,False,True\n"},
			args:  []string{"routellm", "--bench", "mmlu", "--dir", "DIR"},
			bad:   []string{"mmlu/mmlu_art.csv:3: the prompt is empty"},
			want:  []string{"mmlu/art/0", "mmlu/art/2"},
		},
		{
			name: "routellm mt-bench skips a judgement out of range",
			files: map[string]string{
				"mt_bench/question.jsonl": `{"question_id": 1, "category": "writing", "turns": ["one"]}` + "\n" +
					`{"question_id": 2, "category": "maths", "turns": ["two"]}` + "\n",
				"mt_bench/judgements.jsonl": `{"question_id": 1, "model": "m1", "score": 8, "turn": 1}` + "\n" +
					`{"question_id": 1, "model": "m2", "score": 80, "turn": 1}` + "\n" +
					`{"question_id": 2, "model": "m1", "score": 3, "turn": 1}` + "\n",
			},
			args: []string{"routellm", "--bench", "mt-bench", "--dir", "DIR"},
			bad:  []string{"mt_bench/judgements.jsonl:2: score is 80, want a judge grade in [0,10]"},
			want: []string{"mt-bench/1/1", "mt-bench/2/1"},
		},
		{
			name: "routellm mt-bench skips a question that is not JSON, and the judgements of a question it no longer has",
			files: map[string]string{
				"mt_bench/question.jsonl": `{"question_id": 1, "category": "writing", "turns": ["one"]}` + "\n" +
					`{"question_id": 2, "category": "maths", "turns": ["two"]` + "\n" +
					`{"question_id": 3, "category": "maths", "turns": ["three"]}` + "\n",
				"mt_bench/judgements.jsonl": `{"question_id": 1, "model": "m1", "score": 8, "turn": 1}` + "\n" +
					`{"question_id": 2, "model": "m1", "score": 3, "turn": 1}` + "\n" +
					`{"question_id": 3, "model": "m1", "score": 5, "turn": 1}` + "\n",
			},
			args: []string{"routellm", "--bench", "mt-bench", "--dir", "DIR"},
			bad: []string{
				"mt_bench/question.jsonl:2: unexpected end of JSON input",
				"mt_bench/judgements.jsonl:2: judgement of question 2 turn 1, which",
			},
			want: []string{"mt-bench/1/1", "mt-bench/3/1"},
		},
		{
			name: "routerdc skips an element whose score is out of range",
			files: map[string]string{"dc.json": `[{"question": "q0", "scores": {"m1": 1, "m2": 0}},
 {"question": "q1", "scores": {"m1": 2, "m2": 0}},
 {"question": "q2", "scores": {"m1": 0, "m2": 1}}]`},
			args: []string{"routerdc", "--file", "DIR/dc.json"},
			bad:  []string{`dc.json: element 1: scores["m1"] is 2, want a score in [0,1]`},
			want: []string{"dc/0", "dc/2"},
		},
		{
			name: "routerdc as JSON Lines skips an element without a question",
			files: map[string]string{"dc.jsonl": `{"question": "q0", "scores": {"m1": 1}}` + "\n" +
				`{"prompt": "q1", "scores": {"m1": 0}}` + "\n" +
				`{"question": "q2", "scores": {"m1": 0}}` + "\n"},
			args: []string{"routerdc", "--file", "DIR/dc.jsonl"},
			bad:  []string{"dc.jsonl: element 1: question is missing"},
			want: []string{"dc/0", "dc/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, name, content)
			}
			args := []string{"import"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			cmd := "triage import " + tt.args[0]
			out := filepath.Join(dir, "out.jsonl")

			_, stderr, code := run(t, append(args, "-o", out)...)
			if first := filepath.Join(dir, tt.bad[0]); code != 1 || !strings.Contains(stderr, first) {
				t.Errorf("without --skip-bad: exit %d, stderr %q; want 1 naming %q", code, stderr, first)
			}
			if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("without --skip-bad, the failed import left %s (stat: %v); want nothing written", out, err)
			}

			_, stderr, code = run(t, append(args, "--skip-bad", "-o", out)...)
			if code != 0 {
				t.Fatalf("with --skip-bad: exit %d, stderr %q", code, stderr)
			}
			for _, b := range tt.bad {
				if want := cmd + ": --skip-bad skipped " + filepath.Join(dir, b); !strings.Contains(stderr, want) {
					t.Errorf("with --skip-bad, stderr %q does not name %q", stderr, want)
				}
			}
			n := len(tt.bad)
			if tt.skipped > n {
				n = tt.skipped
				if want := cmd + ": --skip-bad skipped more lines; only the first 5 are named"; !strings.Contains(stderr, want) || strings.Contains(stderr, "w.csv:8:") {
					t.Errorf("with --skip-bad, stderr %q; want the first five named, then %q", stderr, want)
				}
			}
			if want := "skipped " + count(n, "malformed record") + " (--skip-bad)"; !strings.Contains(stderr, want) {
				t.Errorf("with --skip-bad, stderr %q; want the count %q", stderr, want)
			}
			recs, _ := readLog(t, out)
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("with --skip-bad, the log holds %q, want %q", ids, tt.want)
			}
		})
	}
}
