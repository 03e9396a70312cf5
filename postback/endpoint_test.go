package postback

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFile writes content to name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileExample(t *testing.T) {
	t.Parallel()
	set, err := LoadFile("testdata/endpoints.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 {
		t.Fatalf("got %d endpoints, want 3", set.Len())
	}
	crm, ok := set.Get("crm")
	if !ok {
		t.Fatal("crm not found")
	}
	if crm.Workspace != "default" || crm.Format != FormatBraze || len(crm.Secrets) != 2 || crm.Auth.Type != AuthBearer ||
		crm.Headers["X-Tenant"] != "acme" || crm.Timeout != Duration(10*time.Second) || crm.RetrySchedule().Attempts() != 5 ||
		!crm.Subscribes(EventFallbackFailed) || crm.Subscribes(EventOpen) {
		t.Errorf("crm: got %+v", crm)
	}
	ajo, _ := set.Get("ajo-prod")
	if ajo.Auth.JWT.Key == "" || ajo.Auth.JWT.TTL != Duration(5*time.Minute) || ajo.RetrySchedule().Attempts() != 8 {
		t.Errorf("ajo-prod: got %+v, want its key read from key_file and the default schedule", ajo)
	}
	var ids []string
	for _, e := range set.ForWorkspace("eu") {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"ajo-prod", "marketing"}) {
		t.Errorf("ForWorkspace(eu): got %v, want [ajo-prod marketing] in file order", ids)
	}
	if _, ok := set.Get("nope"); ok || len(set.All()) != 3 {
		t.Errorf("Get(nope) found it, or All() is not the 3 endpoints")
	}
}

// The same file in JSON loads the same way.
func TestLoadFileJSON(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "endpoints.json", `{"endpoints": [
		{"id": "crm", "url": "https://crm.example.com/hook", "secrets": ["whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="],
		 "fallback_outcomes": true, "schedule": ["5s", "1m"], "timeout": "3s"}
	]}`)
	set, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crm, _ := set.Get("crm")
	want := []string{EventSent, EventProcessed, EventDelivered, EventBounced, EventAborted, EventFallbackSent, EventFallbackFailed}
	if !slices.Equal(crm.Events, want) || crm.Timeout != Duration(3*time.Second) || len(crm.Schedule) != 2 {
		t.Errorf("got %+v, want the five statuses and the fallback outcomes, 3s, 2 retries", crm)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	const good = `{id: crm, url: "https://crm.example.com/hook"}`
	tests := []struct {
		name, file, content, want string
	}{
		{"bad scheme", "endpoints.yaml", "endpoints:\n- " + good + "\n- {id: erp, url: \"https://erp.example.com/\"}\n- {id: crm2, url: ftp://x/}\n",
			`endpoints.yaml: endpoints[2] (id "crm2"): url: must be https or http`},
		{"no url", "endpoints.yaml", "endpoints: [{id: crm}]", `endpoints[0] (id "crm"): url: required`},
		{"no id", "endpoints.yaml", `endpoints: [{url: "https://x.example/"}]`, `endpoints[0]: id: required`},
		{"duplicate id", "endpoints.yaml", "endpoints: [" + good + ", " + good + "]", `endpoints[1] (id "crm"): id: "crm" is used by another endpoint`},
		{"unknown format", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", format: mailchimp}]`,
			`endpoints[0] (id "crm"): format: "mailchimp" is not one of braze, ajo, sarbacane`},
		{"unknown event", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", events: [sent, read]}]`,
			`endpoints[0] (id "crm"): events[1]: unknown event "read"`},
		{"event the format cannot express", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", events: [open]}]`,
			`endpoints[0] (id "crm"): events[0]: format braze cannot express "open"`},
		{"secret without prefix", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", secrets: [AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=]}]`,
			`endpoints[0] (id "crm"): secrets[0]: must start with "whsec_"`},
		{"short secret", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", secrets: [whsec_c2hvcnQ=]}]`,
			`secrets[0]: must encode 24 to 64 bytes, not 5`},
		{"unknown field", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", retries: 3}]`,
			`endpoints[0] (id "crm"): retries: unknown field`},
		{"unknown nested field", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: bearer, token: t, scheme: x}}]`,
			`endpoints[0] (id "crm"): scheme: unknown field`},
		{"unknown top-level field", "endpoints.yaml", "hooks: []", `endpoints.yaml: hooks: unknown field`},
		{"bad duration", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", timeout: soon}]`,
			`endpoints[0] (id "crm"): "soon" is not a duration`},
		{"wrong type", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", events: sent}]`,
			`endpoints[0] (id "crm"): events: must be []string, not string`},
		{"negative step", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", schedule: [5s, -1m]}]`,
			`endpoints[0] (id "crm"): schedule[1]: -1m0s must be positive`},
		{"schedule too long", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", schedule: [` + strings.Repeat("1s, ", 20) + `1s]}]`,
			`endpoints[0] (id "crm"): schedule: 21 retry delays: at most 20`},
		{"reserved header", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", headers: {webhook-signature: x}}]`,
			`endpoints[0] (id "crm"): headers.webhook-signature: cannot be set here`},
		{"authorization beside auth", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: bearer, token: t}, headers: {Authorization: x}}]`,
			`headers.Authorization: cannot be set here`},
		{"unknown auth", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: digest}}]`,
			`endpoints[0] (id "crm"): auth.type: "digest" is not one of none, basic, bearer, jwt`},
		{"bearer without token", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: bearer}}]`,
			`auth.token: required with bearer auth`},
		{"jwt algorithm", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: jwt, jwt: {algorithm: ES256, key: "0123456789abcdef0123456789abcdef"}}}]`,
			`auth.jwt.algorithm: "ES256" is not one of HS256, RS256`},
		{"jwt short HS256 key", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: jwt, jwt: {algorithm: HS256, key: short}}}]`,
			`auth.jwt.key: an HS256 secret must be at least 32 bytes`},
		{"jwt bad RS256 key", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: jwt, jwt: {algorithm: RS256, key: "not a key"}}}]`,
			`auth.jwt.key: not a PEM private key`},
		{"jwt missing key file", "endpoints.yaml", `endpoints: [{id: crm, url: "https://x.example/", auth: {type: jwt, jwt: {algorithm: RS256, key_file: nope.pem}}}]`,
			`auth.jwt.key_file: open`},
		{"json unknown field", "endpoints.json", `{"endpoints": [{"id": "crm", "url": "https://x.example/", "secret": "x"}]}`,
			`endpoints.json: endpoints[0] (id "crm"): secret: unknown field`},
		{"bad yaml", "endpoints.yml", "endpoints: [", `endpoints.yml: yaml:`},
		{"unknown extension", "endpoints.toml", "", `endpoints.toml: unknown extension`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadFile(writeFile(t, tt.file, tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Credentials never show: not in fmt output, JSON, or errors about them.
func TestSecretsDoNotLeak(t *testing.T) {
	t.Parallel()
	set, err := LoadFile("testdata/endpoints.yaml")
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"s3cr3t-token", "hunter2", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "PRIVATE KEY", "acme"}
	for _, e := range set.All() {
		j, _ := json.Marshal(e)
		for _, out := range []string{fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%+v", e.Auth), string(j)} {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s: output shows %q: %s", e.ID, s, out)
				}
			}
		}
	}
	_, err = LoadFile(writeFile(t, "e.yaml", `endpoints: [{id: crm, url: "https://x.example/", secrets: [whsec_bm90LWJhc2U2NA==topsecret]}]`))
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("got %v, want an error that does not quote the secret", err)
	}
}

