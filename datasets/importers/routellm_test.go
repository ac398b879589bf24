package importers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

const fixtures = "testdata/routellm"

func TestRouteLLMMMLU(t *testing.T) {
	recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return RouteLLM(RouteLLMOptions{Bench: BenchMMLU, Dir: fixtures}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	algebra := datasets.Meta{"source": "mmlu", "subject": "abstract_algebra"}
	want := []datasets.Record{
		{ID: "mmlu/abstract_algebra/0", Prompt: "What is 1+1?\nA. 1\nB. 2\nAnswer:", Meta: algebra,
			Outcomes: map[string]datasets.Outcome{"weak/model-a": score(0), "strong-b": score(1)}},
		{ID: "mmlu/abstract_algebra/1", Prompt: "Is \"x\", here, a variable?\nA. yes\nB. no\nAnswer:", Meta: algebra,
			Outcomes: map[string]datasets.Outcome{"weak/model-a": score(1), "strong-b": score(1)}},
		{ID: "mmlu/abstract_algebra/2", Prompt: "Which group is cyclic?", Meta: algebra,
			Outcomes: map[string]datasets.Outcome{"weak/model-a": score(0), "strong-b": score(1)}},
		{ID: "mmlu/college_biology/0", Prompt: "What do cells divide by?", Meta: datasets.Meta{"source": "mmlu", "subject": "college_biology"},
			Outcomes: map[string]datasets.Outcome{"weak/model-a": score(0), "strong-b": score(0)}},
		{ID: "mmlu/college_biology/1", Prompt: "A contaminated question?", Meta: datasets.Meta{"source": "mmlu", "subject": "college_biology"},
			Outcomes: map[string]datasets.Outcome{"weak/model-a": score(1), "strong-b": score(0)}},
	}
	for i := range want {
		if i >= len(recs) {
			t.Fatalf("got %d records, want %d", len(recs), len(want))
		}
		if !reflect.DeepEqual(recs[i], want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}
	if len(recs) != len(want) {
		t.Errorf("got %d records, want %d", len(recs), len(want))
	}
	if st.Records != 5 || st.Outcomes["weak/model-a"] != 5 || st.Outcomes["strong-b"] != 5 || st.ContaminatedListed != 0 {
		t.Errorf("stats %+v, want 5 records with 5 outcomes per model and no contamination", st)
	}
}

func TestRouteLLMGSM8K(t *testing.T) {
	recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return RouteLLM(RouteLLMOptions{Bench: BenchGSM8K, Dir: fixtures}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	src := datasets.Meta{"source": "gsm8k"}
	want := []datasets.Record{
		{ID: "gsm8k/0", Prompt: "Tom has 3 apples and eats 1. How many are left?", Meta: src, Outcomes: map[string]datasets.Outcome{
			"weak/model-a": scoreResp(1, " Tom has 3 - 1 = 2 apples.\n#### 2"), "strong-b": scoreResp(1, "He has 2, of course.")}},
		{ID: "gsm8k/1", Prompt: "A copied training prompt.", Meta: src, Outcomes: map[string]datasets.Outcome{
			"weak/model-a": scoreResp(0, "wrong"), "strong-b": scoreResp(1, "right")}},
		{ID: "gsm8k/2", Prompt: "Sam buys 2 pens at $3, then 1 more. What does he pay?", Meta: src, Outcomes: map[string]datasets.Outcome{
			"weak/model-a": scoreResp(0, " 2 * 3 = 6\n#### 6"), "strong-b": scoreResp(1, "Three pens at $3 cost $9.")}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("records:\n got %+v\nwant %+v", recs, want)
	}
	if _, ok := st.Outcomes["weak/model-a_response"]; ok || len(st.Outcomes) != 2 {
		t.Errorf("outcome models %v, want the two score columns only", st.Outcomes)
	}
}

func TestRouteLLMMTBench(t *testing.T) {
	recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return RouteLLM(RouteLLMOptions{Bench: BenchMTBench, Dir: fixtures}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	meta := func(turn, category string) datasets.Meta {
		return datasets.Meta{"source": "mt-bench", "turn": turn, "category": category}
	}
	user := func(s string) datasets.Message { return datasets.Message{Role: "user", Content: s} }
	// Scores are judge grades / 10; strong-b's turn 1 of question 81 has
	// two judgements, 9 and 10, averaged to 9.5. The weak model's -1 on
	// question 111 turn 1 is no grade, so no outcome; its turn-2 judge
	// prompt lacks the markers, so no response.
	want := []datasets.Record{
		{ID: "mt-bench/81/1", Prompt: "Write a haiku about rain.", Meta: meta("1", "writing"), Outcomes: map[string]datasets.Outcome{
			"weak/model-a": scoreResp(0.6, "Rain taps the window"), "strong-b": scoreResp(0.95, "Soft rain on the roof")}},
		{ID: "mt-bench/81/2", Messages: []datasets.Message{user("Write a haiku about rain."), user("Now make it rhyme.")}, Meta: meta("2", "writing"), Outcomes: map[string]datasets.Outcome{
			"weak/model-a": scoreResp(0.3, "Rain again, a train"), "strong-b": scoreResp(0.85, "Rain in the lane")}},
		{ID: "mt-bench/111/1", Prompt: "What is 2+2?", Meta: meta("1", "math"), Outcomes: map[string]datasets.Outcome{
			"strong-b": scoreResp(1, "4")}},
		{ID: "mt-bench/111/2", Messages: []datasets.Message{user("What is 2+2?"), user("And times 3?")}, Meta: meta("2", "math"), Outcomes: map[string]datasets.Outcome{
			"weak/model-a": score(0.1), "strong-b": scoreResp(1, "12")}},
		{ID: "mt-bench/120/1", Prompt: "A contaminated MT-Bench question.", Meta: meta("1", "math"), Outcomes: map[string]datasets.Outcome{
			"strong-b": scoreResp(0.7, "x")}},
		{ID: "mt-bench/120/2", Messages: []datasets.Message{user("A contaminated MT-Bench question."), user("Its second turn.")}, Meta: meta("2", "math"), Outcomes: map[string]datasets.Outcome{}},
	}
	if len(recs) != len(want) {
		t.Fatalf("got ids %q, want %q", ids(recs), ids(want))
	}
	for i := range want {
		if !reflect.DeepEqual(recs[i], want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}
	if got := st.NoGrade["weak/model-a"]; got != 1 {
		t.Errorf("no-grade count for weak/model-a = %d, want 1", got)
	}
	if got := st.Outcomes["strong-b"]; got != 5 {
		t.Errorf("strong-b outcomes = %d, want 5", got)
	}
}

func TestRouteLLMExcludeContaminated(t *testing.T) {
	tests := []struct {
		name      string
		bench     string
		list      string
		wantIDs   []string
		dropped   int
		listed    int
		foundList int
	}{
		{"mmlu drops the listed prompt and keeps the other rows' ids", BenchMMLU, "mmlu.jsonl",
			[]string{"mmlu/abstract_algebra/0", "mmlu/abstract_algebra/1", "mmlu/abstract_algebra/2", "mmlu/college_biology/0"}, 1, 2, 1},
		{"gsm8k matches prompts ignoring surrounding whitespace", BenchGSM8K, "gsm8k.jsonl",
			[]string{"gsm8k/0", "gsm8k/2"}, 1, 1, 1},
		{"mt-bench drops both turns of a question whose first turn is listed", BenchMTBench, "mt_bench.jsonl",
			[]string{"mt-bench/81/1", "mt-bench/81/2", "mt-bench/111/1", "mt-bench/111/2"}, 2, 1, 1},
		{"a list for another benchmark drops nothing and says so", BenchGSM8K, "mmlu.jsonl",
			[]string{"gsm8k/0", "gsm8k/1", "gsm8k/2"}, 0, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
				return RouteLLM(RouteLLMOptions{Bench: tt.bench, Dir: fixtures, ExcludeContaminated: fixtures + "/contaminated/" + tt.list}, fn)
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ids %q, want %q", got, tt.wantIDs)
			}
			if st.Contaminated != tt.dropped || st.ContaminatedListed != tt.listed || st.ContaminatedFound != tt.foundList {
				t.Errorf("dropped %d (%d of %d found), want %d (%d of %d)", st.Contaminated, st.ContaminatedFound, st.ContaminatedListed, tt.dropped, tt.foundList, tt.listed)
			}
			if st.Records != len(tt.wantIDs) {
				t.Errorf("Stats.Records = %d, want %d", st.Records, len(tt.wantIDs))
			}
		})
	}
}

func TestRouteLLMErrors(t *testing.T) {
	header := "prompt,m1,m2\n"
	tests := []struct {
		name  string
		files map[string]string
		opts  RouteLLMOptions // Dir is filled in
		want  []string
	}{
		{"an unknown benchmark lists the valid ones", nil, RouteLLMOptions{Bench: "mmlu-pro"},
			[]string{`benchmark "mmlu-pro" is not known`, `"mmlu", "gsm8k" or "mt-bench"`}},
		{"a folder without mmlu files says what to point at", map[string]string{"other.txt": ""}, RouteLLMOptions{Bench: BenchMMLU},
			[]string{"no mmlu/mmlu_<subject>.csv files in", "--dir"}},
		{"a missing gsm8k file names it and what to point at", map[string]string{"other.txt": ""}, RouteLLMOptions{Bench: BenchGSM8K},
			[]string{"no gsm8k_responses.csv in", "point --dir at RouteLLM's evals folder"}},
		{"a missing mt_bench folder names it and what to point at", map[string]string{"other.txt": ""}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"no mt_bench in", "point --dir at RouteLLM's evals folder"}},
		{"a cell that is not True or False names file, line, row and column",
			map[string]string{"mmlu/mmlu_x.csv": header + "q1,True,False\n\"q2\nmore\",True,maybe\n"}, RouteLLMOptions{Bench: BenchMMLU},
			[]string{"mmlu_x.csv:3: column \"m2\" is \"maybe\", want True or False"}},
		{"a file without a prompt column names the header",
			map[string]string{"mmlu/mmlu_x.csv": "question,m1\nq,True\n"}, RouteLLMOptions{Bench: BenchMMLU},
			[]string{`mmlu_x.csv: no "prompt" column; the header has "question", "m1"`}},
		{"a row with too few fields names its line",
			map[string]string{"mmlu/mmlu_x.csv": header + "q1,True,False\nq2,True\n"}, RouteLLMOptions{Bench: BenchMMLU},
			[]string{"mmlu_x.csv:3: the row has a different number of fields than the header's 3"}},
		{"a bare quote names its line and column",
			map[string]string{"mmlu/mmlu_x.csv": header + "q \"1\",True,False\n"}, RouteLLMOptions{Bench: BenchMMLU},
			[]string{"mmlu_x.csv:2: at byte 3 of the line:", "inner quotes doubled"}},
		{"an empty prompt is an error",
			map[string]string{"gsm8k_responses.csv": header + " ,True,False\n"}, RouteLLMOptions{Bench: BenchGSM8K},
			[]string{"gsm8k_responses.csv:2: the prompt is empty"}},
		{"a contamination line without eval_prompt names its line",
			map[string]string{"gsm8k_responses.csv": header, "c.jsonl": "{\"eval_prompt\":\"a\"}\n\n{\"prompt\":\"b\"}\n"}, RouteLLMOptions{Bench: BenchGSM8K, ExcludeContaminated: "c.jsonl"},
			[]string{"c.jsonl:3: eval_prompt is missing", "RouteLLM's contamination format"}},
		{"an empty contamination list is refused, not read as no contamination",
			map[string]string{"gsm8k_responses.csv": header + "q,True,False\n", "c.jsonl": "\n"}, RouteLLMOptions{Bench: BenchGSM8K, ExcludeContaminated: "c.jsonl"},
			[]string{"c.jsonl lists no prompts", "is it the whole file?"}},
		{"a judgement of an unknown question names its line",
			map[string]string{
				"mt_bench/question.jsonl":   `{"question_id": 1, "turns": ["a"]}` + "\n",
				"mt_bench/judgements.jsonl": `{"question_id": 1, "model": "m", "score": 5, "turn": 1}` + "\n" + `{"question_id": 2, "model": "m", "score": 5, "turn": 1}` + "\n",
			}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"judgements.jsonl:2: judgement of question 2 turn 1, which", "question.jsonl does not have"}},
		{"a judge grade above 10 names its line",
			map[string]string{
				"mt_bench/question.jsonl":   `{"question_id": 1, "turns": ["a"]}` + "\n",
				"mt_bench/judgements.jsonl": `{"question_id": 1, "model": "m", "score": 11, "turn": 1}` + "\n",
			}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"judgements.jsonl:1: score is 11, want a judge grade in [0,10] (or -1 for none)"}},
		{"a judgement without a model names its line",
			map[string]string{
				"mt_bench/question.jsonl":   `{"question_id": 1, "turns": ["a"]}` + "\n",
				"mt_bench/judgements.jsonl": `{"question_id": 1, "score": 1, "turn": 1}` + "\n",
			}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"judgements.jsonl:1: model is missing"}},
		{"a repeated question id names both lines",
			map[string]string{
				"mt_bench/question.jsonl":   `{"question_id": 1, "turns": ["a"]}` + "\n" + `{"question_id": 1, "turns": ["b"]}` + "\n",
				"mt_bench/judgements.jsonl": "",
			}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"question.jsonl:2: question_id 1 repeats line 1"}},
		{"a missing judgements file says what the folder needs",
			map[string]string{"mt_bench/question.jsonl": `{"question_id": 1, "turns": ["a"]}` + "\n"}, RouteLLMOptions{Bench: BenchMTBench},
			[]string{"open mt-bench judgements", "question.jsonl and judgements.jsonl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			opts := tt.opts
			opts.Dir = dir
			if opts.ExcludeContaminated != "" {
				opts.ExcludeContaminated = dir + "/" + opts.ExcludeContaminated
			}
			_, _, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) { return RouteLLM(opts, fn) })
			wantError(t, err, tt.want...)
		})
	}
}

