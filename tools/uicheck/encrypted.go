package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// encryptedRun is the system with DISPATCHFLOW_PAYLOAD_KEY, as `make run` starts
// it then: it serves the codec server and points its UI at it. A delivered
// message is sent; its raw history, as the UI's server hands it to a browser
// (no codec), must hold ciphertext only, while the browser, which decodes
// through the codec server, shows its summary, details, input (the subject)
// and query answer in clear.
func (s *session) encryptedRun(ctx context.Context) error {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	env := []string{"DISPATCHFLOW_PAYLOAD_KEY=" + base64.StdEncoding.EncodeToString(raw)}
	return s.withSystem(ctx, "dispatchflow-dev-encrypted.log", env, func(sys *system, logPath string) error {
		m := encryptedMessage(strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := s.sendAll(ctx, sys, logPath, []*message{m}); err != nil {
			return err
		}
		fmt.Fprintln(s.w, "ui-check: payloads encrypted: the API shows the message delivered")

		endpoint, err := sys.uiCodecEndpoint(ctx)
		if err != nil {
			return err
		}
		if endpoint == "" {
			s.failures = append(s.failures, fmt.Sprintf("encrypted: the UI's settings (%s/api/v1/settings) name no codec endpoint: make run did not point its UI at the codec server (log: %s)", sys.UIURL, logPath))
		} else {
			fmt.Fprintf(s.w, "ui-check: the UI decodes through the codec server at %s\n", endpoint)
		}

		history, err := sys.rawHistory(ctx, m.DispatchID)
		if err != nil {
			return err
		}
		rawFile := filepath.Join(s.c.OutDir, "history-encrypted-raw.json")
		_ = os.WriteFile(rawFile, history, 0o644)
		secrets := []expect{
			{m.Request["subject"].(string), "the subject"},
			{m.Request["to"].(string), "the recipient's address"},
			{m.Request["text"].(string), "the body"},
		}
		if problems := cipherOnly(history, m.ExternalSendID, secrets); len(problems) > 0 {
			s.failures = append(s.failures, fmt.Sprintf("history-encrypted-raw: %s\n  - %s\n  (see %s)",
				sys.UIURL, strings.Join(problems, "\n  - "), rawFile))
		} else {
			fmt.Fprintf(s.w, "ui-check: history-encrypted-raw ok: the raw history holds ciphertext, no subject, address or body → %s\n", rawFile)
		}

		run, err := runPath(s.b, sys.UIURL, m.DispatchID)
		if err != nil {
			s.failures = append(s.failures, err.Error())
			return nil
		}
		subject := expect{m.Request["subject"].(string), "the subject in the workflow's input, decoded by the codec server"}
		s.workflowPages(sys.UIURL, run, "workflow-encrypted", m, []expect{subject}, nil)
		s.queryPage(sys.UIURL, run, "query-encrypted", m)
		return nil
	})
}

// encryptedMessage is the message of the encrypted run: delivered, with a
// subject found nowhere else.
func encryptedMessage(nonce string) *message {
	m := &message{
		Name: "encrypted",
		Request: map[string]any{
			"to":               "ok@example.com",
			"subject":          "ui-check encrypted subject " + nonce,
			"text":             "Sent by make ui-check, encrypted.",
			"external_send_id": "ui-check-encrypted-" + nonce,
			"campaign_api_id":  "ui-check",
		},
		WantStatus: "delivered",
	}
	m.ExternalSendID = m.Request["external_send_id"].(string)
	return m
}

// encryptedEncoding is the encoding of dispatchflow's encrypted payloads
// (codec.Encoding), as the history's JSON carries it: base64.
var encryptedEncoding = base64.StdEncoding.EncodeToString([]byte("binary/encrypted"))

// payloadData matches the data of each payload in a history's JSON.
var payloadData = regexp.MustCompile(`"data"\s*:\s*"([A-Za-z0-9+/=_-]*)"`)

// cipherOnly reports what shows that history (JSON, payloads' data in base64)
// is not encrypted: a secret in clear, in the JSON or in a payload's data; no
// encrypted payload; or visible, the external_send_id in the search attributes
// (which are never encrypted) missing: the scan would then read nothing.
func cipherOnly(history []byte, visible string, secrets []expect) []string {
	clear := string(history)
	for _, m := range payloadData.FindAllSubmatch(history, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			if b, err := enc.DecodeString(string(m[1])); err == nil {
				clear += "\n" + string(b)
				break
			}
		}
	}
	var problems []string
	if !strings.Contains(string(history), encryptedEncoding) {
		problems = append(problems, `no payload of encoding binary/encrypted: are payloads encrypted (DISPATCHFLOW_PAYLOAD_KEY)?`)
	}
	if !strings.Contains(clear, visible) {
		problems = append(problems, fmt.Sprintf("the search attributes' external_send_id %q not found: the scan reads nothing", visible))
	}
	for _, e := range secrets {
		if strings.Contains(clear, e.Text) {
			problems = append(problems, fmt.Sprintf("holds %s (%q) in clear", e.What, e.Text))
		}
	}
	return problems
}

// uiClient is an HTTP client of the UI's own server.
func uiClient() *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 3
	c.HTTPClient.Timeout = 10 * time.Second
	return c
}

// uiGet GETs path of the UI's server (its API, which a browser calls) and
// returns the body of a 200.
func (s *system) uiGet(ctx context.Context, path string) ([]byte, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, s.UIURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := uiClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s%s: %s: %s", s.UIURL, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// uiCodecEndpoint is the codec endpoint the UI's settings name ("" when none).
func (s *system) uiCodecEndpoint(ctx context.Context) (string, error) {
	b, err := s.uiGet(ctx, "/api/v1/settings")
	if err != nil {
		return "", err
	}
	var settings struct {
		Codec struct {
			Endpoint string
		}
	}
	if err := json.Unmarshal(b, &settings); err != nil {
		return "", fmt.Errorf("the UI's settings: %w", err)
	}
	return settings.Codec.Endpoint, nil
}

// rawHistory is the workflow's history as the UI's server answers a browser:
// payloads as Temporal stores them (the browser decodes them through the codec
// server, if any).
func (s *system) rawHistory(ctx context.Context, workflowID string) ([]byte, error) {
	return s.uiGet(ctx, "/api/v1/namespaces/"+namespace+"/workflows/"+url.PathEscape(workflowID)+"/history")
}
