package tracing_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/postback"
)

// A traced postback attempt carries the attempt's trace context in a W3C
// traceparent header; the body is the one rendered, and the Standard Webhooks
// signature verifies over id, timestamp and body alone (the reference
// library, github.com/standard-webhooks/standard-webhooks libraries/go). An
// untraced attempt sends no traceparent.
func TestPostbackTraceparent(t *testing.T) {
	t.Parallel()
	type received struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), body})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("tracing-test-signing-secret--32b"))
	ep := postback.Endpoint{ID: "crm", URL: srv.URL + "/hooks", Secrets: []postback.Secret{postback.Secret(secret)}}
	// A delivered postback, Braze's event status postback as message/testdata/seed holds it.
	n := postback.Notification{Postback: message.NewPostback(message.Identity{DispatchID: "acf471119f7449d579e8089032003ded"},
		message.StatusDelivered, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), "", message.SendTimes{})}
	want, err := postback.Render(ep.Format, n)
	if err != nil {
		t.Fatal(err)
	}
	hc := retryablehttp.NewClient()
	hc.RetryMax, hc.Logger = 0, nil

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, span := tp.Tracer("test").Start(context.Background(), "RunActivity:Postback")
	if at := postback.Deliver(ctx, hc, ep, n, "msg_traced", time.Now()); !at.OK() {
		t.Fatalf("traced attempt: %+v", at)
	}
	span.End()
	if at := postback.Deliver(context.Background(), hc, ep, n, "msg_untraced", time.Now()); !at.OK() {
		t.Fatalf("untraced attempt: %+v", at)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	sc := span.SpanContext()
	if tp, want := got[0].header.Get("Traceparent"), "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01"; tp != want {
		t.Errorf("traced attempt: traceparent %q, want %q (the attempt's span)", tp, want)
	}
	if tp := got[1].header.Get("Traceparent"); tp != "" {
		t.Errorf("untraced attempt: traceparent %q, want none", tp)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if !bytes.Equal(r.body, want) {
			t.Errorf("request %d: body %s, want the rendered %s", i, r.body, want)
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("request %d: the reference library refuses its signature: %v", i, err)
		}
	}
}
