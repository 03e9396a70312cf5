package starter

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dispatchflow/dispatchflow/intake"
)

// Events to be posted again are answered so that their provider does post them
// again: 503 with Retry-After for most, 429 for Brevo (which drops a request
// answered 5xx), never with the internals of the error; an answer below 500
// is left alone.
func TestFailEventsAsksForARetry(t *testing.T) {
	a := &API{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pending := &httpError{http.StatusServiceUnavailable, "1 of the events name a message not found yet; post them again"}
	internal := errors.New("dial tcp 10.0.0.7:7233: connection refused")
	for _, tc := range []struct {
		provider   string
		err        error
		code       int
		retryAfter bool
		body       string
	}{
		{intake.ProviderBrevo, pending, http.StatusTooManyRequests, true, "not found yet"},
		{intake.ProviderPostmark, pending, http.StatusServiceUnavailable, true, "not found yet"},
		{intake.ProviderBrevo, internal, http.StatusTooManyRequests, true, "post them again later"},
		{intake.ProviderBrevo, &httpError{http.StatusBadRequest, "not Brevo's format"}, http.StatusBadRequest, false, "not Brevo's format"},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/events/"+tc.provider, nil)
		a.failEvents(w, r, tc.provider, tc.err)
		body := w.Body.String()
		if w.Code != tc.code || (w.Header().Get("Retry-After") != "") != tc.retryAfter || !strings.Contains(body, tc.body) {
			t.Errorf("%s, %v: %d Retry-After %q %s; want %d, Retry-After %v, naming %q",
				tc.provider, tc.err, w.Code, w.Header().Get("Retry-After"), body, tc.code, tc.retryAfter, tc.body)
		}
		if strings.Contains(body, "10.0.0.7") {
			t.Errorf("%s: the answer quotes the internal error: %s", tc.provider, body)
		}
	}
}
