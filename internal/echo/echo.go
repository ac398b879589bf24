// Package echo bounds what an error message or a log line repeats of a
// client's input: an id, a model name, a path. Repeating it whole let a
// client make the server write back (and log) as much as it sent, up to
// the body limit, and repeating it raw let it put line breaks and quotes
// into a message a person or a log parser reads.
package echo

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBytes is how much of a client's string is repeated: more than any
// real id (OpenAI's are 53 bytes, a feedback db key at most 256) needs to
// be recognised by its start.
const MaxBytes = 96

// Quote is s as a Go string literal (strconv.Quote: control characters,
// quotes and invalid UTF-8 escaped), cut to its first MaxBytes bytes with
// "..." after the closing quote when it is longer.
func Quote(s string) string {
	p, cut := prefix(s)
	q := strconv.Quote(p)
	if cut {
		q += "..."
	}
	return q
}

// Bare is s escaped as Quote escapes it, for a message that puts it in
// single quotes as OpenAI's do ("No response found with id '...'."):
// without the enclosing double quotes, a single quote escaped, and "..."
// at the end when it was cut.
func Bare(s string) string {
	p, cut := prefix(s)
	q := strconv.Quote(p)
	q = strings.ReplaceAll(q[1:len(q)-1], "'", `\'`)
	if cut {
		q += "..."
	}
	return q
}

// prefix is s cut to at most MaxBytes bytes, not inside a UTF-8
// sequence, and whether it was cut.
func prefix(s string) (string, bool) {
	if len(s) <= MaxBytes {
		return s, false
	}
	n := MaxBytes
	for n > 0 && n > MaxBytes-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}
