package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/client"
)

// keyEntry is a key's entry in the keys file, as 'keys new' prints it: the YAML
// and JSON names are those auth.LoadFile reads.
type keyEntry struct {
	ID              string   `json:"id" yaml:"id"`
	Workspace       string   `json:"workspace" yaml:"workspace"`
	Scopes          []string `json:"scopes" yaml:"scopes,flow"`
	Hash            string   `json:"hash" yaml:"hash"`
	ExpiresAt       string   `json:"expires_at,omitempty" yaml:"expires_at,omitempty"`
	AllowedNetworks []string `json:"allowed_networks,omitempty" yaml:"allowed_networks,flow,omitempty"`
}

func keysNewCommand() *command {
	cmd := newOfflineCommand("keys new", "", 0,
		"Make an API key, offline. Prints the key, then the entry to add under keys: in the\n"+
			"API's DISPATCHFLOW_API_KEYS_FILE, which holds only the key's hash: the key is shown\n"+
			"this once. The workspace must be in the file's workspaces. Clients send the key as\n"+
			"Authorization: Bearer <key>; this command line reads it from DISPATCHFLOW_API_KEY.",
		"  dispatchflow keys new --workspace shop --scopes messages:send,messages:read --id shop-backend\n"+
			"  dispatchflow keys new --workspace shop --scopes '*' --expires 720h --networks 10.0.0.0/8,2001:db8::/32")
	var workspace, scopes, id, expires, networks string
	cmd.fs.StringVar(&workspace, "workspace", "", "the key's `workspace` (required)")
	cmd.fs.StringVar(&scopes, "scopes", "", "comma-separated `scopes` (required): "+scopeList()+" (all)")
	cmd.fs.StringVar(&id, "id", "", "the key's `id`, shown in logs: 3 to 64 of a-z, 0-9, '_', '-' (default key_ and 12 random characters)")
	cmd.fs.StringVar(&expires, "expires", "", "expiry: a `duration` from now (720h) or an RFC 3339 time (2027-01-01T00:00:00Z) (default never)")
	cmd.fs.StringVar(&networks, "networks", "", "comma-separated `CIDRs` or addresses the key works from (default any)")
	cmd.run = func(_ context.Context, _ *client.Client, _ []string, std stdio) error {
		if workspace == "" {
			return &usageError{"--workspace: required"}
		}
		if scopes == "" {
			return &usageError{"--scopes: required (one or more of " + scopeList() + ")"}
		}
		var list []auth.Scope
		for s := range strings.SplitSeq(scopes, ",") {
			s := auth.Scope(strings.TrimSpace(s))
			if !validScope(s) {
				return &usageError{fmt.Sprintf("--scopes: unknown scope %q (want one of %s)", s, scopeList())}
			}
			list = append(list, s)
		}
		plain, k, err := auth.NewKey(id, workspace, list)
		if err != nil {
			return &usageError{"--" + err.Error()} // its errors start with the field: id, workspace
		}
		entry := keyEntry{ID: k.ID, Workspace: k.Workspace, Hash: k.Hash}
		for _, s := range k.Scopes {
			entry.Scopes = append(entry.Scopes, string(s))
		}
		if expires != "" {
			at, err := expiry(expires, time.Now())
			if err != nil {
				return &usageError{"--expires: " + err.Error()}
			}
			entry.ExpiresAt = at.Format(time.RFC3339)
		}
		if networks != "" {
			for n := range strings.SplitSeq(networks, ",") {
				n = strings.TrimSpace(n)
				if _, err := auth.ParseNetwork(n); err != nil {
					return &usageError{"--networks: " + err.Error()}
				}
				entry.AllowedNetworks = append(entry.AllowedNetworks, n)
			}
		}

		fmt.Fprintln(std.errOut, "The key is shown this once: store it now (the keys file keeps only its hash).")
		if cmd.json {
			b, err := json.MarshalIndent(struct {
				Key   string   `json:"key"`
				Entry keyEntry `json:"entry"`
			}{plain, entry}, "", "  ")
			if err != nil {
				return err
			}
			return printJSON(std.out, b)
		}
		var y bytes.Buffer
		enc := yaml.NewEncoder(&y)
		enc.SetIndent(2)
		if err := enc.Encode([]keyEntry{entry}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(std.out, "%s\n\n# Add under keys: in DISPATCHFLOW_API_KEYS_FILE (workspace %q must be in its workspaces):\n%s",
			plain, entry.Workspace, y.String())
		return err
	}
	return cmd
}

func keysSigningSecretCommand() *command {
	cmd := newOfflineCommand("keys signing-secret", "", 0,
		"Make a signing secret, offline, for a workspace's signing_secrets in the API's\n"+
			"DISPATCHFLOW_API_KEYS_FILE: \"whsec_\" and the base64 of 32 random bytes (Standard\n"+
			"Webhooks). To rotate, list the new secret beside the old one and deploy (postbacks\n"+
			"then carry both signatures), move the receivers to the new one, then remove the old.",
		"  dispatchflow keys signing-secret\n"+
			"  dispatchflow keys signing-secret --json | jq -r .signing_secret")
	cmd.run = func(_ context.Context, _ *client.Client, _ []string, std stdio) error {
		secret := auth.NewSigningSecret()
		if cmd.json {
			b, err := json.MarshalIndent(map[string]string{"signing_secret": secret}, "", "  ")
			if err != nil {
				return err
			}
			return printJSON(std.out, b)
		}
		_, err := fmt.Fprintln(std.out, secret)
		return err
	}
	return cmd
}

// expiry reads --expires: a duration from now, or an RFC 3339 time, in the future.
func expiry(s string, now time.Time) (time.Time, error) {
	var at time.Time
	if d, err := time.ParseDuration(s); err == nil {
		at = now.Add(d).UTC().Truncate(time.Second)
	} else if at, err = time.Parse(time.RFC3339, s); err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (720h) nor an RFC 3339 time (2027-01-01T00:00:00Z)", s)
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("%s is not in the future", at.Format(time.RFC3339))
	}
	return at, nil
}

func validScope(s auth.Scope) bool {
	for _, v := range auth.Scopes {
		if s == v {
			return true
		}
	}
	return false
}

func scopeList() string {
	names := make([]string, len(auth.Scopes))
	for i, s := range auth.Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
