package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// wireAnswer is what overHTTP's server answered: the status (200, 400, 401, or a
// refusal's), and the batch or the error text.
type wireAnswer struct {
	Status int
	Batch  Batch
	Error  string
}

// overHTTP serves n on a real HTTP server and posts body to it with the headers
// set by header (nil: none): what arrives is what a provider's request carries
// after the network (canonicalised header names, the body as bytes). The server
// answers as the API does: 200 and the batch, 400, 401, or a refusal's status.
func overHTTP(t *testing.T, n Normalizer, body []byte, header func(http.Header)) wireAnswer {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := new(bytes.Buffer)
		if _, err := raw.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b, err := n.Normalize(r, raw.Bytes(), receivedAt)
		var refused *RefusedError
		status := http.StatusOK
		switch {
		case errors.As(err, &refused):
			status = refused.Status
		case errors.Is(err, ErrUnauthorized):
			status = http.StatusUnauthorized
		case errors.Is(err, ErrBadRequest):
			status = http.StatusBadRequest
		case err != nil:
			status = http.StatusInternalServerError
		}
		ans := wireAnswer{Status: status, Batch: b}
		if err != nil {
			ans.Error = err.Error()
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(ans)
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events/x", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if header != nil {
		header(req.Header)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans wireAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if ans.Status != resp.StatusCode {
		t.Fatalf("answer says %d, the response %d", ans.Status, resp.StatusCode)
	}
	// JSON round trips drop the monotonic clock and the location; compare instants.
	for i := range ans.Batch.Events {
		ans.Batch.Events[i].Timestamp = ans.Batch.Events[i].Timestamp.UTC()
		ans.Batch.Events[i].ReceivedAt = ans.Batch.Events[i].ReceivedAt.In(time.UTC)
	}
	return ans
}
