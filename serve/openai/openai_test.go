package openai

import (
	"encoding/json"
	"testing"
)

func TestContentText(t *testing.T) {
	tests := []struct {
		name, raw, want string
		wantErr         bool
	}{
		{"a string is its own text", `"hello"`, "hello", false},
		{"null (a tool call) is empty", `null`, "", false},
		{"text parts are joined by newlines and images skipped", `[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]`, "a\nb", false},
		{"a number is an error", `42`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ContentText(json.RawMessage(tt.raw))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ContentText(%s) = %q, %v; want %q, error %v", tt.raw, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
