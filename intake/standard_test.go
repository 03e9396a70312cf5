package intake

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// The generic intake is signed the Standard Webhooks way with each workspace's
// intake secret; its events carry the workspace that signed them.
func TestStandardSigned(t *testing.T) {
	t.Parallel()
	shop, shopNext, eu := "whsec_"+"c2hvcC1pbnRha2Utc2VjcmV0LTAxMjM0NTY3ODlhYg==", "whsec_"+"c2hvcC1pbnRha2Utc2VjcmV0LW5leHQtMDEyMzQ1Njc=", "whsec_"+"ZXUtaW50YWtlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZA=="
	g, err := NewStandardSigned(Generic{Provider: ProviderGeneric}, map[string][]string{"shop": {shop, shopNext}, "eu": {eu}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"dispatch_id":"acf471119f7449d579e8089032003ded","event":"delivered"}`)
	for _, tt := range []struct {
		name, secret string
		at           time.Time
		wantWS       string // "" for unauthorized
	}{
		{"shop's secret", shop, time.Now(), "shop"},
		{"shop's next secret (rotation)", shopNext, time.Now(), "shop"},
		{"eu's secret", eu, time.Now(), "eu"},
		{"nobody's secret", "whsec_" + "bm9ib2R5LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVmMDE=", time.Now(), ""},
		{"a replay 6 minutes later", shop, time.Now().Add(-6 * time.Minute), ""},
		{"unsigned", "", time.Now(), ""},
	} {
		r := post(body)
		if tt.secret != "" {
			if err := SignStandard(r.Header, tt.secret, "evt_"+strconv.Itoa(len(tt.name)), tt.at, body); err != nil {
				t.Fatal(err)
			}
		}
		got, err := g.Normalize(r, body, time.Now())
		if tt.wantWS == "" {
			if !errors.Is(err, ErrUnauthorized) || len(got.Events) != 0 {
				t.Errorf("%s: %d events, %v; want unauthorized", tt.name, len(got.Events), err)
			}
			continue
		}
		if err != nil || len(got.Events) != 1 || got.Events[0].Workspace != tt.wantWS {
			t.Errorf("%s: %+v, %v; want one event of workspace %s", tt.name, got.Events, err, tt.wantWS)
		}
	}
	// Without verification, the events may report on any workspace's messages.
	got, err := openGeneric{Generic{Provider: ProviderGeneric}}.Normalize(post(body), body, time.Now())
	if err != nil || len(got.Events) != 1 || got.Events[0].Workspace != AnyWorkspace {
		t.Errorf("open generic: %+v, %v; want one event of any workspace", got.Events, err)
	}
}

// The sandbox's intake has one secret and no workspace.
func TestStandardSignedWithoutWorkspace(t *testing.T) {
	t.Parallel()
	secret := "whsec_" + "c2FuZGJveC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZjA="
	g, err := NewStandardSigned(Generic{Provider: ProviderSandbox}, map[string][]string{"": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"dispatch_id":"acf471119f7449d579e8089032003ded","event":"delivered"}`)
	r := post(body)
	if err := SignStandard(r.Header, secret, "sandbox-1", time.Now(), body); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Normalize(r, body, time.Now()); err != nil || len(got.Events) != 1 {
		t.Errorf("signed sandbox event: %+v, %v; want it", got.Events, err)
	}
}
