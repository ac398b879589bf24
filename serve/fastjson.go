package serve

import (
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/jsonscan"
)

// fastDecodeRoute parses the usual shapes of a route body without
// reflection: an object with "prompt", "id", "explain", "messages" (role
// and content strings) and "meta" (string, number or boolean values, as
// datasets.Meta takes them). Profiling the route path put encoding/json at
// a quarter of its CPU, as much as the feature extractor. It returns
// false, having maybe filled r partly, for anything else (other keys,
// other case, null, malformed input); the caller then runs the strict
// decoder, which accepts or explains. When it returns true, r is what
// encoding/json would have produced (FuzzFastDecodeMatchesEncodingJSON
// checks this). The values are read by jsonscan, which datasets' record
// decoder shares.
func fastDecodeRoute(body []byte, r *routeRequest) bool {
	s := jsonscan.New(body)
	ok := s.Object(func(key []byte) (ok bool) {
		switch string(key) {
		case "prompt":
			r.Prompt, ok = s.Str()
		case "id":
			r.ID, ok = s.Str()
		case "explain":
			r.Explain, ok = s.Bool()
		case "messages":
			r.Messages, ok = jsonscan.Messages[message](&s)
		case "meta":
			r.Meta, ok = meta(&s)
		}
		return ok
	})
	return ok && s.End()
}

// fastDecodeFeedback is fastDecodeRoute for a POST /v1/feedback body: an
// object with the string fields, numbers (not null) for score,
// confidence, latency_ms and cost_usd, and messages and meta as for a
// route. Profiling the feedback path under load put encoding/json at a
// quarter of the handler's CPU. Anything else returns false for the strict
// decoder (FuzzFastDecodeFeedbackMatchesEncodingJSON).
func fastDecodeFeedback(body []byte, f *feedbackRequest) bool {
	s := jsonscan.New(body)
	ok := s.Object(func(key []byte) (ok bool) {
		switch string(key) {
		case "request_id":
			f.RequestID, ok = s.Str()
		case "model":
			f.Model, ok = s.Str()
		case "response":
			f.Response, ok = s.Str()
		case "prompt":
			f.Prompt, ok = s.Str()
		case "score":
			f.Score, ok = s.FloatPtr()
		case "confidence":
			f.Confidence, ok = s.FloatPtr()
		case "latency_ms":
			f.LatencyMS, ok = s.FloatPtr()
		case "cost_usd":
			f.CostUSD, ok = s.FloatPtr()
		case "messages":
			f.Messages, ok = jsonscan.Messages[message](&s)
		case "meta":
			f.Meta, ok = meta(&s)
		}
		return ok
	})
	return ok && s.End()
}

func meta(s *jsonscan.Scanner) (datasets.Meta, bool) {
	m, ok := s.StringMap()
	return datasets.Meta(m), ok
}
