package importers

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/plural"
)

// mtKey is one question turn.
type mtKey struct {
	question string
	turn     int
}

// mtGrades collects one model's judgements of a question turn.
type mtGrades struct {
	sum      float64
	n        int
	response string
}

// mtTurn is the judgements of one question turn, and the first line that
// mentions it (to name it if the question is unknown).
type mtTurn struct {
	line   int
	models map[string]*mtGrades
}

// importMTBench reads mt_bench/question.jsonl and judgements.jsonl. The
// judgements are held in memory (1.4 MB for the published 320); the
// questions are streamed.
func importMTBench(dir string, contaminated, found map[string]bool, bad BadRows, st *Stats, fn func(datasets.Record) error) error {
	jpath := filepath.Join(dir, "judgements.jsonl")
	turns, err := readJudgements(jpath, bad, st)
	if err != nil {
		return err
	}
	qpath := filepath.Join(dir, "question.jsonl")
	f, err := os.Open(qpath)
	if err != nil {
		return fmt.Errorf("open mt-bench questions: %w (want RouteLLM's mt_bench folder with question.jsonl and judgements.jsonl)", err)
	}
	defer f.Close()
	seen := map[string]int{}
	skippedQuestions := 0
	// question reads a line of question.jsonl, or says what makes it
	// malformed.
	question := func(line int, b []byte) (qid, category string, turns []string, err error) {
		var q struct {
			QuestionID json.RawMessage `json:"question_id"`
			Category   string          `json:"category"`
			Turns      []string        `json:"turns"`
		}
		if err := json.Unmarshal(b, &q); err != nil {
			return "", "", nil, fmt.Errorf("%s:%d: %v; want {\"question_id\": ..., \"category\": ..., \"turns\": [...]}", qpath, line, err)
		}
		qid, err = questionID(q.QuestionID)
		if err != nil {
			return "", "", nil, fmt.Errorf("%s:%d: question_id %v", qpath, line, err)
		}
		if first, dup := seen[qid]; dup {
			return "", "", nil, fmt.Errorf("%s:%d: question_id %s repeats line %d; ids must be unique", qpath, line, qid, first)
		}
		if len(q.Turns) == 0 {
			return "", "", nil, fmt.Errorf("%s:%d: question %s has no turns", qpath, line, qid)
		}
		for i, text := range q.Turns {
			if strings.TrimSpace(text) == "" {
				return "", "", nil, fmt.Errorf("%s:%d: question %s turn %d is empty", qpath, line, qid, i+1)
			}
		}
		return qid, q.Category, q.Turns, nil
	}
	err = eachJSONLine(f, qpath, func(line int, b []byte) error {
		qid, category, qturns, err := question(line, b)
		if err != nil {
			skippedQuestions++
			return bad.skip(err, st)
		}
		seen[qid] = line
		q := struct {
			Category string
			Turns    []string
		}{category, qturns}
		if c := strings.TrimSpace(q.Turns[0]); contaminated[c] {
			// Later turns contain the first, so the whole question goes.
			found[c] = true
			st.Contaminated += len(q.Turns)
			for i := range q.Turns {
				delete(turns, mtKey{qid, i + 1})
			}
			return nil
		}
		for i := range q.Turns {
			turn := i + 1
			rec := datasets.Record{
				ID:       fmt.Sprintf("mt-bench/%s/%d", qid, turn),
				Meta:     datasets.Meta{"source": BenchMTBench, "turn": strconv.Itoa(turn)},
				Outcomes: map[string]datasets.Outcome{},
			}
			if q.Category != "" {
				rec.Meta["category"] = q.Category
			}
			if turn == 1 {
				rec.Prompt = q.Turns[0]
			} else {
				// The user turns only: each model answered the earlier
				// turns itself, so no assistant turn is common to all.
				for _, u := range q.Turns[:turn] {
					rec.Messages = append(rec.Messages, datasets.Message{Role: "user", Content: u})
				}
			}
			k := mtKey{qid, turn}
			if jt := turns[k]; jt != nil {
				for model, g := range jt.models {
					rec.Outcomes[model] = datasets.Outcome{Score: datasets.Float(g.sum / float64(g.n) / 10), Response: g.response}
				}
			}
			delete(turns, k)
			if err := emit(rec, st, fn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(turns) > 0 && skippedQuestions > 0 && bad.SkipBad {
		// The questions skipped may be theirs: the judgements of each
		// turn left are skipped too, named by their first line, in order.
		keys := make([]mtKey, 0, len(turns))
		for k := range turns {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return turns[keys[i]].line < turns[keys[j]].line })
		for _, k := range keys {
			bad.skip(fmt.Errorf("%s:%d: judgement of question %s turn %d, which %s does not have (its line may be one skipped)", jpath, turns[k].line, k.question, k.turn, qpath), st)
		}
		return nil
	}
	if len(turns) > 0 {
		// Judgements of questions or turns that question.jsonl lacks mean
		// the two files do not belong together; name the first one.
		first := 0
		var k mtKey
		for key, jt := range turns {
			if first == 0 || jt.line < first {
				first, k = jt.line, key
			}
		}
		return fmt.Errorf("%s:%d: judgement of question %s turn %d, which %s does not have (%s in all); are both files from the same MT-Bench release?", jpath, first, k.question, k.turn, qpath, plural.Count(len(turns), "question turn"))
	}
	return nil
}

// readJudgements groups FastChat single-answer judgements by question turn
// and model. Several judgements of the same model and turn (e.g. by several
// judges) are averaged.
func readJudgements(path string, bad BadRows, st *Stats) (map[mtKey]*mtTurn, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open mt-bench judgements: %w (want RouteLLM's mt_bench folder with question.jsonl and judgements.jsonl)", err)
	}
	defer f.Close()
	out := map[mtKey]*mtTurn{}
	err = eachJSONLine(f, path, func(line int, b []byte) error {
		var j struct {
			QuestionID json.RawMessage `json:"question_id"`
			Model      string          `json:"model"`
			Score      *float64        `json:"score"`
			Turn       int             `json:"turn"`
			UserPrompt string          `json:"user_prompt"`
		}
		// malformed is the error that makes the line malformed, if any.
		malformed := func() (string, error) {
			if err := json.Unmarshal(b, &j); err != nil {
				return "", fmt.Errorf("%s:%d: %v; want FastChat judgements {\"question_id\", \"model\", \"score\", \"turn\", ...}", path, line, err)
			}
			qid, err := questionID(j.QuestionID)
			if err != nil {
				return "", fmt.Errorf("%s:%d: question_id %v", path, line, err)
			}
			switch {
			case j.Model == "":
				return "", fmt.Errorf("%s:%d: model is missing", path, line)
			case j.Turn < 1:
				return "", fmt.Errorf("%s:%d: turn is %d, want 1 or more", path, line, j.Turn)
			case j.Score == nil:
				return "", fmt.Errorf("%s:%d: score is missing", path, line)
			case *j.Score != NoGrade && (math.IsNaN(*j.Score) || *j.Score < 0 || *j.Score > 10):
				return "", fmt.Errorf("%s:%d: score is %v, want a judge grade in [0,10] (or -1 for none)", path, line, *j.Score)
			}
			return qid, nil
		}
		qid, err := malformed()
		if err != nil {
			return bad.skip(err, st)
		}
		if *j.Score == NoGrade {
			st.NoGrade[j.Model]++
			return nil
		}
		k := mtKey{qid, j.Turn}
		jt := out[k]
		if jt == nil {
			jt = &mtTurn{line: line, models: map[string]*mtGrades{}}
			out[k] = jt
		}
		g := jt.models[j.Model]
		if g == nil {
			g = &mtGrades{}
			jt.models[j.Model] = g
		}
		g.sum += *j.Score
		g.n++
		if g.response == "" {
			g.response = judgedAnswer(j.UserPrompt, j.Turn)
		}
		return nil
	})
	return out, err
}

// questionID accepts FastChat's integer ids and arena-hard's string ids.
func questionID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("is missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return "", fmt.Errorf("is empty")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("is %s, want a number or a string", raw)
}

// The markers of FastChat's judge prompts (single-v1, single-math-v1 and
// their -multi-turn variants) around the answer being judged.
const (
	answerStart = "[The Start of Assistant's Answer]\n"
	answerEnd   = "\n[The End of Assistant's Answer]"
	convStart   = "<|The Start of Assistant A's Conversation with User|>"
	convEnd     = "<|The End of Assistant A's Conversation with User|>"
	assistantA  = "### Assistant A:\n"
)

// judgedAnswer recovers the model's answer to the judged turn from the judge
// prompt, or "" when the prompt does not have the expected markers.
func judgedAnswer(prompt string, turn int) string {
	if turn == 1 {
		i := strings.Index(prompt, answerStart)
		j := strings.LastIndex(prompt, answerEnd)
		if i < 0 || j < i+len(answerStart) {
			return ""
		}
		return strings.TrimSpace(prompt[i+len(answerStart) : j])
	}
	i := strings.Index(prompt, convStart)
	j := strings.LastIndex(prompt, convEnd)
	if i < 0 || j < i {
		return ""
	}
	conv := prompt[i:j]
	k := strings.LastIndex(conv, assistantA)
	if k < 0 {
		return ""
	}
	return strings.TrimSpace(conv[k+len(assistantA):])
}
