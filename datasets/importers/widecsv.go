package importers

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/triage-router/triage/datasets"
)

// RouterBench's per-model column suffixes.
const (
	costSuffix     = "|total_cost"
	responseSuffix = "|model_response"
)

// WideCSVOptions describes a CSV with one row per prompt and one score
// column per model.
type WideCSVOptions struct {
	// File is the CSV file. It may be gzip-compressed (told by its first
	// bytes).
	File string
	// Input, when not nil, is read instead of File (standard input); File
	// then only names it, in errors and default ids.
	Input io.Reader
	// PromptCol names the column holding the prompt text. Required.
	PromptCol string
	// IDCol names the column holding a unique record id. Empty means ids
	// "<file name without extension>/<row>", rows counted from 0 after the
	// header.
	IDCol string
	// ScoreScale divides every score, e.g. 10 for 1-10 judge grades. 0
	// means 1. Scores must lie in [0,1] after scaling.
	ScoreScale float64
	// Delimiter separates the fields; 0 means a comma. '\t' reads a
	// tab-separated file.
	Delimiter rune
	// Models lists the score columns to import. Empty means every column
	// except the prompt, the id, the known metadata and id-like columns (see
	// WideCSV) and "<model>|..." columns.
	Models []string
	// BadRows skips malformed rows (a cell that is not a score, an empty
	// prompt or id, an id repeated) instead of stopping.
	BadRows
}

// isMetaColumn says whether a column is categorical context that goes into
// Record.Meta (arena's category, RouterBench's eval_name, ...).
func isMetaColumn(h string) bool {
	switch h {
	case "category", "subject", "source", "eval_name", "tenant", "language", "task", "dataset":
		return true
	}
	return false
}

// isIgnoredColumn says whether a column is neither a model nor metadata:
// ids, pandas' index column, reference answers, and RouterBench's
// oracle_model_to_route_to (derived from the outcomes: as a feature it would
// leak the label).
func isIgnoredColumn(h string) bool {
	switch strings.ToLower(h) {
	case "", "id", "question_id", "sample_id", "index", "unnamed: 0", "oracle_model_to_route_to", "reference", "answer":
		return true
	}
	return false
}

// wideModel is a model's columns; cost and response are -1 when absent.
type wideModel struct {
	name                string
	col, cost, response int
}

