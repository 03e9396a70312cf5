package message

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCutReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantLen int
		wantCut bool
	}{
		{"empty", "", 0, false},
		{"short", "550 5.1.1 user unknown", 22, false},
		{"exactly the limit", strings.Repeat("a", MaxReasonLength), MaxReasonLength, false},
		{"one byte over", strings.Repeat("a", MaxReasonLength+1), MaxReasonLength, true},
		// 2-byte runes: the cut backs up to the start of the rune it would split.
		{"multi-byte", strings.Repeat("é", MaxReasonLength), MaxReasonLength - 1, true},
		// 4-byte runes.
		{"emoji", strings.Repeat("📨", MaxReasonLength), MaxReasonLength - 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := CutReason(tt.in)
			if len(got) != tt.wantLen {
				t.Errorf("got %d bytes, want %d", len(got), tt.wantLen)
			}
			if cut := strings.HasSuffix(got, "…") && got != tt.in; cut != tt.wantCut {
				t.Errorf("got cut %v, want %v", cut, tt.wantCut)
			}
			if !utf8.ValidString(got) {
				t.Errorf("got invalid UTF-8 %q", got[len(got)-8:])
			}
			if !tt.wantCut && got != tt.in {
				t.Errorf("got %q, want it unchanged", got)
			}
		})
	}
}
