package codec

import (
	"bytes"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

type msg struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// What Temporal stores holds no plaintext, and decodes back to the value.
func TestRoundTrip(t *testing.T) {
	c, err := NewAES(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	dc := DataConverter(c)
	in := msg{To: "ann@example.com", Subject: "Your order #1234"}
	p, err := dc.ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.GetData(), []byte("ann@example.com")) || bytes.Contains(p.GetData(), []byte("order")) {
		t.Fatalf("stored payload holds plaintext: %q", p.GetData())
	}
	if got := string(p.GetMetadata()[converter.MetadataEncoding]); got != Encoding {
		t.Fatalf("encoding = %q, want %q", got, Encoding)
	}
	if got := string(p.GetMetadata()[MetadataKeyID]); got != c.KeyID() || strings.Contains(got, "\x01") {
		t.Fatalf("key id = %q, want %q", got, c.KeyID())
	}
	var out msg
	if err := dc.FromPayload(p, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	// Each encryption has its own nonce: equal inputs do not give equal ciphertexts.
	p2, _ := dc.ToPayload(in)
	if bytes.Equal(p.GetData(), p2.GetData()) {
		t.Fatal("two encryptions of the same value are identical")
	}
}

// Payloads written before a key was set still decode; another key's payloads and
// tampered ones are errors, never garbage.
func TestDecode(t *testing.T) {
	c, _ := NewAES(testKey(1))
	other, _ := NewAES(testKey(2))
	plain, _ := converter.GetDefaultDataConverter().ToPayload(msg{To: "bob@example.com"})
	var out msg
	if err := DataConverter(c).FromPayload(plain, &out); err != nil || out.To != "bob@example.com" {
		t.Fatalf("unencrypted payload: %+v, %v", out, err)
	}
	enc, _ := DataConverter(other).ToPayload(msg{To: "bob@example.com"})
	if err := DataConverter(c).FromPayload(enc, &out); err == nil || !strings.Contains(err.Error(), other.KeyID()) {
		t.Fatalf("another key's payload: %v, want an error naming key %s", err, other.KeyID())
	}
	enc, _ = DataConverter(c).ToPayload(msg{To: "bob@example.com"})
	enc.Data[len(enc.Data)-1] ^= 1
	if err := DataConverter(c).FromPayload(enc, &out); err == nil {
		t.Fatal("tampered payload decoded without error")
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", ""},
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", ""},
		{"AQEBAQEBAQEB", "is 9 bytes, want 32"},
		{"not base64!", "not base64"},
	}
	for _, tt := range tests {
		_, err := ParseKey(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseKey(%q): %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseKey(%q): %v, want an error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

// Rotation: the newest key encrypts, every key of the ring decrypts what it
// encrypted, a key dropped from the ring is an error naming its id.
func TestKeyring(t *testing.T) {
	old, _ := NewAES(testKey(1))
	ring, err := NewKeyring(testKey(2), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	newer, _ := NewAES(testKey(2))
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), ring)
	before, _ := DataConverter(old).ToPayload(msg{To: "ann@example.com"}) // written before the rotation
	after, _ := dc.ToPayload(msg{To: "bob@example.com"})
	if got := string(after.GetMetadata()[MetadataKeyID]); got != newer.KeyID() || ring.KeyID() != newer.KeyID() {
		t.Errorf("new payloads carry key %s, want the newest %s", got, newer.KeyID())
	}
	var out msg
	if err := dc.FromPayload(before, &out); err != nil || out.To != "ann@example.com" {
		t.Errorf("decoding the old key's payload with the ring: %+v, %v", out, err)
	}
	if err := dc.FromPayload(after, &out); err != nil || out.To != "bob@example.com" {
		t.Errorf("decoding the newest: %+v, %v", out, err)
	}
	onlyNew, _ := NewKeyring(testKey(2))
	err = converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), onlyNew).FromPayload(before, &out)
	if err == nil || !strings.Contains(err.Error(), old.KeyID()) {
		t.Errorf("a dropped key's payload: %v, want an error naming key %s", err, old.KeyID())
	}
	if _, err := NewKeyring(testKey(1), testKey(1)); err == nil {
		t.Error("a key listed twice was accepted")
	}
	if _, err := NewKeyring(); err == nil {
		t.Error("an empty ring was accepted")
	}
}
