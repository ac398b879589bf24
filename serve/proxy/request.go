package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/jsonscan"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/reqbody"
)

// Error codes of the proxy's own error bodies (ErrorBody).
const (
	codeInvalidJSON         = "invalid_json"
	codeInvalidRequest      = "invalid_request"
	codeInvalidUTF8         = "invalid_utf8"
	codeBodyTooLarge        = "body_too_large"
	codeUnsupportedEncoding = "unsupported_content_encoding"
	codeUnknownModel        = "unknown_model"
	codeUpstream            = "upstream_failed"
	codeRequestTimeout      = "request_timeout"
)

// apiError is an error the client is told about with its status. param
// names the request field at fault, if one is.
type apiError struct {
	status           int
	code, msg, param string
}

func (e *apiError) Error() string { return e.msg }

// ErrorBody is an error as OpenAI (and vLLM, and every OpenAI SDK)
// shapes it: {"error": {"message", "type", "param", "code"}}, param null
// when no request field is at fault. The SDKs read type and code into
// their error objects.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// NewErrorBody builds the body of an error answered with status. Its
// type is OpenAI's for the status: invalid_request_error for most 4xx,
// authentication_error (401), permission_error (403), rate_limit_error
// (429) and server_error for 5xx.
func NewErrorBody(status int, code, msg, param string) ErrorBody {
	b := ErrorBody{Error: ErrorDetail{Message: msg, Type: ErrorType(status), Code: code}}
	if param != "" {
		b.Error.Param = &param
	}
	return b
}

// ErrorType is OpenAI's error type for an HTTP status.
func ErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// writeError answers with e and returns its status.
func writeError(w http.ResponseWriter, e *apiError) int {
	b, _ := json.Marshal(NewErrorBody(e.status, e.code, e.msg, e.param))
	w.Header().Set("Content-Type", "application/json")
	if e.code == codeUnsupportedEncoding {
		// RFC 7694: a 415 for a content coding says which ones are taken.
		w.Header().Set("Accept-Encoding", reqbody.Accepted)
	}
	w.WriteHeader(e.status)
	w.Write(b)
	return e.status
}

// chatRequest is a client's request: the body as sent, with the fields
// the proxy reads decoded. Every other field reaches the upstream as is.
type chatRequest struct {
	// body is the request as sent and fields its top-level members; the
	// upstream body is them with "model" (and what the proxy needs)
	// replaced, the other members copied as they are.
	body   []byte
	fields []member
	model  string
	stream bool
	// logprobs and includeUsage are what the client asked for; the proxy
	// may ask the upstream for more and then hides it.
	logprobs, includeUsage bool
	// api is the endpoint asked.
	api *api
	// messages (chat) or prompt (completions) are what is recorded;
	// input is what is routed on.
	messages []datasets.Message
	prompt   string
	input    features.Input
	meta     map[string]string
	// tools is a request that offers tools (or legacy functions): its
	// answer may be tool calls, which carry no content log-probabilities.
	tools bool
	// keepMetadata: "metadata" goes upstream too. It is the router's
	// meta, and OpenAI refuses it (a 400, "The 'metadata' parameter is
	// only allowed when 'store' is enabled") on a chat completion without
	// "store": true, and on a legacy completion, which has no such field;
	// the Responses API takes it.
	keepMetadata bool
	// textBytes is the length of the messages' text, what a cancelled
	// call's prompt tokens are estimated from.
	textBytes int
	// previousID is a Responses API request's previous_response_id: the
	// stored response it continues, which only the tier that stored it
	// has. noStore is its "store": false: its answer is not stored
	// upstream, so there is nothing to remember.
	previousID string
	noStore    bool
}

// readRequest reads and decodes a request to a. Its errors are
// *apiError.
func readRequest(r *http.Request, limit int64, a *api, c caps) (*chatRequest, error) {
	body, err := readBody(r, limit)
	if err != nil {
		return nil, err
	}
	return parseRequest(body, a, c)
}

