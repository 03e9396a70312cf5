package postback

// Secret is a credential from the endpoints file: a signing secret, a password, a
// token or a JWT key. It never prints, logs or marshals as itself: String, GoString
// and MarshalJSON all give "[redacted]", so an Endpoint can be logged, shown by the
// API or stored in workflow state without leaking it.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// MarshalJSON hides the secret. Endpoints are read from their file, never
// round-tripped through JSON, so nothing needs the value back.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText hides the secret from YAML and other text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText reads the secret from a file or environment variable.
func (s *Secret) UnmarshalText(b []byte) error { *s = Secret(b); return nil }

// Reveal returns the secret itself, for the one place that uses it.
func (s Secret) Reveal() string { return string(s) }