// A message's own URL never inherits a registered endpoint's credentials: AdHoc
// gives the defaults signed with the workspace's own secret, and only a URL below
// a registered endpoint's (Match) gets that endpoint's settings.
func TestAdHocAndMatch(t *testing.T) {
	t.Parallel()
	loaded, err := LoadFile("testdata/endpoints.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wsSecret := Secret("whsec_" + strings.Repeat("QUJD", 8))
	set, err := loaded.WithSigningSecrets(map[string][]Secret{"eu": {wsSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if !set.Registered() {
		t.Error("a set loaded from a file is not Registered")
	}

	want := Endpoint{Workspace: "eu", URL: "https://own.example.net/pb?token=abc", Format: FormatBraze, Auth: Auth{Type: AuthNone},
		Events: []string{EventSent, EventProcessed, EventDelivered, EventBounced, EventAborted}, Secrets: []Secret{wsSecret}}
	if got := set.AdHoc("eu", want.URL); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("AdHoc(eu):\n got %+v\nwant %+v (defaults, the workspace's secret, no credentials)", got, want)
	}
	if got := set.AdHoc("", "https://x.example/"); got.Workspace != DefaultWorkspace || got.Auth.Type != AuthNone || len(got.Secrets) != 0 || len(got.Headers) != 0 {
		t.Errorf("AdHoc(default) without a signing secret: got %+v, want no auth, no headers, unsigned", got)
	}
	var none *Set
	if got := none.AdHoc("", "https://x.example/"); got.Format != FormatBraze || got.Workspace != DefaultWorkspace || len(got.Secrets) != 0 {
		t.Errorf("nil set: got %+v, want the defaults", got)
	}

	crm, _ := set.Get("crm")
	for _, tc := range []struct {
		ws, url string
		want    bool
	}{
		{"default", crm.URL, true},
		{"default", strings.TrimSuffix(crm.URL, "/") + "/sub/path?x=1", true},
		{"default", strings.TrimSuffix(crm.URL, "/") + "x", false},
		{"default", strings.TrimSuffix(crm.URL, "/") + "/../admin", false},
		{"default", strings.Replace(crm.URL, "https://", "http://", 1), false},
		{"default", strings.Replace(crm.URL, "https://", "https://user:pw@", 1), false},
		{"default", "https://attacker.example/x", false},
		{"eu", crm.URL, false}, // another workspace's endpoint
	} {
		got, ok := set.Match(tc.ws, tc.url)
		if ok != tc.want {
			t.Errorf("Match(%s, %s) = %v, want %v", tc.ws, tc.url, ok, tc.want)
			continue
		}
		if ok && (got.ID != "crm" || got.URL != tc.url || got.Auth.Type != crm.Auth.Type) {
			t.Errorf("Match(%s, %s) = %+v, want crm's settings at that URL", tc.ws, tc.url, got)
		}
	}
}

func TestFromURL(t *testing.T) {
	t.Parallel()
	ep, err := FromURL("https://app.example.com/braze-postbacks")
	if err != nil {
		t.Fatal(err)
	}
	if ep.ID != "default" || ep.Workspace != "default" || ep.Format != FormatBraze || len(ep.Secrets) != 0 || len(ep.Events) != 5 {
		t.Errorf("got %+v, want endpoint default, braze, unsigned, the five statuses", ep)
	}
	if _, err := FromURL("ftp://x/"); err == nil {
		t.Error("FromURL(ftp://x/) accepted")
	}
}