// readBody reads a request body of at most limit bytes. Its errors are
// *apiError.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge, msg: fmt.Sprintf("request body is %d bytes, the limit is %d (max_request_bytes)", r.ContentLength, limit)}
	}
	decoded, err := reqbody.Open(r, limit)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(decoded, limit+1))
	}
	if errors.As(err, new(*reqbody.TooLargeError)) {
		// Its bytes on the wire: a chunked body, or one whose zero
		// padding decodes to nothing, is held to the limit as one with
		// a Content-Length is.
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge, msg: fmt.Sprintf("request body is over the limit of %d bytes (max_request_bytes)", limit)}
	}
	if err != nil {
		var unsupported *reqbody.UnsupportedError
		if errors.As(err, &unsupported) {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedEncoding, msg: unsupported.Error()}
		}
		var damaged *reqbody.DamagedError
		if errors.As(err, &damaged) {
			return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: damaged.Error()}
		}
		// Never err's text: a network error names the connection's
		// addresses.
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return nil, &apiError{status: http.StatusRequestTimeout, code: codeRequestTimeout, msg: "the request body did not arrive within the server's read timeout (limits.read_timeout)"}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: "the request body ended before its Content-Length"}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: "the request body could not be read (the connection broke, or a chunked body is malformed)"}
	}
	if int64(len(body)) > limit {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge, msg: fmt.Sprintf("request body is over the limit of %d bytes (max_request_bytes)", limit)}
	}
	return body, nil
}

// api is an OpenAI endpoint the proxy routes: they differ in where the
// prompt is, how log-probabilities are asked for and where the answer's
// text is (completion reads both shapes).
type api struct {
	// path follows a tier's base URL.
	path string
	// logprobs is the "logprobs" value that asks for each sampled
	// token's log-probability.
	logprobs json.RawMessage
	// what names the request in errors.
	what string
}

var (
	apiChat        = &api{path: "/chat/completions", logprobs: json.RawMessage("true"), what: "an OpenAI chat completion request"}
	apiCompletions = &api{path: "/completions", logprobs: json.RawMessage("1"), what: "an OpenAI completion request"}
	// apiResponses asks for log-probabilities in "include" instead, and
	// its streams always end with the usage (response.completed).
	apiResponses = &api{path: "/responses", what: "an OpenAI Responses API request"}
)

// includeLogprobs is the Responses API's "include" value that asks for
// the output text's log-probabilities.
const includeLogprobs = "message.output_text.logprobs"

func parseRequest(body []byte, a *api, c caps) (*chatRequest, error) {
	bad := func(param, format string, args ...any) error {
		return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: fmt.Sprintf(format, args...), param: param}
	}
	if !utf8.Valid(body) {
		return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidUTF8, msg: "request body is not valid UTF-8; send UTF-8 JSON"}
	}
	req := &chatRequest{body: body, api: a}
	var ok bool
	valid := validJSON(body)
	if valid {
		req.fields, ok = members(make([]member, 0, 8), body, 0)
	}
	if !ok {
		msg := "request body is not a JSON object"
		// The decoder says where invalid JSON breaks, before decoding
		// any of it. Valid JSON that is not an object it would decode
		// whole, for no message: 827 MB and 1.9 s for a 16 MiB array.
		var v any
		if !valid {
			if err := json.Unmarshal(body, &v); err != nil {
				msg += ": " + err.Error()
			}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: msg + "; send " + a.what}
	}
	if err := c.refuseEarly(body, req.fields, a); err != nil {
		return nil, err
	}
	field := func(name string, dst any) error {
		i := last(req.fields, name)
		if i < 0 {
			return nil
		}
		raw := body[req.fields[i].val:req.fields[i].end]
		if string(raw) == "null" {
			return nil
		}
		// The scanner reads strings and booleans as encoding/json does,
		// without its reflection.
		switch d := dst.(type) {
		case *string:
			if v, ok := scanString(raw); ok {
				*d = v
				return nil
			}
		case *bool:
			switch string(raw) {
			case "true", "false":
				*d = string(raw) == "true"
				return nil
			}
		case *datasets.Meta:
			sc := jsonscan.New(raw)
			if m, ok := sc.StringMap(); ok && sc.End() {
				*d = m
				return nil
			}
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return bad(name, "%s: %v", name, typeError(err))
		}
		return nil
	}
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	for _, f := range []struct {
		name string
		dst  any
	}{{"model", &req.model}, {"stream", &req.stream}, {"stream_options", &opts}, {"metadata", (*datasets.Meta)(&req.meta)}} {
		if err := field(f.name, f.dst); err != nil {
			return nil, err
		}
	}
	req.includeUsage = opts.IncludeUsage
	var err error
	switch a {
	case apiCompletions:
		err = req.parseCompletion(field, bad)
	case apiResponses:
		req.keepMetadata = true
		err = req.parseResponses(field, bad)
	default:
		// Stored, a chat completion keeps its metadata at OpenAI.
		if err = field("store", &req.keepMetadata); err == nil {
			err = req.parseChat(field, bad)
		}
	}
	if err != nil {
		return nil, err
	}
	req.input.Meta = req.meta
	return req, nil
}

