// Package openai holds the pieces of the OpenAI Chat Completions wire format
// that both the proxy and the upstream simulator read, so the two sides of
// the same protocol cannot drift apart.
package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// ContentText is a message's text: a string, or the text parts of an array
// of content parts joined with "\n"; null (a tool call) is "".
func ContentText(raw json.RawMessage) (string, error) { return PartsText(raw, "text") }

// PartsText is the text of a string or of an array of content parts: the
// parts whose type is one of kinds, joined with "\n" (images and files
// have no text to route on); null is "". Chat Completions calls its text
// parts "text", the Responses API "input_text" and "output_text".
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
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("want a string or an array of content parts")
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
