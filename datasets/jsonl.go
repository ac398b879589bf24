package datasets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/triage-router/triage/internal/gunzip"
	"github.com/triage-router/triage/internal/pathonce"
)

// MaxLineBytes is the default longest line the reader accepts.
const MaxLineBytes = 16 << 20

// ReadOptions controls a Reader. The zero value is strict.
type ReadOptions struct {
	// SkipBad counts and skips lines that do not parse or validate instead
	// of returning an error.
	SkipBad bool
	// OnSkip, with SkipBad, is called with the error of each line skipped
	// (a *LineError naming the file and line), in file order, on the
	// goroutine that reads the records; a count alone leaves a user no
	// way to find the lines and fix what wrote them.
	OnSkip func(error)
	// AllowMissingScore accepts outcomes without a score.
	AllowMissingScore bool
	// MaxLineBytes caps one line; 0 means MaxLineBytes (16 MiB).
	MaxLineBytes int
	// Stdin is what the path "-" reads; nil means os.Stdin. A command
	// run in-process (its tests) passes the standard input it was given.
	Stdin io.Reader
}

// LineError locates a bad line: file, line number and, where known, field.
type LineError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *LineError) Error() string {
	var fe *FieldError
	if errors.As(e.Err, &fe) {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, fe.Error())
	}
	if e.Field != "" {
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Field, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Reader streams records from JSONL. Memory stays bounded by the longest
// line: the line buffer is reused and each record is decoded on its own.
type Reader struct {
	br      *bufio.Reader
	name    string
	opts    ReadOptions
	line    int
	off     int64 // bytes consumed through the last line read
	buf     []byte
	skipped int
	ids     map[string]int
	// boltHead says the over-long line tooLong reports starts the file
	// as a feedback db does.
	boltHead bool
}

// NewReader reads JSONL from r; name is used in error messages.
func NewReader(r io.Reader, name string, opts ReadOptions) *Reader {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = MaxLineBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), name: name, opts: opts, ids: map[string]int{}}
}

// Skipped is the number of bad lines skipped so far (with SkipBad).
func (r *Reader) Skipped() int { return r.skipped }

// skip counts a bad line skipped and tells OnSkip.
func (r *Reader) skip(err error) {
	r.skipped++
	if r.opts.OnSkip != nil {
		r.opts.OnSkip(err)
	}
}

// Line is the number of the last line read.
func (r *Reader) Line() int { return r.line }

// readLine returns the next line without its newline, or io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.off += int64(len(chunk))
		// The limit is on the line without its "\r\n"; the exact check
		// is tooLong's, once the line is whole.
		if len(r.buf)+len(chunk) > r.opts.MaxLineBytes+2 {
			// Looked at before the drain reuses chunk's buffer.
			head := r.buf
			if len(head) == 0 {
				head = chunk
			}
			r.boltHead = r.line == 0 && IsBoltFile(head)
			// Drain the rest of the over-long line so the next call starts
			// on a fresh one.
			for errors.Is(err, bufio.ErrBufferFull) {
				chunk, err = r.br.ReadSlice('\n')
				r.off += int64(len(chunk))
			}
			r.line++
			return nil, r.tooLong()
		}
		r.buf = append(r.buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			r.line++
			if len(r.buf) > r.opts.MaxLineBytes {
				r.boltHead = r.line == 1 && IsBoltFile(r.buf)
				return nil, r.tooLong()
			}
			return r.buf, nil
		}
		var ce *compressedError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("read %s: the compressed log is damaged or cut short after line %d (%w); recompress it from the original, or decompress what is readable with 'gzip -dc' and check its last line", r.name, r.line, ce.err)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.name, pathonce.Inner(r.name, err))
		}
		r.line++
		b := bytes.TrimRight(r.buf, "\r\n")
		if len(b) > r.opts.MaxLineBytes {
			r.boltHead = r.line == 1 && IsBoltFile(b)
			return nil, r.tooLong()
		}
		return b, nil
	}
}

// tooLong is the error of line r.line, longer than MaxLineBytes without
// its line ending (so a CRLF log gets the same limit as an LF one).
//
// A feedback db given as a log usually lands here, not in withLineHint: a
// served db is 128 MiB of mostly zeros without a newline, so it got "line
// is longer than 16777216 bytes" and no word of what the file is.
func (r *Reader) tooLong() error {
	err := fmt.Errorf("line is longer than %d bytes", r.opts.MaxLineBytes)
	if r.boltHead {
		err = fmt.Errorf("%w; this is a feedback db (a bbolt file), not a log: 'triage feedback export --db %s -o feedback.jsonl' writes its records as a log", err, r.name)
	}
	return &LineError{File: r.name, Line: r.line, Err: err}
}

