package intake

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dispatchflow/dispatchflow/message"
)

// AJO normalizes Adobe Journey Optimizer's feedback webhooks for API-triggered
// transactional campaigns (seed 004): one "message.feedback" object per request
// with messageDeliveryFeedback.feedbackStatus.value sent, delivered, bounce,
// delay, exclude, denylist, duplicate or error. requestId is the trigger call's
// request id, which dispatchflow sets to the dispatch_id; messageExecutionID is
// the message id. AJO gives neither an event id nor a timestamp, so events get a
// synthetic key (request, status, failure code, retry count) and the time of
// receipt.
//
// With a key configured, requests must carry "Authorization: Bearer <JWT>",
// signed HS256 with Secret or RS256 with PublicKey, with an exp claim not passed.
type AJO struct {
	// Secret verifies HS256 tokens.
	Secret []byte
	// PublicKey verifies RS256 tokens.
	PublicKey *rsa.PublicKey
	// Now is the clock exp is checked against; nil: time.Now.
	Now func() time.Time
	// Audience and Issuer, when set, are the aud and iss the token must carry.
	Audience, Issuer string
}

// NewAJO returns the AJO normalizer, verifying with secret (HS256) and/or
// publicKeyPEM (RS256); both empty accepts requests without a token.
func NewAJO(secret, publicKeyPEM string) (*AJO, error) {
	a := &AJO{}
	if secret != "" {
		a.Secret = []byte(secret)
	}
	if publicKeyPEM != "" {
		key, err := jwt.ParseRSAPublicKeyFromPEM([]byte(publicKeyPEM))
		if err != nil {
			return nil, &ConfigError{Field: "AJOJWTPublicKey", Err: err}
		}
		a.PublicKey = key
	}
	return a, nil
}

type ajoFeedback struct {
	RequestID        string `json:"requestId"`
	EventType        string `json:"eventType"`
	MessageExecution struct {
		MessageExecutionID string `json:"messageExecutionID"`
	} `json:"messageExecution"`
	MessageDeliveryFeedback struct {
		FeedbackStatus struct {
			Value string `json:"value"`
		} `json:"feedbackStatus"`
		MessageExclusion *struct {
			Code   json.RawMessage `json:"code"`
			Reason string          `json:"reason"`
		} `json:"messageExclusion"`
		MessageFailure *struct {
			Type   string          `json:"type"`
			Code   json.RawMessage `json:"code"`
			Reason string          `json:"reason"`
		} `json:"messageFailure"`
		RetryCount json.RawMessage `json:"retryCount"`
	} `json:"messageDeliveryFeedback"`
}

// ajoFailureCodes classifies bounce codes by Journey Optimizer's email error
// types (https://experienceleague.adobe.com/en/docs/journey-optimizer/using/configuration/monitor-reputation/email-error-types):
// hard bounces (10 Invalid Recipient, 15 Recipient Refused) and 24 Timeout ("the
// message validity expired, or it took too long to send"): AJO gave up; soft
// bounces AJO retries within its retry period (20 Soft Bounce, 21 DNS Failure,
// 22 Mailbox Full) and the temporary "Ignored" failures (1 Undetermined, 23 Too
// Large): still trying; 25 Admin Failure, a refusal on AJO's side: aborted. The
// code decides before the type (the documented example has type "Ignored" with
// code 25).
var ajoFailureCodes = map[string]message.EventType{
	"10": message.EventBounced, "15": message.EventBounced, "24": message.EventBounced,
	"20": message.EventDeferred, "21": message.EventDeferred, "22": message.EventDeferred,
	"1": message.EventDeferred, "23": message.EventDeferred,
	"25": message.EventAborted,
}

var ajoFailureTypes = map[string]message.EventType{
	"Hard": message.EventBounced, "Soft": message.EventDeferred,
	"Ignored": message.EventDeferred, "Admin": message.EventAborted,
}

// Normalize answers a body that is not a JSON object with 400; an object that is
// no readable feedback is returned in Batch.Invalid.
func (a *AJO) Normalize(r *http.Request, body []byte, receivedAt time.Time) (Batch, error) {
	if a.Secret != nil || a.PublicKey != nil {
		if err := a.verify(r); err != nil {
			return Batch{}, err
		}
	}
	if err := checkObject(body); err != nil {
		return Batch{}, err
	}
	return batchOf(ajoRead(body, receivedAt)), nil
}

// ajoRead reads one feedback by the feedback status's meaning (the Message
// Feedback Event Schema: sent, delivered, bounce, delay; exclude "profile
// filtered out", denylist "invalid destination skipped", duplicate "duplicate
// message skipped", error "message processing failed": never attempted).
func ajoRead(body []byte, receivedAt time.Time) (message.Event, error) {
	var f ajoFeedback
	if err := decodeEvent(body, &f, ""); err != nil {
		return message.Event{}, err
	}
	fb := f.MessageDeliveryFeedback
	status := fb.FeedbackStatus.Value
	if f.EventType != "" && f.EventType != "message.feedback" {
		status = f.EventType // another kind of event: kept, as unknown
	}
	if status == "" {
		return message.Event{}, errors.New("messageDeliveryFeedback.feedbackStatus.value: is required")
	}
	t, reason, code, sub := message.EventUnknown, "", "", ""
	switch status {
	case "sent":
		t = message.EventProcessed
	case "delivered":
		t = message.EventDelivered
	case "bounce":
		t = message.EventBounced
		if mf := fb.MessageFailure; mf != nil {
			code, sub = jsonText(mf.Code), mf.Type
			if known, ok := ajoFailureCodes[code]; ok {
				t = known
			} else if known, ok := ajoFailureTypes[mf.Type]; ok {
				t = known
			}
			reason = strings.TrimSpace(mf.Type + " " + code + " " + mf.Reason)
		}
	case "delay":
		t = message.EventDeferred
	case "exclude", "denylist", "duplicate", "error":
		t = message.EventAborted
		if mf := fb.MessageFailure; mf != nil {
			code, reason = jsonText(mf.Code), firstNonEmpty(mf.Reason, mf.Type)
		}
		if me := fb.MessageExclusion; me != nil {
			code, reason = jsonText(me.Code), firstNonEmpty(me.Reason, reason)
		}
		reason = firstNonEmpty(reason, status)
	}
	if t == message.EventDeferred && reason == "" && fb.MessageFailure != nil {
		reason = fb.MessageFailure.Reason
	}
	return newEvent(ProviderAJO, f.RequestID, f.MessageExecution.MessageExecutionID, t, rawType(status, sub, code), "",
		time.Time{}, receivedAt, reason, code+"\x00"+jsonText(fb.RetryCount)), nil
}

func (a *AJO) verify(r *http.Request) error {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return unauthorized("Authorization: a Bearer JWT is required")
	}
	var methods []string
	if a.Secret != nil {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if a.PublicKey != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired()}
	if a.Audience != "" {
		opts = append(opts, jwt.WithAudience(a.Audience))
	}
	if a.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.Issuer))
	}
	if a.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(a.Now))
	}
	_, err := jwt.Parse(token, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return a.Secret, nil
		case jwt.SigningMethodRS256.Alg():
			return a.PublicKey, nil
		}
		return nil, fmt.Errorf("unexpected alg %q", t.Method.Alg())
	}, opts...)
	if err != nil {
		return unauthorized("Authorization: %v", err)
	}
	return nil
}
