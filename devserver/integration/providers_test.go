package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/esp/esptest"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/workflows"
)

// fixtureDispatchID is the dispatch_id intake's fixtures carry where each provider
// brings back what we attached at send time (intake/testdata/README.md).
const fixtureDispatchID = "acf471119f7449d579e8089032003ded"

// intakeFixture reads one of intake's documented provider examples
// (intake/testdata/README.md names their sources), with this message's dispatch_id
// where the provider carries it.
func intakeFixture(t *testing.T, name, id string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../intake/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(fixtureDispatchID)) {
		t.Fatalf("%s carries no dispatch_id", name)
	}
	return bytes.ReplaceAll(raw, []byte(fixtureDispatchID), []byte(id))
}

// snsHost is an SNS host on loopback serving the certificate SES notifications
// are signed with. intake fetches it over HTTPS trusting the system's CAs only,
// so TestMain makes this server's TLS certificate the process's one trusted CA
// (SSL_CERT_FILE) before anything reads the system pool.
type snsHost struct {
	srv     *httptest.Server
	key     *rsa.PrivateKey
	certURL string
}

const snsTopic = "arn:aws:sns:eu-west-1:123456789012:dispatchflow-it"

var sns *snsHost

// startSNSHost starts the SNS host and trusts its TLS certificate.
func startSNSHost() (cleanup func(), err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.eu-west-1.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	signing := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/SimpleNotificationService-it.pem" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(signing)
	}))
	dir, err := os.MkdirTemp("", "dispatchflow-it-ca")
	if err != nil {
		srv.Close()
		return nil, err
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		srv.Close()
		return nil, err
	}
	os.Setenv("SSL_CERT_FILE", ca)
	os.Setenv("SSL_CERT_DIR", dir)
	sns = &snsHost{srv: srv, key: key, certURL: srv.URL + "/SimpleNotificationService-it.pem"}
	return func() { srv.Close(); os.RemoveAll(dir) }, nil
}

// notification wraps an SES event in an SNS notification signed with key
// (SignatureVersion 2).
func (h *snsHost) notification(t *testing.T, key *rsa.PrivateKey, sesEvent []byte) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": "it-" + message.NewDispatchID(), "TopicArn": snsTopic,
		"Message": string(sesEvent), "Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": "2",
		"SigningCertURL": h.certURL,
		"UnsubscribeURL": h.srv.URL + "/?Action=Unsubscribe&SubscriptionArn=" + snsTopic + ":f1abc4f3",
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := intake.SignSNS(key, body)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// webhookKeys are the credentials the test configures for every provider's
// webhook, and the wrong ones a forger would use.
type webhookKeys struct {
	sendgrid, sendgridWrong *ecdsa.PrivateKey
	snsWrong                *rsa.PrivateKey
}

const (
	mailgunKey       = "mailgun-signing-key-it"
	postmarkUser     = "postmark-it"
	postmarkPassword = "postmark-password-it"
	sarbacaneToken   = "sarbacane-token-it"
	ajoSecret        = "ajo-jwt-secret-for-the-integration-tests"
)

func newWebhookKeys(t *testing.T) webhookKeys {
	t.Helper()
	var k webhookKeys
	var err error
	if k.sendgrid, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.sendgridWrong, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.snsWrong, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	return k
}

// configure turns verification on for every provider with k's keys.
func (k webhookKeys) configure(t *testing.T) func(*config.Config) {
	der, err := x509.MarshalPKIXPublicKey(&k.sendgrid.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) {
		c.WebhookVerify = "on"
		c.SendGridWebhookPublicKey = base64.StdEncoding.EncodeToString(der)
		c.MailgunWebhookSigningKey = mailgunKey
		c.PostmarkWebhookUsername, c.PostmarkWebhookPassword = postmarkUser, postmarkPassword
		c.SESTopicARNs, c.SESSNSHostPattern = []string{snsTopic}, `^127\.0\.0\.1$`
		c.SarbacaneWebhookToken = sarbacaneToken
		c.AJOWebhookJWTSecret = ajoSecret
	}
}

// providerCase is one provider's documented example event and how it is signed.
type providerCase struct {
	provider string
	// carrier configures the ESP that hands messages to this provider: its API's
	// fake, or (sarbacane, ajo: no API sender) an SMTP relay of that provider.
	carrier func(t *testing.T) func(*config.Config)
	// body is the provider's example with the message's dispatch_id.
	body func(t *testing.T, id string) []byte
	// sign returns the request for body, validly signed or not.
	sign func(t *testing.T, k webhookKeys, api string, body []byte, valid bool) *http.Request
	// want are the postbacks after the sent one.
	want []string
}