// Next returns the next valid record, io.EOF at the end, or a *LineError.
// Blank lines are ignored.
func (r *Reader) Next() (Record, error) {
	for {
		b, err := r.readLine()
		if err == io.EOF {
			return Record{}, io.EOF
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			return Record{}, err
		}
		if err == nil {
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			var rec Record
			rec, err = r.decode(b)
			if err == nil {
				return rec, nil
			}
		}
		if !r.opts.SkipBad {
			return Record{}, err
		}
		r.skip(err)
	}
}

func (r *Reader) decode(b []byte) (Record, error) {
	rec, err := decodeLine(r.name, r.line, b, r.opts)
	if err != nil {
		return Record{}, err
	}
	if err := r.claimID(rec.ID, r.line); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// decodeLine decodes and validates one line. It depends on nothing but its
// arguments, so lines can be decoded on several goroutines; the check for
// repeated ids (claimID) is the part that must run in file order.
func decodeLine(name string, line int, b []byte, opts ReadOptions) (rec Record, err error) {
	if !fastDecode(b, &rec) {
		rec = Record{}
		err = json.Unmarshal(b, &rec)
		if err == nil {
			// encoding/json keeps a repeated key's last value; in a log
			// that hides which of two scores (or ids, or prompts) the
			// user meant, so it is an error that names the key.
			if path, first, second := repeatedKey(b); path != "" {
				how := ""
				if first != second {
					how = fmt.Sprintf(" (as %q and %q: a record's keys match in any case)", first, second)
				}
				return Record{}, &LineError{File: name, Line: line, Field: path, Err: fmt.Errorf("appears twice in this record%s; keep one (a record holds one value per key, and one outcome per model)", how)}
			}
		}
	}
	if err != nil {
		if msg := tsMisfit(b); msg != nil {
			return Record{}, &LineError{File: name, Line: line, Field: "ts", Err: msg}
		}
		field := jsonField(err)
		if strings.HasPrefix(field, "outcomes") {
			field = outcomeField(b, field)
		}
		return Record{}, &LineError{File: name, Line: line, Field: field, Err: withLineHint(jsonErr(err), name, line, b, err)}
	}
	vo := ValidateOptions{AllowMissingScore: opts.AllowMissingScore}
	if rec.Prompt == "" && rec.Messages == nil {
		// Only then does "prompt": "" differ from no prompt; decoding it
		// again costs nothing on the lines that have text.
		vo.EmptyPrompt = promptGiven(b)
	}
	if err := rec.Validate(vo); err != nil {
		return Record{}, &LineError{File: name, Line: line, Err: err}
	}
	return rec, nil
}

// promptGiven says whether the JSON object b holds a prompt string, ""
// included (null is no prompt). Keys match as encoding/json matches them
// when it decodes a Record: in any case, the last of duplicates.
func promptGiven(b []byte) bool {
	var p struct {
		Prompt *string `json:"prompt"`
	}
	return json.Unmarshal(b, &p) == nil && p.Prompt != nil
}

// repeatedKey returns the path of the first key that appears twice in one
// object of the JSON document b ("outcomes.gpt-4", "meta.tenant", "id"),
// or "" if none does or b does not tokenise; first and second are the
// key's two spellings ("id" and "ID"). Only the slow path runs it:
// fastDecode refuses a repeated key itself.
func repeatedKey(b []byte) (path, first, second string) {
	r, _ := repeatedIn(json.NewDecoder(bytes.NewReader(b)), "", recordShape)
	return r.path, r.first, r.second
}

// repeat is a key repeated in one object: its path and two spellings.
type repeat struct{ path, first, second string }

// shape is what repeatedKey knows of a JSON value of the log format. In a
// struct, encoding/json matches a key to a field in any case ("ID" sets
// ID as "id" does, the last one winning), so two spellings of one field
// are a repeat; a map's keys (models, meta) and the keys it ignores are
// distinct unless equal. A nil *shape is a value whose keys are compared
// as they are.
type shape struct {
	// fields are a struct's keys, each with the shape of its value.
	fields map[string]*shape
	// elem is the shape of a map's values or of an array's elements.
	elem *shape
}

var recordShape = func() *shape {
	structOf := func(t reflect.Type) *shape {
		sh := &shape{fields: map[string]*shape{}}
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				sh.fields[name] = nil
			}
		}
		return sh
	}
	rec := structOf(reflect.TypeFor[Record]())
	rec.fields["outcomes"] = &shape{elem: structOf(reflect.TypeFor[Outcome]())}
	rec.fields["decision"] = structOf(reflect.TypeFor[Decision]())
	// Message.UnmarshalJSON decodes into a struct of role and content,
	// and content parts into one of type and text.
	part := &shape{fields: map[string]*shape{"type": nil, "text": nil}}
	msg := &shape{fields: map[string]*shape{"role": nil, "content": {elem: part}}}
	rec.fields["messages"] = &shape{elem: msg}
	return rec
}()