// parseChat reads a chat completion's messages, logprobs and tools.
func (req *chatRequest) parseChat(field func(string, any) error, bad func(string, string, ...any) error) error {
	if err := req.parseChatRest(field, bad); err != nil {
		return err
	}
	if req.fastMessages() {
		return nil
	}
	// Content parts are read in place (chatMessagesInPlace, partsText):
	// decoding the messages copied each content and checked it twice
	// more, most of what a 16 MiB body of tiny parts still cost.
	msgs, ok := req.chatMessagesInPlace()
	if !ok {
		if err := field("messages", &msgs); err != nil {
			return err
		}
	}
	// Which of the two: a client that sent [] looks for a bug in what
	// fills the array, one that sent none for the field's name.
	switch {
	case msgs == nil:
		return bad("messages", "messages is missing; send at least one {\"role\": \"user\", \"content\": \"...\"}")
	case len(msgs) == 0:
		return bad("messages", "messages is an empty array; send at least one {\"role\": \"user\", \"content\": \"...\"}")
	}
	req.messages = make([]datasets.Message, len(msgs))
	turns := make([]features.Turn, len(msgs))
	for i, m := range msgs {
		if m.Role == "" {
			return bad(fmt.Sprintf("messages[%d].role", i), "messages[%d].role is empty", i)
		}
		// As OpenAI answers it: only an assistant message (one that
		// carries tool calls) may go without content.
		if m.Role != "assistant" && (len(m.Content) == 0 || string(m.Content) == "null") {
			return bad(fmt.Sprintf("messages[%d].content", i), "messages[%d].content is missing; a %s message needs its content (a string, or an array of content parts)", i, echo.Bare(m.Role))
		}
		text, err := m.textOf(m.Content, "text")
		if err != nil {
			return bad(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
		}
		req.messages[i] = datasets.Message{Role: m.Role, Content: text}
		req.textBytes += len(text)
		turns[i] = features.Turn{Role: m.Role, Content: text}
	}
	req.input.Messages = turns
	return nil
}

// chatMessage is a chat message as parseChat reads it: its content as
// sent (a string, an array of parts, null), for partsText.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	partsRead
}

// partsRead is the text of a message's content parts where
// messageInPlace read it as it found the content's end: read after,
// from the content, it cost a second scan of the content (of a 16 MiB
// body of one message of tiny parts, a fifth of its parse). Decoding
// leaves it unset (its fields are unexported).
type partsRead struct {
	text string
	read bool
}

// textOf is the text of content, the message's: as read in place, or
// partsText's.
func (p partsRead) textOf(content json.RawMessage, kinds ...string) (string, error) {
	if p.read {
		return p.text, nil
	}
	return partsText(content, kinds...)
}

// chatMessagesInPlace reads an array of messages as decoding it into
// []chatMessage does (messageInPlace), with each content a slice of the
// body rather than a copy. False leaves the messages to decoding: no
// array (missing, null, another type), or a message messageInPlace does
// not read, which is where decoding fails and says why.
func (req *chatRequest) chatMessagesInPlace() ([]chatMessage, bool) {
	i := last(req.fields, "messages")
	if i < 0 || req.body[req.fields[i].val] != '[' {
		return nil, false
	}
	raw := req.body[req.fields[i].val:req.fields[i].end]
	msgs := []chatMessage{} // [] is an empty array, not a missing one
	ok := true
	end := eachElement(raw, 0, func(e int) int {
		var m inputItem
		var end int
		if m, end, ok = messageInPlace(raw, e, false, "text"); !ok {
			return -1
		}
		msgs = append(msgs, chatMessage{Role: m.Role, Content: m.Content, partsRead: m.partsRead})
		return end
	})
	if !ok || end != len(raw) {
		return nil, false
	}
	return msgs, true
}

