package importers

import (
	"math"
	"path/filepath"
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
