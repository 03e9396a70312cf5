// Package esptest runs fake ESP APIs on loopback for tests: httptest servers
// that speak SendGrid's, Mailgun's, Postmark's, Amazon SES's, Brevo's,
// Mailjet's, SparkPost's and Resend's send APIs as documented, check each request's method, path, credentials, content type and
// body shape (the dispatch id where the provider's events bring it back), record
// what they received, and answer with the providers' documented bodies
// (testdata/, sources in testdata/README.md).
package esptest

import (
	"embed"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

//go:embed testdata/*.json testdata/*.txt
var fixtures embed.FS

// Fixture returns the provider answer stored as testdata/name.
func Fixture(name string) string {
	b, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		panic("esptest: no fixture " + name)
	}
	return string(b)
}

// Answer is what a fake answers.
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// Request is what a fake understood of one request, in provider-neutral terms.
type Request struct {
	DispatchID, From, To, Subject, Text, HTML string
	// Extra holds provider-specific fields worth checking (Postmark's
	// MessageStream, SES's ConfigurationSetName, Mailgun's o:tag, the display
	// names of the providers that take them apart, Resend's Idempotency-Key).
	Extra map[string]string
}

// Fake is one fake provider API.
type Fake struct {
	*httptest.Server
	t testing.TB

	mu         sync.Mutex
	requests   []Request
	answers    []Answer // answered in turn; the last one repeats
	complaints []string
}

// TakeComplaints returns the requests the fake refused as malformed, and forgets
// them: the complaints left when the test ends fail it.
func (f *Fake) TakeComplaints() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.complaints
	f.complaints = nil
	return c
}

// Answer sets what the next requests are answered, in turn; the last repeats.
func (f *Fake) Answer(a ...Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = a
}

// Requests returns the requests received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// start runs a fake whose parse checks a request and extracts its Request;
// a request that fails the checks is answered 400 with the complaint, and the
// test fails unless it takes the complaint (TakeComplaints).
func start(t testing.TB, success Answer, parse func(r *http.Request, body []byte) (Request, string)) *Fake {
	t.Helper()
	f := &Fake{t: t, answers: []Answer{success}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := readAll(r)
		req, complaint := parse(r, body)
		if complaint != "" {
			f.mu.Lock()
			f.complaints = append(f.complaints, r.Method+" "+r.URL.Path+": "+complaint)
			f.mu.Unlock()
			http.Error(w, "esptest: "+complaint, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		a := f.answers[0]
		if len(f.answers) > 1 {
			f.answers = f.answers[1:]
		}
		f.mu.Unlock()
		for k, v := range a.Header {
			w.Header()[k] = v
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.Status)
		_, _ = w.Write([]byte(a.Body))
	}))
	t.Cleanup(func() {
		f.Close()
		for _, c := range f.TakeComplaints() {
			t.Errorf("esptest: the provider would refuse %s", c)
		}
	})
	return f
}
