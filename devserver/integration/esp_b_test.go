package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
)

const (
	resendSecretIT     = "whsec_cmVzZW5kLXNpZ25pbmctc2VjcmV0LWl0"
	mailerSendSecretIT = "mailersend-signing-secret-it"
)

// relayedCase is a provider whose webhooks report on mail dispatchflow handed to
// its SMTP relay (DISPATCHFLOW_SMTP_PROVIDER): its documented events, posted
// signed, must move the message, and posted with a forged signature, nothing.
type relayedCase struct {
	provider string
	// bodies are the requests' bodies for the message id (dispatch_id) sent
	// through r, in order.
	bodies func(t *testing.T, r *relay, id string) [][]byte
	// sign returns the request posting body, validly signed or not.
	sign func(t *testing.T, api string, body []byte, valid bool) *http.Request
	want []string // the postbacks after sent
}

// TestRelayedProviderEvents: Resend, MailerSend and Postal, end to end. Each
// message goes through a real SMTP relay run "by" the provider; the provider's
// documented events (intake/testdata, with this message's dispatch_id where the
// provider brings it back) are posted signed as the provider signs them, and
// become the seed-shaped postbacks. Postal's carry no tag: the message is found by
// the Message-ID the relay actually received, as Postal reports it.
func TestRelayedProviderEvents(t *testing.T) {
	t.Parallel()
	postalKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&postalKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	postalRecord := "v=DKIM1; t=s; h=sha256; p=" + base64.StdEncoding.EncodeToString(der) + ";"

	cases := []relayedCase{
		{
			provider: "resend",
			bodies: func(t *testing.T, _ *relay, id string) [][]byte {
				return [][]byte{intakeFixture(t, "resend_sent.json", id), intakeFixture(t, "resend_delivered.json", id)}
			},
			sign: func(t *testing.T, api string, body []byte, valid bool) *http.Request {
				secret := resendSecretIT
				if !valid {
					secret = "whsec_bm90LXRoZS1zZWNyZXQtb2YtdGhpcy10ZXN0"
				}
				req := eventsRequest(t, api+"/v1/events/resend", body)
				if err := intake.SignResend(req.Header, secret, "msg_"+message.NewDispatchID(), time.Now(), body); err != nil {
					t.Fatal(err)
				}
				return req
			},
			want: []string{"processed", "delivered"},
		},
		{
			provider: "mailersend",
			bodies: func(t *testing.T, _ *relay, id string) [][]byte {
				return [][]byte{intakeFixture(t, "mailersend_sent.json", id), intakeFixture(t, "mailersend_hard_bounced.json", id)}
			},
			sign: func(t *testing.T, api string, body []byte, valid bool) *http.Request {
				secret := mailerSendSecretIT
				if !valid {
					secret = intake.MailerSendTestSecret // public: good for the ping only
				}
				req := eventsRequest(t, api+"/v1/events/mailersend", body)
				req.Header.Set(intake.MailerSendSignatureHeader, intake.SignMailerSend(secret, body))
				return req
			},
			want: []string{"processed", "bounced"},
		},
		{
			provider: "postal",
			bodies: func(t *testing.T, r *relay, id string) [][]byte {
				// The Message-ID the relay received, as Postal reports it: without <>.
				r.mu.Lock()
				var got string
				for _, m := range r.messages {
					if m.Header.Get("X-Dispatch-ID") == id {
						got = strings.Trim(m.Header.Get("Message-ID"), "<>")
					}
				}
				r.mu.Unlock()
				if got == "" {
					t.Fatalf("the relay received no message of %s", id)
				}
				var ev map[string]any
				if err := json.Unmarshal(intakeFixture(t, "postal_sent_relay.json", id), &ev); err != nil {
					t.Fatal(err)
				}
				ev["payload"].(map[string]any)["message"].(map[string]any)["message_id"] = got
				ev["timestamp"] = float64(time.Now().UnixMicro()) / 1e6 // queued now: within the max age
				b, _ := json.Marshal(ev)
				return [][]byte{b}
			},
			sign: func(t *testing.T, api string, body []byte, valid bool) *http.Request {
				key := postalKey
				if !valid {
					key = forgedKey
				}
				s256, s1, err := intake.SignPostal(key, body)
				if err != nil {
					t.Fatal(err)
				}
				req := eventsRequest(t, api+"/v1/events/postal", body)
				req.Header.Set(intake.PostalSignature256Header, s256)
				req.Header.Set(intake.PostalSignatureHeader, s1)
				return req
			},
			want: []string{"delivered"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			r, addr := startRelay(t)
			s := setup(t, func(c *config.Config) {
				c.ESP, c.SMTPAddr, c.SMTPProvider = "smtp", addr, tc.provider
				c.Intakes = []string{tc.provider}
				c.WebhookVerify = "on"
				c.ResendWebhookSecret = resendSecretIT
				c.MailerSendWebhookSigningSecret = mailerSendSecretIT
				c.PostalWebhookPublicKey = postalRecord
			})
			ext := tc.provider + "-" + message.NewDispatchID()[:8]
			const campaign = "417220e4-5a2a-b634-7f7d-9ec891532368"
			id := s.send(message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "s", Text: "t",
				ExternalSendID: ext, CampaignAPIID: campaign, PostbackURL: s.postback.URL})
			s.postback.waitFor(t, id, 1)
			bodies := tc.bodies(t, r, id)

			for _, b := range bodies {
				if code, out := postSigned(t, tc.sign(t, s.api, b, false)); code != http.StatusUnauthorized {
					t.Errorf("forged signature: %d %v, want 401", code, out)
				}
			}
			time.Sleep(300 * time.Millisecond)
			if st := s.state(id); st.Status != message.StatusSent || len(st.Events) != 1 {
				t.Errorf("after forged requests: status %s with %d events, want sent with only its own", st.Status, len(st.Events))
			}

			for _, b := range bodies {
				if code, out := postSigned(t, tc.sign(t, s.api, b, true)); code != http.StatusOK || out["accepted"] != float64(1) {
					t.Fatalf("signed event: %d %v, want 200 with 1 accepted", code, out)
				}
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
			if last := st.Events[len(st.Events)-1]; last.Provider != tc.provider {
				t.Errorf("last event %+v, want one from %s", last, tc.provider)
			}
		})
	}

	// MailerSend saves a webhook only once its ping is answered 2xx: the ping,
	// signed with MailerSend's public test secret, is answered 200 with no event.
	t.Run("mailersend ping", func(t *testing.T) {
		t.Parallel()
		s := setup(t, func(c *config.Config) {
			c.Intakes = []string{"mailersend"}
			c.WebhookVerify = "on"
			c.MailerSendWebhookSigningSecret = mailerSendSecretIT
		})
		ping := []byte(`{"type":"webhook.test","message":"This is a ping test message","created_at":"2026-09-12T18:39:57.604840Z"}`)
		req := eventsRequest(t, s.api+"/v1/events/mailersend", ping)
		req.Header.Set(intake.MailerSendSignatureHeader, intake.SignMailerSend(intake.MailerSendTestSecret, ping))
		if code, out := postSigned(t, req); code != http.StatusOK || out["accepted"] != float64(0) {
			t.Fatalf("ping: %d %v, want 200 with nothing accepted", code, out)
		}
	})
}
