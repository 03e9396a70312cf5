package suppression

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Temporal names of the suppression list. One workflow per suppressed address
// and workspace (WorkflowID); workflows.Suppression implements it.
const (
	// WorkflowType is the workflow type of a suppressed address.
	WorkflowType = "Suppression"
	// SignalAdd carries an Entry: one more cause to suppress the address.
	SignalAdd = "suppression-add"
	// UpdateRemove lifts the suppression (its input: RemoveInput); the workflow
	// completes in the same workflow task, so a send that starts after the update
	// answered is not suppressed.
	UpdateRemove = "suppression-remove"
	// QueryState answers the State.
	QueryState = "suppression"
	// MemoSummary is the memo field holding the Summary: set with the start, it
	// is what a Describe (the send's check, GET) and the list read without a
	// query. Memos are payloads: encrypted under DISPATCHFLOW_PAYLOAD_KEY.
	MemoSummary = "suppression"
)

// workflowIDPrefix starts every suppression's workflow ID.
const workflowIDPrefix = "dispatchflow-suppression-"

// WorkflowID is the workflow ID of the suppression id (ID) in workspace ws:
// "dispatchflow-suppression-<ws>-<id>". An id is always the last IDLength
// characters, so no workspace name makes two IDs meet.
func WorkflowID(ws, id string) string { return workflowIDPrefix + ws + "-" + id }

// Cause is why an address is suppressed.
type Cause string

// The causes: what providers report as a permanent failure of the address, or
// as the recipient's wish.
const (
	CauseHardBounce  Cause = "hard_bounce"
	CauseComplaint   Cause = "complaint"
	CauseUnsubscribe Cause = "unsubscribe"
)

// words is the cause in a sentence: "hard bounce".
func (c Cause) words() string { return strings.ReplaceAll(string(c), "_", " ") }

// Bounds of what identifies an address.
const (
	// MaxAddressLength bounds a normalized address, in bytes: the longest path
	// SMTP carries (RFC 5321 §4.5.3.1.3: 256 octets with its angle brackets).
	MaxAddressLength = 254
	// maxInputLength bounds what Normalize parses (an address with a display
	// name, as a send's "to" holds it): 1 KB.
	maxInputLength = 1024
	// MinKeyLength is the shortest key (DISPATCHFLOW_SUPPRESSION_KEY) ID takes:
	// 32 bytes, HMAC-SHA256's own strength.
	MinKeyLength = 32
	// IDLength is the length of an ID: 32 bytes in hex.
	IDLength = 64
)

// ErrAddress is the error of Normalize; it never quotes the address.
var ErrAddress = errors.New("not an email address")

// Normalize is the form of an address the list is keyed by: the bare address
// (a display name, "Ann <ann@example.com>", is dropped), trimmed, in lower case.
//
// Lower case includes the local part. RFC 5321 lets a mailbox's local part be
// case-sensitive, but no mainstream mailbox provider makes "Ann@" and "ann@"
// two mailboxes, and ESPs match their own suppression lists without case; a
// list that missed "Ann@example.com" after "ann@example.com" bounced would
// defeat itself, while two mailboxes told apart by case alone do not occur in
// practice. Nothing else is folded: "+tags" and dots are other addresses at
// most providers.
func Normalize(address string) (string, error) {
	address = strings.TrimSpace(address)
	switch {
	case address == "":
		return "", fmt.Errorf("%w: empty", ErrAddress)
	case len(address) > maxInputLength:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrAddress, maxInputLength)
	}
	a, err := mail.ParseAddress(address)
	if err != nil {
		return "", ErrAddress
	}
	local, domain, ok := cutLast(a.Address, "@")
	if !ok || local == "" || domain == "" {
		return "", fmt.Errorf("%w: no domain", ErrAddress)
	}
	n := strings.ToLower(a.Address)
	if len(n) > MaxAddressLength {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrAddress, MaxAddressLength)
	}
	return n, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// ID is the suppression id of the normalized address in workspace ws: the hex
// HMAC-SHA256 under key of a versioned label, ws and address. Without the key
// nobody can tell which address an ID stands for, nor test a guess.
func ID(key []byte, ws, address string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("dispatchflow/suppression/v1\x00"))
	mac.Write([]byte(ws))
	mac.Write([]byte{0})
	mac.Write([]byte(address))
	return hex.EncodeToString(mac.Sum(nil))
}

// ValidID reports whether s is an ID: 64 lowercase hex characters.
func ValidID(s string) bool {
	if len(s) != IDLength {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Hint masks the normalized address for operators: its first character, then
// "***", then the domain ("j***@example.com"); a one-character local part is
// masked whole ("***@example.com").
func Hint(address string) string {
	local, domain, _ := cutLast(address, "@")
	first, size := utf8.DecodeRuneInString(local)
	if size == len(local) || first == utf8.RuneError {
		return "***@" + domain
	}
	return string(first) + "***@" + domain
}

// Entry is one report that suppressed an address: what the list shows, and
// what an aborted send's reason names.
type Entry struct {
	Cause Cause `json:"cause"`
	// Provider reported it (intake's name: "sendgrid", "generic", …).
	Provider string `json:"provider"`
	// DispatchID is the message whose event it was.
	DispatchID string `json:"dispatch_id"`
	// At is when the provider says it happened (when it was received, without
	// the provider's time).
	At time.Time `json:"at"`
}

// Reason is the reason of a send aborted because of e:
// "suppressed (hard bounce via sendgrid, dispatch 0a1b…, 2026-11-28T09:25:00Z)".
func (e Entry) Reason() string {
	return fmt.Sprintf("suppressed (%s via %s, dispatch %s, %s)", e.Cause.words(), e.Provider, e.DispatchID,
		e.At.UTC().Format(time.RFC3339))
}

// Summary is what the memo of a suppression's workflow holds (MemoSummary):
// the masked address and the entry that started it.
type Summary struct {
	Hint  string `json:"address_hint"`
	Entry Entry  `json:"entry"`
}

// Reason is the reason of a send aborted for this suppression; without
// an entry (a memo that could not be read), "suppressed".
func (s Summary) Reason() string {
	if s.Entry.Cause == "" {
		return "suppressed"
	}
	return s.Entry.Reason()
}

// Input starts the workflow of one suppressed address (WorkflowType). It
// never holds the address: the workflow ID holds its keyed hash, Hint its
// masked form.
type Input struct {
	Workspace string `json:"workspace"`
	Hint      string `json:"address_hint"`
	// Carried is the previous run's state after a continue-as-new.
	Carried *State `json:"carried,omitempty"`
}

// State is a suppressed address as its workflow keeps it (QueryState).
type State struct {
	Workspace string `json:"workspace"`
	Hint      string `json:"address_hint"`
	// Since is when the first entry reached the list.
	Since time.Time `json:"since"`
	// Entries are what suppressed the address: the first, then the latest (a
	// bounded number); Count counts them all, a message's repeated report of
	// one cause once.
	Entries []Entry `json:"entries"`
	Count   int     `json:"count"`
	// Lifted says when and why the suppression was removed: its workflow
	// completes then, with this state as its result.
	Lifted *Lift `json:"lifted,omitempty"`
}

// Lift records the removal of a suppression.
type Lift struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// RemoveInput is the input of UpdateRemove.
type RemoveInput struct {
	// Reason is the operator's, for the record (at most MaxNoteLength bytes).
	Reason string `json:"reason,omitempty"`
}

// MaxNoteLength bounds RemoveInput.Reason.
const MaxNoteLength = 500
