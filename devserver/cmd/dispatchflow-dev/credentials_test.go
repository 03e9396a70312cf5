package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
)

// make run makes its development credentials once and keeps them: the key it
// prints authenticates against the keys file it wrote, with every scope in
// workspace default; a restart prints the same key and secrets.
func TestDevCredentials(t *testing.T) {
	dir := t.TempDir()
	var cfg config.Config
	first, err := useDevCredentials(&cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if first == nil || cfg.APIKeysFile == "" || len(cfg.IDSecret) < config.MinIDSecretLength || cfg.SandboxWebhookSecret == "" {
		t.Fatalf("credentials %+v, config keys %q id secret %d chars sandbox %q: want all made", first, cfg.APIKeysFile, len(cfg.IDSecret), cfg.SandboxWebhookSecret)
	}
	ks, err := auth.LoadFile(cfg.APIKeysFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ks.Authenticate(first.APIKey, netip.MustParseAddr("127.0.0.1"), time.Now())
	if err != nil || k.Workspace != "default" || !k.Has(auth.ScopeEndpointsAdmin) {
		t.Fatalf("the printed key: %+v, %v; want a key of workspace default with every scope", k, err)
	}
	ws, _ := ks.Workspace("default")
	if len(ws.SigningSecrets) != 1 || ws.SigningSecrets[0] != first.SigningSecret || len(ws.IntakeSecrets) != 1 || ws.IntakeSecrets[0] != first.IntakeSecret {
		t.Errorf("workspace default %v, want the printed signing and intake secrets", ws)
	}
	for _, name := range []string{devKeyFile, devKeysFile, devIDSecretFile, devSandboxSecretFile, devIntakeSecretFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want it, readable by its owner only", name, err, fi.Mode().Perm())
		}
	}

	var again config.Config
	second, err := useDevCredentials(&again, dir)
	if err != nil {
		t.Fatal(err)
	}
	if *second != *first || again.IDSecret != cfg.IDSecret || again.SandboxWebhookSecret != cfg.SandboxWebhookSecret {
		t.Errorf("after a restart %+v, want the same credentials %+v", second, first)
	}
}

// Settings from the environment win: a keys file of one's own, or auth off, makes
// no key; DISPATCHFLOW_DEV_API_KEY is used as the key.
func TestDevCredentialsFromTheEnvironment(t *testing.T) {
	own := config.Config{APIKeysFile: "/etc/dispatchflow/keys.yaml", IDSecret: strings.Repeat("s", 32)}
	if creds, err := useDevCredentials(&own, t.TempDir()); err != nil || creds != nil || own.APIKeysFile != "/etc/dispatchflow/keys.yaml" {
		t.Errorf("own keys file: %+v, %v, file %q; want nothing made", creds, err, own.APIKeysFile)
	}
	key, _, err := auth.NewKey("mine", "default", []auth.Scope{auth.ScopeAll})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISPATCHFLOW_DEV_API_KEY", key)
	var cfg config.Config
	creds, err := useDevCredentials(&cfg, t.TempDir())
	if err != nil || creds.APIKey != key {
		t.Fatalf("DISPATCHFLOW_DEV_API_KEY: %+v, %v; want that key", creds, err)
	}
	ks, _ := auth.LoadFile(cfg.APIKeysFile)
	if _, err := ks.Authenticate(key, netip.Addr{}, time.Now()); err != nil {
		t.Errorf("DISPATCHFLOW_DEV_API_KEY does not authenticate: %v", err)
	}
	t.Setenv("DISPATCHFLOW_DEV_API_KEY", "hunter2")
	if _, err := useDevCredentials(&config.Config{}, t.TempDir()); err == nil || !strings.HasPrefix(err.Error(), "DISPATCHFLOW_DEV_API_KEY:") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a malformed DISPATCHFLOW_DEV_API_KEY: %v, want an error naming the variable, not the value", err)
	}
}
