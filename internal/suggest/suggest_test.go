package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"train", "train", 0}, {"trian", "train", 1}, {"tran", "train", 1}, {"serv", "serve", 1}, {"shwo", "show", 1}, {"", "eval", 4}, {"abc", "xyz", 3}, {"base_ur", "base_url", 1}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestNearest(t *testing.T) {
	known := []string{"train", "eval", "serve", "show", "max_body_bytes", "base_url"}
	for word, want := range map[string]string{
		"trian":         "train",
		"evl":           "eval",
		"shwo":          "show",
		"max_bodybytes": "max_body_bytes",
		"base_ur":       "base_url",
		"frobnicate":    "",
		"x":             "",
		"tr":            "",
	} {
		if got := Nearest(word, known); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestModel(t *testing.T) {
	known := []string{"mistralai/Mistral-7B-v0.1", "meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-2-7b-hf", "gpt-4-1106-preview"}
	for _, tt := range []struct{ name, want string }{
		{"MISTRALAI/mistral-7b-v0.1", "mistralai/Mistral-7B-v0.1"}, // case only
		{"mistral-7b", "mistralai/Mistral-7B-v0.1"},                // a part of one name
		{"meta-llama-3-8b", "meta-llama/Meta-Llama-3-8B"},          // a part, ignoring case
		{"gpt-4-1106-preveiw", "gpt-4-1106-preview"},               // a typo of the whole name
		{"Meta-Lama-3-8B", "meta-llama/Meta-Llama-3-8B"},           // a typo of the part after "/"
		{"meta-llama", ""}, // in two names: no guess
		{"claude-2", ""},   // nothing near
		{"", ""},
	} {
		if got := Model(tt.name, known); got != tt.want {
			t.Errorf("Model(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
