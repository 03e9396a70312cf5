package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
)

// The webhook credentials of the Brevo, Mailjet, SparkPost and Mandrill intakes.
const (
	basicUser     = "esp-hooks-it"
	basicPassword = "esp-hooks-password-it"
	mandrillKey   = "mandrill-webhook-key-it"
)

// fixtureElements returns elements idx of one of intake's documented example
// arrays (intake/testdata/README.md names their sources), with this message's
// dispatch_id.
func fixtureElements(t *testing.T, name, id string, idx ...int) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	if err := json.Unmarshal(intakeFixture(t, name, id), &all); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	for _, i := range idx {
		out = append(out, all[i])
	}
	return out
}

func jsonArray(t *testing.T, elems []json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(elems)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// basicSigned posts body with the intake's credentials, or a guessed password.
func basicSigned(provider string) func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
	return func(t *testing.T, _ webhookKeys, api string, body []byte, valid bool) *http.Request {
		req := eventsRequest(t, api+"/v1/events/"+provider, body)
		if valid {
			req.SetBasicAuth(basicUser, basicPassword)
		} else {
			req.SetBasicAuth(basicUser, "guessed")
		}
		return req
	}
}

// Each provider's documented example events, carried by an SMTP relay of that
// provider (DISPATCHFLOW_SMTP_PROVIDER: the messages accept its events), posted as
// the provider posts them: a bad credential or signature is a 401 that moves
// nothing; the authentic request moves the real message through the statuses the
// events mean, with the seed-shaped postbacks.
var providerCasesA = []providerCase{
	{
		provider: "brevo",
		carrier:  relayCarrier("brevo"),
		// Brevo's batched form: "request" (anymail's live capture), then a hard bounce.
		body: func(t *testing.T, id string) []byte {
			return jsonArray(t, fixtureElements(t, "brevo_events.json", id, 0, 2))
		},
		sign: basicSigned("brevo"),
		want: []string{"processed", "bounced"},
	},
	{
		provider: "mailjet",
		carrier:  relayCarrier("mailjet"),
		// The Event API guide's sample sent event, alone (Version 1).
		body: func(t *testing.T, id string) []byte {
			return fixtureElements(t, "mailjet_events.json", id, 0)[0]
		},
		sign: basicSigned("mailjet"),
		want: []string{"delivered"},
	},
	{
		provider: "sparkpost",
		carrier:  relayCarrier("sparkpost"),
		// injection and delivery, and a ping in the same batch.
		body: func(t *testing.T, id string) []byte {
			elems := fixtureElements(t, "sparkpost_events.json", id, 0, 1)
			return jsonArray(t, append(elems, json.RawMessage(`{"msys":{}}`)))
		},
		sign: basicSigned("sparkpost"),
		want: []string{"processed", "delivered"},
	},
	{
		provider: "mandrill",
		carrier:  relayCarrier("mandrill"),
		// Mandrill's example send, then its soft bounce: a bounce after delivery.
		body: func(t *testing.T, id string) []byte {
			return jsonArray(t, fixtureElements(t, "mandrill_events.json", id, 0, 3))
		},
		// Signed for the URL Mandrill would be configured with, the API's public URL.
		sign: func(t *testing.T, _ webhookKeys, api string, events []byte, valid bool) *http.Request {
			form := url.Values{"mandrill_events": {string(events)}}
			key := mandrillKey
			if !valid {
				key = "not-the-webhook-key"
			}
			req, err := http.NewRequest(http.MethodPost, api+"/v1/events/mandrill", bytes.NewReader([]byte(form.Encode())))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(intake.MandrillSignatureHeader, intake.SignMandrill(key, api+"/v1/events/mandrill", form))
			return req
		},
		want: []string{"delivered", "bounced"},
	},
}

func TestProviderEventsA(t *testing.T) {
	t.Parallel()
	keys := newWebhookKeys(t)
	for _, tc := range providerCasesA {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			carrier := tc.carrier(t)
			s := setup(t, func(c *config.Config) {
				carrier(c)
				c.WebhookVerify = "on"
				c.Intakes = []string{tc.provider}
				c.BrevoWebhookUsername, c.BrevoWebhookPassword = basicUser, basicPassword
				c.MailjetWebhookUsername, c.MailjetWebhookPassword = basicUser, basicPassword
				c.SparkPostWebhookUsername, c.SparkPostWebhookPassword = basicUser, basicPassword
				c.MandrillWebhookKey = mandrillKey // signed for {PublicURL}/v1/events/mandrill
			})
			ext := tc.provider + "-" + message.NewDispatchID()[:8]
			const campaign = "417220e4-5a2a-b634-7f7d-9ec891532368"
			id := s.send(message.SendRequest{To: "ann@example.com", From: "shop@example.com", Subject: "s", Text: "t", ExternalSendID: ext, CampaignAPIID: campaign, PostbackURL: s.postback.URL})
			s.postback.waitFor(t, id, 1)
			body := tc.body(t, id)

			code, out := postSigned(t, tc.sign(t, keys, s.api, body, false))
			if code != http.StatusUnauthorized {
				t.Errorf("bad credential: %d %v, want 401", code, out)
			}
			time.Sleep(300 * time.Millisecond)
			if st := s.state(id); st.Status != message.StatusSent || len(st.Events) != 1 {
				t.Errorf("after a bad credential: status %s with %d events, want sent with only its own", st.Status, len(st.Events))
			}

			code, out = postSigned(t, tc.sign(t, keys, s.api, body, true))
			if code != http.StatusOK || out["accepted"] != float64(len(tc.want)) || out["invalid"] != float64(0) {
				t.Fatalf("authentic example: %d %v, want 200 with %d accepted", code, out, len(tc.want))
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
			last := st.Events[len(st.Events)-1]
			if string(st.Status) != want[len(want)-1] || last.Provider != tc.provider || !last.ChangedStatus {
				t.Errorf("status %s, last event %+v; want %s, changed by an event from %s", st.Status, last, want[len(want)-1], tc.provider)
			}

			// The provider's retry of the same request: every event a duplicate.
			code, out = postSigned(t, tc.sign(t, keys, s.api, body, true))
			if code != http.StatusOK || out["accepted"] != float64(0) {
				t.Errorf("the same request again: %d %v, want 200 with nothing accepted", code, out)
			}
		})
	}
}
