package starter

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// A failed request is logged with its route's pattern, never its path: a
// Sarbacane token or an address in the path stays out of the logs. A path no
// route matched is logged cut short.
func TestLogsNameTheRouteNotThePath(t *testing.T) {
	var logs bytes.Buffer
	a := &API{logger: slog.New(slog.NewTextHandler(&logs, nil))}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, serviceerror.NewUnavailable("temporal down"))
	}
	mux.HandleFunc("POST /v1/events/{provider}/{token}", fail)
	mux.HandleFunc("/", fail)
	for _, path := range []string{"/v1/events/sarbacane/s3cret-token-42", "/" + strings.Repeat("x", 300)} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, nil))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %.40s: %d, want 503", path, w.Code)
		}
	}
	got := logs.String()
	if strings.Contains(got, "s3cret-token-42") || !strings.Contains(got, "/v1/events/{provider}/{token}") {
		t.Errorf("the log names the path, not the route:\n%s", got)
	}
	if strings.Contains(got, strings.Repeat("x", 101)) {
		t.Errorf("an unrouted path logged whole:\n%s", got)
	}
}