// inputItem is a Responses API input item as appendInputMessages reads
// it: a message's content as sent.
type inputItem struct {
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	partsRead
}

// messageInPlace reads the object (or null) at b[e] as encoding/json
// decodes it into an inputItem, or with typed false a chatMessage (Type
// is not read): keys matched in any case, a later one replacing an
// earlier one, null leaving a string as it was, the content as sent
// (null included) and every other member skipped. It returns the index
// after the value. False where decoding fails or might read otherwise:
// not an object, a role or type that is not a string scanString reads
// (invalid UTF-8, which decoding makes U+FFFD): the caller decodes
// those, for decoding's error. FuzzInPlaceAgreesWithDecoding checks it
// against decoding. A content that is an array of content parts of kinds
// has its text read too (partsRead).
func messageInPlace(b []byte, e int, typed bool, kinds ...string) (inputItem, int, bool) {
	var m inputItem
	if b[e] == 'n' {
		end := valueEnd(b, e)
		return m, end, string(b[e:max(end, e)]) == "null"
	}
	ok := true
	end := eachMember(b, e, func(key []byte, v int) int {
		if bytes.EqualFold(key, []byte("content")) {
			m.partsRead = partsRead{}
			if b[v] == '[' {
				if text, end, ok := partsTextAt(b, v, kinds); ok {
					m.Content, m.partsRead = b[v:end], partsRead{text: text, read: true}
					return end
				}
			}
			end := valueEnd(b, v)
			if end >= 0 {
				m.Content = b[v:end]
			}
			return end
		}
		end := valueEnd(b, v)
		if end < 0 {
			return -1
		}
		var dst *string
		switch {
		case bytes.EqualFold(key, []byte("role")):
			dst = &m.Role
		case typed && bytes.EqualFold(key, []byte("type")):
			dst = &m.Type
		default:
			return end
		}
		if string(b[v:end]) == "null" {
			return end
		}
		if *dst, ok = scanString(b[v:end]); !ok {
			return -1
		}
		return end
	})
	return m, end, ok && end >= 0
}

// fastMessages reads messages of the usual shape, [{"role": string,
// "content": string}, ...] with non-empty roles, with the scanner;
// false leaves anything else (content parts, tool calls, errors) to
// parseChat's encoding/json path.
func (req *chatRequest) fastMessages() bool {
	i := last(req.fields, "messages")
	if i < 0 {
		return false
	}
	sc := jsonscan.New(req.body[req.fields[i].val:req.fields[i].end])
	msgs, ok := jsonscan.MessagesWithContent[datasets.Message](&sc)
	if !ok || !sc.End() || len(msgs) == 0 {
		return false
	}
	turns := make([]features.Turn, len(msgs))
	n := 0
	for i, m := range msgs {
		if m.Role == "" {
			return false
		}
		n += len(m.Content)
		turns[i] = features.Turn{Role: m.Role, Content: m.Content}
	}
	req.messages, req.input.Messages, req.textBytes = msgs, turns, n
	return true
}

// parseChatRest reads a chat completion's logprobs, top_logprobs and
// tools.
func (req *chatRequest) parseChatRest(field func(string, any) error, bad func(string, string, ...any) error) error {
	var topLogprobs *int
	for _, f := range []struct {
		name string
		dst  any
	}{{"logprobs", &req.logprobs}, {"top_logprobs", &topLogprobs}} {
		if err := field(f.name, f.dst); err != nil {
			return err
		}
	}
	var err error
	if req.tools, err = req.offersTools(field); err != nil {
		return err
	}
	// The legacy functions' answer, a function_call, has no content
	// log-probabilities either. They are not checked, as before: the
	// upstream says what is wrong with them.
	if i := last(req.fields, "functions"); !req.tools && i >= 0 && req.body[req.fields[i].val] == '[' {
		req.tools = entriesUpTo(req.body, req.fields[i].val, 1) > 0
	}
	if topLogprobs != nil && !req.logprobs {
		// OpenAI refuses it; the proxy refuses it on every route alike
		// rather than let a speculation's own logprobs make it pass.
		return bad("top_logprobs", "top_logprobs needs \"logprobs\": true")
	}
	return nil
}

