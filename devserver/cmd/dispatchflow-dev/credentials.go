package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// Files of make run's development credentials, under -data-dir. They live
// beside the local Temporal database and go with it (make clean).
const (
	devKeyFile      = "dev-api-key"   // the development API key, in clear: this machine only
	devKeysFile     = "dev-keys.json" // the keys file: the key's hash, the workspace's signing secret
	devIDSecretFile = "dev-id-secret" // DISPATCHFLOW_ID_SECRET
	// DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET: the sandbox ESP signs its events with it.
	devSandboxSecretFile = "dev-sandbox-secret"
	// The generic intake secret of workspace default, in clear for the README's
	// examples (DISPATCHFLOW_INTAKE_SECRET of dispatchflow events post).
	devIntakeSecretFile = "dev-intake-secret"
	// DISPATCHFLOW_SUPPRESSION_KEY: keys the suppression list's addresses.
	devSuppressionKeyFile = "dev-suppression-key"
)

// devCredentials are what make run prints at start.
type devCredentials struct {
	APIKey        string
	KeyFile       string // where APIKey is kept
	SigningSecret string
	IntakeSecret  string // the generic intake's, of workspace default
	IntakeFile    string // where IntakeSecret is kept
}

// useDevCredentials gives cfg what the API needs and a fresh clone lacks: a
// keys file with one development key of every scope for workspace "default" (or
// DISPATCHFLOW_DEV_API_KEY), its signing secret and an id secret — made once under
// dataDir and reused. Settings given in the environment win: with
// DISPATCHFLOW_API_KEYS_FILE set, or DISPATCHFLOW_AUTH=off, no key is made.
func useDevCredentials(cfg *config.Config, dataDir string) (*devCredentials, error) {
	if cfg.IDSecret == "" {
		secret, err := readOrCreate(filepath.Join(dataDir, devIDSecretFile), func() (string, error) {
			return strings.TrimPrefix(auth.NewSigningSecret(), "whsec_"), nil
		})
		if err != nil {
			return nil, err
		}
		cfg.IDSecret = secret
	}
	if cfg.SandboxWebhookSecret == "" {
		secret, err := readOrCreate(filepath.Join(dataDir, devSandboxSecretFile), func() (string, error) {
			return auth.NewSigningSecret(), nil
		})
		if err != nil {
			return nil, err
		}
		cfg.SandboxWebhookSecret = secret
	}
	if cfg.APIKeysFile != "" || cfg.Auth == "off" {
		return nil, nil
	}
	keyPath := filepath.Join(dataDir, devKeyFile)
	key := os.Getenv("DISPATCHFLOW_DEV_API_KEY")
	if key != "" {
		if _, ok := auth.KeyID(key); !ok {
			return nil, errors.New("DISPATCHFLOW_DEV_API_KEY: not an API key (dfk_<id>_<secret>; make one with: dispatchflow keys new --workspace default --scopes '*')")
		}
		// Kept where the README's examples read it, as a made key is.
		if err := writeAtomic(keyPath, []byte(key+"\n")); err != nil {
			return nil, err
		}
	} else {
		var err error
		key, err = readOrCreate(keyPath, func() (string, error) {
			plain, _, err := auth.NewKey("dev", message.DefaultWorkspace, []auth.Scope{auth.ScopeAll})
			return plain, err
		})
		if err != nil {
			return nil, err
		}
	}
	keysPath := filepath.Join(dataDir, devKeysFile)
	secret, err := devSigningSecret(keysPath)
	if err != nil {
		return nil, err
	}
	intakePath := filepath.Join(dataDir, devIntakeSecretFile)
	intakeSecret, err := readOrCreate(intakePath, func() (string, error) { return auth.NewSigningSecret(), nil })
	if err != nil {
		return nil, err
	}
	id, _ := auth.KeyID(key)
	file := map[string]any{
		"workspaces": []auth.Workspace{{Name: message.DefaultWorkspace, SigningSecrets: []string{secret}, IntakeSecrets: []string{intakeSecret}}},
		"keys": []auth.Key{{ID: id, Workspace: message.DefaultWorkspace, Scopes: []auth.Scope{auth.ScopeAll},
			Hash: auth.HashKey(key)}},
	}
	raw, _ := json.MarshalIndent(file, "", "  ")
	if err := writeAtomic(keysPath, raw); err != nil {
		return nil, err
	}
	cfg.APIKeysFile = keysPath
	return &devCredentials{APIKey: key, KeyFile: keyPath, SigningSecret: secret, IntakeSecret: intakeSecret, IntakeFile: intakePath}, nil
}

// useDevSuppressionKey gives cfg a suppression list key, unless the
// environment set one: made once under dataDir and reused, since another key
// starts an empty list. It answers where the key is kept ("" when it is the
// environment's).
func useDevSuppressionKey(cfg *config.Config, dataDir string) (string, error) {
	if cfg.SuppressionKey != "" {
		return "", nil
	}
	path := filepath.Join(dataDir, devSuppressionKeyFile)
	key, err := readOrCreate(path, func() (string, error) {
		return strings.TrimPrefix(auth.NewSigningSecret(), "whsec_"), nil // 32 random bytes, base64
	})
	if err != nil {
		return "", err
	}
	cfg.SuppressionKey = key
	return path, nil
}

// devSigningSecret is the signing secret of the development keys file at path,
// kept across restarts (receivers keep verifying), or a new one.
func devSigningSecret(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return auth.NewSigningSecret(), nil
	}
	if err != nil {
		return "", err
	}
	ks, err := auth.Parse(path, raw, ".json")
	if err != nil {
		return "", fmt.Errorf("%w (delete it to make a new one)", err)
	}
	if ws, ok := ks.Workspace(message.DefaultWorkspace); ok && len(ws.SigningSecrets) > 0 {
		return ws.SigningSecrets[0], nil
	}
	return auth.NewSigningSecret(), nil
}

// readOrCreate returns the one-line content of path, creating it (mode 0600)
// with make's value when it does not exist.
func readOrCreate(path string, make func() (string, error)) (string, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	return v, writeAtomic(path, []byte(v+"\n"))
}

// writeAtomic writes a file (mode 0600) by renaming a complete one into place:
// the processes of -cluster start at once, and one must never read another's
// half-written file.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
