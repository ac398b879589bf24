package importers

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/pathonce"
)

// routerDCFormat is the layout named in RouterDC errors.
const routerDCFormat = `want RouterDC's layout, a JSON array (or JSON Lines) of {"question": "...", "scores": {"model": score in [0,1], ...}}`

// RouterDCOptions describes one RouterDC file.
type RouterDCOptions struct {
	// File is the JSON file. It may be gzip-compressed (told by its first
	// bytes).
	File string
	// Input, when not nil, is read instead of File (standard input); File
	// then only names it in errors. There is no file name to take the ids
	// and meta.source from, so IDPrefix is required, and is meta.source.
	Input io.Reader
	// IDPrefix starts every record id, "<IDPrefix>/<index>" with the
	// element's 0-based index in the array. Empty means the file name
	// without its directory and extension, which is also meta.source.
	IDPrefix string
	// NoMeta leaves meta.source out. A router uses meta as features, so in a
	// log pooled from several files the file name would tell it the task.
	NoMeta bool
	// BadRows skips malformed elements (not an object, a question or
	// scores missing or empty, a score out of [0,1]) instead of stopping.
	// A JSON syntax error stops the import either way: a decoder cannot
	// find the next element after one.
	BadRows
}

// routerDCElement is one element of a RouterDC file. Fields other than these
// (cluster_id in the *_train files) are read past and dropped.
type routerDCElement struct {
	Question *string                    `json:"question"`
	Scores   map[string]json.RawMessage `json:"scores"`
}

// RouterDC streams one record per element of a RouterDC file
// (github.com/shuhao02/RouterDC, datasets/split2_model7/*.json) to fn: the
// question is the prompt, each scores entry an outcome, and meta.source the
// file name without its extension. The file is decoded one element at a
// time, so an import holds one question in memory.
//
// cluster_id, present in the *_train files, is not imported: RouterDC
// computes it by clustering its own training queries, so a router would not
// have it for a new request, and a log pooled from several files would get
// it only for some of them.
func RouterDC(opts RouterDCOptions, fn func(datasets.Record) error) (Stats, error) {
	source := baseName(opts.File)
	if opts.Input != nil {
		if opts.IDPrefix == "" {
			return newStats(), fmt.Errorf("%s has no file name to start the ids with; give an id prefix (--id-prefix), which is its meta.source too", opts.File)
		}
		source = opts.IDPrefix
	}
	br, f, err := openInput(opts.File, opts.Input)
	if err != nil {
		return newStats(), fmt.Errorf("open routerdc file: %w", err)
	}
	defer f.Close()
	prefix := opts.IDPrefix
	if prefix == "" {
		prefix = source
	}
	if opts.NoMeta {
		source = ""
	}
	return readRouterDC(br, opts.File, prefix, source, opts.BadRows, fn)
}

