package serve

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/triage-router/triage/datasets"
)

// fastDecodeRoute parses the usual shapes of a route body without
// reflection: an object with "prompt", "id", "explain", "messages" (role
// and content strings) and "meta" (string values). Profiling the route
// path put encoding/json at a quarter of its CPU, as much as the feature
// extractor. It returns false, having maybe filled r partly, for anything
// else (other keys, other case, null, numbers, malformed input); the
// caller then runs the strict decoder, which accepts or explains. When it
// returns true, r is what encoding/json would have produced
// (FuzzFastDecodeMatchesEncodingJSON checks this). body must be valid
// UTF-8.
func fastDecodeRoute(body []byte, r *routeRequest) bool {
	p := parser{b: body}
	return p.document(func(key string) (ok bool) {
		switch key {
		case "prompt":
			r.Prompt, ok = p.str()
		case "id":
			r.ID, ok = p.str()
		case "explain":
			r.Explain, ok = p.boolean()
		case "messages":
			r.Messages, ok = p.messages()
		case "meta":
			r.Meta, ok = p.meta()
		}
		return ok
	})
}

// fastDecodeFeedback is fastDecodeRoute for a POST /v1/feedback body: an
// object with the string fields, numbers (not null) for score,
// confidence, latency_ms and cost_usd, and messages and meta as for a
// route. Profiling the feedback path under load put encoding/json at a
// quarter of the handler's CPU. Anything else returns false for the strict
// decoder (FuzzFastDecodeFeedbackMatchesEncodingJSON). body must be valid
// UTF-8.
func fastDecodeFeedback(body []byte, f *feedbackRequest) bool {
	p := parser{b: body}
	return p.document(func(key string) (ok bool) {
		switch key {
		case "request_id":
			f.RequestID, ok = p.str()
		case "model":
			f.Model, ok = p.str()
		case "response":
			f.Response, ok = p.str()
		case "prompt":
			f.Prompt, ok = p.str()
		case "score":
			f.Score, ok = p.number()
		case "confidence":
			f.Confidence, ok = p.number()
		case "latency_ms":
			f.LatencyMS, ok = p.number()
		case "cost_usd":
			f.CostUSD, ok = p.number()
		case "messages":
			f.Messages, ok = p.messages()
		case "meta":
			f.Meta, ok = p.meta()
		}
		return ok
	})
}

type parser struct {
	b []byte
	i int
}

// document parses the whole of p.b as one object, calling field for each
// key with p at its value; field parses the value and says whether it
// could (false, as for an unknown key, sends the body to the strict
// decoder). Nothing but whitespace may follow the object.
func (p *parser) document(field func(key string) bool) bool {
	if !p.objectStart() {
		return false
	}
	for first := true; ; first = false {
		key, ok := p.nextKey(first)
		if !ok {
			return false
		}
		if key == "" { // end of object
			break
		}
		if !field(key) {
			return false
		}
	}
	p.ws()
	return p.i == len(p.b)
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) objectStart() bool { return p.byte('{') }

// nextKey reads `"key":` (after a comma unless first), or the closing
// brace, for which it returns "".
func (p *parser) nextKey(first bool) (string, bool) {
	p.ws()
	if p.i >= len(p.b) {
		return "", false
	}
	if p.b[p.i] == '}' {
		p.i++
		return "", true
	}
	if !first && !p.byte(',') {
		return "", false
	}
	// Keys are matched exactly; encoding/json would also accept other
	// cases, so those go to it.
	k, ok := p.str()
	if !ok || k == "" || !p.byte(':') {
		return "", false
	}
	return k, true
}

// str reads a JSON string, decoding escapes as encoding/json does.
func (p *parser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// strEscaped finishes a string that holds escapes, from start.
func (p *parser) strEscaped(start int) (string, bool) {
	// The rest of the body bounds the string: one allocation.
	out := make([]byte, 0, len(p.b)-start)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			rr := p.hex4()
			if rr < 0 {
				return "", false
			}
			if utf16.IsSurrogate(rr) {
				// A pair decodes to one rune; anything else is U+FFFD and
				// the next escape is read on its own, as encoding/json does.
				save := p.i
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					if rr1 := p.hex4(); rr1 >= 0 {
						if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
				}
				p.i = save
				rr = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, rr)
		default:
			return "", false
		}
	}
	return "", false
}

func (p *parser) hex4() rune {
	if p.i+4 > len(p.b) {
		return -1
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	p.i += 4
	return r
}

// number reads a JSON number into a new float64, as encoding/json
// decodes one into a *float64; it fails on what encoding/json rejects
// (bad syntax, a value out of range).
func (p *parser) number() (*float64, bool) {
	p.ws()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && '1' <= p.b[p.i] && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, false
		}
	}
	v, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil {
		return nil, false
	}
	return &v, true
}

// digits skips ASCII digits and returns how many.
func (p *parser) digits() int {
	n := 0
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *parser) boolean() (bool, bool) {
	p.ws()
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
		return true, true
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// messages reads [{"role": "...", "content": "..."}, ...].
func (p *parser) messages() ([]message, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := []message{}
	if p.byte(']') {
		return out, true
	}
	for {
		var m message
		if !p.objectStart() {
			return nil, false
		}
		for first := true; ; first = false {
			key, ok := p.nextKey(first)
			if !ok {
				return nil, false
			}
			if key == "" {
				break
			}
			switch key {
			case "role":
				m.Role, ok = p.str()
			case "content":
				m.Content, ok = p.str()
			default:
				ok = false
			}
			if !ok {
				return nil, false
			}
		}
		out = append(out, m)
		if p.byte(']') {
			return out, true
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}

// meta reads an object of string values (datasets.Meta also takes numbers
// and booleans; those go to encoding/json).
func (p *parser) meta() (datasets.Meta, bool) {
	if !p.objectStart() {
		return nil, false
	}
	out := datasets.Meta{}
	for first := true; ; first = false {
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return out, true
		}
		if !first && !p.byte(',') {
			return nil, false
		}
		k, ok := p.str()
		if !ok || !p.byte(':') {
			return nil, false
		}
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		out[k] = v
	}
}
