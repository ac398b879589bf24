package datasets

import (
	"math"
	"strings"
	"testing"
)

func TestParseLabel(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Label
	}{
		{"the empty string is the default strong-wins", "", Label{Kind: LabelStrongWins}},
		{"strong-wins parses", "strong-wins", Label{Kind: LabelStrongWins}},
		{"weak-fails parses", "weak-fails", Label{Kind: LabelWeakFails}},
		{"a gap parses its threshold", "gap:0.2", Label{Kind: LabelGap, Gap: 0.2}},
		{"a zero gap is allowed", "gap:0", Label{Kind: LabelGap, Gap: 0}},
		{"surrounding spaces are ignored", " weak-fails ", Label{Kind: LabelWeakFails}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLabel(tt.in)
			if err != nil {
				t.Fatalf("ParseLabel(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseLabel(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseLabelErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // a substring of the error
	}{
		{"an unknown kind is rejected", "strong_wins", `label "strong_wins" is not known`},
		{"a gap without a number is rejected", "gap:", `gap "" is not a number`},
		{"a gap that is not a number is rejected", "gap:abc", `gap "abc" is not a number`},
		{"a NaN gap is rejected", "gap:NaN", `is not a number`},
		{"a gap of 1 is rejected", "gap:1", `gap 1 is outside [0,1)`},
		{"a negative gap is rejected", "gap:-0.1", `gap -0.1 is outside [0,1)`},
		{"a gap without its colon is rejected", "gap", `label "gap" is not known`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLabel(tt.in)
			if err == nil {
				t.Fatalf("ParseLabel(%q) succeeded, want an error", tt.in)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			// Every error tells the user what the valid forms are.
			for _, form := range []string{`"strong-wins"`, `"weak-fails"`, `"gap:T"`} {
				if !strings.Contains(msg, form) {
					t.Errorf("error %q does not list the valid form %s", msg, form)
				}
			}
		})
	}
}

func TestLabelStringRoundTrips(t *testing.T) {
	for _, in := range []string{"strong-wins", "weak-fails", "gap:0.2", "gap:0", "gap:0.125"} {
		t.Run(in+" prints as itself", func(t *testing.T) {
			l, err := ParseLabel(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.String(); got != in {
				t.Errorf("String() = %q, want %q", got, in)
			}
		})
	}
	t.Run("the zero label prints as the default", func(t *testing.T) {
		if got, want := (Label{}).String(), "strong-wins"; got != want {
			t.Errorf("Label{}.String() = %q, want %q", got, want)
		}
	})
}

func TestLabelOf(t *testing.T) {
	gap02 := Label{Kind: LabelGap, Gap: 0.2}
	tests := []struct {
		name         string
		label        Label
		fast, strong float64
		want         float64
	}{
		{"strong-wins is 1 when strong beats fast", Label{Kind: LabelStrongWins}, 0, 1, 1},
		{"strong-wins is 0 on a tie at 1", Label{Kind: LabelStrongWins}, 1, 1, 0},
		{"strong-wins is 0 on a tie at 0", Label{Kind: LabelStrongWins}, 0, 0, 0},
		{"strong-wins is 0 when fast beats strong", Label{Kind: LabelStrongWins}, 1, 0, 0},
		{"the zero label behaves as strong-wins", Label{}, 0.3, 0.4, 1},
		{"weak-fails is 1 when fast is below one half", Label{Kind: LabelWeakFails}, 0.49, 0, 1},
		{"weak-fails is 0 when fast is exactly one half", Label{Kind: LabelWeakFails}, 0.5, 1, 0},
		{"weak-fails ignores the strong score", Label{Kind: LabelWeakFails}, 0, 0, 1},
		{"gap is 1 when strong minus fast exceeds the gap", gap02, 0.5, 0.8, 1},
		{"gap is 0 when strong minus fast is below the gap", gap02, 0.7, 0.8, 0},
		// 0.8-0.6 is 0.20000000000000007 in float64: a 1-10 grade of 8 vs 6
		// divided by 10 is exactly the gap and must not count as exceeding it.
		{"gap is 0 when the difference equals the gap up to rounding", gap02, 0.6, 0.8, 0},
		{"gap 0 is 1 when strong beats fast", Label{Kind: LabelGap}, 0.6, 0.7, 1},
		{"gap 0 is 0 on a tie", Label{Kind: LabelGap}, 0.7, 0.7, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.label.Of(tt.fast, tt.strong); got != tt.want {
				t.Errorf("%v.Of(%v, %v) = %v, want %v", tt.label, tt.fast, tt.strong, got, tt.want)
			}
		})
	}
}

func TestLabelOfPanicsOnAnUnknownKind(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("Of on an unknown kind did not panic")
		}
		if msg, _ := r.(string); !strings.HasPrefix(msg, "datasets: ") {
			t.Errorf("panic %v, want a message starting with %q", r, "datasets: ")
		}
	}()
	Label{Kind: "bogus"}.Of(0, 1)
}

func TestGainLabel(t *testing.T) {
	l, err := ParseLabel("gain")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ fast, strong, want float64 }{{0, 1, 1}, {1, 0, 0}, {1, 1, 0.5}, {0.2, 0.8, 0.8}}
	for _, tt := range tests {
		if got := l.Of(tt.fast, tt.strong); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("gain.Of(%v, %v) = %v, want %v", tt.fast, tt.strong, got, tt.want)
		}
	}
	if l.String() != "gain" {
		t.Errorf("String() = %q", l.String())
	}
}
