package importers

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/datasetstest"
)

const (
	weak   = "mistralai/Mixtral-8x7B-Instruct-v0.1"
	strong = "gpt-4-1106-preview"
)

// sharedDatasets is datasetstest.Dir: the shared data, or a skip.
func sharedDatasets(tb testing.TB) string { return datasetstest.Dir(tb) }

type realRun struct {
	recs  int
	mean  map[string]float64
	first datasets.Record
	byID  map[string]datasets.Record
	stats Stats
}

// importReal runs a RouteLLM import, keeping the records named in keep.
func importReal(tb testing.TB, opts RouteLLMOptions, keep ...string) realRun {
	tb.Helper()
	run := realRun{mean: map[string]float64{}, byID: map[string]datasets.Record{}}
	want := map[string]bool{}
	for _, id := range keep {
		want[id] = true
	}
	seen := map[string]bool{}
	st, err := RouteLLM(opts, func(r datasets.Record) error {
		if err := r.Validate(datasets.ValidateOptions{}); err != nil {
			tb.Errorf("record %q does not validate: %v", r.ID, err)
		}
		if seen[r.ID] {
			tb.Errorf("id %q repeats", r.ID)
		}
		seen[r.ID] = true
		if run.recs == 0 {
			run.first = r
		}
		if want[r.ID] {
			run.byID[r.ID] = r
		}
		run.recs++
		for m, o := range r.Outcomes {
			run.mean[m] += *o.Score
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for m := range run.mean {
		run.mean[m] /= float64(st.Outcomes[m])
	}
	run.stats = st
	return run
}

// The expected means are the baselines of ../shared/datasets/README.md,
// computed there from the same files: MMLU 9560 and 11315 of 14042 correct;
// GSM8K 842 and 1130 of 1319; MT-Bench mean grades 8.340625 and 9.228125
// over 160 turns (divided by 10).
func TestRouteLLMOnSharedData(t *testing.T) {
	dir := filepath.Join(sharedDatasets(t), "routellm")
	tests := []struct {
		bench            string
		contaminated     string
		records          int
		weakM, strongM   float64
		withoutContam    int
		droppedContam    int
		firstID          string
		firstPromptStart string
	}{
		{BenchMMLU, "mmlu.jsonl", 14042, 9560.0 / 14042, 11315.0 / 14042, 14037, 5, "mmlu/abstract_algebra/0", "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\n"},
		{BenchGSM8K, "gsm8k.jsonl", 1319, 842.0 / 1319, 1130.0 / 1319, 1307, 12, "gsm8k/0", "Janet’s ducks lay 16 eggs per day."},
		{BenchMTBench, "mt_bench.jsonl", 160, 0.8340625, 0.9228125, 144, 16, "mt-bench/81/1", "Compose an engaging travel blog post about a recent trip to Hawaii"},
	}
	for _, tt := range tests {
		t.Run(tt.bench+" has the published counts and baselines", func(t *testing.T) {
			run := importReal(t, RouteLLMOptions{Bench: tt.bench, Dir: dir})
			if run.recs != tt.records || run.stats.Records != tt.records {
				t.Errorf("%d records (stats %d), want %d", run.recs, run.stats.Records, tt.records)
			}
			for m, want := range map[string]float64{weak: tt.weakM, strong: tt.strongM} {
				if got := run.stats.Outcomes[m]; got != tt.records {
					t.Errorf("%s has %d outcomes, want %d", m, got, tt.records)
				}
				// Sums of exact fractions; 1e-9 only absorbs float rounding.
				if got := run.mean[m]; math.Abs(got-want) > 1e-9 {
					t.Errorf("%s mean score %v, want %v", m, got, want)
				}
			}
			if run.first.ID != tt.firstID || !strings.HasPrefix(run.first.Text(), tt.firstPromptStart) {
				t.Errorf("first record %q %q, want %q starting %q", run.first.ID, run.first.Text(), tt.firstID, tt.firstPromptStart)
			}
		})
		t.Run(tt.bench+" drops RouteLLM's contaminated prompts", func(t *testing.T) {
			run := importReal(t, RouteLLMOptions{Bench: tt.bench, Dir: dir, ExcludeContaminated: filepath.Join(dir, "contaminated", tt.contaminated)})
			if run.recs != tt.withoutContam || run.stats.Contaminated != tt.droppedContam {
				t.Errorf("%d records, %d dropped; want %d and %d", run.recs, run.stats.Contaminated, tt.withoutContam, tt.droppedContam)
			}
			if run.stats.ContaminatedFound != run.stats.ContaminatedListed {
				t.Errorf("found %d of %d listed prompts, want all", run.stats.ContaminatedFound, run.stats.ContaminatedListed)
			}
		})
	}
	t.Run("gsm8k keeps both responses", func(t *testing.T) {
		run := importReal(t, RouteLLMOptions{Bench: BenchGSM8K, Dir: dir}, "gsm8k/0")
		r := run.byID["gsm8k/0"]
		if got := r.Outcomes[weak].Response; !strings.HasPrefix(got, " Janet starts with 16 eggs per day.") || !strings.HasSuffix(got, "#### 18") {
			t.Errorf("weak response %q, want Mixtral's answer ending in #### 18", got)
		}
		if got := r.Outcomes[strong].Response; !strings.HasPrefix(got, "Janet uses 3 eggs for breakfast") {
			t.Errorf("strong response %q, want GPT-4's answer", got)
		}
	})
	t.Run("an mt-bench turn 2 carries both user turns and each model's own answer", func(t *testing.T) {
		run := importReal(t, RouteLLMOptions{Bench: BenchMTBench, Dir: dir}, "mt-bench/81/2")
		r := run.byID["mt-bench/81/2"]
		if len(r.Messages) != 2 || r.Messages[1].Content != "Rewrite your previous response. Start every sentence with the letter A." || r.Prompt != "" {
			t.Fatalf("record %+v, want two user messages ending with the rewrite request", r)
		}
		if r.Meta["turn"] != "2" || r.Meta["category"] != "writing" {
			t.Errorf("meta %v, want turn 2, category writing", r.Meta)
		}
		if got := r.Outcomes[strong].Response; !strings.HasPrefix(got, "Aloha, adventurous souls!") {
			t.Errorf("strong turn-2 response %q, want GPT-4's rewrite", got)
		}
	})
}

func TestWideCSVOnArenaBench(t *testing.T) {
	file := filepath.Join(sharedDatasets(t), "arena-bench-v1", "scores_wide.csv")
	var n, outcomes int
	var first datasets.Record
	st, err := WideCSV(WideCSVOptions{File: file, PromptCol: "prompt", IDCol: "question_id", ScoreScale: 10}, func(r datasets.Record) error {
		if err := r.Validate(datasets.ValidateOptions{}); err != nil {
			t.Errorf("record %q does not validate: %v", r.ID, err)
		}
		if n == 0 {
			first = r
		}
		n++
		outcomes += len(r.Outcomes)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// README: 300 prompts x 11 models with 27 empty cells; the file also has
	// two -1.0 grades (claude-1, rows 180 and 287).
	if n != 300 || len(st.Outcomes) != 11 || st.Empty != 27 || st.NoGrade["claude-1"] != 2 || outcomes != 300*11-27-2 {
		t.Errorf("%d records, %d models, %d empty, %v no grade, %d outcomes; want 300, 11, 27, claude-1: 2, %d", n, len(st.Outcomes), st.Empty, st.NoGrade, outcomes, 300*11-27-2)
	}
	if first.ID != "66c00ddde3dc4128a14d6afd5e899342" || first.Meta["category"] != "arena-bench-v1" {
		t.Errorf("first record %q %v, want 66c00ddde3dc4128a14d6afd5e899342 in category arena-bench-v1", first.ID, first.Meta)
	}
	// Row 0: gpt-4-0314 graded 10, claude-1 graded 1 (file values / 10).
	if g, c := *first.Outcomes["gpt-4-0314"].Score, *first.Outcomes["claude-1"].Score; g != 1 || c != 0.1 {
		t.Errorf("first record scores gpt-4-0314 %v, claude-1 %v; want 1 and 0.1", g, c)
	}
}

// TestRouterDCOnSharedData imports every file of routerdc-7models. The
// counts and MetaMath-Mistral-7B's score sums were computed from the same
// files with Python's json module; the files hold 18,928 elements in all
// (the shared README's 17,928 is a typo).
func TestRouterDCOnSharedData(t *testing.T) {
	dir := filepath.Join(sharedDatasets(t), "routerdc-7models")
	const metamath = "meta-math/MetaMath-Mistral-7B"
	tests := []struct {
		file        string
		n           int
		metamathSum float64
		firstPrompt string
	}{
		{"MATH_prealgebra.json", 871, 341, "John and Gary are playing a game."},
		{"arc_easy_test.json", 713, 550.5245095983241, "Question:Evan is performing an investigation."},
		{"arc_easy_train.json", 1663, 1242.759803410182, "Question:When a cup of water at room temperature"},
		{"ceval.json", 1346, 414.3076903191873, "使用位填充方法"},
		{"cmmlu_test.json", 3475, 1072.9477091300585, "1991年我国加入"},
		{"cmmlu_train.json", 2000, 610.2225020201471, "运行中变压器温度最高的部分是"},
		{"gsm8k-test.json", 1319, 918.4, "Janet’s ducks lay 16 eggs per day."},
		{"gsm8k-train.json", 1000, 824.1, "Natalia sold clips to 48 of her friends in April,"},
		{"humaneval_test.json", 49, 14.6, "\nFIX = \"\"\"\nAdd more test cases."},
		{"humaneval_train.json", 115, 38.4, "\ndef generate_integers(a, b):"},
		{"javascript.json", 164, 52.2, "/* Check if in given list of numbers, are any two"},
		{"mmlu_test.json", 4213, 2158.6290261169206, "The field of psychology arose out of which of the"},
		{"mmlu_train.json", 2000, 1027.0483228536016, "Mast Co. converted from the FIFO method"},
	}
	total := 0
	for _, tt := range tests {
		t.Run(tt.file+" imports whole, with seven models per record", func(t *testing.T) {
			stem := strings.TrimSuffix(tt.file, ".json")
			var sum float64
			var first datasets.Record
			recs, st, err := collect(t, func(fn func(datasets.Record) error) (Stats, error) {
				return RouterDC(RouterDCOptions{File: filepath.Join(dir, tt.file)}, func(r datasets.Record) error {
					if len(r.Outcomes) != 7 || r.Meta["source"] != stem || len(r.Meta) != 1 {
						t.Errorf("record %q has %d outcomes and meta %v, want 7 and only source %s", r.ID, len(r.Outcomes), r.Meta, stem)
					}
					if o, ok := r.Outcomes[metamath]; ok {
						sum += *o.Score
					}
					return fn(r)
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.n || st.Records != tt.n || st.Outcomes[metamath] != tt.n {
				t.Errorf("%d records (stats %d, %s %d), want %d", len(recs), st.Records, metamath, st.Outcomes[metamath], tt.n)
			}
			total += len(recs)
			// Sums of float64 scores in file order, as Python adds them;
			// 1e-9 absorbs a different rounding of the decimal literals.
			if math.Abs(sum-tt.metamathSum) > 1e-9 {
				t.Errorf("%s scores sum to %v, want %v", metamath, sum, tt.metamathSum)
			}
			if len(recs) == 0 {
				t.Fatal("no records")
			}
			first = recs[0]
			if first.ID != stem+"/0" || !strings.HasPrefix(first.Prompt, tt.firstPrompt) {
				t.Errorf("first record %q %q, want %s/0 starting %q", first.ID, first.Prompt, stem, tt.firstPrompt)
			}
			if last := recs[len(recs)-1].ID; last != stem+"/"+strconv.Itoa(tt.n-1) {
				t.Errorf("last id %q, want %s/%d", last, stem, tt.n-1)
			}
		})
	}
	if !t.Failed() && total != 18928 {
		t.Errorf("%d records in all, want 18928", total)
	}
}
