package bench

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/message"
)

// Keys are a run's credentials, as WriteKeys wrote them.
type Keys struct {
	// APIKey authenticates the management routes: every scope, workspace default.
	APIKey string
	// Signing signs the workspace's postbacks; Intake signs the ESP's events posted
	// to the generic intake.
	Signing, Intake string
}

// WriteKeys writes a keys file at path, as the API is deployed: workspace
// default with a signing and an intake secret, and one key named name of every
// scope, limited to limit (nil: auth.DefaultRateLimit).
func WriteKeys(path, name string, limit *auth.RateLimit) (Keys, error) {
	plain, k, err := auth.NewKey(name, message.DefaultWorkspace, []auth.Scope{auth.ScopeAll})
	if err != nil {
		return Keys{}, err
	}
	k.RateLimit = limit
	keys := Keys{APIKey: plain, Signing: auth.NewSigningSecret(), Intake: auth.NewSigningSecret()}
	raw, err := json.Marshal(map[string]any{
		"workspaces": []auth.Workspace{{Name: message.DefaultWorkspace, SigningSecrets: []string{keys.Signing}, IntakeSecrets: []string{keys.Intake}}},
		"keys":       []auth.Key{k},
	})
	if err != nil {
		return Keys{}, err
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return Keys{}, fmt.Errorf("keys file: %w", err)
	}
	return keys, nil
}
