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

// Provider names of the Resend, MailerSend and Postal intakes.
const (
	ProviderResend     = "resend"
	ProviderMailerSend = "mailersend"
	ProviderPostal     = "postal"
)

// Provider names of the Brevo, Mailjet, SparkPost and Mandrill (Mailchimp
// Transactional) intakes.
const (
	ProviderBrevo     = "brevo"
	ProviderMailjet   = "mailjet"
	ProviderSparkPost = "sparkpost"
	ProviderMandrill  = "mandrill"
)

// Providers lists every intake, the values Config.Mount accepts.
var Providers = []string{ProviderGeneric, ProviderSandbox, ProviderSendGrid, ProviderMailgun, ProviderPostmark, ProviderSES, ProviderSarbacane, ProviderAJO, ProviderResend, ProviderMailerSend, ProviderPostal,
	ProviderBrevo, ProviderMailjet, ProviderSparkPost, ProviderMandrill}

// RetryStatus is the answer that makes provider post a request again later:
// 503 for most, 429 for Brevo, which drops every request answered with a 5xx
// (or a 4xx other than 429) and retries only a 429
// (https://developers.brevo.com/docs/retry-mechanism). The API answers it,
// with Retry-After, where it would otherwise answer a 5xx: Temporal
// unavailable, events naming a message not found yet.
func RetryStatus(provider string) int {
	if provider == ProviderBrevo {
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// DefaultSNSHostPattern matches the hosts of Amazon SNS endpoints, where signing
// certificates and subscription confirmations live: sns.<region>.amazonaws.com
// (and .com.cn in the China regions).
const DefaultSNSHostPattern = `^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`

// DefaultMailgunMaxAge covers Mailgun's retry schedule (10m, 10m, 15m, 30m, 1h, 2h,
// 4h: about 8 hours), because its retries resend the original signature.
const DefaultMailgunMaxAge = 9 * time.Hour

// Config says which intakes are mounted and holds their credentials. With Verify,
// every mounted intake authenticates its requests and New refuses a Config where
// one lacks its credential (fail closed); without, an intake without a credential
// accepts anyone. Amazon SNS signatures need no credential and are always verified.
type Config struct {
	// Mount lists the intakes New builds (Providers); the others answer 404.
	Mount []string
	// Verify requires every mounted intake's credential.
	Verify bool
	// GenericSecrets authenticate the generic intake (Standard Webhooks): each
	// workspace's intake secrets ("whsec_…").
	GenericSecrets map[string][]string
	// SandboxSecret authenticates the sandbox ESP's posts (Standard Webhooks).
	SandboxSecret string
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
	// AJOJWTAudience and AJOJWTIssuer, when set, are the aud and iss the JWT must carry.
	AJOJWTAudience string
	AJOJWTIssuer   string
	// ResendSecret is the signing secret of the Resend webhook endpoint
	// ("whsec_…", Svix's form).
	ResendSecret string
	// MailerSendSigningSecret is the MailerSend webhook's signing secret.
	MailerSendSigningSecret string
	// PostalPublicKey is the public half of the Postal server's signing key, as
	// `postal default-dkim-record` prints it (the record, or its p= value), or PEM.
	PostalPublicKey string
	// PostalMaxAge is how old a Postal request's signed timestamp may be. Zero:
	// DefaultPostalMaxAge.
	PostalMaxAge time.Duration
	// BrevoUsername and BrevoPassword are the basic-auth credentials put in the
	// webhook URL configured at Brevo (Brevo signs nothing).
	BrevoUsername string
	BrevoPassword string
	// MailjetUsername and MailjetPassword are the basic-auth credentials put in the
	// event callback URL configured at Mailjet (Mailjet signs nothing).
	MailjetUsername string
	MailjetPassword string
	// SparkPostUsername and SparkPostPassword are the basic-auth credentials of the
	// SparkPost webhook (auth_type "basic"; SparkPost signs nothing).
	SparkPostUsername string
	SparkPostPassword string
	// MandrillWebhookKey is the Mandrill webhook's authentication key, which
	// signs its requests (X-Mandrill-Signature).
	MandrillWebhookKey string
	// MandrillWebhookURL is the webhook URL exactly as configured at Mandrill, which
	// Mandrill signs: required with MandrillWebhookKey.
	MandrillWebhookURL string
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

// New returns the normalizers of the mounted providers (cfg.Mount), by name,
// configured by cfg. hc fetches SNS signing certificates and confirms SNS
// subscriptions; nil means a default retryablehttp client.
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
	for _, c := range [][3]string{{"BrevoPassword", cfg.BrevoUsername, cfg.BrevoPassword},
		{"MailjetPassword", cfg.MailjetUsername, cfg.MailjetPassword}, {"SparkPostPassword", cfg.SparkPostUsername, cfg.SparkPostPassword}} {
		if (c[1] == "") != (c[2] == "") {
			return nil, fieldError(c[0], "the username and the password go together")
		}
	}
	if err := checkMandrillURL(cfg.MandrillWebhookKey, cfg.MandrillWebhookURL); err != nil {
		return nil, err
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
	ajo.Audience, ajo.Issuer = cfg.AJOJWTAudience, cfg.AJOJWTIssuer
	resend, err := NewResend(cfg.ResendSecret)
	if err != nil {
		return nil, &ConfigError{Field: "ResendSecret", Err: err}
	}
	if cfg.PostalMaxAge < 0 {
		return nil, fieldError("PostalMaxAge", "%s must not be negative", cfg.PostalMaxAge)
	}
	postal, err := NewPostal(cfg.PostalPublicKey, cfg.PostalMaxAge)
	if err != nil {
		return nil, &ConfigError{Field: "PostalPublicKey", Err: err}
	}
	var generic, sandbox Normalizer = openGeneric{Generic{Provider: ProviderGeneric}}, Generic{Provider: ProviderSandbox}
	if len(cfg.GenericSecrets) > 0 {
		if generic, err = NewStandardSigned(Generic{Provider: ProviderGeneric}, cfg.GenericSecrets); err != nil {
			return nil, fieldError("GenericSecrets", "%v", err)
		}
	}
	if cfg.SandboxSecret != "" {
		if sandbox, err = NewStandardSigned(Generic{Provider: ProviderSandbox}, map[string][]string{"": {cfg.SandboxSecret}}); err != nil {
			return nil, fieldError("SandboxSecret", "%v", err)
		}
	}
	all := map[string]Normalizer{
		ProviderGeneric:    generic,
		ProviderSandbox:    sandbox,
		ProviderSendGrid:   sendgrid,
		ProviderMailgun:    NewMailgun(cfg.MailgunSigningKey, cfg.MailgunMaxAge),
		ProviderPostmark:   &Postmark{Username: cfg.PostmarkUsername, Password: cfg.PostmarkPassword},
		ProviderSES:        NewSES(cfg.SESTopicARNs, hosts, hc),
		ProviderSarbacane:  &Sarbacane{Token: cfg.SarbacaneToken},
		ProviderAJO:        ajo,
		ProviderResend:     resend,
		ProviderMailerSend: &MailerSend{SigningSecret: cfg.MailerSendSigningSecret},
		ProviderPostal:     postal,
		ProviderBrevo:      &Brevo{Username: cfg.BrevoUsername, Password: cfg.BrevoPassword},
		ProviderMailjet:    &Mailjet{Username: cfg.MailjetUsername, Password: cfg.MailjetPassword},
		ProviderSparkPost:  &SparkPost{Username: cfg.SparkPostUsername, Password: cfg.SparkPostPassword},
		ProviderMandrill:   &Mandrill{Key: cfg.MandrillWebhookKey, URL: cfg.MandrillWebhookURL},
	}
	mounted := make(map[string]Normalizer, len(cfg.Mount))
	for _, p := range cfg.Mount {
		mounted[p] = all[p]
	}
	return mounted, nil
}

// checkRequired refuses an unknown provider in Mount and, with Verify, a mounted
// provider without its credential.
func (cfg Config) checkRequired() error {
	for _, p := range cfg.Mount {
		if !slices.Contains(Providers, p) {
			return fieldError("Mount", "%q is not one of %s", p, strings.Join(Providers, ", "))
		}
	}
	if !cfg.Verify {
		return nil
	}
	missing := func(provider, field string) error {
		return fieldError(field, "required: the %s intake is mounted and must authenticate its requests", provider)
	}
	for _, p := range cfg.Mount {
		switch {
		case p == ProviderGeneric && len(cfg.GenericSecrets) == 0:
			return missing(p, "GenericSecrets")
		case p == ProviderSandbox && cfg.SandboxSecret == "":
			return missing(p, "SandboxSecret")
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
		case p == ProviderResend && cfg.ResendSecret == "":
			return missing(p, "ResendSecret")
		case p == ProviderMailerSend && cfg.MailerSendSigningSecret == "":
			return missing(p, "MailerSendSigningSecret")
		case p == ProviderPostal && cfg.PostalPublicKey == "":
			return missing(p, "PostalPublicKey")
		case p == ProviderBrevo && cfg.BrevoUsername == "":
			return missing(p, "BrevoUsername")
		case p == ProviderBrevo && cfg.BrevoPassword == "":
			return missing(p, "BrevoPassword")
		case p == ProviderMailjet && cfg.MailjetUsername == "":
			return missing(p, "MailjetUsername")
		case p == ProviderMailjet && cfg.MailjetPassword == "":
			return missing(p, "MailjetPassword")
		case p == ProviderSparkPost && cfg.SparkPostUsername == "":
			return missing(p, "SparkPostUsername")
		case p == ProviderSparkPost && cfg.SparkPostPassword == "":
			return missing(p, "SparkPostPassword")
		case p == ProviderMandrill && cfg.MandrillWebhookKey == "":
			return missing(p, "MandrillWebhookKey")
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
