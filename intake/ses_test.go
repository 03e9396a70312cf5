package intake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/dispatchflow/dispatchflow/message"
)

const testTopic = "arn:aws:sns:us-west-2:123456789012:ses-events"

// snsFake is an SNS host on loopback: it serves a self-signed signing
// certificate and counts subscription confirmations.
type snsFake struct {
	srv       *httptest.Server
	key       *rsa.PrivateKey
	certURL   string
	confirms  atomic.Int32
	certGets  atomic.Int32
	normalize *SES
}

func newSNSFake(t *testing.T, topics ...string) *snsFake {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.us-west-2.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f := &snsFake{key: key}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/SimpleNotificationService-test.pem":
			f.certGets.Add(1)
			_, _ = w.Write(certPEM)
		case "/":
			if r.URL.Query().Get("Action") == "ConfirmSubscription" {
				f.confirms.Add(1)
				_, _ = w.Write([]byte(`<ConfirmSubscriptionResponse/>`))
				return
			}
			http.NotFound(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	f.certURL = f.srv.URL + "/SimpleNotificationService-test.pem"
	hc := retryablehttp.NewClient()
	hc.Logger, hc.RetryMax, hc.HTTPClient = nil, 0, f.srv.Client()
	f.normalize = NewSES(topics, regexp.MustCompile(`^127\.0\.0\.1$`), hc)
	// The documented examples are years old: their age is TestSESFreshness's business.
	f.normalize.MaxAge = 100 * 365 * 24 * time.Hour
	return f
}

// notification wraps an SES event in a signed SNS notification.
func (f *snsFake) notification(t *testing.T, sesEvent []byte, version, messageID string) []byte {
	t.Helper()
	return f.notificationAt(t, sesEvent, version, messageID, "2017-08-05T00:41:03.000Z")
}

// notificationAt is notification with the SNS Timestamp ts.
func (f *snsFake) notificationAt(t *testing.T, sesEvent []byte, version, messageID, ts string) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": messageID, "TopicArn": testTopic,
		"Message": string(sesEvent), "Timestamp": ts, "SignatureVersion": version,
		"SigningCertURL": f.certURL,
		"UnsubscribeURL": f.srv.URL + "/?Action=Unsubscribe&SubscriptionArn=" + testTopic + ":f1abc4f3",
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignSNS(f.key, body)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func snsPost(body []byte, msgType string) *http.Request {
	r := post(body)
	r.Header.Set(SNSMessageTypeHeader, msgType)
	return r
}

func TestSES(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t, testTopic)
	const msg = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
	tests := []struct {
		file string
		want want
	}{
		{"ses_send.json", want{Type: message.EventProcessed, RawType: "Send", Timestamp: mustTime(t, "2017-08-05T00:40:02.012Z")}},
		{"ses_delivery.json", want{Type: message.EventDelivered, RawType: "Delivery", Timestamp: mustTime(t, "2016-10-19T23:21:04.133Z")}},
		{"ses_bounce.json", want{Type: message.EventBounced, RawType: "Bounce/Permanent/General", Reason: "smtp; 550 5.1.1 user unknown"}},
		// SES publishes a soft bounce only once it stopped retrying: final.
		{"ses_bounce_transient.json", want{Type: message.EventBounced, RawType: "Bounce/Transient/MailboxFull", Reason: "smtp; 452 4.2.2 mailbox full"}},
		{"ses_bounce_transient_general.json", want{Type: message.EventBounced, RawType: "Bounce/Transient/General",
			Reason: "4.0.0 smtp; 421 4.4.2 connection dropped"}},
		{"ses_bounce_undetermined.json", want{Type: message.EventBounced, RawType: "Bounce/Undetermined/Undetermined", Reason: "5.0.0 Undetermined Undetermined"}},
		// Suppressed addresses: never attempted.
		{"ses_bounce_suppressed.json", want{Type: message.EventAborted, RawType: "Bounce/Permanent/Suppressed",
			Reason: "5.1.1 Amazon SES has suppressed sending to this address because it has a recent history of bouncing as an invalid address. " +
				"For more information about how to remove an address from the suppression list, see the Amazon SES Developer Guide: " +
				"http://docs.aws.amazon.com/ses/latest/DeveloperGuide/remove-from-suppressionlist.html"}},
		{"ses_bounce_account_suppressed.json", want{Type: message.EventAborted, RawType: "Bounce/Permanent/OnAccountSuppressionList",
			Reason: "5.1.1 Amazon SES did not send the message to this address because it is on the suppression list for your account. " +
				"For more information about removing addresses from the suppression list, see the Amazon SES Developer Guide at " +
				"https://docs.aws.amazon.com/ses/latest/DeveloperGuide/sending-email-suppression-list.html"}},
		{"ses_complaint_account_suppressed.json", want{Type: message.EventAborted, RawType: "Complaint/OnAccountSuppressionList", Reason: "OnAccountSuppressionList"}},
		{"ses_reject.json", want{Type: message.EventAborted, RawType: "Reject", Reason: "Bad content"}},
		{"ses_rendering_failure.json", want{Type: message.EventAborted, RawType: "Rendering Failure",
			Reason: "Attribute 'attributeName' is not present in the rendering data."}},
		{"ses_delivery_delay.json", want{Type: message.EventDeferred, RawType: "DeliveryDelay/TransientCommunicationFailure", Reason: "smtp; 421 4.4.1 Unable to connect to remote host"}},
		{"ses_complaint.json", want{Type: message.EventComplaint, RawType: "Complaint"}},
		{"ses_open.json", want{Type: message.EventOpen, RawType: "Open"}},
		{"ses_click.json", want{Type: message.EventClick, RawType: "Click"}},
		{"ses_subscription.json", want{Type: message.EventUnsubscribe, RawType: "Subscription"}},
		{"ses_delivery_untagged.json", want{Type: message.EventDelivered, RawType: "Delivery"}},
	}
	for i, tt := range tests {
		for _, version := range []string{"1", "2"} {
			t.Run(tt.file+"/v"+version, func(t *testing.T) {
				t.Parallel()
				w := tt.want
				w.MessageID, w.ID = msg, "sns-"+version+"-"+tt.file
				if tt.file != "ses_delivery_untagged.json" {
					w.DispatchID = seedDispatchID
				}
				body := f.notification(t, fixture(t, tt.file), version, w.ID)
				got := one(t, f.normalize, snsPost(body, "Notification"), body)
				checkEvent(t, i, got, ProviderSES, w)
				checkInvariants(t, ProviderSES, []message.Event{got})
			})
		}
	}
}

