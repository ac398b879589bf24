package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/reqbody"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// Error codes of the JSON error body. Each maps to one HTTP status in
// codeStatus.
const (
	CodeInvalidJSON         = "invalid_json"                 // the body is not JSON, or is truncated
	CodeInvalidRequest      = "invalid_request"              // JSON, but a field is missing, empty or of the wrong type
	CodeUnknownField        = "unknown_field"                // a field this server does not know
	CodeInvalidUTF8         = "invalid_utf8"                 // the body is not valid UTF-8
	CodeUnsupportedEncoding = "unsupported_content_encoding" // a Content-Encoding other than gzip or deflate
	CodeBodyTooLarge        = "body_too_large"               // limits.max_body_bytes
	CodePromptTooLarge      = "prompt_too_large"             // limits.max_prompt_bytes
	CodeBatchTooLarge       = "batch_too_large"              // limits.max_batch
	CodeNotFound            = "not_found"                    // unknown path, or unknown request_id
	CodeIDConflict          = "id_conflict"                  // a request id already holds another prompt
	CodeInProgress          = "request_in_progress"          // feedback about a proxied request still running
	CodeRequestTimeout      = "request_timeout"              // the body did not arrive within limits.read_timeout
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeUnauthorized        = "unauthorized"    // admin route without the right bearer token
	CodeInvalidAPIKey       = "invalid_api_key" // /v1/ route without a client key the server knows
	CodeBadArtifact         = "bad_artifact"    // reload refused: the model file is invalid
	CodeReloadFailed        = "reload_failed"   // reload refused: the model file could not be read
	CodeNotReady            = "not_ready"       // no model, db closed, or shutting down
	CodeInternal            = "internal_error"  // a bug or an I/O failure; logged
)

var codeStatus = map[string]int{
	CodeInvalidJSON:         http.StatusBadRequest,
	CodeInvalidRequest:      http.StatusBadRequest,
	CodeUnknownField:        http.StatusBadRequest,
	CodeInvalidUTF8:         http.StatusBadRequest,
	CodeUnsupportedEncoding: http.StatusUnsupportedMediaType,
	CodeBodyTooLarge:        http.StatusRequestEntityTooLarge,
	CodePromptTooLarge:      http.StatusRequestEntityTooLarge,
	CodeBatchTooLarge:       http.StatusRequestEntityTooLarge,
	CodeNotFound:            http.StatusNotFound,
	CodeIDConflict:          http.StatusConflict,
	CodeInProgress:          http.StatusConflict,
	CodeRequestTimeout:      http.StatusRequestTimeout,
	CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	CodeUnauthorized:        http.StatusUnauthorized,
	CodeInvalidAPIKey:       http.StatusUnauthorized,
	CodeBadArtifact:         http.StatusUnprocessableEntity,
	CodeReloadFailed:        http.StatusInternalServerError,
	CodeNotReady:            http.StatusServiceUnavailable,
	CodeInternal:            http.StatusInternalServerError,
}

// Error is an error a client is told about: a code from the list above and
// a message a person can act on.
type Error struct {
	Code    string
	Message string
	// Err is the cause, if any, for errors.Is; the client sees Message.
	Err error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorStatus maps an error to its HTTP status, code and message. It is the
// one place that decides what a client sees for an error; anything it does
// not recognise is an internal error (500, logged, message hidden).
func ErrorStatus(err error) (status int, code, msg string) {
	var e *Error
	switch {
	case errors.As(err, &e):
		status, ok := codeStatus[e.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		return status, e.Code, e.Message
	case errors.Is(err, datasets.ErrUnknownRequest):
		return http.StatusNotFound, CodeNotFound, err.Error() + ": route it first, or send its prompt or messages with the feedback"
	case errors.Is(err, datasets.ErrIDConflict):
		return http.StatusConflict, CodeIDConflict, err.Error() + " (it was routed with it meanwhile); one id holds one prompt, and this score would label that prompt: post it without a prompt to score that one, or under another id to record this one"
	case errors.Is(err, models.ErrBadArtifact):
		return http.StatusUnprocessableEntity, CodeBadArtifact, err.Error()
	case errors.Is(err, datasets.ErrStoreClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, CodeNotReady, "the server is shutting down; retry on another instance"
	}
	if _, ok := diskErrno(err); ok {
		// A disk error (a full disk, most often) is the operator's to
		// fix, and its name holds no path: say it rather than nothing.
		return http.StatusInternalServerError, CodeInternal, "internal error: " + diskReason(err) + "; see the server log"
	}
	return http.StatusInternalServerError, CodeInternal, "internal error; see the server log"
}

// writeError answers a request with err. Only internal errors are logged:
// the others are the client's, and the client is told.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	status, code, msg := ErrorStatus(err)
	if status == http.StatusInternalServerError && log != nil {
		log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		realm := "triage"
		if code == CodeUnauthorized {
			realm = "triage admin"
		}
		c.Header("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	}
	if code == CodeUnsupportedEncoding {
		// RFC 7694: a 415 for a content coding says which ones are taken.
		c.Header("Accept-Encoding", reqbody.Accepted)
	}
	// The proxy's shape, OpenAI's: {"error":{"message","type","param","code"}}.
	c.AbortWithStatusJSON(status, proxy.NewErrorBody(status, code, msg, ""))
}