func eventsRequest(t *testing.T, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// apiCarrier hands messages to a provider's API fake.
func apiCarrier(provider string, fake func(t *testing.T) *esptest.Fake, configure func(c *config.Config, url string)) func(t *testing.T) func(*config.Config) {
	return func(t *testing.T) func(*config.Config) {
		f := fake(t)
		return func(c *config.Config) {
			c.ESP = provider
			configure(c, f.URL)
		}
	}
}

// relayCarrier hands messages to a real SMTP relay run by provider.
func relayCarrier(provider string) func(t *testing.T) func(*config.Config) {
	return func(t *testing.T) func(*config.Config) {
		_, addr := startRelay(t)
		return func(c *config.Config) { c.ESP, c.SMTPAddr, c.SMTPProvider = "smtp", addr, provider }
	}
}

var providerCases = []providerCase{
	{
		provider: "sendgrid",
		carrier: apiCarrier("sendgrid", func(t *testing.T) *esptest.Fake { return esptest.SendGrid(t, "SG.it") },
			func(c *config.Config, url string) { c.SendGridAPIKey, c.SendGridBaseURL = "SG.it", url }),
		// The reference's processed and delivered events of the message.
		body: func(t *testing.T, id string) []byte {
			var all []map[string]any
			if err := json.Unmarshal(intakeFixture(t, "sendgrid_events.json", id), &all); err != nil {
				t.Fatal(err)
			}
			var keep []map[string]any
			for _, e := range all {
				if (e["event"] == "processed" || e["event"] == "delivered") && e["dispatch_id"] == id {
					keep = append(keep, e)
				}
			}
			b, _ := json.Marshal(keep)
			return b
		},
		sign: func(t *testing.T, k webhookKeys, api string, body []byte, valid bool) *http.Request {
			key := k.sendgrid
			if !valid {
				key = k.sendgridWrong
			}
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			sig, err := intake.SignSendGrid(key, ts, body)
			if err != nil {
				t.Fatal(err)
			}
			req := eventsRequest(t, api+"/v1/events/sendgrid", body)
			req.Header.Set(intake.SendGridSignatureHeader, sig)
			req.Header.Set(intake.SendGridTimestampHeader, ts)
			return req
		},
		want: []string{"processed", "delivered"},
	},
	{
		provider: "mailgun",
		carrier: apiCarrier("mailgun", func(t *testing.T) *esptest.Fake { return esptest.Mailgun(t, "key-it", "mg.example.com") },
			func(c *config.Config, url string) {
				c.MailgunAPIKey, c.MailgunDomain, c.MailgunBaseURL = "key-it", "mg.example.com", url
			}),
		body: func(t *testing.T, id string) []byte {
			return intakeFixture(t, "mailgun_delivered.json", id)
		},
		sign: func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			ts, token := strconv.FormatInt(time.Now().Unix(), 10), message.NewDispatchID()+message.NewDispatchID()[:18]
			sig := intake.SignMailgun(mailgunKey, ts, token)
			if !valid {
				sig = intake.SignMailgun("not-the-signing-key", ts, token)
			}
			m["signature"] = map[string]string{"timestamp": ts, "token": token, "signature": sig}
			b, _ := json.Marshal(m)
			return eventsRequest(t, api+"/v1/events/mailgun", b)
		},
		want: []string{"delivered"},
	},
	{
		provider: "postmark",
		carrier: apiCarrier("postmark", func(t *testing.T) *esptest.Fake { return esptest.Postmark(t, "pm-it") },
			func(c *config.Config, url string) {
				c.PostmarkServerToken, c.PostmarkBaseURL, c.PostmarkMessageStream = "pm-it", url, "outbound"
			}),
		body: func(t *testing.T, id string) []byte {
			return intakeFixture(t, "postmark_bounce.json", id)
		},
		sign: func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
			req := eventsRequest(t, api+"/v1/events/postmark", body)
			if valid {
				req.SetBasicAuth(postmarkUser, postmarkPassword)
			} else {
				req.SetBasicAuth(postmarkUser, "guessed")
			}
			return req
		},
		want: []string{"bounced"},
	},
	{
		provider: "ses",
		carrier: apiCarrier("ses", func(t *testing.T) *esptest.Fake { return esptest.SES(t, "eu-west-1", "AKIAIT", "secret-it") },
			func(c *config.Config, url string) {
				c.SESRegion, c.SESAccessKeyID, c.SESSecretAccessKey, c.SESConfigurationSet, c.SESBaseURL = "eu-west-1", "AKIAIT", "secret-it", "dispatchflow", url
			}),
		body: func(t *testing.T, id string) []byte {
			return intakeFixture(t, "ses_delivery.json", id)
		},
		sign: func(t *testing.T, k webhookKeys, api string, body []byte, valid bool) *http.Request {
			key := sns.key
			if !valid {
				key = k.snsWrong
			}
			req := eventsRequest(t, api+"/v1/events/ses", sns.notification(t, key, body))
			req.Header.Set("Content-Type", "text/plain; charset=UTF-8") // as SNS sends it
			req.Header.Set(intake.SNSMessageTypeHeader, "Notification")
			return req
		},
		want: []string{"delivered"},
	},
	{
		provider: "sarbacane",
		carrier:  relayCarrier("sarbacane"),
		body: func(t *testing.T, id string) []byte {
			return intakeFixture(t, "sarbacane_hard_bounce.json", id)
		},
		sign: func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
			token := sarbacaneToken
			if !valid {
				token = "guessed"
			}
			return eventsRequest(t, api+"/v1/events/sarbacane/"+token, body)
		},
		want: []string{"bounced"},
	},
	{
		provider: "ajo",
		carrier:  relayCarrier("ajo"),
		// The documented example (an Admin Failure, code 25: aborted), for our send:
		// requestId is the dispatch_id.
		body: func(t *testing.T, id string) []byte {
			raw, err := os.ReadFile("../../intake/testdata/ajo_bounce.json")
			if err != nil {
				t.Fatal(err)
			}
			return bytes.Replace(raw, []byte(`"8NoByJneShCdCGRnrGS1t1m3CdA73dhR"`), []byte(`"`+id+`"`), 1)
		},
		sign: func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
			secret := ajoSecret
			if !valid {
				secret = "not-the-ajo-jwt-secret-of-this-test"
			}
			token, err := intake.SignAJO(secret, time.Now().Add(5*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			req := eventsRequest(t, api+"/v1/events/ajo", body)
			req.Header.Set("Authorization", "Bearer "+token)
			return req
		},
		want: []string{"aborted"},
	},
}

