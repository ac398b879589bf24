package datasets

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestPartsText(t *testing.T) {
	tests := []struct {
		name, raw, want string
		wantErr         string
	}{
		{"a string is its own text", `"hello"`, "hello", ""},
		{"null (a tool call) is empty", `null`, "", ""},
		{"nothing is empty", ``, "", ""},
		{"text parts are joined by newlines and images skipped", `[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]`, "a\nb", ""},
		{"the Responses API's text parts count too", `[{"type":"input_text","text":"a"},{"type":"output_text","text":"b"}]`, "a\nb", ""},
		{"an empty array is empty", `[]`, "", ""},
		{"a number is an error that says what content may be", `42`, "", "is a JSON number, want a string or an array of content parts"},
		{"an object is an error", `{"type":"text","text":"a"}`, "", "is a JSON object, want a string or an array of content parts"},
		{"an array of numbers is not content parts", `[1,2]`, "", "is a JSON array of something other than content parts, want a string or an array of content parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PartsText(json.RawMessage(tt.raw), TextParts...)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("PartsText(%s) = %q, %v; want %q, error %q", tt.raw, got, err, tt.want, tt.wantErr)
			}
			var ce *ContentError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("error %T, want a *ContentError", err)
			}
		})
	}
	t.Run("only the kinds asked for are text", func(t *testing.T) {
		if got, _ := PartsText(json.RawMessage(`[{"type":"text","text":"a"},{"type":"input_text","text":"b"}]`), "input_text"); got != "b" {
			t.Errorf("got %q, want only the input_text part", got)
		}
	})
}

// A log may carry messages in OpenAI's chat format: the reader keeps
// their text and names the line and field of content it cannot read.
func TestReaderReadsOpenAIMessages(t *testing.T) {
	in := `{"id":"a","messages":[{"role":"system","content":[{"type":"text","text":"be brief"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1"}]},{"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"this?"}],"name":"bob"}]}` + "\n"
	recs, _, err := readAll(t, in, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{{"system", "be brief"}, {"assistant", ""}, {"user", "what is\nthis?"}}
	if got := recs[0].Messages; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("messages %+v, want %+v", got, want)
	}
	_, _, err = readAll(t, `{"id":"b","messages":[{"role":"user","content":5}]}`+"\n", ReadOptions{})
	if want := "log.jsonl:1: messages.content: is a JSON number, want a string or an array of content parts"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	// Written back, content is the text: a log the strict readers of
	// older versions read too.
	b, err := json.Marshal(recs[0].Messages[2])
	if err != nil || string(b) != `{"role":"user","content":"what is\nthis?"}` {
		t.Errorf("marshalled %s, %v", b, err)
	}
}
