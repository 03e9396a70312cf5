package postback

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// Notification is one thing to tell endpoints about a message: what the workflow
// hands the Postback activity. Small and JSON-serialisable (it is recorded in the
// workflow's history); every format is rendered from it.
type Notification struct {
	// Postback is the Braze body, the source of truth for every format. For an
	// engagement notification it carries the message's identity and current status.
	Postback message.Postback `json:"postback"`
	// Event is set on engagement notifications (open, click, deferred, complaint,
	// unsubscribe); empty on status and fallback-outcome postbacks.
	Event message.EventType `json:"event,omitempty"`
	// Recipient is the email address, for the ajo and sarbacane bodies.
	Recipient string `json:"recipient,omitempty"`
	// Provider is the ESP's name.
	Provider string `json:"provider,omitempty"`
	// EventAt is when it happened; zero: the status timestamp in Postback.
	EventAt time.Time `json:"event_at,omitzero"`
	// ReceivedAt is when the triggering ESP event (or the ESP's acceptance) reached
	// dispatchflow: the start of the postback latency metric.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Reason is an engagement event's explanation: a deferral's SMTP answer.
	Reason string `json:"reason,omitempty"`
	// Link is the URL of a click.
	Link string `json:"link,omitempty"`
	// Subject and From of the email, for the sarbacane body; left out when empty.
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
}

// Name is the event name endpoints subscribe to (Endpoint.Events): the engagement
// event, or else the postback's status.
func (n Notification) Name() string {
	if n.Event != "" {
		return string(n.Event)
	}
	return string(n.Postback.Status)
}

// At is when the notified event happened: EventAt, or the timestamp of the status
// in the Braze body.
func (n Notification) At() time.Time {
	if !n.EventAt.IsZero() {
		return n.EventAt
	}
	md := n.Postback.Metadata
	for _, t := range []message.Timestamp{md.SentAt, md.ProcessedAt, md.DeliveredAt, md.BouncedAt, md.AbortedAt, md.FallbackAt} {
		if !t.IsZero() {
			return t.Time
		}
	}
	return time.Time{}
}

// reason is the SMTP answer or explanation carried by n.
func (n Notification) reason() string {
	if n.Reason != "" {
		return n.Reason
	}
	return n.Postback.Metadata.Reason
}

// UnsupportedError says a format cannot express an event.
type UnsupportedError struct {
	Format, Event string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("format %s cannot express event %q", e.Format, e.Event)
}

