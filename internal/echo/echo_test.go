package echo

import (
	"fmt"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	long := strings.Repeat("a", 8000)
	for _, tt := range []struct {
		name, in, quote, bare string
	}{
		{"a short id is repeated whole", "resp_abc", `"resp_abc"`, `resp_abc`},
		{"an empty string is an empty literal", "", `""`, ``},
		{"a long one is cut to its first MaxBytes bytes", long, `"` + long[:MaxBytes] + `"...`, long[:MaxBytes] + `...`},
		{"line breaks and quotes are escaped", "a\nb\"c'd", `"a\nb\"c'd"`, `a\nb\"c\'d`},
		{"invalid UTF-8 is escaped", "a\xffb", `"a\xffb"`, `a\xffb`},
		{"a cut does not split a character", strings.Repeat("a", MaxBytes-1) + "é", `"` + strings.Repeat("a", MaxBytes-1) + `"...`, strings.Repeat("a", MaxBytes-1) + `...`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.quote {
				t.Errorf("Quote = %s, want %s", got, tt.quote)
			}
			if got := Bare(tt.in); got != tt.bare {
				t.Errorf("Bare = %s, want %s", got, tt.bare)
			}
		})
	}
}

func ExampleBare() {
	id := "resp_" + strings.Repeat("0", 200)
	fmt.Printf("No response found with id '%s'.\n", Bare(id))
	// Output: No response found with id 'resp_0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000...'.
}