// offersTools reports whether the request's "tools" is an array with an
// element, without decoding one: the proxy only needs to know that the
// answer may be tool calls, and decoding each tool into a value cost
// 830 MB and 1.4 s for a 16 MiB body of tiny tools. What is not an
// array (or null) is decoded, for the error that says so.
func (req *chatRequest) offersTools(field func(string, any) error) (bool, error) {
	i := last(req.fields, "tools")
	if i < 0 {
		return false, nil
	}
	if v := req.fields[i].val; req.body[v] == '[' {
		return entriesUpTo(req.body, v, 1) > 0, nil
	}
	var tools []json.RawMessage
	return false, field("tools", &tools)
}

// includesLogprobs reports whether a Responses request's "include" asks
// for the output text's log-probabilities, reading its strings in place:
// decoding them cost 1 GB and 2.4 s for a 16 MiB body of one-letter
// strings. An array with an element that is not a string (or null), or
// a value that is not an array, is decoded, for the error that says so.
func (req *chatRequest) includesLogprobs(field func(string, any) error) (bool, error) {
	i := last(req.fields, "include")
	if i < 0 {
		return false, nil
	}
	b, v := req.body, req.fields[i].val
	found, strs := false, b[v] == '['
	if strs {
		eachElement(b, v, func(e int) int {
			end := valueEnd(b, e)
			switch {
			case end < 0:
			case b[e] == '"':
				raw := b[e:end]
				if string(raw) == `"`+includeLogprobs+`"` {
					found = true
				} else if bytes.IndexByte(raw, '\\') >= 0 {
					s, ok := scanString(raw) // escaped: rare, and only then decoded
					found = found || ok && s == includeLogprobs
				}
			case string(b[e:end]) != "null":
				strs = false
				return -1
			}
			return end
		})
	}
	if !strs {
		var include []string
		return false, field("include", &include)
	}
	return found, nil
}

// parseCompletion reads a (legacy) completion's prompt and logprobs: a
// string, or strings joined with newlines for the router. Token ids
// cannot be routed on.
func (req *chatRequest) parseCompletion(field func(string, any) error, bad func(string, string, ...any) error) error {
	var lp *int
	var prompt json.RawMessage
	if err := field("logprobs", &lp); err != nil {
		return err
	}
	if err := field("prompt", &prompt); err != nil {
		return err
	}
	req.logprobs = lp != nil
	var one string
	var many []string
	switch {
	case len(prompt) == 0:
		return bad("prompt", "prompt is missing; send the text to complete")
	case json.Unmarshal(prompt, &one) == nil:
	case json.Unmarshal(prompt, &many) == nil && len(many) > 0:
		one = strings.Join(many, "\n")
	case json.Unmarshal(prompt, &many) == nil: // [] (many is not enough: token ids fill it partly)
		return bad("prompt", "prompt is an empty array; send the text to complete")
	default:
		return bad("prompt", "prompt is not a string or an array of strings; token ids cannot be routed, send text")
	}
	req.prompt = one
	req.textBytes = len(one)
	req.input.Prompt = one
	return nil
}

// parseResponses reads a Responses API request's instructions and input
// (a string, or items whose messages' text is routed on: a string
// content or its input_text and output_text parts; other items, such as
// function call outputs, are passed on and not routed on), whether it
// asks for logprobs ("include") and whether it offers tools.
func (req *chatRequest) parseResponses(field func(string, any) error, bad func(string, string, ...any) error) error {
	var instructions string
	var input json.RawMessage
	store := true
	for _, f := range []struct {
		name string
		dst  any
	}{{"instructions", &instructions}, {"input", &input},
		{"previous_response_id", &req.previousID}, {"store", &store}} {
		if i := last(req.fields, f.name); f.name == "input" && i >= 0 && req.body[req.fields[i].val] == '[' {
			// An array, which decoding would only copy (16 MiB for a
			// body of one message of tiny parts): appendInputMessages
			// reads it in place.
			input = req.body[req.fields[i].val:req.fields[i].end]
			continue
		}
		if err := field(f.name, f.dst); err != nil {
			return err
		}
	}
	req.noStore = !store
	var err error
	if req.tools, err = req.offersTools(field); err != nil {
		return err
	}
	if req.logprobs, err = req.includesLogprobs(field); err != nil {
		return err
	}
	var msgs []datasets.Message
	if instructions != "" {
		msgs = append(msgs, datasets.Message{Role: "system", Content: instructions})
	}
	var one string
	switch {
	case len(input) == 0:
		return bad("input", "input is missing; send the text (or message items) to answer")
	case input[0] == '"' && json.Unmarshal(input, &one) == nil: // not an array, checked whole first
		msgs = append(msgs, datasets.Message{Role: "user", Content: one})
	default:
		var param string
		var err error
		if msgs, param, err = appendInputMessages(msgs, input); err != nil {
			return bad(param, "%v", err)
		}
	}
	req.messages = msgs
	turns := make([]features.Turn, len(msgs))
	for i, m := range msgs {
		req.textBytes += len(m.Content)
		turns[i] = features.Turn{Role: m.Role, Content: m.Content}
	}
	req.input.Messages = turns
	return nil
}

