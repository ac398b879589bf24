package plural

import (
	"fmt"
	"testing"
)

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "record", "0 records"},
		{1, "record", "1 record"},
		{2, "record", "2 records"},
		{1, "page", "1 page"},
		{1, "entry", "1 entry"},
		{3, "entry", "3 entries"},
		{2, "stored-response entry", "2 stored-response entries"},
		{2, "day", "2 days"},
		{2, "empty cell", "2 empty cells"},
	} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}

func TestAgree(t *testing.T) {
	for n, want := range map[int]string{0: "are", 1: "is", 2: "are"} {
		if got := Agree(n, "is", "are"); got != want {
			t.Errorf("Agree(%d) = %q, want %q", n, got, want)
		}
	}
}

func ExampleCount() {
	fmt.Println(Count(1, "record") + ", " + Count(3, "entry"))
	// Output: 1 record, 3 entries
}
