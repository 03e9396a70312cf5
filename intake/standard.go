package intake

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dispatchflow/dispatchflow/message"
)

// StandardTolerance is how far a Standard Webhooks timestamp may be from now
// (the reference library's tolerance): an older request is a replay.
const StandardTolerance = 5 * time.Minute

// AnyWorkspace marks the events of an unauthenticated generic intake
// (DISPATCHFLOW_WEBHOOK_VERIFY=off): they may report on every workspace's messages.
const AnyWorkspace = message.AnyWorkspace

// StandardSigned authenticates a Generic intake with Standard Webhooks signatures
// (webhook-id, webhook-timestamp, webhook-signature; www.standardwebhooks.com),
// under the intake secrets of each workspace: the events of a request verified
// with a workspace's secret carry that workspace, and may report on its messages
// only. Any system can post events safely, and one tenant's secret cannot move
// another tenant's messages.
type StandardSigned struct {
	Generic
	// secrets are the verifiers of each workspace's secrets, tried in the order of
	// workspaces (sorted), then of the secrets.
	secrets    []workspaceVerifier
	workspaces int
}

type workspaceVerifier struct {
	workspace string
	wh        *standardwebhooks.Webhook
}

// NewStandardSigned returns g authenticated with secrets: workspace → its
// "whsec_…" secrets (two during a rotation). At least one secret is required.
func NewStandardSigned(g Generic, secrets map[string][]string) (*StandardSigned, error) {
	names := make([]string, 0, len(secrets))
	for ws := range secrets {
		names = append(names, ws)
	}
	sort.Strings(names)
	s := &StandardSigned{Generic: g, workspaces: len(names)}
	for _, ws := range names {
		for i, secret := range secrets[ws] {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				return nil, fmt.Errorf("workspace %q: secret %d: %w", ws, i, err)
			}
			s.secrets = append(s.secrets, workspaceVerifier{workspace: ws, wh: wh})
		}
	}
	if len(s.secrets) == 0 {
		return nil, errors.New("no secret to verify with")
	}
	return s, nil
}

// Normalize verifies the request's signature and timestamp (within
// StandardTolerance), then reads it as Generic does; its events carry the
// workspace whose secret verified it.
func (s *StandardSigned) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if r.Header.Get(standardwebhooks.HeaderWebhookSignature) == "" || r.Header.Get(standardwebhooks.HeaderWebhookTimestamp) == "" ||
		r.Header.Get(standardwebhooks.HeaderWebhookID) == "" {
		return Batch{}, unauthorized("the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature are required")
	}
	ws, verified := "", false
	for _, v := range s.secrets {
		if v.wh.Verify(body, r.Header) == nil {
			ws, verified = v.workspace, true
			break
		}
	}
	if !verified {
		return Batch{}, unauthorized("no intake secret verifies the webhook-signature, or webhook-timestamp is more than %s away", StandardTolerance)
	}
	batch, err := s.Generic.Normalize(r, body, receivedAt)
	for i := range batch.Events {
		batch.Events[i].Workspace = ws
	}
	return batch, err
}

// openGeneric is a Generic intake without authentication
// (DISPATCHFLOW_WEBHOOK_VERIFY=off): its events may report on any workspace.
type openGeneric struct{ Generic }

func (o openGeneric) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	batch, err := o.Generic.Normalize(r, body, receivedAt)
	for i := range batch.Events {
		batch.Events[i].Workspace = AnyWorkspace
	}
	return batch, err
}

// SignStandard sets the Standard Webhooks headers of a request posting body with
// id at ts, signed with secret ("whsec_…"): what StandardSigned verifies.
func SignStandard(h http.Header, secret, id string, ts time.Time, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		return err
	}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(ts.Unix()))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return nil
}