// appendInputMessages appends the messages of a Responses API input
// array (its items with a role and of type message, or none) to msgs.
// Only those items are decoded: the others (function call outputs,
// reasoning, images) are passed on and not routed on, and decoding each
// into a value cost 105 MB and a second for a 16 MiB body of tiny
// function_call_output items. An element that is not an object, or a
// message item whose fields have the wrong types, makes the input not an
// array of input items, as decoding the whole array would. param names
// the field an error is about.
func appendInputMessages(msgs []datasets.Message, input []byte) (_ []datasets.Message, param string, err error) {
	notItems := errors.New("input is not a string or an array of input items")
	param = "input"
	i := 0
	end := eachElement(input, 0, func(e int) int {
		var end int
		var msg bool
		if input[e] == '{' {
			msg, end = isMessageItem(input, e) // the item's end found as it is read
		} else if end = valueEnd(input, e); end >= 0 && string(input[e:end]) != "null" {
			end = -1
		}
		switch {
		case end < 0:
			err = notItems
			return -1
		case msg:
			// Read in place, its content not copied; decoded only
			// where that fails, for decoding's verdict.
			it, _, ok := messageInPlace(input, e, true, "input_text", "output_text")
			if !ok {
				// Decoded afresh: text read before the reading stopped
				// may be of a content a later one replaces.
				it = inputItem{}
				if json.Unmarshal(input[e:end], &it) != nil {
					err = notItems
					return -1
				}
			}
			if it.Role != "" && (it.Type == "" || it.Type == "message") {
				text, perr := it.textOf(it.Content, "input_text", "output_text")
				if perr != nil {
					param, err = fmt.Sprintf("input[%d].content", i), fmt.Errorf("input[%d].content: %v", i, perr)
					return -1
				}
				msgs = append(msgs, datasets.Message{Role: it.Role, Content: text})
			}
		}
		i++
		return end
	})
	if err == nil && (end < 0 || skipWS(input, end) != len(input)) {
		err = notItems
	}
	return msgs, param, err
}

// typeError says what a JSON value of the wrong type should have been, in
// JSON's words ("want an array of objects, got a JSON string"), not Go's
// (the decoder names the Go type, struct tags and all).
func typeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := ""
		if te.Field != "" {
			where = te.Field + ": "
		}
		return fmt.Sprintf("%swant %s, got a JSON %s", where, jsonKind(te.Type, true), te.Value)
	}
	return err.Error()
}

// jsonKind names the JSON value a Go type decodes from: "an array of
// objects", "a string"; article adds "a" or "an".
func jsonKind(t reflect.Type, article bool) string {
	var k, a string
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice && t != reflect.TypeFor[json.RawMessage]() {
			k, a = "base64 string", "a "
		} else if t == reflect.TypeFor[json.RawMessage]() {
			k, a = "JSON value", "a "
		} else {
			k, a = "array of "+kindPlural(jsonKind(t.Elem(), false)), "an "
		}
	case reflect.Struct, reflect.Map:
		k, a = "object", "an "
	case reflect.String:
		k, a = "string", "a "
	case reflect.Bool:
		k, a = "boolean", "a "
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		k, a = "integer", "an "
	case reflect.Float32, reflect.Float64:
		k, a = "number", "a "
	case reflect.Pointer:
		return jsonKind(t.Elem(), article)
	default:
		k, a = "JSON value", "a "
	}
	if article {
		return a + k
	}
	return k
}

// kindPlural is a JSON kind's plural: "strings", "arrays of objects".
func kindPlural(k string) string {
	if strings.HasPrefix(k, "array of ") {
		return "arrays of " + strings.TrimPrefix(k, "array of ")
	}
	return k + "s"
}

