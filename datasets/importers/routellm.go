package importers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/pathonce"
)

// RouteLLM benchmarks.
const (
	BenchMMLU    = "mmlu"
	BenchGSM8K   = "gsm8k"
	BenchMTBench = "mt-bench"
)

// RouteLLMOptions selects a RouteLLM benchmark to import.
type RouteLLMOptions struct {
	// Bench is BenchMMLU, BenchGSM8K or BenchMTBench.
	Bench string
	// Dir is RouteLLM's evals folder: the one holding mmlu/,
	// gsm8k_responses.csv and mt_bench/.
	Dir string
	// ExcludeContaminated is a RouteLLM contamination file (JSONL with an
	// "eval_prompt" per line); records whose prompt it lists are dropped.
	// Empty keeps every record. It may be gzip-compressed.
	ExcludeContaminated string
	// Contaminated, when not nil, is read instead of the file
	// ExcludeContaminated names (standard input), which then only names
	// it in errors.
	Contaminated io.Reader
	// BadRows skips malformed rows of the response tables (an empty
	// prompt, a cell neither True nor False) and lines of MT-Bench's files
	// instead of stopping. The contamination list stays strict.
	BadRows
}

// RouteLLM streams the records of one RouteLLM benchmark to fn, in file
// order. Ids are "mmlu/<subject>/<row>", "gsm8k/<row>" and
// "mt-bench/<question_id>/<turn>", rows counted from 0 after the header;
// meta.source is the benchmark. Model names are the files' own.
func RouteLLM(opts RouteLLMOptions, fn func(datasets.Record) error) (Stats, error) {
	st := newStats()
	var contaminated map[string]bool
	if opts.ExcludeContaminated != "" {
		var err error
		if contaminated, err = readContaminated(opts.ExcludeContaminated, opts.Contaminated); err != nil {
			return st, err
		}
		st.ContaminatedListed = len(contaminated)
	}
	if opts.Dir == "" {
		return st, errors.New("no RouteLLM folder given; want the folder holding mmlu/, gsm8k_responses.csv and mt_bench/")
	}
	found := map[string]bool{}
	// The likeliest mistake is --dir one level off (the mmlu/ folder
	// itself, or the repository above evals/): say where to point it
	// rather than only that a file is missing.
	entry := map[string]string{BenchGSM8K: "gsm8k_responses.csv", BenchMTBench: "mt_bench"}[opts.Bench]
	if _, err := os.Stat(filepath.Join(opts.Dir, entry)); entry != "" && errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("no %s in %s; point --dir at RouteLLM's evals folder (the one holding mmlu/, gsm8k_responses.csv and mt_bench/)", entry, opts.Dir)
	}
	var err error
	switch opts.Bench {
	case BenchMMLU:
		err = importMMLU(opts.Dir, contaminated, found, opts.BadRows, &st, fn)
	case BenchGSM8K:
		err = importRouteLLMCSV(filepath.Join(opts.Dir, "gsm8k_responses.csv"), "gsm8k/", datasets.Meta{"source": BenchGSM8K}, contaminated, found, opts.BadRows, &st, fn)
	case BenchMTBench:
		err = importMTBench(filepath.Join(opts.Dir, "mt_bench"), contaminated, found, opts.BadRows, &st, fn)
	default:
		err = fmt.Errorf("benchmark %q is not known; want %q, %q or %q", opts.Bench, BenchMMLU, BenchGSM8K, BenchMTBench)
	}
	st.ContaminatedFound = len(found)
	return st, err
}

func importMMLU(dir string, contaminated, found map[string]bool, bad BadRows, st *Stats, fn func(datasets.Record) error) error {
	files, err := filepath.Glob(filepath.Join(dir, "mmlu", "mmlu_*.csv"))
	if err != nil {
		return fmt.Errorf("list mmlu files: %w", err)
	}
	if len(files) == 0 {
		// Glob reads a folder it cannot open as an empty one: said as "no
		// files", a folder without read permission sent the user to look
		// for files that are there.
		sub := filepath.Join(dir, "mmlu")
		if _, err := os.ReadDir(sub); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list mmlu files: read folder %s: %w", sub, pathonce.Inner(sub, err))
		}
		return fmt.Errorf("no mmlu/mmlu_<subject>.csv files in %s; point --dir at RouteLLM's evals folder (the one holding mmlu/, gsm8k_responses.csv and mt_bench/)", dir)
	}
	sort.Strings(files)
	for _, path := range files {
		subject := strings.TrimPrefix(baseName(path), "mmlu_")
		meta := datasets.Meta{"source": BenchMMLU, "subject": subject}
		if err := importRouteLLMCSV(path, "mmlu/"+subject+"/", meta, contaminated, found, bad, st, fn); err != nil {
			return err
		}
	}
	return nil
}