// field returns the field of struct shape sh that key k sets, as
// encoding/json matches it, or ok false.
func (sh *shape) field(k string) (name string, ok bool) {
	if sh == nil || sh.fields == nil {
		return "", false
	}
	if _, ok := sh.fields[k]; ok {
		return k, true
	}
	// encoding/json's rule: the same runes up to Unicode simple
	// folding, which is what EqualFold compares.
	for name := range sh.fields {
		if strings.EqualFold(name, k) {
			return name, true
		}
	}
	return "", false
}

// repeatedIn reads one value of shape sh from dec and returns the path of
// a repeated key in it; ok is false if the tokens ran out or failed.
func repeatedIn(dec *json.Decoder, path string, sh *shape) (r repeat, ok bool) {
	tok, err := dec.Token()
	if err != nil {
		return r, false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]string{} // what a key sets -> its first spelling
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return r, false
			}
			k, _ := kt.(string)
			p := k
			if path != "" {
				p = path + "." + k
			}
			// A key sets its field, or, in a map or for a key the
			// struct lacks, itself.
			set, child := k, (*shape)(nil)
			if name, ok := sh.field(k); ok {
				set, child = name, sh.fields[name]
			} else if sh != nil && sh.fields == nil {
				child = sh.elem
			}
			if f, dup := seen[set]; dup {
				return repeat{p, f, k}, true
			}
			seen[set] = k
			if r, ok := repeatedIn(dec, p, child); !ok || r.path != "" {
				return r, ok
			}
		}
	case json.Delim('['):
		var elem *shape
		if sh != nil {
			elem = sh.elem
		}
		for i := 0; dec.More(); i++ {
			if r, ok := repeatedIn(dec, fmt.Sprintf("%s[%d]", path, i), elem); !ok || r.path != "" {
				return r, ok
			}
		}
	default:
		return r, true
	}
	_, err = dec.Token() // the closing bracket
	return r, err == nil
}

// claimID records that line holds id, or returns the error for an id an
// earlier line of the file already holds.
func (r *Reader) claimID(id string, line int) error {
	if first, dup := r.ids[id]; dup {
		return &LineError{File: r.name, Line: line, Err: &FieldError{Field: "id", Msg: fmt.Sprintf("%q repeats the id of line %d; ids must be unique within a file", id, first)}}
	}
	r.ids[id] = line
	return nil
}

// jsonField names the field a json error is about, where the decoder says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field
	}
	return ""
}

// tsMisfit explains a ts that is not a string. time.Time's own error for
// one ("Time.UnmarshalJSON: input is not a JSON string") names neither the
// field nor the value, and the likeliest cause, Unix seconds, has a
// one-line fix. It is nil when ts is absent, null or a string.
func tsMisfit(line []byte) error {
	var raw struct {
		TS json.RawMessage `json:"ts"`
	}
	if json.Unmarshal(line, &raw) != nil || len(raw.TS) == 0 {
		return nil
	}
	switch raw.TS[0] {
	case '"', 'n':
		return nil
	case '{', '[', 't', 'f':
		return fmt.Errorf("is a JSON %s, want an RFC 3339 time string such as \"2026-11-27T10:00:00Z\"", map[byte]string{'{': "object", '[': "array", 't': "bool", 'f': "bool"}[raw.TS[0]])
	}
	return fmt.Errorf("is the number %s, want an RFC 3339 time string such as \"2026-11-27T10:00:00Z\" (Unix seconds convert with jq -c '.ts |= todate')", raw.TS)
}