func TestSESVerification(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t, testTopic)
	good := f.notification(t, fixture(t, "ses_delivery.json"), "2", "m1")
	edit := func(key, value string) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		m[key] = value
		b, _ := json.Marshal(m)
		return b
	}
	resigned := func(key, value string) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		m[key] = value
		delete(m, "Signature")
		b, _ := json.Marshal(m)
		b, err := SignSNS(f.key, b)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := newSNSFake(t, testTopic)
	tests := []struct {
		name    string
		body    []byte
		header  string
		wantErr error
	}{
		{"valid", good, "Notification", nil},
		{"message changed", edit("Message", strings.Replace(string(fixture(t, "ses_delivery.json")), "Delivery", "Bounce", 1)), "Notification", ErrUnauthorized},
		{"signature missing", edit("Signature", ""), "Notification", ErrUnauthorized},
		{"version 3", edit("SignatureVersion", "3"), "Notification", ErrUnauthorized},
		{"certificate over http", resigned("SigningCertURL", strings.Replace(f.certURL, "https:", "http:", 1)), "Notification", ErrUnauthorized},
		{"certificate on another host", resigned("SigningCertURL", "https://sns.evil.example/cert.pem"), "Notification", ErrUnauthorized},
		{"certificate of another key", resigned("SigningCertURL", other.certURL), "Notification", ErrUnauthorized},
		{"topic not allow-listed", resigned("TopicArn", "arn:aws:sns:us-west-2:123456789012:other"), "Notification", ErrUnauthorized},
		{"header does not match Type", good, "SubscriptionConfirmation", ErrBadRequest},
		{"no header", good, "", ErrBadRequest},
		{"malformed", []byte(`{"Type":`), "Notification", ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.normalize.Normalize(snsPost(tt.body, tt.header), tt.body, receivedAt)
			if tt.wantErr == nil {
				if err != nil || len(got.Events) != 1 {
					t.Fatalf("got %d events, %v; want 1", len(got.Events), err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || len(got.Events) != 0 {
				t.Fatalf("got %d events, %v; want %v", len(got.Events), err, tt.wantErr)
			}
		})
	}
}

func TestSESCachesCertificate(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t)
	for i, id := range []string{"m1", "m2", "m3"} {
		body := f.notification(t, fixture(t, "ses_open.json"), "2", id)
		if _, err := f.normalize.Normalize(snsPost(body, "Notification"), body, receivedAt); err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
	}
	if n := f.certGets.Load(); n != 1 {
		t.Errorf("certificate fetched %d times, want once", n)
	}
}