// readRouterDC is RouterDC on a reader; name is the file name for errors,
// and an empty source gives records without meta.
//
// The elements may also come one object per line (JSON Lines), as a
// RouterDC file re-exported by a script often does: the file is read as a
// stream of objects when its first value is an object.
func readRouterDC(r io.Reader, name, prefix, source string, bad BadRows, fn func(datasets.Record) error) (Stats, error) {
	st := newStats()
	br := bufio.NewReader(r)
	datasets.SkipBOM(br)
	stream := firstByte(br) == '{'
	dec := json.NewDecoder(br)
	if !stream {
		tok, err := dec.Token()
		if err == io.EOF {
			return st, fmt.Errorf("%s: the file is empty; %s", name, routerDCFormat)
		}
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			// The file could not be read: its layout is not the question.
			return st, fmt.Errorf("read %s: %w", name, pathonce.Inner(name, err))
		}
		if err != nil {
			return st, fmt.Errorf("%s: %v; %s", name, err, routerDCFormat)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return st, fmt.Errorf("%s: the file starts with %v, not an array or an object; %s", name, tokenString(tok), routerDCFormat)
		}
	}
	for i := 0; dec.More(); i++ {
		at := func(format string, args ...any) error {
			return fmt.Errorf("%s: element %d: %s", name, i, fmt.Sprintf(format, args...))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return st, at("%v (near byte %d); the file is not valid JSON there", err, dec.InputOffset())
		}
		// record is the element's record, or the error that makes the
		// element malformed.
		record := func() (datasets.Record, error) {
			if raw[0] != '{' {
				return datasets.Record{}, at("is %s, not an object; %s", jsonKind(raw[0]), routerDCFormat)
			}
			var el routerDCElement
			if err := json.Unmarshal(raw, &el); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) {
					return datasets.Record{}, at("%s is a JSON %s, want %s; %s", te.Field, te.Value, jsonKindOf(te.Type.Kind()), routerDCFormat)
				}
				return datasets.Record{}, at("%v; %s", err, routerDCFormat)
			}
			if el.Question == nil {
				return datasets.Record{}, at("question is missing; %s", routerDCFormat)
			}
			if strings.TrimSpace(*el.Question) == "" {
				return datasets.Record{}, at("question is empty; every record needs a prompt")
			}
			if len(el.Scores) == 0 {
				return datasets.Record{}, at("scores is missing or empty; %s", routerDCFormat)
			}
			rec := datasets.Record{
				ID:       prefix + "/" + strconv.Itoa(i),
				Prompt:   *el.Question,
				Outcomes: make(map[string]datasets.Outcome, len(el.Scores)),
			}
			if source != "" {
				rec.Meta = datasets.Meta{"source": source}
			}
			for _, m := range sortedKeys(el.Scores) {
				if m == "" {
					return datasets.Record{}, at("scores has an empty model name")
				}
				// A raw value is never empty: the decoder has checked the syntax.
				v := el.Scores[m]
				var s float64
				if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
					return datasets.Record{}, at("scores[%q] is %s, want a score in [0,1]", m, jsonKind(v[0]))
				}
				if err := json.Unmarshal(v, &s); err != nil || s < 0 || s > 1 || math.IsNaN(s) {
					return datasets.Record{}, at("scores[%q] is %s, want a score in [0,1]", m, v)
				}
				rec.Outcomes[m] = datasets.Outcome{Score: datasets.Float(s)}
			}
			return rec, nil
		}
		rec, err := record()
		if err != nil {
			if err := bad.skip(err, &st); err != nil {
				return st, err
			}
			continue
		}
		if err := emit(rec, &st, fn); err != nil {
			return st, err
		}
	}
	if stream {
		return st, nil
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		where := "after the opening ["
		if st.Records > 0 {
			where = fmt.Sprintf("after element %d", st.Records-1)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return st, fmt.Errorf("%s: %s: %v; the array is not closed", name, where, err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return st, fmt.Errorf("%s: after the array: %v; want nothing after the closing ]", name, err)
		}
		return st, fmt.Errorf("%s: after the array: unexpected %v; want nothing after the closing ]", name, tokenString(tok))
	}
	return st, nil
}

// firstByte is the first byte of r that is not JSON whitespace, without
// consuming it; 0 at the end or on an error (the decoder then reports it).
func firstByte(r *bufio.Reader) byte {
	for i := 1; ; i++ {
		b, err := r.Peek(i)
		if len(b) < i {
			return 0
		}
		switch c := b[i-1]; c {
		case ' ', '\t', '\n', '\r':
			if err != nil {
				return 0
			}
		default:
			return c
		}
	}
}

// jsonKind names the kind of JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	}
	return "a number"
}

// jsonKindOf names the JSON kind that decodes into a Go kind.
func jsonKindOf(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Float64:
		return "number"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return k.String()
}

// tokenString names a JSON token for an error message.
func tokenString(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return strconv.Quote(string(v))
	case string:
		return "the string " + strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