// importRouteLLMCSV reads a RouteLLM response table: a prompt column, one
// True/False column per model and optionally "<model>_response" columns.
func importRouteLLMCSV(path, idPrefix string, meta datasets.Meta, contaminated, found map[string]bool, bad BadRows, st *Stats, fn func(datasets.Record) error) error {
	t, err := openCSV(path, nil, 0, bad, st)
	if err != nil {
		return err
	}
	defer t.Close()
	promptCol, ok := t.cols["prompt"]
	if !ok {
		return fmt.Errorf("%s: no \"prompt\" column; the header has %s; is this a RouteLLM response file?", path, columnList(t.header))
	}
	type modelCol struct {
		name          string
		col, response int // response is -1 when absent
	}
	var models []modelCol
	for i, h := range t.header {
		// An unnamed column (pandas writes its index under an empty
		// header) or an id or index column is not a model: read as one,
		// its 0s and 1s became a model named "" in a log train refuses.
		if i == promptCol || strings.HasSuffix(h, "_response") || strings.TrimSpace(h) == "" || isIgnoredColumn(h) {
			continue
		}
		resp, ok := t.cols[h+"_response"]
		if !ok {
			resp = -1
		}
		models = append(models, modelCol{name: h, col: i, response: resp})
	}
	if len(models) == 0 {
		return fmt.Errorf("%s: no model columns besides \"prompt\"; want one True/False column per model", path)
	}
	// record is the record of a row, or the error that makes the row
	// malformed.
	// empty counts the empty cells of a row, which join st.Empty only
	// when the row is imported.
	var empty int
	record := func(row []string, prompt string) (datasets.Record, error) {
		empty = 0
		rec := datasets.Record{
			ID:       idPrefix + strconv.Itoa(t.row),
			Prompt:   prompt,
			Meta:     cloneMeta(meta),
			Outcomes: make(map[string]datasets.Outcome, len(models)),
		}
		for _, m := range models {
			cell := row[m.col]
			if cell == "" {
				empty++
				continue
			}
			ok, err := strconv.ParseBool(cell)
			if err != nil {
				return datasets.Record{}, t.at("column %q is %q, want True or False", m.name, cell)
			}
			o := datasets.Outcome{Score: datasets.Float(0)}
			if ok {
				o.Score = datasets.Float(1)
			}
			if m.response >= 0 {
				o.Response = row[m.response]
			}
			rec.Outcomes[m.name] = o
		}
		return rec, nil
	}
	for {
		row, err := t.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		prompt := row[promptCol]
		if strings.TrimSpace(prompt) == "" {
			if err := bad.skip(t.at("the prompt is empty"), st); err != nil {
				return err
			}
			continue
		}
		if contaminated[strings.TrimSpace(prompt)] {
			found[strings.TrimSpace(prompt)] = true
			st.Contaminated++
			continue
		}
		rec, err := record(row, prompt)
		if err != nil {
			if err := bad.skip(err, st); err != nil {
				return err
			}
			continue
		}
		st.Empty += empty
		if err := emit(rec, st, fn); err != nil {
			return err
		}
	}
}

func cloneMeta(m datasets.Meta) datasets.Meta {
	out := make(datasets.Meta, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// emit counts a record and hands it on.
func emit(rec datasets.Record, st *Stats, fn func(datasets.Record) error) error {
	for m := range rec.Outcomes {
		st.Outcomes[m]++
	}
	st.Records++
	return fn(rec)
}

// readContaminated reads RouteLLM's contamination list: one JSON object per
// line whose "eval_prompt" is a prompt of the evaluation set.
func readContaminated(path string, in io.Reader) (map[string]bool, error) {
	r, f, err := openInput(path, in)
	if err != nil {
		return nil, fmt.Errorf("open contamination list: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	err = eachJSONLine(r, path, func(line int, b []byte) error {
		var c struct {
			EvalPrompt *string `json:"eval_prompt"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("%s:%d: %v; want RouteLLM's contamination format, {\"eval_prompt\": \"...\"} per line", path, line, err)
		}
		if c.EvalPrompt == nil {
			return fmt.Errorf("%s:%d: eval_prompt is missing; want RouteLLM's contamination format, {\"eval_prompt\": \"...\"} per line", path, line)
		}
		out[strings.TrimSpace(*c.EvalPrompt)] = true
		return nil
	})
	if err == nil && len(out) == 0 {
		// Read as a list of none, it kept every record with no word: a
		// pipe whose writer failed (curl ... | --exclude-contaminated -)
		// published a log with the contaminated prompts in it.
		return nil, fmt.Errorf("%s lists no prompts; want RouteLLM's contamination format, {\"eval_prompt\": \"...\"} per line: is it the whole file?", path)
	}
	return out, err
}

// eachJSONLine calls fn with each non-blank line of r and its number.
func eachJSONLine(r io.Reader, name string, fn func(line int, b []byte) error) error {
	br := bufio.NewReader(r)
	datasets.SkipBOM(br)
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), datasets.MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(line, b); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s after line %d: %w", name, line, pathonce.Inner(name, err))
	}
	return nil
}