// Render returns the body of n in format: "braze" (or ""), "ajo" or "sarbacane".
// An event the format cannot express is an *UnsupportedError.
func Render(format string, n Notification) ([]byte, error) {
	if format == "" {
		format = FormatBraze
	}
	supported, ok := formatEvents[format]
	if !ok {
		return nil, fmt.Errorf("unknown postback format %q", format)
	}
	if !contains(supported, n.Name()) {
		return nil, &UnsupportedError{Format: format, Event: n.Name()}
	}
	switch format {
	case FormatAJO:
		return json.Marshal(ajoBody(n))
	case FormatSarbacane:
		return json.Marshal(sarbacaneBody(n))
	}
	// Exactly Braze's body, as before formats existed.
	return json.Marshal(n.Postback)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// smtpCode finds the SMTP reply code at the start of a bounce reason ("550 5.1.1 …").
var smtpCode = regexp.MustCompile(`^\s*([245][0-9][0-9])\b`)

func replyCode(reason string) (string, bool) {
	m := smtpCode.FindStringSubmatch(reason)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// The ajo body: Adobe Journey Optimizer's message.feedback payload (seed 004,
// https://experienceleague.adobe.com/en/docs/journey-optimizer/using/configuration/feedback-webhooks);
// feedbackStatus values from AJO's Message Feedback Event Schema
// (https://experienceleague.adobe.com/tools/ajo-schemas/schema-dictionary.html).
type ajo struct {
	RequestID        string      `json:"requestId"`
	Channel          string      `json:"channel"`
	EventType        string      `json:"eventType"`
	MessageExecution ajoExec     `json:"messageExecution"`
	Feedback         ajoFeedback `json:"messageDeliveryFeedback"`
	IdentityMap      ajoIdentity `json:"identityMap"`
}

type ajoExec struct {
	MessageExecutionID string `json:"messageExecutionID"`
	MessageType        string `json:"messageType"`
	CampaignID         string `json:"campaignID,omitempty"`
}

type ajoFeedback struct {
	FeedbackStatus struct {
		Value string `json:"value"`
	} `json:"feedbackStatus"`
	Offers           any         `json:"offers"`
	MessageExclusion any         `json:"messageExclusion"`
	MessageFailure   *ajoFailure `json:"messageFailure"`
	RetryCount       int         `json:"retryCount"`
}

type ajoFailure struct {
	Category string `json:"category"`
	Type     string `json:"type"`
	Code     string `json:"code"`
	Reason   string `json:"reason"`
}

type ajoIdentity struct {
	Email []ajoID `json:"email,omitempty"`
}

type ajoID struct {
	ID      string `json:"id"`
	Primary bool   `json:"primary"`
}

// ajoBody maps n onto AJO's feedback: sent → sent, delivered → delivered,
// bounced → bounce (Hard Bounce), deferred → delay (Soft Bounce), aborted → error
// (Admin). A failure's code is the SMTP reply code of the reason, when it has one.
func ajoBody(n Notification) ajo {
	p := n.Postback
	b := ajo{
		RequestID: p.DispatchID,
		Channel:   "email",
		EventType: "message.feedback",
		MessageExecution: ajoExec{
			MessageExecutionID: p.DispatchID,
			MessageType:        "transactional",
			CampaignID:         p.Metadata.CampaignAPIID,
		},
	}
	failure := func(category, typ string) *ajoFailure {
		code, _ := replyCode(n.reason())
		return &ajoFailure{Category: category, Type: typ, Code: code, Reason: n.reason()}
	}
	fb := &b.Feedback
	switch n.Name() {
	case EventSent:
		fb.FeedbackStatus.Value = "sent"
	case EventDelivered:
		fb.FeedbackStatus.Value = "delivered"
	case EventBounced:
		fb.FeedbackStatus.Value, fb.MessageFailure = "bounce", failure("async", "Hard Bounce")
	case EventDeferred:
		fb.FeedbackStatus.Value, fb.MessageFailure = "delay", failure("async", "Soft Bounce")
	case EventAborted:
		fb.FeedbackStatus.Value, fb.MessageFailure = "error", failure("sync", "Admin")
	}
	if n.Recipient != "" {
		b.IdentityMap.Email = []ajoID{{ID: n.Recipient, Primary: true}}
	}
	return b
}

// SarbacaneDateLayout is the date of the sarbacane body: ISO 8601 in UTC with
// milliseconds. (The seed prints "2016-08-11 T 12:25:18.889Z", spaces around the T
// being typography, not a format any parser reads.)
const SarbacaneDateLayout = "2006-01-02T15:04:05.000Z"

// The sarbacane body: one call per event, as Sarbacane's webhook extension (seed
// 003, https://www.sarbacane.com/extensions/webhook/).
type sarbacane struct {
	Email           string `json:"email"`
	CampaignID      string `json:"campaignId"`
	SendID          string `json:"sendId"`
	Subject         string `json:"subject,omitempty"`
	From            string `json:"from,omitempty"`
	URL             string `json:"url,omitempty"`
	SMTPDescription string `json:"smtpDescription,omitempty"`
	Category        string `json:"category,omitempty"`
	ReturnCode      *int   `json:"returnCode,omitempty"`
	Date            string `json:"date"`
	Type            string `json:"type"`
	WhID            string `json:"whId"`
}

// sarbacaneBody maps n onto Sarbacane's envelope: campaignId = campaign_api_id,
// sendId = external_send_id, whId = dispatch_id; bounced → hard_bounce,
// deferred → soft_bounce with smtpDescription (the reason), returnCode (its SMTP
// code, -1 without one, as the seed's timeout) and category.
func sarbacaneBody(n Notification) sarbacane {
	p := n.Postback
	b := sarbacane{
		Email:      n.Recipient,
		CampaignID: p.Metadata.CampaignAPIID,
		SendID:     p.Metadata.ExternalSendID,
		Subject:    n.Subject,
		From:       n.From,
		Date:       n.At().UTC().Format(SarbacaneDateLayout),
		Type:       n.Name(),
		WhID:       p.DispatchID,
	}
	bounce := func(typ, category string) {
		b.Type, b.Category, b.SMTPDescription = typ, category, n.reason()
		code := -1
		if c, ok := replyCode(n.reason()); ok {
			code, _ = strconv.Atoi(c)
		}
		b.ReturnCode = &code
	}
	switch n.Name() {
	case EventBounced:
		bounce("hard_bounce", "DEFAULT_HARDBOUNCE")
	case EventDeferred:
		bounce("soft_bounce", "DEFAULT_SOFTBOUNCE")
	case EventClick:
		b.URL = n.Link
	}
	return b
}
