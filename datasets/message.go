package datasets

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// Message is one chat turn of a logged request. Its Content is text: a
// log (or a route request) may give it in OpenAI's chat format, where
// content is a string, null (an assistant turn that only calls tools) or
// an array of content parts, and UnmarshalJSON keeps the text of it (see
// PartsText). Other members of such a message (name, tool_calls, ...)
// are ignored; Marshal writes content as a string.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// TextParts are the content-part types whose text a Message keeps: Chat
// Completions calls a text part "text", the Responses API "input_text" and
// "output_text".
var TextParts = []string{"text", "input_text", "output_text"}

// UnmarshalJSON reads a chat turn whose content is a string, null or an
// array of content parts (their text, joined with "\n").
func (m *Message) UnmarshalJSON(b []byte) error {
	var w struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	text, err := ContentText(w.Content)
	if err != nil {
		return err
	}
	m.Role, m.Content = w.Role, text
	return nil
}

// ContentText is PartsText of TextParts for an UnmarshalJSON method of a
// message: content of the wrong kind is a *json.UnmarshalTypeError, so
// encoding/json names the field (messages.content) in its error.
func ContentText(raw json.RawMessage) (string, error) {
	text, err := PartsText(raw, TextParts...)
	if ce, ok := err.(*ContentError); ok {
		return "", &json.UnmarshalTypeError{Value: ce.Kind, Type: ContentType, Field: "content"}
	}
	return text, err
}

// PartsText is the text of a message's content: a string; null (or
// nothing) is ""; an array of content parts gives the text of the parts
// whose type is one of kinds, joined with "\n" (images, audio and files
// have no text to route on and are skipped). Anything else is a
// *ContentError.
func PartsText(raw json.RawMessage, kinds ...string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil {
		return "", &ContentError{Kind: contentKind(raw)}
	}
	var b strings.Builder
	for _, p := range parts {
		if !slices.Contains(kinds, p.Type) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// ContentError says a message's content is neither a string, null nor an
// array of content parts; Kind is the JSON kind it is.
type ContentError struct{ Kind string }

func (e *ContentError) Error() string {
	return "is a JSON " + e.Kind + ", want a string or an array of content parts"
}

// contentParts stands for what a message's content may be.
type contentParts string

// ContentType is the Type of the *json.UnmarshalTypeError PartsText
// returns, so an error message can say what content may be: a string or
// an array of content parts.
var ContentType = reflect.TypeFor[contentParts]()

// contentKind names the JSON kind of raw for an error, as encoding/json
// does ("an array" for one whose elements are not content parts).
func contentKind(raw []byte) string {
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array of something other than content parts"
	case 't', 'f':
		return "bool"
	}
	return "number"
}
