package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the JSONL decoder: it must never panic,
// every record it returns must validate, every error must be a *LineError,
// and a record written back out must read back to the same JSON.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","prompt":"x","outcomes":{"m":{"score":1}}}`,
		"{\"id\":\"a\",\"prompt\":\"x\"}\r\n\r\n{\"id\":\"a\",\"prompt\":\"y\"}\n",
		`{"id":"b","messages":[{"role":"user","content":"hi"}],"meta":{"n":3,"t":true,"z":null},"ts":"2026-11-27T10:00:00+02:00"}`,
		`{"id":"c","prompt":"x","outcomes":{"fast":{"score":0.5,"latency_ms":12,"cost_usd":0.1,"confidence":-1,"input_tokens":3,"output_tokens":4,"cancelled":true,"response":"r"}},"decision":{"decision":"fast","p_hard":0.1,"model_version":"v1"}}`,
		`{"id":"d","prompt":"x","outcomes":{"m":{"score":7}}}`,
		`{"id":5}`,
		"not json\n\n",
		`[]`,
		`null`,
		"{\"id\":\"\xff\",\"prompt\":\"\\ud800\"}",
		`{"id":"e","prompt":""}`,
	} {
		f.Add([]byte(s), false, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, skipBad, allowMissing bool) {
		opts := ReadOptions{SkipBad: skipBad, AllowMissingScore: allowMissing, MaxLineBytes: 1 << 10}
		rd := NewReader(bytes.NewReader(data), "fuzz.jsonl", opts)
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("error %T %v is not a *LineError", err, err)
				}
				if skipBad {
					t.Fatalf("SkipBad returned %v", err)
				}
				return
			}
			vo := ValidateOptions{AllowMissingScore: allowMissing}
			if rec.Prompt == "" && rec.Messages == nil {
				// A record without text is valid only where its line
				// gave "prompt": "" (a legacy completion's empty
				// prompt); the line is the reader's current one.
				lines := bytes.Split(data, []byte("\n"))
				vo.EmptyPrompt = promptGiven(lines[rd.Line()-1])
			}
			if err := rec.Validate(vo); err != nil {
				t.Fatalf("returned record does not validate: %v", err)
			}
			checkRewrite(t, &rec, opts)
		}
	})
}

// checkRewrite writes rec and reads it back; the second encoding must equal
// the first (a byte comparison avoids time.Location pointers in DeepEqual).
func checkRewrite(t *testing.T, rec *Record, opts ReadOptions) {
	t.Helper()
	first, err := json.Marshal(rec)
	if err != nil {
		t.Fatalf("marshal a record the reader returned: %v", err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	opts.SkipBad = false
	opts.MaxLineBytes = 0
	back, err := NewReader(&buf, "rewrite.jsonl", opts).Next()
	if err != nil {
		t.Fatalf("reading back %s: %v", first, err)
	}
	second, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("rewrite changed the record:\n%s\n%s", first, second)
	}
}
