package message

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// NewDispatchID returns a random dispatch_id: 32 lowercase hex characters, the shape
// of Braze's ("acf471119f7449d579e8089032003ded").
func NewDispatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// DispatchIDFor returns the dispatch_id of the send identified by the customer's
// external_send_id in workspace. It is derived, not stored: the same workspace and
// external_send_id always map to the same dispatch_id, so a retried send request
// finds the message (and the workflow) it already started instead of sending a
// second email. It is keyed with the deployment's secret (DISPATCHFLOW_ID_SECRET):
// nobody without it can compute another tenant's dispatch_id from an order number,
// and two workspaces' "order-1" are two messages.
func DispatchIDFor(secret []byte, workspace, externalSendID string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("dispatchflow/external_send_id/v2\x00" + workspace + "\x00" + externalSendID))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// ValidDispatchID reports whether s has the form of a dispatch_id.
func ValidDispatchID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