// outcomeField finds which model's outcome holds a type error: Go's decoder
// reports "outcomes.score" without the map key, which does not tell the
// user which of several models is wrong.
func outcomeField(line []byte, field string) string {
	var raw struct {
		Outcomes json.RawMessage `json:"outcomes"`
	}
	if json.Unmarshal(line, &raw) != nil {
		return field
	}
	// In the line's order, as Go's decoder reports the first error it
	// meets: ranging over a map named a random one of several bad outcomes.
	dec := json.NewDecoder(bytes.NewReader(raw.Outcomes))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return field
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return field
		}
		name, _ := kt.(string)
		var o json.RawMessage
		if dec.Decode(&o) != nil {
			return field
		}
		var out Outcome
		if err := json.Unmarshal(o, &out); err != nil {
			if f := jsonField(err); f != "" {
				return "outcomes." + name + "." + f
			}
			return "outcomes." + name
		}
	}
	return field
}

// NumberMisfit says why a JSON number does not fit a field of type t,
// where encoding/json reports "number 1e400" or "number 1.5": too large
// for a float, or not a whole number (or out of range) for an integer.
func NumberMisfit(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if k := t.Kind(); k == reflect.Float32 || k == reflect.Float64 {
		return "beyond the range of a number"
	}
	return "want a whole number in range"
}

// jsonType names a Go type the way a person writing JSON thinks of it.
func jsonType(t reflect.Type) string {
	if t == ContentType {
		return "a string or an array of content parts"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a number"
	case reflect.String:
		if t == reflect.TypeOf(time.Time{}) {
			return "an RFC 3339 time string"
		}
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map:
		return "an object"
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			return "an RFC 3339 time string"
		}
		return "an object"
	}
	return t.String()
}

func jsonErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if lit, ok := strings.CutPrefix(te.Value, "number "); ok {
			// A number of the right kind the field cannot hold.
			return fmt.Errorf("is %s, %s", lit, NumberMisfit(te.Type))
		}
		return fmt.Errorf("is a JSON %s, want %s", te.Value, jsonType(te.Type))
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("ts is %s, want an RFC 3339 time such as 2026-11-27T10:00:00Z", pe.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// withLineHint adds to a decoding error what the line most likely is
// instead of a record, and what to do: a record broken over several
// lines, a CSV, or a JSON array; on line 1, a feedback db or another
// binary file.
func withLineHint(msg error, name string, line int, b []byte, err error) error {
	t := bytes.TrimSpace(b)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case len(t) > 0 && t[0] == '[' && (errors.As(err, &se) || errors.As(err, &te) && te.Field == ""):
		return fmt.Errorf("%w; a log holds one JSON object per line (JSON Lines), not an array", msg)
	case errors.As(err, &se) && line == 1 && IsBoltFile(b):
		return fmt.Errorf("%w; this is a feedback db (a bbolt file), not a log: 'triage feedback export --db %s -o feedback.jsonl' writes its records as a log", msg, name)
	case errors.As(err, &se) && line == 1 && len(t) > 0 && t[0] != '{' && t[0] != '[' && hasControlByte(t):
		// A binary file's first "line" often holds a comma or a tab too,
		// and was called a CSV and sent to 'triage import wide-csv'.
		return fmt.Errorf("%w; this is a binary file, not a log: a log is JSON Lines text, plain or gzip-compressed (decompress another compression first)", msg)
	case errors.As(err, &se) && len(t) > 0 && t[0] != '{' && !hasControlByte(t) && (bytes.ContainsAny(t, ",\t") || strings.HasSuffix(strings.ToLower(name), ".csv")):
		return fmt.Errorf("%w; this looks like CSV, and a log is JSON Lines: convert a CSV with 'triage import wide-csv' (RouteLLM's published CSVs: 'triage import routellm')", msg)
	case errors.As(err, &se) && endsInside(b):
		return fmt.Errorf("%w; the line ends inside the record: each record must be one JSON object on one line (JSON Lines)", msg)
	}
	return msg
}

// IsBoltFile reports whether b starts as a bbolt file does (a feedback
// db): page 0 is a meta page (flags 0x04) whose magic number is at byte
// 16. Readers of other files use it to name a db given in their place.
func IsBoltFile(b []byte) bool {
	ne := binary.NativeEndian
	return len(b) >= boltPageHeader+4 && ne.Uint16(b[8:]) == boltMetaFlag && ne.Uint32(b[boltPageHeader:]) == boltMagic
}

// hasControlByte reports whether b holds an ASCII control character other
// than a tab or a carriage return: text (JSON Lines, CSV) has none, a
// binary file (another compression, an executable) has many.
func hasControlByte(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\r') || c == 0x7f {
			return true
		}
	}
	return false
}