// postSigned posts req and decodes the events answer.
func postSigned(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// Issue 4 end to end: each provider's documented example event, posted with a
// valid signature, moves a real message to the right status and produces the
// seed-shaped postbacks; a bad signature is refused with 401 and moves nothing.
func TestProviderEvents(t *testing.T) {
	t.Parallel()
	if sns == nil {
		t.Fatal("no SNS host: TestMain starts it")
	}
	keys := newWebhookKeys(t)
	for _, tc := range providerCases {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			carrier := tc.carrier(t)
			s := setup(t, func(c *config.Config) {
				keys.configure(t)(c)
				carrier(c)
				c.Intakes = []string{tc.provider}
			})
			ext := tc.provider + "-" + message.NewDispatchID()[:8]
			const campaign = "417220e4-5a2a-b634-7f7d-9ec891532368"
			id := s.send(message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "s", Text: "t", ExternalSendID: ext, CampaignAPIID: campaign, PostbackURL: s.postback.URL})
			s.postback.waitFor(t, id, 1)
			body := tc.body(t, id)

			code, out := postSigned(t, tc.sign(t, keys, s.api, body, false))
			if code != http.StatusUnauthorized {
				t.Errorf("bad signature: %d %v, want 401", code, out)
			}
			time.Sleep(300 * time.Millisecond)
			if st := s.state(id); st.Status != message.StatusSent || len(st.Events) != 1 {
				t.Errorf("after a bad signature: status %s with %d events, want sent with only its own", st.Status, len(st.Events))
			}

			code, out = postSigned(t, tc.sign(t, keys, s.api, body, true))
			if code != http.StatusOK || out["accepted"] != float64(len(tc.want)) {
				t.Fatalf("signed example: %d %v, want 200 with %d accepted", code, out, len(tc.want))
			}
			want := append([]string{"sent"}, tc.want...)
			pbs := s.postback.waitFor(t, id, len(want))
			if got := statuses(pbs); !slices.Equal(got, want) {
				t.Fatalf("postbacks %v, want %v", got, want)
			}
			for _, p := range pbs {
				checkShape(t, p, id, ext, campaign)
			}
			st := s.state(id)
			if string(st.Status) != want[len(want)-1] {
				t.Errorf("status %s, want %s", st.Status, want[len(want)-1])
			}
			last := st.Events[len(st.Events)-1]
			if last.Provider != tc.provider || !last.ChangedStatus {
				t.Errorf("last event %+v, want one from %s that changed the status", last, tc.provider)
			}
		})
	}
}