func TestSESSubscriptionConfirmation(t *testing.T) {
	t.Parallel()
	confirmation := func(f *snsFake, topic, subscribeURL string) []byte {
		body, _ := json.Marshal(map[string]string{
			"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
			"Token":        "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
			"TopicArn":     topic,
			"Message":      "You have chosen to subscribe to the topic " + topic + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
			"SubscribeURL": subscribeURL, "Timestamp": "2012-04-26T20:45:04.751Z", "SignatureVersion": "1",
			"SigningCertURL": f.certURL,
		})
		signed, err := SignSNS(f.key, body)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	tests := []struct {
		name         string
		allow        []string
		topic        string
		subscribeURL func(*snsFake) string
		wantErr      error
		wantConfirms int32
	}{
		{"allow-listed topic", []string{testTopic}, testTopic,
			func(f *snsFake) string {
				return f.srv.URL + "/?Action=ConfirmSubscription&TopicArn=" + testTopic + "&Token=2336"
			}, nil, 1},
		{"topic not allow-listed", []string{testTopic}, "arn:aws:sns:us-west-2:123456789012:other",
			func(f *snsFake) string { return f.srv.URL + "/?Action=ConfirmSubscription" }, ErrUnauthorized, 0},
		{"no allow-list", nil, testTopic,
			func(f *snsFake) string { return f.srv.URL + "/?Action=ConfirmSubscription" }, ErrUnauthorized, 0},
		{"SubscribeURL off SNS", []string{testTopic}, testTopic,
			func(*snsFake) string { return "https://attacker.example/?Action=ConfirmSubscription" }, ErrUnauthorized, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSNSFake(t, tt.allow...)
			body := confirmation(f, tt.topic, tt.subscribeURL(f))
			got, err := f.normalize.Normalize(snsPost(body, "SubscriptionConfirmation"), body, receivedAt)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) || len(got.Events) != 0 {
				t.Fatalf("got %d events, %v; want no events and %v", len(got.Events), err, tt.wantErr)
			}
			if got := f.confirms.Load(); got != tt.wantConfirms {
				t.Errorf("got %d confirmations, want %d", got, tt.wantConfirms)
			}
		})
	}
}

func TestSESTopicValidatedIsNoEvent(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t)
	body := f.notification(t, []byte(sesTopicValidated), "1", "m-validated")
	got, err := f.normalize.Normalize(snsPost(body, "Notification"), body, receivedAt)
	if err != nil || len(got.Events) != 0 || len(got.Invalid) != 0 {
		t.Fatalf("got %+v, %v; want nothing", got, err)
	}
}

// A verified notification whose SES event cannot be read is one invalid event,
// answered 200: SNS would retry it to no avail.
func TestSESInvalidEvent(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t)
	for _, tt := range []struct{ name, message, want string }{
		{"not JSON", "Hello", "Message: malformed JSON"},
		{"no eventType", `{"mail":{"messageId":"m"}}`, "Message.eventType: is required"},
		{"bounce a string", `{"eventType":"Bounce","bounce":"hard"}`, "Message.bounce: a JSON string where an object is expected"},
		{"bad bounce timestamp", `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","timestamp":"yesterday"}}`,
			"Message.bounce.timestamp: not an RFC 3339 time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := f.notification(t, []byte(tt.message), "2", "m-"+tt.name)
			if got := invalid(t, f.normalize, snsPost(body, "Notification"), body); got != tt.want {
				t.Errorf("got reason %q, want %q", got, tt.want)
			}
		})
	}
}

// A signed notification captured and replayed later is refused by its age: SNS
// retries resend the same notification within DefaultSNSMaxAge.
func TestSESFreshness(t *testing.T) {
	t.Parallel()
	f := newSNSFake(t, testTopic)
	f.normalize.MaxAge = 0 // DefaultSNSMaxAge
	for _, tt := range []struct {
		name    string
		age     time.Duration
		wantErr bool
	}{
		{"a minute old", time.Minute, false},
		{"59 minutes old", 59 * time.Minute, false},
		{"two hours old", 2 * time.Hour, true},
		{"from the future", -2 * time.Minute, true},
	} {
		ts := time.Now().Add(-tt.age).UTC().Format(time.RFC3339)
		body := f.notificationAt(t, fixture(t, "ses_open.json"), "2", "fresh-"+tt.name, ts)
		_, err := f.normalize.Normalize(snsPost(body, "Notification"), body, receivedAt)
		if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrUnauthorized)) {
			t.Errorf("%s: %v, want unauthorized %v", tt.name, err, tt.wantErr)
		}
	}
}