// upstreamBody is the request for one tier: the client's members, in
// their order and as sent, with the tier's model, logprobs when the proxy
// needs them for the confidence, and usage in streams for the recorded
// cost, without metadata where the API refuses it (keepMetadata). A
// member named twice is sent once, with its last value (the one the proxy
// read).
func (req *chatRequest) upstreamBody(model string, wantLogprobs bool) ([]byte, error) {
	m, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	addLogprobs := wantLogprobs && !req.logprobs
	addUsage := req.stream && !req.includeUsage && req.api != apiResponses
	lpName, lpValue := "logprobs", []byte(req.api.logprobs)
	if req.api == apiResponses && addLogprobs {
		lpName = "include"
		if lpValue, err = req.include(); err != nil {
			return nil, err
		}
	}
	var opts []byte
	if addUsage {
		if opts, err = req.streamOptions(); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(req.body)+len(m)+64)
	out = append(out, '{')
	put := func(member ...[]byte) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		for _, p := range member {
			out = append(out, p...)
		}
	}
	var sawModel, sawLogprobs, sawOpts bool
	for i := range req.fields {
		f := &req.fields[i]
		if shadowed(req.fields, i) {
			continue
		}
		switch {
		case f.is("metadata") && !req.keepMetadata:
		case f.is("model"):
			put([]byte(`"model":`), m)
			sawModel = true
		case addLogprobs && f.is(lpName):
			put([]byte(`"`+lpName+`":`), lpValue)
			sawLogprobs = true
		case addUsage && f.is("stream_options"):
			put([]byte(`"stream_options":`), opts)
			sawOpts = true
		default:
			put(req.body[f.start:f.end])
		}
	}
	if !sawModel {
		put([]byte(`"model":`), m)
	}
	if addLogprobs && !sawLogprobs {
		put([]byte(`"`+lpName+`":`), lpValue)
	}
	if addUsage && !sawOpts {
		put([]byte(`"stream_options":`), opts)
	}
	return append(out, '}'), nil
}

// include is a Responses API request's "include" with the output
// text's log-probabilities added: the array as sent, with the value
// put before its ']' rather than each element decoded and encoded again
// (parseResponses read it as an array of strings, or null).
func (req *chatRequest) include() ([]byte, error) {
	const lp = `"` + includeLogprobs + `"`
	i := last(req.fields, "include")
	if i < 0 || string(req.body[req.fields[i].val:req.fields[i].end]) == "null" {
		return []byte("[" + lp + "]"), nil
	}
	raw := req.body[req.fields[i].val:req.fields[i].end]
	if raw[0] != '[' || raw[len(raw)-1] != ']' {
		return nil, errors.New("include is not an array")
	}
	out := make([]byte, 0, len(raw)+len(lp)+1)
	out = append(out, raw[:len(raw)-1]...)
	if entriesUpTo(raw, 0, 1) > 0 {
		out = append(out, ',')
	}
	return append(append(out, lp...), ']'), nil
}

// streamOptions is the client's stream_options with include_usage set:
// "include_usage": true, then the client's members as sent but its own
// include_usage. Decoding them into a map and encoding it again, as it
// did, cost 451 MB and 4.3 s (8.1 million allocations) per upstream body
// for a 16 MiB stream_options of tiny members, which nothing counts.
func (req *chatRequest) streamOptions() ([]byte, error) {
	out := []byte(`{"include_usage":true`)
	i := last(req.fields, "stream_options")
	if i < 0 || string(req.body[req.fields[i].val:req.fields[i].end]) == "null" {
		return append(out, '}'), nil
	}
	b, start := req.body, req.fields[i].val
	out = slices.Grow(out, req.fields[i].end-start+1)
	prev := start // a member starts at the first quote after the last value
	end := eachMember(b, start, func(key []byte, v int) int {
		ve := valueEnd(b, v)
		if ve < 0 {
			return -1
		}
		if string(key) != "include_usage" {
			out = append(append(out, ','), b[prev+bytes.IndexByte(b[prev:v], '"'):ve]...)
		}
		prev = ve
		return ve
	})
	if end < 0 {
		return nil, errors.New("stream_options is not an object")
	}
	return append(out, '}'), nil
}
