package message

import (
	"encoding/json"
	"time"
)

// TimestampLayout is the seed's ISO 8601 form: milliseconds and a numeric UTC offset,
// "2020-08-31T18:58:41.000+00:00".
const TimestampLayout = "2006-01-02T15:04:05.000-07:00"

// Timestamp is a time that marshals in TimestampLayout, always in UTC. The zero
// Timestamp is omitted from postbacks (`omitzero`), never sent as null.
type Timestamp struct{ time.Time }

// At wraps t.
func At(t time.Time) Timestamp { return Timestamp{t} }

func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(TimestampLayout))
}

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(TimestampLayout, s)
	if err != nil {
		v, err = time.Parse(time.RFC3339Nano, s)
	}
	t.Time = v
	return err
}

// Postback is the body POSTed to the customer's endpoint on every status change,
// exactly Braze's: fields that do not apply to the status are omitted.
type Postback struct {
	DispatchID string   `json:"dispatch_id"`
	Status     Status   `json:"status"`
	Metadata   Metadata `json:"metadata"`
}

// Metadata is the postback's "metadata" object.
type Metadata struct {
	ExternalSendID string `json:"external_send_id,omitempty"`
	CampaignAPIID  string `json:"campaign_api_id,omitempty"`
	// On "sent" only.
	ReceivedAt Timestamp `json:"received_at,omitzero"`
	EnqueuedAt Timestamp `json:"enqueued_at,omitzero"`
	ExecutedAt Timestamp `json:"executed_at,omitzero"`
	SentAt     Timestamp `json:"sent_at,omitzero"`
	// On their own status only.
	ProcessedAt Timestamp `json:"processed_at,omitzero"`
	DeliveredAt Timestamp `json:"delivered_at,omitzero"`
	BouncedAt   Timestamp `json:"bounced_at,omitzero"`
	AbortedAt   Timestamp `json:"aborted_at,omitzero"`
	// On "bounced" and "aborted" only.
	Reason string `json:"reason,omitempty"`

	// On fallback outcomes only (not Braze's; see StatusFallbackSent).
	FallbackReason  string    `json:"fallback_reason,omitempty"`
	FallbackChannel string    `json:"fallback_channel,omitempty"`
	FallbackStep    int       `json:"fallback_step,omitempty"`
	FallbackAt      Timestamp `json:"fallback_at,omitzero"`
}

// Postback statuses beyond Braze's five: the outcome of a message's fallback
// ladder, posted only where DISPATCHFLOW_POSTBACK_FALLBACK_OUTCOMES asks for them,
// in order with the status postbacks. They never change the message's status.
const (
	// StatusFallbackSent: a fallback step reached the user (fallback_channel,
	// fallback_step, 1-based, fallback_at, and fallback_reason: why it escalated).
	StatusFallbackSent Status = "fallback_sent"
	// StatusFallbackFailed: every step failed or went unconfirmed.
	StatusFallbackFailed Status = "fallback_failed"
)

// NewFallbackPostback builds the postback of a fallback outcome.
func NewFallbackPostback(id Identity, outcome Status, at time.Time, reason, channel string, step int) Postback {
	return Postback{
		DispatchID: id.DispatchID,
		Status:     outcome,
		Metadata: Metadata{
			ExternalSendID: id.ExternalSendID, CampaignAPIID: id.CampaignAPIID,
			FallbackReason: reason, FallbackChannel: channel, FallbackStep: step, FallbackAt: At(at),
		},
	}
}

// Identity is what every postback of a message repeats.
type Identity struct {
	DispatchID     string
	ExternalSendID string
	CampaignAPIID  string
}

// SendTimes are the four timestamps of the "sent" postback.
type SendTimes struct {
	// ReceivedAt: the API received the send request.
	ReceivedAt time.Time `json:"received_at"`
	// EnqueuedAt: the message's workflow started.
	EnqueuedAt time.Time `json:"enqueued_at"`
	// ExecutedAt: the Send activity started handing the message to the ESP.
	ExecutedAt time.Time `json:"executed_at"`
	// SentAt: the ESP accepted the message.
	SentAt time.Time `json:"sent_at"`
}

// NewPostback builds the postback for a change to status at time at. reason is kept
// for bounced and aborted only; send is used for sent only.
func NewPostback(id Identity, status Status, at time.Time, reason string, send SendTimes) Postback {
	p := Postback{
		DispatchID: id.DispatchID,
		Status:     status,
		Metadata:   Metadata{ExternalSendID: id.ExternalSendID, CampaignAPIID: id.CampaignAPIID},
	}
	md := &p.Metadata
	switch status {
	case StatusSent:
		md.ReceivedAt, md.EnqueuedAt, md.ExecutedAt, md.SentAt = At(send.ReceivedAt), At(send.EnqueuedAt), At(send.ExecutedAt), At(send.SentAt)
	case StatusProcessed:
		md.ProcessedAt = At(at)
	case StatusDelivered:
		md.DeliveredAt = At(at)
	case StatusBounced:
		md.BouncedAt, md.Reason = At(at), reason
	case StatusAborted:
		md.AbortedAt, md.Reason = At(at), reason
	}
	return p
}