// An event that names only the provider's message id (no dispatch_id) finds its
// message through the EspMessageId search attribute.
func TestProviderEventByMessageID(t *testing.T) {
	t.Parallel()
	fake := esptest.Postmark(t, "pm-it")
	// A message id of this run only: the server is shared by every test and -count.
	messageID := strings.Replace(esptest.PostmarkMessageID, esptest.PostmarkMessageID[:8], message.NewDispatchID()[:8], 1)
	fake.Answer(esptest.Answer{Status: http.StatusOK, Body: strings.Replace(esptest.Fixture("postmark-200.json"), esptest.PostmarkMessageID, messageID, 1)})
	s := setup(t, func(c *config.Config) {
		c.ESP = "postmark"
		c.PostmarkServerToken, c.PostmarkBaseURL, c.PostmarkMessageStream = "pm-it", fake.URL, "outbound"
		c.PostmarkWebhookUsername, c.PostmarkWebhookPassword = postmarkUser, postmarkPassword
	})
	id := s.send(message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 1)
	if st := s.state(id); st.ESP == nil || st.ESP.MessageID != messageID {
		t.Fatalf("receipt %+v, want message id %s", st.ESP, messageID)
	}

	// Postmark's delivery example, without our Metadata: only its MessageID.
	var ev map[string]any
	if err := json.Unmarshal(intakeFixture(t, "postmark_delivery.json", id), &ev); err != nil {
		t.Fatal(err)
	}
	delete(ev, "Metadata")
	ev["MessageID"] = messageID
	body, _ := json.Marshal(ev)
	// Visibility lags a moment behind the send: until the message id shows there,
	// the event is answered 503 with Retry-After (it is recent), and Postmark posts
	// it again, as this loop does. Never 200 unmatched: that would lose it.
	sent := time.Now()
	eventually(t, "the event matched by its message id", func() bool {
		req := eventsRequest(t, s.api+"/v1/events/postmark", body)
		req.SetBasicAuth(postmarkUser, postmarkPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			return false
		case resp.StatusCode != http.StatusOK || out["accepted"] != float64(1):
			t.Fatalf("postmark event: %d %v, want 200 accepted, or 503 with Retry-After until visible", resp.StatusCode, out)
		}
		return true
	})
	t.Logf("the message id was found by visibility %s after the send's postback", time.Since(sent).Round(time.Millisecond))
	pbs := s.postback.waitFor(t, id, 2)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent", "delivered"}) {
		t.Errorf("postbacks %v, want [sent delivered]", got)
	}
	if st := s.state(id); st.Status != message.StatusDelivered {
		t.Errorf("status %s, want delivered", st.Status)
	}
}

// Fail closed, provider-bound: a SendGrid message is moved by SendGrid's events
// only. A validly signed Postmark event naming it is recorded as ignored and
// changes nothing; a provider not mounted answers 404; the generic intake refuses
// unsigned events and another workspace's secret moves nothing.
func TestForeignEventsChangeNothing(t *testing.T) {
	t.Parallel()
	keys := newWebhookKeys(t)
	var sendgrid, postmark providerCase
	for _, tc := range providerCases {
		switch tc.provider {
		case "sendgrid":
			sendgrid = tc
		case "postmark":
			postmark = tc
		}
	}
	carrier := sendgrid.carrier(t)
	s := setup(t, func(c *config.Config) {
		keys.configure(t)(c)
		carrier(c)
		c.Intakes = []string{"sendgrid", "postmark", "generic"}
	})
	id := s.send(message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	s.postback.waitFor(t, id, 1)

	code, out := postSigned(t, postmark.sign(t, keys, s.api, postmark.body(t, id), true))
	if code != http.StatusOK {
		t.Fatalf("postmark's signed bounce: %d %v, want 200 (authentic, only not this message's provider)", code, out)
	}
	bounce := map[string]any{"dispatch_id": id, "event": "bounced", "reason": "550 forged", "timestamp": time.Now().UTC().Format(time.RFC3339)}
	if resp := s.as("other").do("POST", "/v1/events/generic", bounce, &out); resp.StatusCode != http.StatusOK {
		t.Fatalf("generic event signed by globex: %d %v, want 200", resp.StatusCode, out)
	}
	unsigned := s.as("admin")
	unsigned.intakeSecret = ""
	if resp := unsigned.do("POST", "/v1/events/generic", bounce, &out); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned generic event: %d %v, want 401", resp.StatusCode, out)
	}
	if resp := s.do("POST", "/v1/events/mailgun", postmark.body(t, id), &out); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an intake not mounted: %d %v, want 404", resp.StatusCode, out)
	}

	var st workflows.State
	eventually(t, "both foreign events in the timeline", func() bool {
		st = s.state(id)
		return len(st.Events) == 3
	})
	if st.Status != message.StatusSent {
		t.Errorf("status %s, want still sent", st.Status)
	}
	for _, e := range st.Events[1:] {
		if e.ChangedStatus || !strings.HasPrefix(e.Note, "ignored: ") {
			t.Errorf("event from %s: changed %v, note %q; want ignored", e.Provider, e.ChangedStatus, e.Note)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if pbs := s.postback.postbacks(id); len(pbs) != 1 {
		t.Errorf("%d postbacks, want only sent's", len(pbs))
	}
}