// WideCSV streams one record per row of a wide CSV to fn. Each model column
// gives outcomes[model].score = value / ScoreScale; an empty cell gives no
// outcome, as does a grade of exactly -1 (NoGrade, counted in Stats).
// RouterBench's "<model>|total_cost" and "<model>|model_response" columns
// fill cost_usd and response when present. The columns category, subject,
// source, eval_name, tenant, language, task and dataset go into meta; id,
// question_id, sample_id, index, "Unnamed: 0", reference, answer,
// oracle_model_to_route_to and unnamed columns are ignored.
func WideCSV(opts WideCSVOptions, fn func(datasets.Record) error) (Stats, error) {
	st := newStats()
	scale := opts.ScoreScale
	if scale == 0 {
		scale = 1
	}
	if scale < 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		return st, fmt.Errorf("score scale %v is not a positive number; want e.g. 10 for grades on 1-10", opts.ScoreScale)
	}
	if opts.PromptCol == "" {
		return st, errors.New("no prompt column given; name the column holding the prompt text with --prompt-col")
	}
	if d := opts.Delimiter; d == '"' || d == '\r' || d == '\n' || d == utf8.RuneError || !utf8.ValidRune(d) {
		return st, fmt.Errorf("delimiter %q cannot separate CSV fields; want a comma, a tab, a semicolon or another single character", d)
	}
	t, err := openCSV(opts.File, opts.Input, opts.Delimiter, opts.BadRows, &st)
	if err != nil {
		return st, err
	}
	defer t.Close()

	promptCol, ok := t.cols[opts.PromptCol]
	if !ok {
		return st, fmt.Errorf("%s: column %q (--prompt-col) is not in the header; the header has %s%s", t.name, opts.PromptCol, columnList(t.header), delimiterHint(t.header, opts.Delimiter))
	}
	idCol := -1
	if opts.IDCol != "" {
		if idCol, ok = t.cols[opts.IDCol]; !ok {
			return st, fmt.Errorf("%s: column %q (--id-col) is not in the header; the header has %s%s", t.name, opts.IDCol, columnList(t.header), delimiterHint(t.header, opts.Delimiter))
		}
	}
	var metaCols []int
	var candidates []string // columns that may be models
	for i, h := range t.header {
		switch {
		case i == promptCol || i == idCol:
		case isMetaColumn(h):
			metaCols = append(metaCols, i)
		case isIgnoredColumn(h) || strings.Contains(h, "|"):
		default:
			candidates = append(candidates, h)
		}
	}
	names := opts.Models
	if len(names) == 0 {
		names = candidates
	}
	if len(names) == 0 {
		return st, fmt.Errorf("%s: no model columns; the header has %s; want one score column per model", t.name, columnList(t.header))
	}
	models := make([]wideModel, 0, len(names))
	seenModel := map[string]bool{}
	for _, name := range names {
		col, ok := t.cols[name]
		if !ok || col == promptCol || col == idCol || strings.Contains(name, "|") {
			return st, fmt.Errorf("%s: model %q (--models) is not a score column; the model columns are %s", t.name, name, columnList(candidates))
		}
		if seenModel[name] {
			return st, fmt.Errorf("model %q is listed twice in --models", name)
		}
		seenModel[name] = true
		m := wideModel{name: name, col: col, cost: -1, response: -1}
		if c, ok := t.cols[name+costSuffix]; ok {
			m.cost = c
		}
		if c, ok := t.cols[name+responseSuffix]; ok {
			m.response = c
		}
		models = append(models, m)
		st.Outcomes[name] = 0
	}

	base := baseName(opts.File)
	ids := map[string]int{}
	// rowSt counts the cells of one row that give no outcome; they join
	// st only when the row is imported, so the summary does not count
	// the empty cells of a row --skip-bad skipped.
	rowSt := Stats{NoGrade: map[string]int{}}
	// record is the record of a row, or the error that makes the row
	// malformed.
	record := func(row []string) (datasets.Record, error) {
		rowSt.Empty, rowSt.NA = 0, 0
		clear(rowSt.NoGrade)
		prompt := row[promptCol]
		if strings.TrimSpace(prompt) == "" {
			return datasets.Record{}, t.at("column %q (the prompt) is empty; every record needs a prompt", opts.PromptCol)
		}
		id := base + "/" + strconv.Itoa(t.row)
		if idCol >= 0 {
			if id = strings.TrimSpace(row[idCol]); id == "" {
				return datasets.Record{}, t.at("column %q (the id) is empty; every record needs an id", opts.IDCol)
			}
		}
		if first, dup := ids[id]; dup {
			return datasets.Record{}, t.at("id %q repeats the id on line %d; ids must be unique", id, first)
		}
		rec := datasets.Record{ID: id, Prompt: prompt, Outcomes: make(map[string]datasets.Outcome, len(models))}
		for _, c := range metaCols {
			if v := strings.TrimSpace(row[c]); v != "" {
				if rec.Meta == nil {
					rec.Meta = datasets.Meta{}
				}
				rec.Meta[t.header[c]] = v
			}
		}
		for _, m := range models {
			o, ok, err := wideOutcome(t, row, m, scale, opts.ScoreScale, &rowSt)
			if err != nil {
				return datasets.Record{}, err
			}
			if ok {
				rec.Outcomes[m.name] = o
			}
		}
		return rec, nil
	}
	for {
		row, err := t.next()
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		rec, err := record(row)
		if err != nil {
			if err := opts.skip(err, &st); err != nil {
				return st, err
			}
			continue
		}
		ids[rec.ID] = t.line() // a line, not a row: where the user looks in an editor
		st.Empty += rowSt.Empty
		st.NA += rowSt.NA
		for m, n := range rowSt.NoGrade {
			st.NoGrade[m] += n
		}
		if err := emit(rec, &st, fn); err != nil {
			return st, err
		}
	}
}

