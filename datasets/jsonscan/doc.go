// Package jsonscan reads JSON values of known shapes from a byte slice
// without reflection, for the hot decoding paths of datasets (a JSONL log
// record) and serve (a /v1/route or /v1/feedback body). Each caller keeps
// its own switch on keys; the scanner reads the values.
//
// It accepts only a subset of what encoding/json accepts and decodes that
// subset exactly as encoding/json does: strings with every escape and the
// same surrogate rules, numbers of JSON's grammar that strconv can
// represent, true, false, null. Whatever it cannot decode that way (an
// object key with an escape or non-ASCII byte, a string with invalid
// UTF-8, a number out of range, malformed JSON) makes a method report
// false, and the caller hands the whole input to encoding/json, which
// accepts or explains it (FuzzStringMatchesEncodingJSON and
// FuzzNumberMatchesEncodingJSON check the subset).
package jsonscan
