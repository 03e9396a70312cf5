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
	// Now is the clock certificates' validity is checked against; nil: time.Now.
	Now func() time.Time

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

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
		Timestamp string `json:"timestamp"`
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
	DiagnosticCode string `json:"diagnosticCode"`
}

// sesTopicValidated is the notification SES publishes when an event destination
// is set up; it is no event.
const sesTopicValidated = "Successfully validated SNS topic for Amazon SES event publishing."

func (s *SES) Normalize(r *http.Request, body []byte, receivedAt time.Time) ([]message.Event, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, malformed(err)
	}
	if h := r.Header.Get(SNSMessageTypeHeader); h != m.Type {
		return nil, badRequest("%s %q does not match Type %q", SNSMessageTypeHeader, h, m.Type)
	}
	switch m.Type {
	case "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation":
	default:
		return nil, badRequest("Type: %q is not an SNS message type", m.Type)
	}
	if err := s.verify(r, &m); err != nil {
		return nil, err
	}
	allowed := slices.Contains(s.TopicARNs, m.TopicARN)
	if len(s.TopicARNs) > 0 && !allowed {
		return nil, unauthorized("TopicArn %q is not allow-listed", m.TopicARN)
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		if !allowed {
			return nil, unauthorized("TopicArn %q: subscriptions are confirmed for allow-listed topics only", m.TopicARN)
		}
		return nil, s.confirm(r, &m)
	case "UnsubscribeConfirmation":
		return nil, nil
	}
	return sesEvents(&m, receivedAt)
}

// sesEvents unwraps a verified notification's SES event.
func sesEvents(m *snsMessage, receivedAt time.Time) ([]message.Event, error) {
	if m.Message == sesTopicValidated {
		return nil, nil
	}
	var e sesEvent
	if err := json.Unmarshal([]byte(m.Message), &e); err != nil {
		return nil, badRequest("Message: not an SES event: %v", err)
	}
	rawType := firstNonEmpty(e.EventType, e.NotificationType)
	if rawType == "" {
		return nil, badRequest("Message.eventType: is required")
	}
	t, reason, at, extra := sesType(rawType, &e)
	ts, ok := parseTime(at)
	if !ok {
		ts, _ = parseTime(m.Timestamp)
	}
	var dispatchID string
	if tag := e.Mail.Tags[DispatchIDKey]; len(tag) > 0 {
		dispatchID = tag[0]
	}
	if e.Bounce != nil && e.Bounce.BounceType != "" {
		rawType += " (" + e.Bounce.BounceType + ")"
	}
	return []message.Event{newEvent(ProviderSES, dispatchID, e.Mail.MessageID, t, rawType, m.MessageID,
		ts, receivedAt, reason, extra)}, nil
}

// sesType maps an SES event; at is its own timestamp.
func sesType(eventType string, e *sesEvent) (t message.EventType, reason, at, extra string) {
	diag := func(rs []sesRecipientDiag) string {
		for _, r := range rs {
			if r.DiagnosticCode != "" {
				return r.DiagnosticCode
			}
		}
		return ""
	}
	at = e.Mail.Timestamp
	switch {
	case eventType == "Send":
		return message.EventProcessed, "", at, ""
	case eventType == "Delivery" && e.Delivery != nil:
		return message.EventDelivered, "", e.Delivery.Timestamp, ""
	case eventType == "Bounce" && e.Bounce != nil:
		b := e.Bounce
		reason = firstNonEmpty(diag(b.BouncedRecipients), b.BounceType+" "+b.BounceSubType)
		if b.BounceType == "Permanent" {
			return message.EventBounced, reason, b.Timestamp, ""
		}
		// Transient: SES has stopped retrying, but the address may work later;
		// Undetermined: SES could not tell. Neither is a hard bounce.
		return message.EventDeferred, reason, b.Timestamp, ""
	case eventType == "Reject" && e.Reject != nil:
		return message.EventAborted, e.Reject.Reason, at, ""
	case eventType == "Rendering Failure" && e.Failure != nil:
		return message.EventAborted, e.Failure.ErrorMessage, at, ""
	case eventType == "DeliveryDelay" && e.DeliveryDelay != nil:
		d := e.DeliveryDelay
		return message.EventDeferred, firstNonEmpty(diag(d.DelayedRecipients), d.DelayType), d.Timestamp, ""
	case eventType == "Complaint" && e.Complaint != nil:
		return message.EventComplaint, "", e.Complaint.Timestamp, ""
	case eventType == "Open" && e.Open != nil:
		return message.EventOpen, "", e.Open.Timestamp, ""
	case eventType == "Click" && e.Click != nil:
		return message.EventClick, "", e.Click.Timestamp, e.Click.Link
	case eventType == "Subscription" && e.Subscription != nil:
		p := e.Subscription.NewTopicPreferences
		optOut := p.UnsubscribeAll
		for _, s := range p.TopicSubscriptionStatus {
			optOut = optOut || s.SubscriptionStatus == "OptOut"
		}
		if optOut {
			return message.EventUnsubscribe, "", e.Subscription.Timestamp, ""
		}
		return message.EventUnknown, "", e.Subscription.Timestamp, ""
	}
	return message.EventUnknown, "", at, ""
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
