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
