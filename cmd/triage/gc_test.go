package main

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	t.Run("without GOGC it sets the command's value and restores the old one", func(t *testing.T) {
		restore := setGCPercent(&Env{Getenv: func(string) string { return "" }}, 321)
		got := debug.SetGCPercent(321)
		restore()
		if got != 321 {
			t.Errorf("during the run GOGC = %d, want 321", got)
		}
		if now := debug.SetGCPercent(before); now != before {
			t.Errorf("after restore GOGC = %d, want %d", now, before)
		}
	})
	t.Run("a GOGC the user set is left alone", func(t *testing.T) {
		restore := setGCPercent(&Env{Getenv: func(k string) string { return map[string]string{"GOGC": "150"}[k] }}, 321)
		got := debug.SetGCPercent(before)
		restore()
		if got != before {
			t.Errorf("GOGC = %d with the user's GOGC set, want it untouched (%d)", got, before)
		}
	})
}
