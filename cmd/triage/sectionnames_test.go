package main

import (
	"slices"
	"testing"
)

// Two routers given the same section name write their report files into
// one folder, and the page shows the last one's plots under both names.
func TestSectionNamesAreUnique(t *testing.T) {
	tests := []struct {
		paths []string
		want  []string
	}{
		{[]string{"x/a.json", "y/a.json"}, []string{"a", "a-2"}},
		{[]string{"x/a.json", "y/a.json", "a-2.json"}, []string{"a", "a-2", "a-2-2"}},
		{[]string{"a-2.json", "x/a.json", "y/a.json"}, []string{"a-2", "a", "a-3"}},
		{[]string{"x/a.json", "y/a.json", "z/a.json"}, []string{"a", "a-2", "a-3"}},
	}
	for _, tc := range tests {
		got := sectionNames(tc.paths)
		if !slices.Equal(got, tc.want) {
			t.Errorf("sectionNames(%q) = %q, want %q", tc.paths, got, tc.want)
		}
	}
}
