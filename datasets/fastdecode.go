package datasets

import (
	"strconv"
	"unicode/utf8"
)

// fastDecode fills rec from one JSONL line of the usual shape without
// reflection: an object whose keys are Record's JSON names, each at most
// once and spelled exactly, holding strings, numbers, booleans, the
// messages array, and the meta, outcomes and decision objects. For
// anything else (other keys, other case, a repeated key, null, a string
// with invalid UTF-8 or a \u escape of a surrogate, a number strconv
// rejects, malformed JSON) it returns false, having maybe filled rec
// partly, and the caller decodes the line with encoding/json, which
// accepts or explains it. When it returns true, rec is what
// json.Unmarshal would have produced (FuzzFastDecodeMatchesEncodingJSON).
// Decoding was a third of train's CPU on 1M synthetic records, most of it
// in reflection and in the meta map's raw messages.
func fastDecode(b []byte, rec *Record) bool {
	d := decoder{b: b}
	var seen uint8
	ok := d.object(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "id":
			bit = 1
			rec.ID, ok = d.str()
		case "prompt":
			bit = 2
			rec.Prompt, ok = d.str()
		case "messages":
			bit = 4
			rec.Messages, ok = d.messages()
		case "meta":
			bit = 8
			rec.Meta, ok = d.meta()
		case "outcomes":
			bit = 16
			rec.Outcomes, ok = d.outcomes()
		case "ts":
			bit = 32
			ok = d.time(rec)
		case "decision":
			bit = 64
			rec.Decision, ok = d.decision()
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	if !ok {
		return false
	}
	d.ws()
	return d.i == len(d.b)
}

// decoder reads JSON values from b at i.
type decoder struct {
	b   []byte
	i   int
	buf []byte // scratch for strings with escapes
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (d *decoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads an object, calling field for each key with d positioned
// at the value; field reads the value and reports success. The key is
// valid only during the call.
func (d *decoder) object(field func(key []byte) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		d.ws()
		key, ok := d.rawKey()
		if !ok || !d.consume(':') {
			return false
		}
		d.ws()
		if !field(key) {
			return false
		}
		if d.consume(',') {
			continue
		}
		return d.consume('}')
	}
}

// rawKey reads a key without escapes (a key with one is left to
// encoding/json) and returns its bytes.
func (d *decoder) rawKey() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string as encoding/json decodes it into a Go string.
func (d *decoder) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start:j]) {
				return "", false
			}
			d.i = j + 1
			return string(d.b[start:j]), true
		case c == '\\':
			return d.escaped(start, j)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// escaped finishes str for a string whose first escape is at j.
func (d *decoder) escaped(start, j int) (string, bool) {
	out := append(d.buf[:0], d.b[start:j]...)
	defer func() { d.buf = out[:0] }()
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", false
			}
			d.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		switch e := d.b[j+1]; e {
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
			if j+6 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.b[j+2:j+6]), 16, 32)
			// Surrogates (pairs, or lone ones that become U+FFFD) are
			// left to encoding/json.
			if err != nil || r >= 0xd800 && r < 0xe000 {
				return "", false
			}
			out = utf8.AppendRune(out, rune(r))
			j += 6
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// number reads a number literal of JSON's grammar and returns its text.
func (d *decoder) number() ([]byte, bool) {
	b, i := d.b, d.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		n := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == n {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		n := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == n {
			return nil, false
		}
	}
	d.i = i
	return b[start:i], true
}

func (d *decoder) float() (float64, bool) {
	lit, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

func (d *decoder) floatPtr() (*float64, bool) {
	v, ok := d.float()
	if !ok {
		return nil, false
	}
	return &v, true
}

func (d *decoder) intPtr() (*int, bool) {
	lit, ok := d.number()
	if !ok {
		return nil, false
	}
	v, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		return nil, false
	}
	n := int(v)
	return &n, true
}

// literal reads the keyword lit (true, false, null).
func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

func (d *decoder) boolean() (bool, bool) {
	switch {
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	}
	return false, false
}

func (d *decoder) messages() ([]Message, bool) {
	if !d.consume('[') {
		return nil, false
	}
	msgs := []Message{} // [] decodes to an empty slice, not nil
	if d.consume(']') {
		return msgs, true
	}
	for {
		d.ws()
		var m Message
		var seen uint8
		ok := d.object(func(key []byte) bool {
			var ok bool
			var bit uint8
			switch string(key) {
			case "role":
				bit = 1
				m.Role, ok = d.str()
			case "content":
				bit = 2
				m.Content, ok = d.str()
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			return ok
		})
		if !ok {
			return nil, false
		}
		msgs = append(msgs, m)
		if d.consume(',') {
			continue
		}
		return msgs, d.consume(']')
	}
}

// meta reads meta as Meta.UnmarshalJSON does: string, number and boolean
// values kept as strings, null meaning absent, a repeated key's last value
// winning.
func (d *decoder) meta() (Meta, bool) {
	m := Meta{}
	ok := d.object(func(key []byte) bool {
		var v string
		switch c := d.b[min(d.i, len(d.b)-1)]; {
		case c == '"':
			var ok bool
			if v, ok = d.str(); !ok {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			lit, ok := d.number()
			if !ok {
				return false
			}
			v = string(lit)
		case d.literal("true"):
			v = "true"
		case d.literal("false"):
			v = "false"
		case d.literal("null"):
			delete(m, string(key))
			return true
		default:
			return false
		}
		m[string(key)] = v
		return true
	})
	return m, ok
}

func (d *decoder) outcomes() (map[string]Outcome, bool) {
	out := map[string]Outcome{}
	ok := d.object(func(key []byte) bool {
		var o Outcome
		var seen uint8
		ok := d.object(func(k []byte) bool {
			var ok bool
			var bit uint8
			switch string(k) {
			case "score":
				bit = 1
				o.Score, ok = d.floatPtr()
			case "latency_ms":
				bit = 2
				o.LatencyMS, ok = d.floatPtr()
			case "cost_usd":
				bit = 4
				o.CostUSD, ok = d.floatPtr()
			case "confidence":
				bit = 8
				o.Confidence, ok = d.floatPtr()
			case "response":
				bit = 16
				o.Response, ok = d.str()
			case "input_tokens":
				bit = 32
				o.InputTokens, ok = d.intPtr()
			case "output_tokens":
				bit = 64
				o.OutputTokens, ok = d.intPtr()
			case "cancelled":
				bit = 128
				o.Cancelled, ok = d.boolean()
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			return ok
		})
		if ok {
			out[string(key)] = o // a repeated model's last outcome wins
		}
		return ok
	})
	return out, ok
}

func (d *decoder) decision() (*Decision, bool) {
	var dec Decision
	var seen uint8
	ok := d.object(func(key []byte) bool {
		var ok bool
		var bit uint8
		switch string(key) {
		case "decision":
			bit = 1
			dec.Kind, ok = d.str()
		case "p_hard":
			bit = 2
			dec.PHard, ok = d.float()
		case "model_version":
			bit = 4
			dec.ModelVersion, ok = d.str()
		case "propensity":
			bit = 8
			dec.Propensity, ok = d.float()
		case "explored":
			bit = 16
			dec.Explored, ok = d.boolean()
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	return &dec, ok
}

// time reads ts: encoding/json hands time.Time's UnmarshalJSON the quoted
// bytes as they are, and so does this.
func (d *decoder) time(rec *Record) bool {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return false
	}
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			raw := d.b[d.i : j+1]
			d.i = j + 1
			return rec.TS.UnmarshalJSON(raw) == nil
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
	}
	return false
}
