package starter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// httpError is an error with the status code the API answers it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error { return &httpError{http.StatusBadRequest, msg} }
func notFound(msg string) error   { return &httpError{http.StatusNotFound, msg} }

// notFoundOr turns Temporal's NotFound into a 404 saying msg; other errors pass.
func notFoundOr(err error, msg string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return notFound(msg)
	}
	return err
}

// statusOf is THE mapping from errors to HTTP status codes.
func statusOf(err error) int {
	var (
		he          *httpError
		maxBytes    *http.MaxBytesError
		nf          *serviceerror.NotFound
		invalid     *serviceerror.InvalidArgument
		unavailable *serviceerror.Unavailable
		exhausted   *serviceerror.ResourceExhausted
		deadline    *serviceerror.DeadlineExceeded
	)
	var appErr *temporal.ApplicationError
	var refused *intake.RefusedError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &appErr) && (appErr.Type() == workflows.ErrFallbackConflict || appErr.Type() == workflows.ErrReplayNothing):
		return http.StatusConflict
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrFallbackInvalid:
		return http.StatusBadRequest
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &refused): // the provider's "stop retrying" answer
		return refused.Status
	case errors.Is(err, intake.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, intake.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.As(err, &nf):
		return http.StatusNotFound
	case errors.As(err, &invalid):
		return http.StatusBadRequest
	case errors.As(err, &exhausted):
		return http.StatusTooManyRequests
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err as {"error": "..."} with its status code. Server-side errors
// are logged and answered without their internals.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	msg := err.Error()
	var appErr *temporal.ApplicationError
	switch {
	case errors.Is(err, intake.ErrBadRequest):
		msg = msg[len(intake.ErrBadRequest.Error())+2:] // drop "bad request: "
	case errors.As(err, &appErr) && code < 500:
		msg = appErr.Message() // a rejected update: the workflow's own words
	}
	if code >= 500 {
		args := []any{"method", r.Method, "path", logPath(r), "status", code, "error", err}
		if id := r.PathValue("dispatch_id"); id != "" {
			args = append(args, "dispatch_id", id)
		}
		a.logger.Error("request failed", args...)
		msg = http.StatusText(code) + ": " + err.Error()
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// decodeJSON reads one JSON object of at most MaxBodyBytes into v, refusing
// unknown fields so that a misspelt field is an error, not silently ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if dec.More() {
		return badRequest("malformed JSON: more than one value in the body")
	}
	return nil
}

func bodyError(err error) error {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBytes.Limit)}
	}
	if errors.Is(err, io.EOF) {
		return badRequest("empty body: a JSON object is required")
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return badRequest(fmt.Sprintf("%s: must be a %s", typeErr.Field, typeErr.Type))
	}
	return badRequest("malformed JSON: " + err.Error())
}

// logPath is what logs say of r's path: the route's pattern
// ("/v1/events/{provider}/{token}", "/v1/suppressions/{address}"), never the
// path itself, which can carry a secret (Sarbacane's token) or an address. A
// request no route matched logs its path cut to 100 bytes.
func logPath(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	if len(r.URL.Path) > 100 {
		return r.URL.Path[:100] + "…"
	}
	return r.URL.Path
}
