package intake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/dispatchflow/dispatchflow/message"
)

// SNSMessageTypeHeader names the SNS message type of a request.
const SNSMessageTypeHeader = "X-Amz-Sns-Message-Type"

// snsCertCacheSize bounds the cached signing certificates (SNS uses one per region
// at a time).
const snsCertCacheSize = 64

// SES normalizes Amazon SES event publishing through an SNS topic subscribed over
// HTTPS: one SES event per SNS notification. Every request's SNS signature is
// verified (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA) with the
// certificate at SigningCertURL, fetched over HTTPS from a host matching Hosts and
// cached. The dispatch_id comes back in mail.tags.dispatch_id (a message tag of
// the configuration set's events); mail.messageId is the message id; the SNS
// MessageId is the dedupe key.
//
// A SubscriptionConfirmation is confirmed (its SubscribeURL fetched) only for an
// allow-listed topic and a SubscribeURL on an SNS host.
type SES struct {
	// TopicARNs allow-lists the topics; empty accepts any topic's notifications
	// and confirms no subscription.
	TopicARNs []string
	// Hosts matches the hosts of SigningCertURL and SubscribeURL.
	Hosts *regexp.Regexp
	// HTTP fetches certificates and confirms subscriptions.
	HTTP *retryablehttp.Client
	// Now is the clock certificates' validity and notifications' age are checked
	// against; nil: time.Now.
	Now func() time.Time
	// MaxAge bounds a notification's age (its Timestamp): SNS retries resend the
	// same signed notification, and an older one is refused as a replay. Zero:
	// DefaultSNSMaxAge.
	MaxAge time.Duration

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// DefaultSNSMaxAge covers SNS's HTTP/S retries (3 over about a minute by
// default; a custom delivery policy stays within an hour).
const DefaultSNSMaxAge = time.Hour

// NewSES returns the SES normalizer.
func NewSES(topicARNs []string, hosts *regexp.Regexp, hc *retryablehttp.Client) *SES {
	return &SES{TopicARNs: topicARNs, Hosts: hosts, HTTP: hc}
}

var topicARN = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$`)

func validTopicARN(s string) bool { return topicARN.MatchString(s) }

// snsMessage is an SNS HTTP(S) request body.
type snsMessage struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicARN         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
	SubscribeURL     string  `json:"SubscribeURL"`
}

// stringToSign is the canonical form SNS signs: name/value lines of the fields
// its type signs, in byte order of the names.
func (m *snsMessage) stringToSign() string {
	var b strings.Builder
	add := func(name, value string) { b.WriteString(name + "\n" + value + "\n") }
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == "Notification" {
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
	} else {
		add("SubscribeURL", m.SubscribeURL)
	}
	add("Timestamp", m.Timestamp)
	if m.Type != "Notification" {
		add("Token", m.Token)
	}
	add("TopicArn", m.TopicARN)
	add("Type", m.Type)
	return b.String()
}

type sesEvent struct {
	EventType        string `json:"eventType"`
	NotificationType string `json:"notificationType"` // identity notifications
	Mail             struct {
		MessageID string              `json:"messageId"`
		Timestamp string              `json:"timestamp"`
		Tags      map[string][]string `json:"tags"`
	} `json:"mail"`
	Bounce *struct {
		BounceType        string             `json:"bounceType"`
		BounceSubType     string             `json:"bounceSubType"`
		BouncedRecipients []sesRecipientDiag `json:"bouncedRecipients"`
		Timestamp         string             `json:"timestamp"`
	} `json:"bounce"`
	Delivery *struct {
		Timestamp string `json:"timestamp"`
	} `json:"delivery"`
	Reject *struct {
		Reason string `json:"reason"`
	} `json:"reject"`
	Failure *struct {
		ErrorMessage string `json:"errorMessage"`
	} `json:"failure"`
	DeliveryDelay *struct {
		DelayType         string             `json:"delayType"`
		DelayedRecipients []sesRecipientDiag `json:"delayedRecipients"`
		Timestamp         string             `json:"timestamp"`
	} `json:"deliveryDelay"`
	Complaint *struct {
		ComplaintSubType string `json:"complaintSubType"`
		Timestamp        string `json:"timestamp"`
	} `json:"complaint"`
	Open *struct {
		Timestamp string `json:"timestamp"`
	} `json:"open"`
	Click *struct {
		Timestamp string `json:"timestamp"`
		Link      string `json:"link"`
	} `json:"click"`
	Subscription *struct {
		Timestamp           string `json:"timestamp"`
		NewTopicPreferences struct {
			UnsubscribeAll          bool `json:"unsubscribeAll"`
			TopicSubscriptionStatus []struct {
				SubscriptionStatus string `json:"subscriptionStatus"`
			} `json:"topicSubscriptionStatus"`
		} `json:"newTopicPreferences"`
	} `json:"subscription"`
}

type sesRecipientDiag struct {
	Status         string `json:"status"`
	DiagnosticCode string `json:"diagnosticCode"`
}

// sesDiagnostic is the first recipient's diagnostic: the DSN's Status and
// Diagnostic-Code ("smtp; 550 5.1.1 user unknown"); without one, the Status and
// what SES says of the event (its type and subtype).
func sesDiagnostic(rs []sesRecipientDiag, what string) string {
	for _, r := range rs {
		if d := firstDiagnostic(r.DiagnosticCode); d != "" {
			return diagnostic("", r.Status, d)
		}
	}
	status := ""
	if len(rs) > 0 {
		status = rs[0].Status
	}
	return diagnostic("", status, what)
}

// sesTopicValidated is the notification SES publishes when an event destination
// is set up; it is no event.
const sesTopicValidated = "Successfully validated SNS topic for Amazon SES event publishing."

func (s *SES) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return Batch{}, malformed(err)
	}
	if h := r.Header.Get(SNSMessageTypeHeader); h != m.Type {
		return Batch{}, badRequest("%s %q does not match Type %q", SNSMessageTypeHeader, h, m.Type)
	}
	switch m.Type {
	case "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation":
	default:
		return Batch{}, badRequest("Type: %q is not an SNS message type", m.Type)
	}
	if err := s.verify(r, &m); err != nil {
		return Batch{}, err
	}
	if err := s.fresh(&m); err != nil {
		return Batch{}, err
	}
	allowed := slices.Contains(s.TopicARNs, m.TopicARN)
	if len(s.TopicARNs) > 0 && !allowed {
		return Batch{}, unauthorized("TopicArn %q is not allow-listed", m.TopicARN)
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		if !allowed {
			return Batch{}, unauthorized("TopicArn %q: subscriptions are confirmed for allow-listed topics only", m.TopicARN)
		}
		return Batch{}, s.confirm(r, &m)
	case "UnsubscribeConfirmation":
		return Batch{}, nil
	}
	return sesEvents(&m, receivedAt), nil
}

// sesEvents unwraps a verified notification's SES event: the SNS envelope is
// SES's format, the SES event in its Message the one event of the batch.
func sesEvents(m *snsMessage, receivedAt time.Time) Batch {
	if m.Message == sesTopicValidated {
		return Batch{}
	}
	return batchOf(sesRead(m, receivedAt))
}

func sesRead(m *snsMessage, receivedAt time.Time) (message.Event, error) {
	var e sesEvent
	if err := decodeEvent([]byte(m.Message), &e, "Message"); err != nil {
		return message.Event{}, err
	}
	name := firstNonEmpty(e.EventType, e.NotificationType)
	if name == "" {
		return message.Event{}, errors.New("Message.eventType: is required")
	}
	c := sesType(name, &e)
	ts, ok := parseTime(c.at)
	switch {
	case c.at != "" && !ok:
		return message.Event{}, fmt.Errorf("Message.%s: not an RFC 3339 time", c.atField)
	case c.at == "":
		// No time of its own (Send, Reject…): when the mail was sent, else when
		// SNS published the notification.
		if ts, ok = parseTime(e.Mail.Timestamp); !ok {
			ts, _ = parseTime(m.Timestamp)
		}
	}
	var dispatchID string
	if tag := e.Mail.Tags[DispatchIDKey]; len(tag) > 0 {
		dispatchID = tag[0]
	}
	return newEvent(ProviderSES, dispatchID, e.Mail.MessageID, c.t, rawType(append([]string{name}, c.sub...)...),
		m.MessageID, ts, receivedAt, c.reason, c.extra), nil
}

// sesClass is what sesType makes of an SES event.
type sesClass struct {
	t       message.EventType
	sub     []string // subtypes, for the raw type
	reason  string
	at      string // the event's own timestamp, if it has one, and its field
	atField string
	extra   string
}

// sesSuppressed are the bounce subtypes of messages SES never attempted: the
// address is on the global or the account-level suppression list.
var sesSuppressed = map[string]bool{"Suppressed": true, "OnAccountSuppressionList": true}

// sesType maps an SES event by the SES developer guide's meaning of it (event
// publishing's "Contents of event data"). SES publishes a Bounce only once it
// has given up: for a hard bounce at once, for a soft bounce ("Transient") after
// it stopped retrying; a soft bounce it still retries is a DeliveryDelay. A
// bounce or complaint for a suppressed address was never attempted.
func sesType(eventType string, e *sesEvent) sesClass {
	c := sesClass{t: message.EventUnknown}
	own := func(at, field string) {
		c.at, c.atField = at, field
	}
	switch {
	case eventType == "Send":
		c.t = message.EventProcessed
	case eventType == "Delivery" && e.Delivery != nil:
		c.t = message.EventDelivered
		own(e.Delivery.Timestamp, "delivery.timestamp")
	case eventType == "Bounce" && e.Bounce != nil:
		b := e.Bounce
		c.t, c.sub = message.EventBounced, []string{b.BounceType, b.BounceSubType}
		if sesSuppressed[b.BounceSubType] {
			c.t = message.EventAborted
		}
		c.reason = sesDiagnostic(b.BouncedRecipients, b.BounceType+" "+b.BounceSubType)
		own(b.Timestamp, "bounce.timestamp")
	case eventType == "Reject" && e.Reject != nil:
		c.t, c.reason = message.EventAborted, e.Reject.Reason
	case eventType == "Rendering Failure" && e.Failure != nil:
		c.t, c.reason = message.EventAborted, e.Failure.ErrorMessage
	case eventType == "DeliveryDelay" && e.DeliveryDelay != nil:
		d := e.DeliveryDelay
		c.t, c.sub = message.EventDeferred, []string{d.DelayType}
		c.reason = sesDiagnostic(d.DelayedRecipients, d.DelayType)
		own(d.Timestamp, "deliveryDelay.timestamp")
	case eventType == "Complaint" && e.Complaint != nil:
		c.t, c.sub = message.EventComplaint, []string{e.Complaint.ComplaintSubType}
		if e.Complaint.ComplaintSubType == "OnAccountSuppressionList" {
			c.t, c.reason = message.EventAborted, "OnAccountSuppressionList"
		}
		own(e.Complaint.Timestamp, "complaint.timestamp")
	case eventType == "Open" && e.Open != nil:
		c.t = message.EventOpen
		own(e.Open.Timestamp, "open.timestamp")
	case eventType == "Click" && e.Click != nil:
		c.t, c.extra = message.EventClick, e.Click.Link
		own(e.Click.Timestamp, "click.timestamp")
	case eventType == "Subscription" && e.Subscription != nil:
		p := e.Subscription.NewTopicPreferences
		optOut := p.UnsubscribeAll
		for _, s := range p.TopicSubscriptionStatus {
			optOut = optOut || s.SubscriptionStatus == "OptOut"
		}
		if optOut {
			c.t = message.EventUnsubscribe
		}
		own(e.Subscription.Timestamp, "subscription.timestamp")
	}
	return c
}

// verify checks m's SNS signature.
func (s *SES) verify(r *http.Request, m *snsMessage) error {
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return unauthorized("SignatureVersion: %q is not 1 or 2", m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 {
		return unauthorized("Signature: missing or not base64")
	}
	if err := s.checkURL(m.SigningCertURL); err != nil {
		return unauthorized("SigningCertURL: %v", err)
	}
	cert, err := s.cert(r, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return unauthorized("SigningCertURL: not an RSA certificate")
	}
	var digest []byte
	if hash == crypto.SHA1 {
		sum := sha1.Sum([]byte(m.stringToSign()))
		digest = sum[:]
	} else {
		sum := sha256.Sum256([]byte(m.stringToSign()))
		digest = sum[:]
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, digest, sig); err != nil {
		return unauthorized("bad Signature")
	}
	return nil
}

// fresh refuses a notification whose signed Timestamp is older than MaxAge, or
// more than a minute ahead: a replay of a captured one.
func (s *SES) fresh(m *snsMessage) error {
	ts, ok := parseTime(m.Timestamp)
	if !ok {
		return unauthorized("Timestamp: %q is not an RFC 3339 time", m.Timestamp)
	}
	now, maxAge := time.Now(), s.MaxAge
	if s.Now != nil {
		now = s.Now()
	}
	if maxAge == 0 {
		maxAge = DefaultSNSMaxAge
	}
	if age := now.Sub(ts); age > maxAge || age < -time.Minute {
		return unauthorized("Timestamp: %s old, outside the %s window", age.Round(time.Second), maxAge)
	}
	return nil
}

// checkURL accepts HTTPS URLs on an SNS host only.
func (s *SES) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || !s.Hosts.MatchString(u.Hostname()) {
		return fmt.Errorf("%q is not an https URL on an SNS host", raw)
	}
	return nil
}

// cert returns the certificate at certURL, from the cache or fetched.
func (s *SES) cert(r *http.Request, certURL string) (*x509.Certificate, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.mu.Lock()
	cert := s.certs[certURL]
	s.mu.Unlock()
	if cert == nil {
		body, err := s.get(r, certURL)
		if err != nil {
			return nil, fmt.Errorf("fetching the SNS signing certificate: %w", err)
		}
		block, _ := pem.Decode(body)
		if block == nil {
			return nil, unauthorized("SigningCertURL: no PEM certificate")
		}
		if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, unauthorized("SigningCertURL: %v", err)
		}
		s.mu.Lock()
		if s.certs == nil || len(s.certs) >= snsCertCacheSize {
			s.certs = make(map[string]*x509.Certificate)
		}
		s.certs[certURL] = cert
		s.mu.Unlock()
	}
	if t := now(); t.Before(cert.NotBefore) || t.After(cert.NotAfter) {
		return nil, unauthorized("SigningCertURL: certificate not valid at %s", t.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// confirm confirms a subscription by fetching its SubscribeURL.
func (s *SES) confirm(r *http.Request, m *snsMessage) error {
	if err := s.checkURL(m.SubscribeURL); err != nil {
		return unauthorized("SubscribeURL: %v", err)
	}
	if _, err := s.get(r, m.SubscribeURL); err != nil {
		return fmt.Errorf("confirming the SNS subscription to %s: %w", m.TopicARN, err)
	}
	return nil
}

// get fetches u (at most 64 KiB of it); non-2xx answers are errors.
func (s *SES) get(r *http.Request, u string) ([]byte, error) {
	req, err := retryablehttp.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, errors.New(resp.Status)
	}
	return body, nil
}
