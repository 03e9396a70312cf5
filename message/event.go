package message

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxReasonLength bounds Event.Reason, in bytes: enough for an SMTP reply code,
// an enhanced status code and the receiving server's text, short enough that a
// provider's whole bounce notice never lands in a message's history or postback.
// Intake cuts every reason with CutReason.
const MaxReasonLength = 1000

// Event is one ESP event about one message, normalised from the provider's format.
// It is the input of the workflow's event signal; add fields, never rename them.
type Event struct {
	// DispatchID is the message the event is about.
	DispatchID string `json:"dispatch_id"`
	// Provider names the ESP (or intake format) that reported the event: "sandbox", "generic", …
	Provider string `json:"provider"`
	// Type is the normalised event.
	Type EventType `json:"type"`
	// ID is the provider's event id (SendGrid sg_event_id, SNS MessageId, …), the key
	// duplicates are recognised by. Providers without one get a synthetic key (SyntheticID).
	ID string `json:"id"`
	// Timestamp is when the provider says the event happened.
	Timestamp time.Time `json:"timestamp"`
	// ReceivedAt is when dispatchflow's intake received the event.
	ReceivedAt time.Time `json:"received_at"`
	// Reason is the bounce or abort reason, or the deferral's SMTP answer: the most
	// useful diagnostic the provider's payload holds, at most MaxReasonLength bytes.
	Reason string `json:"reason,omitempty"`
	// RawType is the provider's own name for the event, followed by its subtype and
	// sub-subtype where the provider has them, joined with "/": "Bounce/Transient/MailboxFull"
	// (SES), "failed/permanent/suppress-bounce" (Mailgun), "hard_bounce" (Sarbacane).
	RawType string `json:"raw_type,omitempty"`
	// MessageID is the provider's id of the message (SendGrid sg_message_id, SES
	// mail.messageId, …). When an event carries no dispatch_id, intake finds the
	// message by it: the Send activity records it (search attribute EspMessageId).
	MessageID string `json:"message_id,omitempty"`
	// Workspace is the workspace whose intake secret authenticated the request,
	// on events of the generic intake: they may report on that workspace's
	// messages, whatever ESP carried them. Empty on a provider's own events.
	Workspace string `json:"workspace,omitempty"`
}

// DedupeKey identifies the event across retries of the provider's webhook.
func (e Event) DedupeKey() string { return e.Provider + ":" + e.ID }

// SyntheticID derives an event id for providers that send none, from what makes the
// event unique: its message, type and the provider's timestamp.
func SyntheticID(dispatchID string, t EventType, ts time.Time, reason string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{dispatchID, string(t), ts.UTC().Format(time.RFC3339Nano), reason}, "\x00")))
	return "syn-" + hex.EncodeToString(sum[:12])
}

// CutReason returns s cut to at most MaxReasonLength bytes on a UTF-8 boundary,
// ending in "…" when it was cut.
func CutReason(s string) string { return Cut(s, MaxReasonLength) }

// Cut returns s cut to at most n bytes on a UTF-8 boundary, ending in "…" when
// it was cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// Bounds of the other strings of an Event that come from outside; intake and
// the workflow both apply them (Bounded).
const (
	// MaxIDLength bounds Event.ID: a longer id is replaced by its hash
	// (BoundID), so that two long ids never collide by sharing a prefix.
	MaxIDLength = 128
	// MaxRawTypeLength bounds Event.RawType.
	MaxRawTypeLength = 200
)

// BoundID returns id, or "h-" and its SHA-256 in hex when it is longer than
// MaxIDLength.
func BoundID(id string) string {
	if len(id) <= MaxIDLength {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h-" + hex.EncodeToString(sum[:])
}

// Bounded returns e with every string from outside within its bound: ID
// (BoundID), Reason (MaxReasonLength), RawType (MaxRawTypeLength), MessageID
// (BoundID).
func (e Event) Bounded() Event {
	e.ID, e.MessageID = BoundID(e.ID), BoundID(e.MessageID)
	e.Reason, e.RawType = CutReason(e.Reason), Cut(e.RawType, MaxRawTypeLength)
	return e
}
