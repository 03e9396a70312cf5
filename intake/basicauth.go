package intake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dispatchflow/dispatchflow/message"
)

// checkBasicAuth authenticates the request of a provider that signs nothing and
// puts credentials in the webhook URL instead (Brevo, Mailjet, SparkPost): the
// request must carry username and password as HTTP basic auth. Both "" accept
// requests without any (verification off). Both parts are compared, always, in
// constant time, so that the time taken tells nothing.
func checkBasicAuth(r *http.Request, username, password string) error {
	if username == "" && password == "" {
		return nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return unauthorized("basic auth credentials are required")
	}
	userOK, passOK := equalSecret(user, username), equalSecret(pass, password)
	if !userOK || !passOK {
		return unauthorized("bad basic auth credentials")
	}
	return nil
}

// readObjectOrArray reads body, one event object or a JSON array of them (the
// providers that batch on request: Brevo, Mailjet), with read. Only a body that is
// neither is an error.
func readObjectOrArray(body []byte, read func(json.RawMessage) (message.Event, error)) (Batch, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return readArray(body, read)
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	return batchOf(read(body)), nil
}

// dispatchIDIn reads the dispatch_id a sender put in a free-form text field that
// its provider echoes back (Brevo's X-Mailin-custom and tags, Mailjet's
// EventPayload): "dispatch_id:<id>", or a JSON object {"dispatch_id": "<id>"}.
// Anything else is "".
func dispatchIDIn(s string) string {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, DispatchIDKey+":"); ok {
		id := strings.TrimSpace(rest)
		if id == "" || strings.ContainsAny(id, " \t\r\n") {
			return ""
		}
		return id
	}
	if strings.HasPrefix(s, "{") {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &m) == nil {
			return jsonString(m[DispatchIDKey])
		}
	}
	return ""
}
