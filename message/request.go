package message

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	To             string `json:"to"`
	From           string `json:"from,omitempty"`
	Subject        string `json:"subject"`
	Text           string `json:"text,omitempty"`
	HTML           string `json:"html,omitempty"`
	ExternalSendID string `json:"external_send_id,omitempty"`
	CampaignAPIID  string `json:"campaign_api_id,omitempty"`
	// PostbackURL overrides the default postback endpoint for this message.
	PostbackURL string `json:"postback_url,omitempty"`
	// Workspace the message belongs to: it selects the postback endpoints
	// (DISPATCHFLOW_ENDPOINTS_FILE). Defaults to DefaultWorkspace.
	Workspace string `json:"workspace,omitempty"`
}

// DefaultWorkspace is the workspace of a message that names none.
const DefaultWorkspace = "default"

// AnyWorkspace is the Workspace of events from an unauthenticated generic intake
// (DISPATCHFLOW_WEBHOOK_VERIFY=off): they may report on any workspace's messages.
const AnyWorkspace = "*"

// FieldError is a problem with one field of a request; Field is its JSON name.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Normalize fills defaults (from) and validates r, returning a *FieldError naming
// the first field that is wrong.
func (r *SendRequest) Normalize(defaultFrom string) error {
	r.To = strings.TrimSpace(r.To)
	r.From = strings.TrimSpace(r.From)
	if r.From == "" {
		r.From = defaultFrom
	}
	r.Workspace = strings.TrimSpace(r.Workspace)
	if r.Workspace == "" {
		r.Workspace = DefaultWorkspace
	}
	switch {
	case r.To == "":
		return &FieldError{"to", "is required"}
	case r.From == "":
		return &FieldError{"from", "is required (no DISPATCHFLOW_FROM default is configured)"}
	case strings.TrimSpace(r.Subject) == "":
		return &FieldError{"subject", "is required"}
	case r.Text == "" && r.HTML == "":
		return &FieldError{"text", "text or html is required"}
	case len(r.ExternalSendID) > 256:
		return &FieldError{"external_send_id", "is longer than 256 characters"}
	case len(r.CampaignAPIID) > 256:
		return &FieldError{"campaign_api_id", "is longer than 256 characters"}
	case !ValidWorkspace(r.Workspace):
		return &FieldError{"workspace", "must be 1-64 letters, digits, '-', '_' or '.'"}
	}
	if err := CheckAddress(r.To); err != nil {
		return &FieldError{"to", err.Error()}
	}
	if err := CheckAddress(r.From); err != nil {
		return &FieldError{"from", err.Error()}
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		return &FieldError{"subject", "must be one line"}
	}
	if r.PostbackURL != "" {
		if err := CheckEndpointURL(r.PostbackURL); err != nil {
			return &FieldError{"postback_url", err.Error()}
		}
	}
	return nil
}

// Recipient is the bare address of To ("ok@example.com" for "Ann <ok@example.com>").
func (r SendRequest) Recipient() string {
	if a, err := mail.ParseAddress(r.To); err == nil {
		return a.Address
	}
	return r.To
}

// CheckAddress reports whether s is an email address, with or without a display name.
func CheckAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("%q is not an email address", s)
	}
	if !strings.Contains(a.Address, "@") {
		return fmt.Errorf("%q has no domain", s)
	}
	return nil
}

// CheckEndpointURL reports whether s can receive postbacks: an absolute http or https URL.
func CheckEndpointURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// ValidWorkspace accepts workspace ids safe in search attributes, URLs and logs.
func ValidWorkspace(w string) bool {
	if len(w) == 0 || len(w) > 64 {
		return false
	}
	for _, c := range w {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
