package importers

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/gunzip"
	"github.com/triage-router/triage/internal/pathonce"
	"github.com/triage-router/triage/internal/plural"
)

// NoGrade is the grade a judge leaves when it could not parse a rating
// (FastChat's MT-Bench judge, arena-hard-auto). Such a cell gives no outcome.
const NoGrade = -1

// Stats counts what an import produced.
type Stats struct {
	// Records is the number of records passed to the callback.
	Records int
	// Outcomes counts, per model, the records carrying an outcome for it.
	Outcomes map[string]int
	// Empty counts cells with no value, which give no outcome.
	Empty int
	// NA counts cells marked as having no value (NA, NaN, null, None,
	// N/A: what R, pandas and SQL exports write), which give no outcome.
	NA int
	// NoGrade counts, per model, grades of -1 skipped (see NoGrade).
	NoGrade map[string]int
	// Contaminated is the number of records dropped as contaminated.
	Contaminated int
	// ContaminatedListed is the number of prompts in the contamination
	// file, and ContaminatedFound how many of them the import met. A file
	// for another benchmark finds none.
	ContaminatedListed, ContaminatedFound int
	// Skipped is the number of malformed rows, lines or elements skipped
	// (with BadRows.SkipBad).
	Skipped int
}

// BadRows says what an import does with a malformed row of a CSV, line of
// a JSON Lines file or element of a RouterDC file. The zero value stops
// the import at the first, naming it. What is wrong with a whole file (its
// header, its layout, a read or gzip error, a JSON syntax error a decoder
// cannot resume after) stops it either way, as does a bad line of a
// contamination list: skipped, its prompt would be imported.
type BadRows struct {
	// SkipBad skips a malformed row instead of stopping, and counts it in
	// Stats.Skipped, as the log readers' --skip-bad does: one bad cell of
	// a published table stopped the whole import.
	SkipBad bool
	// OnSkip, with SkipBad, is called with the error of each row skipped
	// (the one that would have stopped the import), in file order.
	OnSkip func(error)
}

// skip returns err when bad rows stop the import; else it counts the row
// as skipped, tells OnSkip and returns nil.
func (b BadRows) skip(err error, st *Stats) error {
	if !b.SkipBad {
		return err
	}
	st.Skipped++
	if b.OnSkip != nil {
		b.OnSkip(err)
	}
	return nil
}

func newStats() Stats {
	return Stats{Outcomes: map[string]int{}, NoGrade: map[string]int{}}
}

// String is a one-line summary for people.
func (s Stats) String() string {
	var b strings.Builder
	b.WriteString(plural.Count(s.Records, "record"))
	models := sortedKeys(s.Outcomes)
	if len(models) > 0 {
		b.WriteString("; outcomes:")
		for i, m := range models {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %d", m, s.Outcomes[m])
		}
	}
	if s.Empty > 0 {
		fmt.Fprintf(&b, "; %s skipped", plural.Count(s.Empty, "empty cell"))
	}
	if s.NA > 0 {
		fmt.Fprintf(&b, "; %s skipped", plural.Count(s.NA, "NA cell"))
	}
	if n := sumCounts(s.NoGrade); n > 0 {
		fmt.Fprintf(&b, "; %s of -1 (judge could not grade) skipped", plural.Count(n, "grade"))
	}
	if s.ContaminatedListed > 0 {
		fmt.Fprintf(&b, "; dropped %s (%d of %s found)", plural.Count(s.Contaminated, "contaminated record"), s.ContaminatedFound, plural.Count(s.ContaminatedListed, "listed prompt"))
		if s.ContaminatedFound == 0 {
			// RouteLLM ships one list per bench: another bench's list
			// matches nothing, and drops nothing, without an error.
			b.WriteString(": none of the listed prompts is in this bench; is it the list for another bench (contaminated/<bench>.jsonl)?")
		}
	}
	if s.Skipped > 0 {
		fmt.Fprintf(&b, "; skipped %s (--skip-bad)", plural.Count(s.Skipped, "malformed record"))
	}
	return b.String()
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// WriteTo returns a callback that writes each record to w.
func WriteTo(w *datasets.Writer) func(datasets.Record) error {
	return func(rec datasets.Record) error { return w.Write(&rec) }
}

// openInput opens an importer's input: in when it is not nil (standard
// input), else the file at path. A gzip stream, told by its first two
// bytes whatever its name, as the log readers tell it, is decompressed as
// it is read: 'gzip -dc f.csv.gz | ...' is then not needed, and neither
// is knowing which a pipe carries. Closing closes the file (never in).
func openInput(path string, in io.Reader) (*bufio.Reader, io.Closer, error) {
	var c io.Closer = io.NopCloser(nil)
	if in == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		in, c = f, f
	}
	br := bufio.NewReaderSize(in, 64<<10)
	// Concatenated members (cat a.gz b.gz) read as one stream, and zero
	// padding after the last is ignored, as gzip -dc reads them.
	zr, err := gunzip.Sniff(br)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%s starts like gzip but is not: %w", path, err)
	}
	if zr != nil {
		br = bufio.NewReaderSize(gzipReader{zr}, 64<<10)
	}
	return br, c, nil
}

// gzipReader says what a damaged or truncated gzip stream's errors mean:
// alone, a cut stream read as "unexpected EOF".
type gzipReader struct{ zr *gunzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("the gzip stream is damaged or cut short: %w", err)
	}
	return n, err
}

