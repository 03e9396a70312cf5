package intake

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Provider names: the {provider} of POST /v1/events/{provider}.
const (
	ProviderGeneric   = "generic"
	ProviderSandbox   = "sandbox"
	ProviderSendGrid  = "sendgrid"
	ProviderMailgun   = "mailgun"
	ProviderPostmark  = "postmark"
	ProviderSES       = "ses"
	ProviderSarbacane = "sarbacane"
	ProviderAJO       = "ajo"
)

// Verifiable lists the providers whose webhooks can be authenticated, the values
// Config.Require accepts (besides "all").
var Verifiable = []string{ProviderSendGrid, ProviderMailgun, ProviderPostmark, ProviderSES, ProviderSarbacane, ProviderAJO}

// DefaultSNSHostPattern matches the hosts of Amazon SNS endpoints, where signing
// certificates and subscription confirmations live: sns.<region>.amazonaws.com
// (and .com.cn in the China regions).
const DefaultSNSHostPattern = `^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`

// DefaultMailgunMaxAge covers Mailgun's retry schedule (10m, 10m, 15m, 30m, 1h, 2h,
// 4h: about 8 hours), because its retries resend the original signature.
const DefaultMailgunMaxAge = 9 * time.Hour

// Config holds the webhook credentials of every provider. A provider whose
// credential is empty accepts unauthenticated requests, unless Require lists it,
// in which case New refuses the Config. Amazon SNS signatures need no credential
// and are always verified.
type Config struct {
	// Require lists the providers that must authenticate their requests ("all" for
	// every provider in Verifiable).
	Require []string
	// SendGridPublicKey is the Signed Event Webhook's verification key: base64 DER
	// (what SendGrid's settings page shows).
	SendGridPublicKey string
	// MailgunSigningKey is the HTTP webhook signing key.
	MailgunSigningKey string
	// MailgunMaxAge is how old a signature's timestamp may be. Zero: DefaultMailgunMaxAge.
	MailgunMaxAge time.Duration
	// PostmarkUsername and PostmarkPassword are the basic-auth credentials put in the
	// webhook URL configured at Postmark.
	PostmarkUsername string
	PostmarkPassword string
	// SESTopicARNs is the allow-list of SNS topics whose notifications are accepted
	// and whose subscriptions are confirmed. Empty: any topic's (signed)
	// notifications are accepted and no subscription is confirmed.
	SESTopicARNs []string
	// SNSHostPattern is the regular expression a SigningCertURL's or SubscribeURL's
	// host must match. Empty: DefaultSNSHostPattern. Tests point it at their own server.
	SNSHostPattern string
	// SarbacaneToken is a shared secret Sarbacane must send, as the query parameter
	// "token" of the webhook URL or the header X-Webhook-Token (Sarbacane documents
	// no signature).
	SarbacaneToken string
	// AJOJWTSecret is the HS256 secret of Adobe Journey Optimizer's JWT authentication.
	AJOJWTSecret string
	// AJOJWTPublicKey is a PEM RSA public key for RS256 tokens instead.
	AJOJWTPublicKey string
}

// ConfigError is a problem with one Config field, named by its Go name.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func fieldError(field string, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

// New returns the normalizers of every provider, by name, configured by cfg. hc
// fetches SNS signing certificates and confirms SNS subscriptions; nil means a
// default retryablehttp client.
func New(cfg Config, hc *retryablehttp.Client) (map[string]Normalizer, error) {
	if err := cfg.checkRequired(); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = defaultHTTPClient()
	}
	sendgrid, err := NewSendGrid(cfg.SendGridPublicKey)
	if err != nil {
		return nil, &ConfigError{Field: "SendGridPublicKey", Err: err}
	}
	if cfg.MailgunMaxAge < 0 {
		return nil, fieldError("MailgunMaxAge", "%s must not be negative", cfg.MailgunMaxAge)
	}
	if (cfg.PostmarkUsername == "") != (cfg.PostmarkPassword == "") {
		return nil, fieldError("PostmarkPassword", "the username and the password go together")
	}
	pattern := cfg.SNSHostPattern
	if pattern == "" {
		pattern = DefaultSNSHostPattern
	}
	hosts, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fieldError("SNSHostPattern", "%v", err)
	}
	for _, arn := range cfg.SESTopicARNs {
		if !validTopicARN(arn) {
			return nil, fieldError("SESTopicARNs", "%q is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)", arn)
		}
	}
	ajo, err := NewAJO(cfg.AJOJWTSecret, cfg.AJOJWTPublicKey)
	if err != nil {
		return nil, err
	}
	return map[string]Normalizer{
		ProviderGeneric:   Generic{Provider: ProviderGeneric},
		ProviderSandbox:   Generic{Provider: ProviderSandbox},
		ProviderSendGrid:  sendgrid,
		ProviderMailgun:   NewMailgun(cfg.MailgunSigningKey, cfg.MailgunMaxAge),
		ProviderPostmark:  &Postmark{Username: cfg.PostmarkUsername, Password: cfg.PostmarkPassword},
		ProviderSES:       NewSES(cfg.SESTopicARNs, hosts, hc),
		ProviderSarbacane: &Sarbacane{Token: cfg.SarbacaneToken},
		ProviderAJO:       ajo,
	}, nil
}

// checkRequired refuses a Config where a required provider has no credential.
func (cfg Config) checkRequired() error {
	require := map[string]bool{}
	for _, p := range cfg.Require {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case p == "all":
			for _, v := range Verifiable {
				require[v] = true
			}
		case slices.Contains(Verifiable, p):
			require[p] = true
		default:
			return fieldError("Require", "%q is not one of all, %s", p, strings.Join(Verifiable, ", "))
		}
	}
	missing := func(provider, field string) error {
		return fieldError(field, "required: webhook verification is required for %s", provider)
	}
	for _, p := range Verifiable {
		if !require[p] {
			continue
		}
		switch {
		case p == ProviderSendGrid && cfg.SendGridPublicKey == "":
			return missing(p, "SendGridPublicKey")
		case p == ProviderMailgun && cfg.MailgunSigningKey == "":
			return missing(p, "MailgunSigningKey")
		case p == ProviderPostmark && cfg.PostmarkUsername == "":
			return missing(p, "PostmarkUsername")
		case p == ProviderPostmark && cfg.PostmarkPassword == "":
			return missing(p, "PostmarkPassword")
		case p == ProviderSES && len(cfg.SESTopicARNs) == 0:
			return missing(p, "SESTopicARNs")
		case p == ProviderSarbacane && cfg.SarbacaneToken == "":
			return missing(p, "SarbacaneToken")
		case p == ProviderAJO && cfg.AJOJWTSecret == "" && cfg.AJOJWTPublicKey == "":
			return missing(p, "AJOJWTSecret")
		}
	}
	return nil
}

// defaultHTTPClient fetches SNS certificates and confirmations: a few quick
// retries (the SNS request waiting on us has its own timeout), no redirects.
func defaultHTTPClient() *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 2
	c.RetryWaitMin = 100 * time.Millisecond
	c.RetryWaitMax = time.Second
	c.Logger = nil
	c.HTTPClient.Timeout = 5 * time.Second
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}
