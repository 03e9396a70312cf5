package suppression

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("suppression-test-key-0123456789abcdef")

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"ann@example.com", "ann@example.com"},
		{"  Ann@Example.COM \n", "ann@example.com"},
		{"Ann Lee <ANN@example.com>", "ann@example.com"},
		{"ann+orders@example.com", "ann+orders@example.com"}, // a tag is another address
		{"a.n.n@example.com", "a.n.n@example.com"},
		{`"ann lee"@example.com`, "ann lee@example.com"},
		{"Élodie@Exemple.fr", "élodie@exemple.fr"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// A bad address is an error that names the problem and never quotes the input.
func TestNormalizeRefuses(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 250) + "@example.com"
	for _, in := range []string{"", "   ", "ann", "ann@", "@example.com", "ann@@example.com", "not an address at all",
		long, strings.Repeat("x", maxInputLength+1)} {
		got, err := Normalize(in)
		if !errors.Is(err, ErrAddress) {
			t.Errorf("Normalize(%.40q) = %q, %v; want ErrAddress", in, got, err)
			continue
		}
		if in != "" && strings.TrimSpace(in) != "" && strings.Contains(err.Error(), strings.TrimSpace(in)) {
			t.Errorf("Normalize error %q quotes its input", err)
		}
	}
	if _, err := Normalize(long); err == nil || !strings.Contains(err.Error(), "254") {
		t.Errorf("Normalize(a 262-byte address) = %v, want the %d-byte bound named", err, MaxAddressLength)
	}
}

// The ID depends on the key, the workspace and the address, and on nothing
// else: another workspace's suppression of the same address is another one.
func TestID(t *testing.T) {
	t.Parallel()
	a, _ := Normalize("Ann@Example.com")
	b, _ := Normalize("ann@example.COM")
	id := ID(testKey, "default", a)
	if !ValidID(id) {
		t.Fatalf("ID = %q, want 64 lowercase hex characters", id)
	}
	if got := ID(testKey, "default", b); got != id {
		t.Errorf("ID of the same address in another case = %s, want %s", got, id)
	}
	for name, other := range map[string]string{
		"another workspace": ID(testKey, "globex", a),
		"another key":       ID([]byte("another-suppression-key-0123456789ab"), "default", a),
		"another address":   ID(testKey, "default", "bob@example.com"),
		// The separator keeps "ws" + "x\x00addr" from meeting "wsx" + "addr".
		"shifted boundary": ID(testKey, "defaultann", "@example.com"),
	} {
		if other == id {
			t.Errorf("%s: same ID %s", name, id)
		}
	}
	if strings.Contains(id, "ann") || strings.Contains(WorkflowID("default", id), "example") {
		t.Errorf("ID %s or its workflow ID holds the address", id)
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	id := ID(testKey, "default", "ann@example.com")
	for s, want := range map[string]bool{
		id:                      true,
		strings.ToUpper(id):     false,
		id[:63]:                 false,
		id + "0":                false,
		"ann@example.com":       false,
		strings.Repeat("g", 64): false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestWorkflowID(t *testing.T) {
	t.Parallel()
	id := ID(testKey, "eu-1", "ann@example.com")
	if got, want := WorkflowID("eu-1", id), "dispatchflow-suppression-eu-1-"+id; got != want {
		t.Errorf("WorkflowID = %q, want %q", got, want)
	}
}

func TestHint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ann@example.com":     "a***@example.com",
		"a@example.com":       "***@example.com",
		"élodie@exemple.fr":   "é***@exemple.fr",
		"ann lee@example.com": "a***@example.com",
	} {
		if got := Hint(in); got != want {
			t.Errorf("Hint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 9, 25, 0, 0, time.FixedZone("CET", 3600))
	e := Entry{Cause: CauseHardBounce, Provider: "sendgrid", DispatchID: "d-123", At: at}
	if got, want := e.Reason(), "suppressed (hard bounce via sendgrid, dispatch d-123, 2026-11-28T08:25:00Z)"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
}
