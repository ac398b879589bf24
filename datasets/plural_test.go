package datasets

import (
	"strings"
	"testing"
)

// TestDamageMessagesCountOneInTheSingular: a db with two problems said
// "(and 1 more problems)", a log with one record after its damage "1
// acknowledged records follow it" and "apply its 1 readable records".
func TestDamageMessagesCountOneInTheSingular(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want []string
	}{
		{"a db with two problems", &DamageError{Path: "f.db", Problems: []string{"a", "b"}, Count: 2}, []string{"(and 1 more problem)"}},
		{"a log with one record after the damage", &WALDamageError{Path: "f.db-wal", Offset: 9, Before: 0, After: 1, Lost: 1}, []string{"yet 1 acknowledged record follows it", "to apply the 1 readable record ("}},
		{"a cut log with one record", &WALDamageError{Path: "f.db-wal", Offset: 9, Size: 4096, Truncated: true, Before: 1}, []string{"to apply its 1 readable record"}},
		{"a log with one write not applied", &UnappliedLogError{Log: "f.db-wal", Writes: 1}, []string{"holds 1 write not yet applied"}},
		{"a log with two records after the damage", &WALDamageError{Path: "f.db-wal", Offset: 9, Before: 1, After: 2}, []string{"yet 2 acknowledged records follow it", "to apply the 3 readable records ("}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.err.Error()
			for _, want := range tt.want {
				if !strings.Contains(got, want) {
					t.Errorf("%q, want %q in it", got, want)
				}
			}
		})
	}
}