// wideOutcome reads one model's cells of a row; ok is false when the model
// has no outcome in the row.
func wideOutcome(t *csvTable, row []string, m wideModel, scale, given float64, st *Stats) (datasets.Outcome, bool, error) {
	cell := strings.TrimSpace(row[m.col])
	if cell == "" {
		st.Empty++
		return datasets.Outcome{}, false, nil
	}
	if isNA(cell) {
		st.NA++
		return datasets.Outcome{}, false, nil
	}
	v, err := parseNumber(cell)
	// A correctness column is often written as booleans (pandas writes
	// True/False): true is a correct answer, score 1.
	if b, berr := strconv.ParseBool(cell); err != nil && berr == nil && len(cell) > 1 {
		v, err = 0, nil
		if b {
			v = scale // 1 once divided by --score-scale
		}
	}
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return datasets.Outcome{}, false, t.at("column %q is %q, not a score (a number, true or false, or empty or NA for none); if %q is not a model, name the model columns with --models", m.name, cell, m.name)
	}
	if v == NoGrade {
		st.NoGrade[m.name]++
		return datasets.Outcome{}, false, nil
	}
	s := v / scale
	if s < 0 || s > 1 {
		return datasets.Outcome{}, false, t.at("column %q is %s%s, want a score in [0,1]; %s", m.name, cell, afterScale(s, given), scaleHint(v))
	}
	o := datasets.Outcome{Score: datasets.Float(s)}
	if m.cost >= 0 {
		if c := strings.TrimSpace(row[m.cost]); c != "" {
			cost, err := parseNumber(c)
			if err != nil || cost < 0 || math.IsNaN(cost) || math.IsInf(cost, 0) {
				return datasets.Outcome{}, false, t.at("column %q is %q, want a non-negative cost in US dollars", t.header[m.cost], c)
			}
			o.CostUSD = datasets.Float(cost)
		}
	}
	if m.response >= 0 {
		o.Response = row[m.response]
	}
	return o, true, nil
}

// parseNumber reads a cell as a decimal number. strconv.ParseFloat also
// reads Go's number syntax, in which "0_1" is 1 and "0x1p-1" is 0.5: a
// cell so written became that score silently, so underscores and hex
// are refused.
func parseNumber(cell string) (float64, error) {
	if strings.ContainsAny(cell, "_xX") {
		return 0, fmt.Errorf("%q is not a decimal number", cell)
	}
	return strconv.ParseFloat(cell, 64)
}

// isNA reports whether a cell is a missing-value mark rather than a score.
func isNA(cell string) bool {
	for _, na := range []string{"NA", "N/A", "NaN", "null", "None"} {
		if strings.EqualFold(cell, na) {
			return true
		}
	}
	return false
}

func afterScale(s, given float64) string {
	if given == 0 || given == 1 {
		return ""
	}
	return fmt.Sprintf(" (%v after --score-scale %v)", s, given)
}

// scaleHint suggests a --score-scale for a raw value out of range.
func scaleHint(v float64) string {
	switch {
	case v < 0:
		return "scores must not be negative (only -1, a judge's could-not-grade mark, is skipped)"
	case v <= 10:
		return "grades on 1-10 need --score-scale 10"
	case v <= 100:
		return "percentages need --score-scale 100"
	}
	return "divide the scores into [0,1] with --score-scale"
}

// delimiterHint suggests the delimiter a one-column header seems to be
// split by: a tab-separated file read as CSV has one column named
// "id\tprompt\t...".
func delimiterHint(header []string, used rune) string {
	if len(header) != 1 {
		return ""
	}
	for _, c := range []struct {
		r    rune
		flag string
	}{{'\t', "tab"}, {';', ";"}, {'|', "|"}, {',', ","}} {
		if c.r != used && strings.ContainsRune(header[0], c.r) {
			return fmt.Sprintf(" (one column, holding %q: is the file separated by %q? pass --delimiter %s)", c.r, c.r, c.flag)
		}
	}
	return ""
}