// endsInside reports whether b is the start of a JSON value cut short. A
// syntax error's offset at the end of the line does not say so: a whole
// record followed by one stray byte (the comma of a JSON array cut into
// lines, a second '}') fails there too, and was told its record was cut.
func endsInside(b []byte) bool {
	var v json.RawMessage
	return errors.Is(json.NewDecoder(bytes.NewReader(b)).Decode(&v), io.ErrUnexpectedEOF)
}

// ReadFile reads every record of a JSONL file ("-" is standard input,
// opts.Stdin).
// It returns the records and the number of bad lines skipped.
func ReadFile(path string, opts ReadOptions) ([]Record, int, error) {
	var recs []Record
	skipped, err := EachFile(path, opts, func(rec Record) error {
		recs = append(recs, rec)
		return nil
	})
	return recs, skipped, err
}

// EachFile streams the records of a JSONL file to fn without holding them,
// on the calling goroutine (EachFileParallel with one worker).
func EachFile(path string, opts ReadOptions, fn func(Record) error) (int, error) {
	return EachFileParallel(path, opts, 1,
		func() func(*Record) Record { return func(r *Record) Record { return *r } },
		func(_ Position, rec Record) error { return fn(rec) })
}

// openLog opens a JSONL file for reading ("-" is stdin, or os.Stdin). A
// gzip-compressed log (told by its first bytes, whatever its name) is
// decompressed as it is read, and a UTF-8 byte-order mark at the start
// (which Windows editors write) is skipped.
func openLog(path string, stdin io.Reader) (io.Reader, func(), error) {
	var src io.Reader
	closeF := func() {} // standard input is not ours to close
	if path == "-" {
		src = stdin
		if src == nil {
			src = os.Stdin
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("open log: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			f.Close()
			return nil, nil, fmt.Errorf("log %s is a folder, not a file", path)
		}
		src, closeF = f, func() { f.Close() }
	}
	// NewReader's bufio.Reader of the same size reuses this one, so the
	// peeks cost no second copy of the bytes.
	br := bufio.NewReaderSize(src, 64<<10)
	// Concatenated members (cat a.gz b.gz > c.gz) read as one stream, and
	// zero padding after the last is ignored, as gzip -dc reads them.
	zr, err := gunzip.Sniff(br)
	if err != nil {
		closeF()
		return nil, nil, fmt.Errorf("open log %s: it starts like gzip but is not: %w", path, err)
	}
	if zr != nil {
		br = bufio.NewReaderSize(gzipReader{zr}, 64<<10)
	}
	SkipBOM(br)
	return br, closeF, nil
}

// SkipBOM discards a UTF-8 byte-order mark at the start of br: Windows
// editors and spreadsheets write one, and it is not part of the text (a
// JSON decoder or a CSV reader would take it for the first value's).
func SkipBOM(br *bufio.Reader) {
	if bom, _ := br.Peek(3); bytes.Equal(bom, utf8BOM) {
		br.Discard(3)
	}
}

// gzipReader marks the errors of a damaged or truncated gzip stream, so
// the reader can say what they mean (an HTTP body cut short fails with
// the same io.ErrUnexpectedEOF, and means something else).
type gzipReader struct{ zr *gunzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = &compressedError{err}
	}
	return n, err
}

type compressedError struct{ err error }

func (e *compressedError) Error() string { return e.err.Error() }
func (e *compressedError) Unwrap() error { return e.err }

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// IsCompressed reports whether the file at path is gzip-compressed, as
// the log readers tell it: by its first two bytes.
func IsCompressed(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	n, _ := io.ReadFull(f, b[:])
	return gunzip.Starts(b[:n])
}

// Writer writes records as JSONL.
type Writer struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

// NewWriter writes JSONL to w. Call Flush when done.
func NewWriter(w io.Writer) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &Writer{bw: bw, enc: enc}
}

// Write appends one record as a line.
func (w *Writer) Write(rec *Record) error {
	var v any = rec
	if rec.Prompt == "" && len(rec.Messages) == 0 {
		// The one record without text a reader takes is an empty
		// prompt ("prompt": "", a legacy completion's); omitempty
		// would drop the key and leave a line no reader takes.
		v = emptyPrompt{ID: rec.ID, Record: rec}
	}
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("write record %q: %w", rec.ID, err)
	}
	return nil
}

// emptyPrompt encodes a Record with "prompt": "" after its id: a field
// of emptyPrompt's own hides the embedded Record's of the same name.
type emptyPrompt struct {
	ID     string `json:"id"`
	Prompt string `json:"prompt"`
	*Record
}

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