// csvTable reads a CSV file with a header row, naming the file, line and
// 0-based data row in its errors.
type csvTable struct {
	name   string
	f      io.Closer
	r      *csv.Reader
	header []string
	cols   map[string]int
	row    int // data row index of the last record read; -1 before the first
	// bad says whether a row the CSV reader refuses stops the import; st
	// counts those skipped.
	bad BadRows
	st  *Stats
}

// openCSV opens the CSV file at path, or reads in when it is not nil
// (path then names it). A row the CSV reader refuses (a field count
// unlike the header's, a stray quote, a NUL byte) stops the reading unless
// bad skips it; the header always does.
func openCSV(path string, in io.Reader, comma rune, bad BadRows, st *Stats) (*csvTable, error) {
	br, f, err := openInput(path, in)
	if err != nil {
		return nil, fmt.Errorf("open csv: %w", err)
	}
	// A byte-order mark from a spreadsheet is skipped before the CSV
	// reader sees it: left in, it hid the first column's name and, before
	// a quoted first field, made the header a "bare quote" error.
	datasets.SkipBOM(br)
	r := csv.NewReader(br)
	if comma != 0 {
		r.Comma = comma
	}
	// Every row must have as many fields as the header; quotes are strict so
	// a broken file fails at the line where it breaks rather than merging
	// rows. Records are reused (the field strings are not).
	r.FieldsPerRecord = 0
	r.LazyQuotes = false
	r.ReuseRecord = true
	t := &csvTable{name: path, f: f, r: r, row: -1, bad: bad, st: st}
	header, err := r.Read()
	if err == io.EOF {
		f.Close()
		return nil, fmt.Errorf("%s: the file is empty; want a header row", path)
	}
	if err != nil {
		f.Close()
		return nil, t.csvErr(err)
	}
	if err := t.nulField(header, nil); err != nil {
		f.Close()
		return nil, err
	}
	t.header = append([]string(nil), header...)
	t.cols = make(map[string]int, len(t.header))
	for i, h := range t.header {
		if j, dup := t.cols[h]; dup {
			f.Close()
			return nil, fmt.Errorf("%s: column %q appears twice in the header (columns %d and %d); column names must be unique", path, h, j+1, i+1)
		}
		t.cols[h] = i
	}
	return t, nil
}

func (t *csvTable) Close() error { return t.f.Close() }

// next returns the next data row (valid until the following call), or io.EOF.
func (t *csvTable) next() ([]string, error) {
	for {
		rec, err := t.r.Read()
		if err == io.EOF {
			return nil, io.EOF
		}
		var pe *csv.ParseError
		if err != nil && !errors.As(err, &pe) {
			return nil, t.csvErr(err) // a read error: no row to skip
		}
		if err != nil {
			err = t.csvErr(err)
		} else {
			err = t.nulField(rec, t.header)
		}
		// A row skipped keeps its index, so the default ids of the rows
		// after it are those the file gives them once it is mended.
		t.row++
		if err == nil {
			return rec, nil
		}
		if err := t.bad.skip(err, t.st); err != nil {
			return nil, err
		}
	}
}

// nulField refuses a row with a NUL byte in a field. Text never holds
// one: a block of zeros (what a crash or a bad copy leaves) inside a
// quoted field was read as part of it, with the rows it covered, and the
// import succeeded with those rows missing. A UTF-16 file is all NULs.
func (t *csvTable) nulField(row, header []string) error {
	for i, field := range row {
		at := strings.IndexByte(field, 0)
		if at < 0 {
			continue
		}
		line, _ := t.r.FieldPos(i)
		line += strings.Count(field[:at], "\n")
		where := fmt.Sprintf("field %d of the header", i+1)
		if header != nil {
			where = fmt.Sprintf("column %q", header[i])
		}
		return fmt.Errorf("%s:%d: %s holds a NUL byte (0x00), which a text CSV never does: the file is damaged (a block of zeros, as a crash or a failed copy leaves) or is not UTF-8 text (UTF-16: save it as UTF-8)", t.name, line, where)
	}
	return nil
}

// line is the line on which the last row read starts.
func (t *csvTable) line() int {
	line, _ := t.r.FieldPos(0)
	return line
}

// at prefixes a message with the file and line of the last row read: where
// the user looks in an editor. (The 0-based row it once named beside the
// line read as a second, contradicting position.)
func (t *csvTable) at(format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", t.name, t.line(), fmt.Sprintf(format, args...))
}

func (t *csvTable) csvErr(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("read %s: %w", t.name, pathonce.Inner(t.name, err))
	}
	switch {
	case errors.Is(pe.Err, csv.ErrFieldCount):
		return fmt.Errorf("%s:%d: the row has a different number of fields than the header's %d; check for a missing or extra comma", t.name, pe.StartLine, len(t.header))
	case errors.Is(pe.Err, csv.ErrBareQuote), errors.Is(pe.Err, csv.ErrQuote):
		// pe.Column counts bytes, not fields: "column 9" of a 4-field row
		// read as a field number.
		return fmt.Errorf("%s:%d: at byte %d of the line: %v; a field with quotes must be quoted whole, with inner quotes doubled (\"\"\"Hello\"\" she said\")", t.name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s:%d: %v", t.name, pe.Line, pe.Err)
}

// columnList is the header for "the header has: ..." hints.
func columnList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = strconv.Quote(c)
	}
	return strings.Join(q, ", ")
}

// baseName is a file's name without its directory and extension, and
// without a ".gz" before it: x.csv.gz is x, as x.csv is.
func baseName(path string) string {
	b := strings.TrimSuffix(filepath.Base(path), ".gz")
	return strings.TrimSuffix(b, filepath.Ext(b))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
