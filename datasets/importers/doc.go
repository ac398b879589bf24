// Package importers converts published routing datasets into the project's
// log records (datasets.Record), streaming them to a callback so an import
// holds one row (or, for MT-Bench, the judgements file) in memory at a time.
//
// Three layouts are supported:
//
//   - RouteLLM's evaluation files (github.com/lm-sys/RouteLLM,
//     routellm/evals): MMLU (mmlu/mmlu_<subject>.csv), GSM8K
//     (gsm8k_responses.csv) and MT-Bench (mt_bench/question.jsonl and
//     judgements.jsonl), optionally dropping the prompts RouteLLM lists as
//     contaminated (contaminated/<bench>.jsonl).
//   - A wide CSV with one row per prompt and one score column per model, such
//     as arena-hard-auto grades pivoted by model, or RouterBench's table with
//     its "<model>|model_response" and "<model>|total_cost" columns.
//   - RouterDC's files (github.com/shuhao02/RouterDC, datasets/split2_model7):
//     a JSON array of {"question", "scores": {model: score in [0,1]}}, read
//     one element at a time. Ids are "<file name>/<index>"; meta.source is
//     the file name (left out with NoMeta), and RouterDC's cluster_id is
//     dropped (see RouterDC).
//
// Caveats, all deliberate:
//
//   - Scores: "True"/"False" become 1/0; judge grades on 1-10 become grade/10
//     (MT-Bench) or grade/ScoreScale (wide CSV). A grade of exactly -1 is the
//     mark FastChat and arena-hard-auto judges leave when they could not
//     parse a rating; it is skipped (no outcome for that model) and counted
//     in Stats.NoGrade rather than rejected.
//   - MT-Bench turn 2: every model answered turn 1 itself, so there is no
//     single assistant turn to put in the conversation. A turn-2 record
//     carries the two user turns as messages and no assistant turn; each
//     model's own turn-2 answer, recovered from the judge prompt, is kept in
//     its outcome's Response. Several judgements of one model for the same
//     question and turn are averaged (the published file has exactly one).
//   - Contamination is matched on the exact prompt text (surrounding
//     whitespace ignored). For MT-Bench the turn-1 prompt is matched and both
//     turns of the question are dropped, since turn 2 contains turn 1.
//
// The error messages name the file, line, row and column that is wrong and
// say what to do, in the words of the triage command line (--score-scale,
// --models), because that is where people meet them.
// A malformed row (line, element) stops an import at the first, unless
// BadRows.SkipBad skips it, counted in Stats.Skipped and passed to
// BadRows.OnSkip with the error it would have stopped with.
package importers
