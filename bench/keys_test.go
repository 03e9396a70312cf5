package bench

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
)

// The keys file is one the API loads: the key authenticates, the workspace has
// the intake and signing secrets returned.
func TestWriteKeys(t *testing.T) {
	path := t.TempDir() + "/keys.json"
	loopback := netip.MustParseAddr("127.0.0.1")
	limit := &auth.RateLimit{PerSecond: 10000, Burst: 10000}
	keys, err := WriteKeys(path, "bench", limit)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := auth.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ks.Authenticate(keys.APIKey, loopback, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !k.Has(auth.ScopeMessagesSend) || k.Limit() != *limit {
		t.Errorf("key %+v: want every scope and the limit given", k)
	}
	ws, ok := ks.Workspace(k.Workspace)
	if !ok || !slices.Equal(ws.SigningSecrets, []string{keys.Signing}) || !slices.Equal(ws.IntakeSecrets, []string{keys.Intake}) {
		t.Errorf("workspace %v (%v): want the secrets returned", ws, ok)
	}

	keys, err = WriteKeys(path, "bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ = auth.LoadFile(path)
	if k, err := ks.Authenticate(keys.APIKey, loopback, time.Now()); err != nil || k.Limit() != auth.DefaultRateLimit {
		t.Errorf("key without a limit: %v, %v; want the default limit", k, err)
	}
}
