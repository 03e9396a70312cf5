package intake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dispatchflow/dispatchflow/message"
)

// DispatchIDKey is the name under which dispatchflow's outbound senders attach the
// dispatch_id to a message (SendGrid custom_args, Mailgun v: variables, Postmark
// Metadata, SES message tags), and under which the webhooks bring it back.
const DispatchIDKey = "dispatch_id"

// newEvent builds an event with the fields every normalizer fills in the same way.
// ts defaults to receivedAt; id defaults to a synthetic key derived from the
// message (dispatch_id, else the provider's message id), the raw event name, the
// provider's timestamp (when it gave one) and extra, whatever else tells two
// events of the same kind apart (a bounce code, a click's URL).
func newEvent(provider, dispatchID, messageID string, t message.EventType, rawType, id string, ts, receivedAt time.Time, reason, extra string) message.Event {
	if id == "" {
		key := dispatchID
		if key == "" {
			key = "message:" + messageID
		}
		id = message.SyntheticID(provider+"\x00"+key, t, ts, rawType+"\x00"+extra)
	}
	if ts.IsZero() {
		ts = receivedAt
	}
	return message.Event{
		DispatchID: dispatchID, Provider: provider, Type: t, ID: id,
		Timestamp: ts.UTC(), ReceivedAt: receivedAt.UTC(), Reason: reason, RawType: rawType,
		MessageID: messageID,
	}
}

// unixTime converts seconds since the epoch (with a fraction to the microsecond,
// as Mailgun sends them) to a time; zero, negative and absurd values are the zero time.
func unixTime(sec float64) time.Time {
	if !(sec > 0 && sec < 1e11) {
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(sec * 1e6))).UTC()
}

// parseTime reads the RFC 3339 times of most providers; ok is false for anything else.
func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// equalSecret compares a presented credential with the configured one in
// constant time, whatever their lengths.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// jsonString returns v as a string when it is a JSON string, else "".
func jsonString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnauthorized}, args...)...)
}

// malformed describes a JSON decoding error without echoing the body.
func malformed(err error) error {
	return badRequest("malformed JSON: %v", err)
}

// trimAngles removes the angle brackets around a Message-ID.
func trimAngles(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
}
