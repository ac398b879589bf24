// Package plural words a count with its noun for messages people read:
// "1 record", "2 records", "1 page", "3 entries". The command line and
// the importers share it, so that no summary says "1 records".
package plural

import "strconv"

// Count is n and the noun, plural unless n is 1 (0 takes the plural, as
// in "0 records"). The plural adds "s", or "ies" in place of a "y" that
// follows a consonant ("entry", "entries"; "day", "days"). For a noun
// followed by more words, count the noun alone: Count(n, "record") + "
// of the log".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + Of(noun)
}

// Agree is one when n is 1, else many: the words that agree with a
// count ("1 record is", "2 records are").
func Agree(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Of is noun's plural, as Count makes it.
func Of(noun string) string {
	if l := len(noun); l >= 2 && noun[l-1] == 'y' && !isVowel(noun[l-2]) {
		return noun[:l-1] + "ies"
	}
	return noun + "s"
}

func isVowel(c byte) bool {
	switch c {
	case 'a', 'e', 'i', 'o', 'u':
		return true
	}
	return false
}
