package datasets

import "github.com/triage-router/triage/datasets/jsonscan"

// fastDecode fills rec from one JSONL line of the usual shape without
// reflection: an object whose keys are Record's JSON names, each at most
// once and spelled exactly, holding strings, numbers, booleans, the
// messages array, and the meta, outcomes and decision objects. For
// anything else (other keys, other case, a repeated key, null, a string
// with invalid UTF-8, a number strconv rejects, malformed JSON) it returns
// false, having maybe filled rec partly, and the caller decodes the line
// with encoding/json, which accepts or explains it. The values are read by
// jsonscan, which serve's body decoders share. When it returns true, rec is what
// json.Unmarshal would have produced (FuzzFastDecodeMatchesEncodingJSON).
// Decoding was a third of train's CPU on 1M synthetic records, most of it
// in reflection and in the meta map's raw messages.
func fastDecode(b []byte, rec *Record) bool {
	d := jsonscan.New(b)
	ok := d.Fields(func(key []byte) (bit uint, ok bool) {
		switch string(key) {
		case "id":
			bit = 1
			rec.ID, ok = d.Str()
		case "prompt":
			bit = 2
			rec.Prompt, ok = d.Str()
		case "messages":
			bit = 4
			rec.Messages, ok = jsonscan.Messages[Message](&d)
		case "meta":
			bit = 8
			var m map[string]string
			m, ok = d.UniqueStringMap()
			rec.Meta = Meta(m)
		case "outcomes":
			bit = 16
			rec.Outcomes, ok = outcomes(&d)
		case "ts":
			bit = 32
			ok = decodeTime(&d, rec)
		case "decision":
			bit = 64
			rec.Decision, ok = decision(&d)
		default:
			return 0, false
		}
		return bit, ok
	})
	return ok && d.End()
}

func outcomes(d *jsonscan.Scanner) (map[string]Outcome, bool) {
	out := map[string]Outcome{}
	ok := d.Object(func(key []byte) bool {
		var o Outcome
		ok := d.Fields(func(k []byte) (bit uint, ok bool) {
			switch string(k) {
			case "score":
				bit = 1
				o.Score, ok = d.FloatPtr()
			case "latency_ms":
				bit = 2
				o.LatencyMS, ok = d.FloatPtr()
			case "cost_usd":
				bit = 4
				o.CostUSD, ok = d.FloatPtr()
			case "confidence":
				bit = 8
				o.Confidence, ok = d.FloatPtr()
			case "response":
				bit = 16
				o.Response, ok = d.Str()
			case "input_tokens":
				bit = 32
				o.InputTokens, ok = intPtr(d)
			case "output_tokens":
				bit = 64
				o.OutputTokens, ok = intPtr(d)
			case "cancelled":
				bit = 128
				o.Cancelled, ok = d.Bool()
			default:
				return 0, false
			}
			return bit, ok
		})
		if _, repeated := out[string(key)]; repeated {
			return false // decodeLine names it
		}
		if ok {
			out[string(key)] = o
		}
		return ok
	})
	return out, ok
}

func decision(d *jsonscan.Scanner) (*Decision, bool) {
	var dec Decision
	ok := d.Fields(func(key []byte) (bit uint, ok bool) {
		switch string(key) {
		case "decision":
			bit = 1
			dec.Kind, ok = d.Str()
		case "p_hard":
			bit = 2
			dec.PHard, ok = d.Float()
		case "model_version":
			bit = 4
			dec.ModelVersion, ok = d.Str()
		case "propensity":
			bit = 8
			dec.Propensity, ok = d.Float()
		case "explored":
			bit = 16
			dec.Explored, ok = d.Bool()
		case "fallback":
			bit = 32
			dec.Fallback, ok = d.Str()
		case "error":
			bit = 64
			dec.Error, ok = d.Str()
		case "tier":
			bit = 128
			dec.Tier, ok = d.Str()
		case "policy":
			bit = 256
			dec.Policy, ok = d.Str()
		case "pinned":
			bit = 512
			dec.Pinned, ok = d.Bool()
		case "ran":
			bit = 1024
			dec.Ran, ok = stringList(d)
		case "policy_tier":
			bit = 2048
			dec.PolicyTier, ok = d.Str()
		case "tier_propensity":
			bit = 4096
			dec.TierPropensity, ok = floatMap(d)
		default:
			return 0, false
		}
		return bit, ok
	})
	return &dec, ok
}

// stringList reads an array of strings.
func stringList(d *jsonscan.Scanner) ([]string, bool) {
	out := []string{}
	ok := d.Array(func() bool {
		v, ok := d.Str()
		out = append(out, v)
		return ok
	})
	return out, ok
}

// floatMap reads an object of numbers; a repeated key is left to
// decodeLine, which names it.
func floatMap(d *jsonscan.Scanner) (map[string]float64, bool) {
	out := map[string]float64{}
	ok := d.Object(func(key []byte) bool {
		if _, repeated := out[string(key)]; repeated {
			return false
		}
		v, ok := d.Float()
		out[string(key)] = v
		return ok
	})
	return out, ok
}

// decodeTime reads ts: encoding/json hands time.Time's UnmarshalJSON the
// quoted bytes as they are, and so does this.
func decodeTime(d *jsonscan.Scanner, rec *Record) bool {
	q, ok := d.Quoted()
	return ok && rec.TS.UnmarshalJSON(q) == nil
}

func intPtr(d *jsonscan.Scanner) (*int, bool) {
	v, ok := d.Int()
	if !ok {
		return nil, false
	}
	return &v, true
}