func TestJudgedAnswer(t *testing.T) {
	tests := []struct {
		name   string
		prompt string
		turn   int
		want   string
	}{
		{"a single-answer prompt gives the answer", "[Question]\nq\n\n[The Start of Assistant's Answer]\n the answer \n[The End of Assistant's Answer]", 1, "the answer"},
		{"a multi-turn prompt gives the last assistant turn",
			"<|The Start of Reference Answer|>\n\n### User:\nq\n\n### Reference answer:\nr\n\n<|The End of Reference Answer|>\n\n\n" +
				"<|The Start of Assistant A's Conversation with User|>\n\n### User:\nq1\n\n### Assistant A:\na1\n\n### User:\nq2\n\n### Assistant A:\na2\nmore\n\n<|The End of Assistant A's Conversation with User|>", 2, "a2\nmore"},
		{"a prompt without markers gives nothing", "judge this", 1, ""},
		{"a turn-2 prompt without the conversation gives nothing", "[The Start of Assistant's Answer]\nx\n[The End of Assistant's Answer]", 2, ""},
		{"markers in the wrong order give nothing", "[The End of Assistant's Answer]\n[The Start of Assistant's Answer]\n", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judgedAnswer(tt.prompt, tt.turn); got != tt.want {
				t.Errorf("judgedAnswer = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzRouteLLMCSV feeds arbitrary bytes to the RouteLLM response-file
// reader (GSM8K's and each MMLU subject's format): it must never panic,
// every record must validate, ids must be unique, and an error must name
// the file.
func FuzzRouteLLMCSV(f *testing.F) {
	seed, err := os.ReadFile(fixtures + "/gsm8k_responses.csv")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(seed),
		"prompt,a,b\nq,True,False\nq2,False,\n",
		"prompt,a,a_response\n\"x\",maybe,\"y\"\n",
		"prompt\nq\n",
		"a,b\n1,2\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.csv")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st := newStats()
		check, seen := recordChecker(t)
		err := importRouteLLMCSV(path, "p/", datasets.Meta{"source": "fuzz"}, map[string]bool{"A copied training prompt.": true}, map[string]bool{}, BadRows{}, &st, check)
		if err != nil && !strings.Contains(err.Error(), "fuzz.csv") {
			t.Fatalf("error %q does not name the file", err)
		}
		if err == nil && st.Records != len(seen) {
			t.Fatalf("stats count %d records, the callback saw %d", st.Records, len(seen))
		}
	})
}

// A response file saved with pandas' index (an unnamed first column of
// 0, 1, ...) imported that column as a model named "", whose 0s and 1s
// read as scores, into a log train then refused; unnamed and id-like
// columns are not models.
func TestRouteLLMCSVSkipsAnIndexColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gsm8k_responses.csv")
	os.WriteFile(path, []byte(",prompt,weak,strong,weak_response\n0,q one,True,False,a\n1,q two,False,True,b\n"), 0o600)
	st := newStats()
	var got []datasets.Record
	if err := importRouteLLMCSV(path, "g/", nil, nil, nil, BadRows{}, &st, func(r datasets.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	for _, r := range got {
		if err := r.Validate(datasets.ValidateOptions{}); err != nil || len(r.Outcomes) != 2 {
			t.Errorf("%s: outcomes %v, err %v; want weak and strong only", r.ID, r.Outcomes, err)
		}
	}
}

// FuzzMTBench feeds arbitrary question and judgement files to the MT-Bench
// reader: it must never panic, every record must validate, ids must be
// unique, and an error must name the file it is about.
func FuzzMTBench(f *testing.F) {
	q, err := os.ReadFile(fixtures + "/mt_bench/question.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	j, err := os.ReadFile(fixtures + "/mt_bench/judgements.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q, j)
	f.Add([]byte(`{"question_id": "x", "turns": ["a"]}`), []byte(`{"question_id": "x", "model": "m", "score": -1, "turn": 1}`))
	f.Add([]byte(`{"question_id": 1, "turns": []}`), []byte(`{"question_id": 1, "model": "", "score": 11, "turn": 3}`))
	f.Fuzz(func(t *testing.T, q, j []byte) {
		dir := t.TempDir()
		if os.WriteFile(filepath.Join(dir, "question.jsonl"), q, 0o600) != nil || os.WriteFile(filepath.Join(dir, "judgements.jsonl"), j, 0o600) != nil {
			t.Fatal("write the fuzz files")
		}
		st := newStats()
		check, seen := recordChecker(t)
		err := importMTBench(dir, map[string]bool{}, map[string]bool{}, BadRows{}, &st, check)
		if err != nil && !strings.Contains(err.Error(), ".jsonl") {
			t.Fatalf("error %q does not name the file", err)
		}
		if err == nil && st.Records != len(seen) {
			t.Fatalf("stats count %d records, the callback saw %d", st.Records, len(seen))
		}
	})
}

// The log reader skips a UTF-8 byte-order mark (Windows editors write
// one); the importers' JSON Lines files failed on it with "invalid
// character 'ï' looking for beginning of value".
func TestRouteLLMJSONLinesAcceptAByteOrderMark(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"mt_bench/question.jsonl":   "\ufeff" + `{"question_id": 1, "turns": ["a"]}` + "\n" + `{"question_id": 2, "turns": ["b"]}` + "\n",
		"mt_bench/judgements.jsonl": "\ufeff" + `{"question_id": 1, "model": "m", "score": 5, "turn": 1}` + "\n",
		"c.jsonl":                   "\ufeff" + `{"eval_prompt": "b"}` + "\n",
	})
	recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
		return RouteLLM(RouteLLMOptions{Bench: BenchMTBench, Dir: dir, ExcludeContaminated: dir + "/c.jsonl"}, fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "mt-bench/1/1" || *recs[0].Outcomes["m"].Score != 0.5 || st.Contaminated != 1 {
		t.Errorf("records %+v, stats %s: want mt-bench/1/1 with m 0.5, and question 2 dropped as contaminated", recs, st)
	}
}
