// Package openai holds the pieces of the OpenAI Chat Completions wire format
// that both the proxy and the upstream simulator read, so the two sides of
// the same protocol cannot drift apart.
package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// ContentText is a message's text: a string, or the text parts of an array
// of content parts joined with "\n"; null (a tool call) is "".
func ContentText(raw json.RawMessage) (string, error) {
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
		if p.Type != "text" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
