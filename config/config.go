// Package config is dispatchflow's one configuration, read from the environment
// with envconfig: DISPATCHFLOW_* for dispatchflow itself, TEMPORAL_* (the names the
// Temporal CLI reads) for the cluster.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/codec"
	"github.com/dispatchflow/dispatchflow/fallback"
	"github.com/dispatchflow/dispatchflow/intake"
	"github.com/dispatchflow/dispatchflow/message"
	"github.com/dispatchflow/dispatchflow/netguard"
	"github.com/dispatchflow/dispatchflow/postback"
	"github.com/dispatchflow/dispatchflow/suppression"
)

// Prefix of dispatchflow's variables.
const Prefix = "DISPATCHFLOW"

// Config is every setting of the worker and the API. Each field names its variable.
type Config struct {
	// HTTPAddr is where the API listens. Defaults to ":8080".
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080" desc:"address the HTTP API listens on"`
	// IntakeAddr, when set, is where the ESP intake (/v1/events/*, /v1/callbacks/*)
	// listens instead of HTTPAddr: the one port that must face the internet, while
	// the management API stays private. Empty: HTTPAddr serves both.
	IntakeAddr string `envconfig:"INTAKE_ADDR" desc:"address of the ESP intake (/v1/events/*, /v1/callbacks/*) on its own listener (empty: on HTTP_ADDR)"`
	// Auth is "on" (default): every management route needs an API key of
	// APIKeysFile. "off" serves them to anyone who reaches the port — for a
	// private network only; logged as a warning at every start.
	Auth string `envconfig:"AUTH" default:"on" desc:"on | off: API keys required on management routes (off: anyone reaching the port may call them)"`
	// TrustedProxies are the load balancers and proxies in front of the API whose
	// X-Forwarded-For tells the client's address (for keys' allowed_networks, rate
	// limits without keys, audit lines). CIDRs or addresses. Defaults to none: the
	// TCP peer is the client.
	TrustedProxies []string `envconfig:"TRUSTED_PROXIES" desc:"proxies whose X-Forwarded-For gives the client's address (CIDRs; default none)"`
	// APIKeysFile names the API keys file (YAML or JSON; see docs/security.md):
	// the keys (stored as hashes), their workspaces, scopes, expiry, networks and
	// rate limits, and each workspace's postback signing secrets. Required by
	// the API unless Auth is off; the worker reads the signing secrets from it.
	APIKeysFile string `envconfig:"API_KEYS_FILE" desc:"API keys and workspaces file, .yaml/.yml or .json (docs/security.md); required by the API unless AUTH=off"`
	// IDSecret keys the dispatch_id derived from a workspace and external_send_id
	// (HMAC-SHA256), so that nobody outside can compute one. At least 32
	// characters; the same on every API process, and kept: changing it breaks the
	// idempotency of sends retried across the change. Required by the API.
	IDSecret string `envconfig:"ID_SECRET" desc:"secret (32+ characters) keying dispatch_ids derived from external_send_id; required by the API"`
	// SuppressionKey keys the suppression list (HMAC-SHA256 of workspace and
	// address, package suppression): a hard bounce, a complaint or an
	// unsubscribe suppresses the address in its workspace, and later sends to
	// it are aborted without calling the ESP. At least 32 characters; the same
	// on the API and every worker, and kept: another key starts an empty list.
	// Empty: no suppression list (the worker neither records nor checks, the
	// /v1/suppressions routes answer 503; warned at every start).
	SuppressionKey string `envconfig:"SUPPRESSION_KEY" desc:"secret (32+ characters) keying the suppression list; the same on API and workers (empty: no suppression list)"`
	// PublicURL is the API's base URL as ESPs reach it; the sandbox posts its events
	// to {PublicURL}/v1/events/sandbox. Defaults to http://localhost:{port of HTTPAddr}.
	PublicURL string `envconfig:"PUBLIC_URL" desc:"base URL at which ESPs reach the API (default http://localhost:<HTTP_ADDR port>)"`
	// PostbackURL is the default postback endpoint; a send request's postback_url
	// overrides it. Empty: postbacks are recorded as skipped.
	PostbackURL string `envconfig:"POSTBACK_URL" desc:"default postback endpoint (a send's postback_url overrides it)"`
	// From is the sender used when a request has none. Defaults to "dispatchflow@localhost".
	From string `envconfig:"FROM" default:"dispatchflow@localhost" desc:"default From address"`
	// ESP is the provider messages are handed to: "sandbox", "smtp", "sendgrid",
	// "mailgun", "postmark", "ses", "brevo", "mailjet", "sparkpost" or "resend";
	// each needs its own variables below. Or an ordered failover list of them,
	// comma-separated ("sendgrid,postmark"; each at most once): a message moves
	// to the next provider when the current one fails transiently for
	// ESPFailoverAfter (see ESPs). The same on the API and every worker.
	// Defaults to "sandbox".
	ESP string `envconfig:"ESP" default:"sandbox" desc:"email provider, or an ordered failover list (sendgrid,postmark): sandbox | smtp | sendgrid | mailgun | postmark | ses | brevo | mailjet | sparkpost | resend"`
	// ESPFailoverAfter: with several providers in ESP, how long a message's
	// transient failures with one provider (timeouts, 5xx, 429, an outage) are
	// retried before it moves on to the next; the last gets the rest of
	// SendRetryWindow. Defaults to 2m; from 1s to SendRetryWindow.
	ESPFailoverAfter time.Duration `envconfig:"ESP_FAILOVER_AFTER" default:"2m" desc:"with several providers in ESP: how long one provider's transient failures are retried before a message moves to the next (1s to SEND_RETRY_WINDOW)"`
	// ESPCircuitOpenFor: with several providers, how long a provider's open
	// circuit stays open (new messages skip it) before one message probes it.
	// Defaults to 1m; from 1s to 24h.
	ESPCircuitOpenFor time.Duration `envconfig:"ESP_CIRCUIT_OPEN_FOR" default:"1m" desc:"with several providers in ESP: how long an open circuit makes new messages skip a provider before a probe (1s to 24h)"`
	// ESPCircuitFailures: with several providers, how many consecutive
	// transient failures of a provider on one worker (no success between
	// them) open its circuit; a message that fails over opens it too.
	// Defaults to 5; from 1 to 1000.
	ESPCircuitFailures int `envconfig:"ESP_CIRCUIT_FAILURES" default:"5" desc:"with several providers in ESP: consecutive transient failures of a provider on one worker that open its circuit (1 to 1000)"`
	// SMTPAddr is the relay's host:port; required when ESP is "smtp".
	SMTPAddr string `envconfig:"SMTP_ADDR" desc:"SMTP relay host:port (required with ESP=smtp)"`
	// SMTPUsername and SMTPPassword enable AUTH PLAIN (over TLS, or to localhost).
	SMTPUsername string `envconfig:"SMTP_USERNAME" desc:"SMTP AUTH PLAIN user (optional)"`
	SMTPPassword string `envconfig:"SMTP_PASSWORD" desc:"SMTP AUTH PLAIN password (optional)"`
	// SendGrid* configure ESP=sendgrid (v3 Mail Send API). The key needs the
	// Mail Send permission; BaseURL defaults to https://api.sendgrid.com.
	SendGridAPIKey  string `envconfig:"SENDGRID_API_KEY" desc:"SendGrid API key (required with ESP=sendgrid)"`
	SendGridBaseURL string `envconfig:"SENDGRID_BASE_URL" default:"https://api.sendgrid.com" desc:"SendGrid API origin (EU subusers: https://api.eu.sendgrid.com)"`
	// Mailgun* configure ESP=mailgun (Messages API of Domain). BaseURL defaults
	// to the US region, https://api.mailgun.net; EU domains use https://api.eu.mailgun.net.
	MailgunAPIKey  string `envconfig:"MAILGUN_API_KEY" desc:"Mailgun API key (required with ESP=mailgun)"`
	MailgunDomain  string `envconfig:"MAILGUN_DOMAIN" desc:"Mailgun sending domain (required with ESP=mailgun)"`
	MailgunBaseURL string `envconfig:"MAILGUN_BASE_URL" default:"https://api.mailgun.net" desc:"Mailgun API origin (EU: https://api.eu.mailgun.net)"`
	// Postmark* configure ESP=postmark (Email API). BaseURL defaults to
	// https://api.postmarkapp.com; MessageStream to "outbound" (Postmark's default
	// transactional stream).
	PostmarkServerToken   string `envconfig:"POSTMARK_SERVER_TOKEN" desc:"Postmark server API token (required with ESP=postmark)"`
	PostmarkBaseURL       string `envconfig:"POSTMARK_BASE_URL" default:"https://api.postmarkapp.com" desc:"Postmark API origin"`
	PostmarkMessageStream string `envconfig:"POSTMARK_MESSAGE_STREAM" default:"outbound" desc:"Postmark message stream messages are sent through"`
	// SES* configure ESP=ses (SES v2 SendEmail, static credentials). The
	// configuration set must have an event destination: SES publishes events only
	// for messages sent through one. BaseURL is empty for the region's endpoint.
	SESRegion           string `envconfig:"SES_REGION" desc:"Amazon SES region, e.g. eu-west-1 (required with ESP=ses)"`
	SESAccessKeyID      string `envconfig:"SES_ACCESS_KEY_ID" desc:"AWS access key id allowed ses:SendEmail (required with ESP=ses)"`
	SESSecretAccessKey  string `envconfig:"SES_SECRET_ACCESS_KEY" desc:"AWS secret access key (required with ESP=ses)"`
	SESSessionToken     string `envconfig:"SES_SESSION_TOKEN" desc:"AWS session token, for temporary credentials (optional)"`
	SESConfigurationSet string `envconfig:"SES_CONFIGURATION_SET" desc:"SES configuration set with the event destination (required with ESP=ses)"`
	SESBaseURL          string `envconfig:"SES_BASE_URL" desc:"SES API endpoint (default: https://email.<region>.amazonaws.com)"`
	// Brevo* configure ESP=brevo (transactional email API, POST /v3/smtp/email).
	// BaseURL defaults to https://api.brevo.com.
	BrevoAPIKey  string `envconfig:"BREVO_API_KEY" desc:"Brevo v3 API key (required with ESP=brevo)"`
	BrevoBaseURL string `envconfig:"BREVO_BASE_URL" default:"https://api.brevo.com" desc:"Brevo API origin"`
	// Mailjet* configure ESP=mailjet (Send API v3.1, basic auth with the API key
	// and its secret). BaseURL defaults to https://api.mailjet.com.
	MailjetAPIKey    string `envconfig:"MAILJET_API_KEY" desc:"Mailjet API key (required with ESP=mailjet)"`
	MailjetAPISecret string `envconfig:"MAILJET_API_SECRET" desc:"Mailjet API secret key (required with ESP=mailjet)"`
	MailjetBaseURL   string `envconfig:"MAILJET_BASE_URL" default:"https://api.mailjet.com" desc:"Mailjet API origin"`
	// SparkPost* configure ESP=sparkpost (Transmissions API). The key needs the
	// Transmissions: Read/Write permission; BaseURL defaults to the US region,
	// https://api.sparkpost.com; SparkPost EU accounts use https://api.eu.sparkpost.com.
	SparkPostAPIKey  string `envconfig:"SPARKPOST_API_KEY" desc:"SparkPost API key with Transmissions: Read/Write (required with ESP=sparkpost)"`
	SparkPostBaseURL string `envconfig:"SPARKPOST_BASE_URL" default:"https://api.sparkpost.com" desc:"SparkPost API origin (EU: https://api.eu.sparkpost.com)"`
	// Resend* configure ESP=resend (Email API, POST /emails, with the dispatch_id
	// as idempotency key). BaseURL defaults to https://api.resend.com.
	ResendAPIKey  string `envconfig:"RESEND_API_KEY" desc:"Resend API key, sending access at least (required with ESP=resend)"`
	ResendBaseURL string `envconfig:"RESEND_BASE_URL" default:"https://api.resend.com" desc:"Resend API origin"`
	// SandboxDelay is the sandbox ESP's delay between events. Defaults to 1s.
	SandboxDelay time.Duration `envconfig:"SANDBOX_DELAY" default:"1s" desc:"sandbox ESP: delay before each event it reports"`
	// TrackingWindow: how long a message's workflow stays open after its last status
	// change, for late events. Defaults to 72h.
	TrackingWindow time.Duration `envconfig:"TRACKING_WINDOW" default:"72h" desc:"how long a message accepts late events after its last status change"`
	// SendRetryWindow: how long transient ESP failures are retried before the
	// message is aborted. Defaults to 1h.
	SendRetryWindow time.Duration `envconfig:"SEND_RETRY_WINDOW" default:"1h" desc:"how long transient ESP failures are retried before aborting"`
	// PostbackMaxHold: how long postbacks held for a disabled endpoint keep
	// their message open, waiting for a replay, before they fail for good.
	PostbackMaxHold time.Duration `envconfig:"POSTBACK_MAX_HOLD" default:"720h" desc:"how long postbacks held for a disabled endpoint wait for it to be enabled before they fail"`
	// EndpointDisableAfter: an endpoint whose postbacks have failed, without a
	// success, for this long is disabled automatically (Svix's 5 days); its
	// postbacks are then held. 0 disables only on a 410 Gone or by an operator.
	// Read by the worker, which reports it with each endpoint health report.
	EndpointDisableAfter time.Duration `envconfig:"ENDPOINT_DISABLE_AFTER" default:"120h" desc:"disable an endpoint automatically after it failed this long without a success (0s: never)"`
	// FallbackSentWithin is the default fallback deadline for the ESP to accept a
	// message (a policy's sent_within). Defaults to 5m.
	FallbackSentWithin time.Duration `envconfig:"FALLBACK_SENT_WITHIN" default:"5m" desc:"fallback: default sent_within (0s: off)"`
	// FallbackDeliveredWithin is the default deadline for delivery after sent (a
	// policy's delivered_within). Defaults to 30m.
	FallbackDeliveredWithin time.Duration `envconfig:"FALLBACK_DELIVERED_WITHIN" default:"30m" desc:"fallback: default delivered_within (0s: off)"`
	// FallbackOn are the statuses that escalate at once by default. Defaults to bounced,aborted.
	FallbackOn []string `envconfig:"FALLBACK_ON" default:"bounced,aborted" desc:"fallback: default statuses that escalate at once"`
	// FallbackRetryWindow: how long a fallback step's transient failures are retried. Defaults to 1h.
	FallbackRetryWindow time.Duration `envconfig:"FALLBACK_RETRY_WINDOW" default:"1h" desc:"fallback: how long a step's transient failures are retried"`
	// PostbackFallbackOutcomes posts fallback_sent / fallback_failed to
	// DISPATCHFLOW_POSTBACK_URL and to messages' own postback_url (outside Braze's
	// five statuses: opt in). With an endpoints file, each endpoint's
	// fallback_outcomes decides instead. Defaults to false.
	PostbackFallbackOutcomes bool `envconfig:"POSTBACK_FALLBACK_OUTCOMES" default:"false" desc:"post fallback_sent / fallback_failed postbacks (without an endpoints file)"`
	// Twilio* configure the sms fallback channel (a Twilio-compatible Messages API).
	// The channel is usable when TwilioAccountSID is set.
	TwilioBaseURL    string `envconfig:"TWILIO_BASE_URL" default:"https://api.twilio.com" desc:"sms fallback: Messages API origin"`
	TwilioAccountSID string `envconfig:"TWILIO_ACCOUNT_SID" desc:"sms fallback: account SID (enables the sms channel)"`
	TwilioAuthToken  string `envconfig:"TWILIO_AUTH_TOKEN" desc:"sms fallback: auth token (also verifies status callbacks)"`
	TwilioFrom       string `envconfig:"TWILIO_FROM" desc:"sms fallback: sender number"`
	// EagerStart asks Temporal to hand a new message's first workflow task straight
	// to a worker in the same process (dispatchflow serve), saving a round trip.
	// Without a local worker it has no effect. Defaults to true.
	EagerStart bool `envconfig:"EAGER_START" default:"true" desc:"eager workflow start when the API runs beside a worker (serve)"`
	// WorkflowCacheSize is how many open messages the worker keeps in memory (the
	// SDK's sticky cache, ≈ 60 KB each); others are replayed from their short
	// history when an event or timer wakes them. Defaults to 10000.
	WorkflowCacheSize int `envconfig:"WORKFLOW_CACHE_SIZE" default:"10000" desc:"open messages a worker keeps in memory (~60 KB each)"`
	// TaskQueue of the worker. Defaults to "dispatchflow".
	TaskQueue string `envconfig:"TASK_QUEUE" default:"dispatchflow" desc:"Temporal task queue"`
	// DevInbox mounts /dev/inbox on the API: a postback endpoint that keeps what it
	// receives, for trying dispatchflow out (make run turns it on). Defaults to false.
	DevInbox bool `envconfig:"DEV_INBOX" default:"false" desc:"serve /dev/inbox, a postback receiver for trying things out"`
	// PayloadKey encrypts every payload dispatchflow hands to Temporal (AES-256-GCM,
	// 32 bytes in base64): the message's address, subject and body are then stored
	// and shown as ciphertext. Every process of a deployment needs the same key.
	// Empty: payloads are stored in clear.
	PayloadKey string `envconfig:"PAYLOAD_KEY" desc:"encrypt Temporal payloads with this AES-256 key (32 bytes, base64; same on every process)"`
	// PayloadKeys rotates the payload key: keys as PayloadKey takes them, newest
	// first. The newest encrypts; every one decrypts (each payload names its key's
	// id). Set this or PayloadKey, not both. Empty: PayloadKey alone.
	PayloadKeys []string `envconfig:"PAYLOAD_KEYS" desc:"payload keys during a rotation, newest first: the newest encrypts, all decrypt"`
	// LogLevel: debug, info, warn or error. Defaults to info.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"debug | info | warn | error"`
	// LogFormat: "text" (logfmt-like key=value) or "json" (one object per line). Defaults to text.
	LogFormat string `envconfig:"LOG_FORMAT" default:"text" desc:"log format: text | json"`
	// MetricsAddr is where every process serves /metrics, on a listener of its
	// own so that metrics never face the ESPs. Set it to HTTPAddr to serve them on
	// the API's listener instead. Empty: no metrics listener. Defaults to ":9090".
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9090" desc:"address every process serves /metrics on (empty: none; the API's HTTP_ADDR: on the API)"`
	// CodecAddr, when set, is where the API serves the codec server that the
	// Temporal Web UI (or the Temporal CLI's --codec-endpoint) calls to show
	// encrypted payloads in clear: POST /codec/encode and /codec/decode, on a
	// listener of its own, never the API's nor the intake's. It needs a payload
	// key (PayloadKey or PayloadKeys). Empty: no codec server.
	CodecAddr string `envconfig:"CODEC_ADDR" desc:"address of the codec server for the Temporal UI (/codec/encode, /codec/decode) on its own listener; needs PAYLOAD_KEY (empty: none)"`
	// CodecCORSOrigins are the origins (scheme://host[:port], exact, no
	// wildcard) of the Temporal UIs whose browsers may call the codec server.
	// Others get no CORS headers, and their requests are refused.
	CodecCORSOrigins []string `envconfig:"CODEC_CORS_ORIGINS" desc:"origins of the Temporal UIs allowed to call the codec server, e.g. https://temporal.example.com (exact; no wildcard)"`
	// CodecAuth is "on" (default): a codec request needs an API key of
	// APIKeysFile with the payloads:decode scope. "off" decodes for anyone who
	// reaches CodecAddr — refused unless CodecAddr is a loopback address (make
	// run, on a developer's machine).
	CodecAuth string `envconfig:"CODEC_AUTH" default:"on" desc:"on | off: API key with payloads:decode required by the codec server (off: loopback CODEC_ADDR only)"`

	// EndpointsFile names the postback endpoints file (YAML or JSON, see
	// docs/postbacks.md). Empty: no configured endpoints (DISPATCHFLOW_POSTBACK_URL
	// and per-message postback_url still work).
	EndpointsFile string `envconfig:"ENDPOINTS_FILE" desc:"postback endpoints file, .yaml/.yml or .json (see docs/postbacks.md)"`
	// AllowNetworks are the networks postbacks and fallback webhooks may reach
	// despite the SSRF guard, which otherwise refuses loopback, private, link-local,
	// CGNAT and metadata addresses. CIDR prefixes or single addresses. Defaults to none.
	AllowNetworks []string `envconfig:"ALLOW_NETWORKS" desc:"CIDRs postbacks and fallback webhooks may reach despite the SSRF guard, e.g. 127.0.0.0/8,::1/128"`
	// SMSAllowedCountries are the country calling codes ("1,33,44") fallback SMS
	// may be sent to; required once the sms channel is configured (SMS pumping).
	SMSAllowedCountries []string `envconfig:"SMS_ALLOWED_COUNTRIES" desc:"fallback SMS: allowed country calling codes, e.g. 1,33,44 (required with TWILIO_ACCOUNT_SID)"`
	// FallbackWebhookHosts are hosts fallback webhook steps may post to, besides
	// the hosts of the workspace's registered postback endpoints. Defaults to none.
	FallbackWebhookHosts []string `envconfig:"FALLBACK_WEBHOOK_HOSTS" desc:"fallback: hosts webhook steps may post to, besides the workspace's endpoints' hosts"`
	// FallbackMinDuration and FallbackMaxDuration bound a policy's deadlines and
	// waits ("0s" stays allowed: it turns a deadline off). Defaults to 1m and 168h.
	FallbackMinDuration time.Duration `envconfig:"FALLBACK_MIN_DURATION" default:"1m" desc:"fallback: shortest deadline or wait a policy may set (0s stays allowed)"`
	FallbackMaxDuration time.Duration `envconfig:"FALLBACK_MAX_DURATION" default:"168h" desc:"fallback: longest deadline or wait a policy may set"`
	// PostbackTimeout bounds one postback attempt to an endpoint without its own
	// timeout. Defaults to 15s.
	PostbackTimeout time.Duration `envconfig:"POSTBACK_TIMEOUT" default:"15s" desc:"timeout of one postback attempt (an endpoint's timeout overrides it)"`

	// Intakes are the providers whose webhooks the API accepts, each at POST
	// /v1/events/{provider}; the others answer 404. Defaults to what the ESP needs:
	// its own provider; sandbox: sandbox and generic; smtp: generic and SMTPProvider.
	Intakes []string `envconfig:"INTAKES" desc:"intakes mounted: generic, sandbox, sendgrid, mailgun, postmark, ses, sarbacane, ajo, resend, mailersend, postal, brevo, mailjet, sparkpost, mandrill (default: the ESP's own)"`
	// WebhookVerify "on" (default): every mounted intake authenticates its
	// requests, and the API refuses to start while one lacks its credential. "off":
	// an intake without its credential accepts anyone — a private network only;
	// warned at every start. See docs/esp-inbound.md. Amazon SNS signatures need
	// no credential and are always verified.
	WebhookVerify string `envconfig:"WEBHOOK_VERIFY" default:"on" desc:"on | off: every mounted intake must authenticate its requests (off: those without credentials accept anyone)"`
	// IntakeRetryWindow: an event naming a message not found yet (its provider
	// message id not yet in visibility, its workflow not started yet) is answered
	// 503 with Retry-After while it is younger than this, so that the provider
	// posts it again; after, it is counted unmatched. Defaults to 15m.
	IntakeRetryWindow time.Duration `envconfig:"INTAKE_RETRY_WINDOW" default:"15m" desc:"events for a message not found yet: 503 and Retry-After while younger than this (then unmatched)"`
	// SandboxWebhookSecret signs the sandbox ESP's event posts (Standard
	// Webhooks, "whsec_…"); the sandbox intake requires it. make run makes one.
	SandboxWebhookSecret string `envconfig:"SANDBOX_WEBHOOK_SECRET" desc:"sandbox ESP: Standard Webhooks secret signing its events (whsec_…)"`
	// SMTPProvider names the provider behind the smtp relay whose webhooks report
	// on the relayed mail (sendgrid, mailgun, postmark, ses, sarbacane, ajo,
	// postal, …: intake.Providers): its intake is mounted and its events are accepted. Empty: none (events through
	// the generic intake only).
	SMTPProvider string `envconfig:"SMTP_PROVIDER" desc:"smtp: the relay's provider whose webhooks report on its mail (its intake is mounted)"`
	// SendGridWebhookPublicKey verifies the Signed Event Webhook (base64 DER, as
	// SendGrid's settings show it).
	SendGridWebhookPublicKey string `envconfig:"SENDGRID_WEBHOOK_PUBLIC_KEY" desc:"SendGrid Signed Event Webhook verification key (base64)"`
	// MailgunWebhookSigningKey is Mailgun's HTTP webhook signing key.
	MailgunWebhookSigningKey string `envconfig:"MAILGUN_WEBHOOK_SIGNING_KEY" desc:"Mailgun HTTP webhook signing key"`
	// MailgunWebhookMaxAge bounds the age of a Mailgun signature; Mailgun's retries
	// resend the first signature for about 8 hours. Defaults to 9h.
	MailgunWebhookMaxAge time.Duration `envconfig:"MAILGUN_WEBHOOK_MAX_AGE" default:"9h" desc:"Mailgun webhooks: oldest signature timestamp accepted"`
	// PostmarkWebhookUsername and PostmarkWebhookPassword are the basic-auth
	// credentials of the webhook URL configured at Postmark.
	PostmarkWebhookUsername string `envconfig:"POSTMARK_WEBHOOK_USERNAME" desc:"Postmark webhooks: basic auth user of the webhook URL"`
	PostmarkWebhookPassword string `envconfig:"POSTMARK_WEBHOOK_PASSWORD" desc:"Postmark webhooks: basic auth password of the webhook URL"`
	// SESTopicARNs allow-lists the SNS topics of SES events; their subscriptions
	// are confirmed automatically. Empty: any topic's signed notifications are
	// accepted and no subscription is confirmed.
	SESTopicARNs []string `envconfig:"SES_TOPIC_ARNS" desc:"SES webhooks: allowed SNS topic ARNs (their subscriptions are auto-confirmed)"`
	// SESSNSHostPattern is the regular expression the hosts of SigningCertURL and
	// SubscribeURL must match. Empty: ^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$.
	SESSNSHostPattern string `envconfig:"SES_SNS_HOST_PATTERN" desc:"SES webhooks: regexp of trusted SNS hosts (default sns.<region>.amazonaws.com[.cn])"`
	// SarbacaneWebhookToken is a shared token Sarbacane must send, in the URL's
	// query parameter "token" (or header X-Webhook-Token).
	SarbacaneWebhookToken string `envconfig:"SARBACANE_WEBHOOK_TOKEN" desc:"Sarbacane webhooks: shared token (query parameter token=)"`
	// AJOWebhookJWTSecret verifies Adobe Journey Optimizer's HS256 JWTs;
	// AJOWebhookJWTPublicKey (PEM) its RS256 ones.
	AJOWebhookJWTSecret    string `envconfig:"AJO_WEBHOOK_JWT_SECRET" desc:"Adobe Journey Optimizer webhooks: HS256 JWT secret"`
	AJOWebhookJWTPublicKey string `envconfig:"AJO_WEBHOOK_JWT_PUBLIC_KEY" desc:"Adobe Journey Optimizer webhooks: RS256 JWT public key (PEM)"`
	// AJOWebhookJWTAudience and AJOWebhookJWTIssuer, when set, are the aud and iss
	// claims the JWT must carry.
	AJOWebhookJWTAudience string `envconfig:"AJO_WEBHOOK_JWT_AUDIENCE" desc:"Adobe Journey Optimizer webhooks: required JWT aud (optional)"`
	AJOWebhookJWTIssuer   string `envconfig:"AJO_WEBHOOK_JWT_ISSUER" desc:"Adobe Journey Optimizer webhooks: required JWT iss (optional)"`
	// ResendWebhookSecret is the signing secret of the Resend webhook endpoint
	// ("whsec_…"): requests must carry a valid Svix signature (svix-id,
	// svix-timestamp within 5 minutes, svix-signature).
	ResendWebhookSecret string `envconfig:"RESEND_WEBHOOK_SECRET" desc:"Resend webhooks: the endpoint's signing secret (whsec_…)"`
	// MailerSendWebhookSigningSecret is the MailerSend webhook's signing secret:
	// requests must carry Signature, the hex HMAC-SHA256 of the body.
	MailerSendWebhookSigningSecret string `envconfig:"MAILERSEND_WEBHOOK_SIGNING_SECRET" desc:"MailerSend webhooks: the webhook's signing secret"`
	// PostalWebhookPublicKey is the Postal server's signing public key, as
	// `postal default-dkim-record` prints it (the record or its p= value), or PEM:
	// requests must carry a valid X-Postal-Signature-256 (or, from Postal before
	// 3.2, X-Postal-Signature).
	PostalWebhookPublicKey string `envconfig:"POSTAL_WEBHOOK_PUBLIC_KEY" desc:"Postal webhooks: the server's signing public key (the p= value of postal default-dkim-record)"`
	// PostalWebhookMaxAge bounds the age of a Postal request's signed timestamp;
	// Postal's retries resend the first request for 36 minutes. Defaults to 1h.
	PostalWebhookMaxAge time.Duration `envconfig:"POSTAL_WEBHOOK_MAX_AGE" default:"1h" desc:"Postal webhooks: oldest request timestamp accepted"`
	// BrevoWebhookUsername and BrevoWebhookPassword are the basic-auth
	// credentials of the webhook URL configured at Brevo (Brevo signs nothing).
	BrevoWebhookUsername string `envconfig:"BREVO_WEBHOOK_USERNAME" desc:"Brevo webhooks: basic auth user of the webhook URL"`
	BrevoWebhookPassword string `envconfig:"BREVO_WEBHOOK_PASSWORD" desc:"Brevo webhooks: basic auth password of the webhook URL"`
	// MailjetWebhookUsername and MailjetWebhookPassword are the basic-auth
	// credentials of the event callback URL configured at Mailjet (Mailjet signs
	// nothing).
	MailjetWebhookUsername string `envconfig:"MAILJET_WEBHOOK_USERNAME" desc:"Mailjet webhooks: basic auth user of the event callback URL"`
	MailjetWebhookPassword string `envconfig:"MAILJET_WEBHOOK_PASSWORD" desc:"Mailjet webhooks: basic auth password of the event callback URL"`
	// SparkPostWebhookUsername and SparkPostWebhookPassword are the basic-auth
	// credentials of the SparkPost webhook (auth_type basic; SparkPost signs
	// nothing).
	SparkPostWebhookUsername string `envconfig:"SPARKPOST_WEBHOOK_USERNAME" desc:"SparkPost webhooks: basic auth user (auth_credentials.username)"`
	SparkPostWebhookPassword string `envconfig:"SPARKPOST_WEBHOOK_PASSWORD" desc:"SparkPost webhooks: basic auth password (auth_credentials.password)"`
	// MandrillWebhookKey is the Mandrill (Mailchimp Transactional) webhook's
	// authentication key: requests must carry a valid X-Mandrill-Signature.
	MandrillWebhookKey string `envconfig:"MANDRILL_WEBHOOK_KEY" desc:"Mandrill webhooks: the webhook's authentication key (signs X-Mandrill-Signature)"`
	// MandrillWebhookURL is the webhook URL exactly as configured at Mandrill,
	// which Mandrill signs. Defaults to {PublicURL}/v1/events/mandrill.
	MandrillWebhookURL string `envconfig:"MANDRILL_WEBHOOK_URL" desc:"Mandrill webhooks: the URL exactly as configured at Mandrill, which it signs (default <PUBLIC_URL>/v1/events/mandrill)"`

	Temporal Temporal `ignored:"true"`
	// OTel is tracing, under the OTEL_* names of OpenTelemetry (see OTel).
	OTel OTel `ignored:"true"`
}

// Load reads the environment and validates it; errors name the variable.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, err
	}
	if err := envconfig.Process("TEMPORAL", &c.Temporal); err != nil {
		return Config{}, err
	}
	if _, err := c.Temporal.TLSConfig(); err != nil {
		return Config{}, err
	}
	// No prefix: the tags are the variables' full names, and envconfig's
	// fallback to an unprefixed name cannot pick up an unrelated variable.
	if err := envconfig.Process("", &c.OTel); err != nil {
		return Config{}, err
	}
	if err := c.OTel.validate(); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("DISPATCHFLOW_HTTP_ADDR: %q is not host:port", c.HTTPAddr)
	}
	if c.IntakeAddr != "" {
		ihost, iport, err := net.SplitHostPort(c.IntakeAddr)
		if err != nil {
			return fmt.Errorf("DISPATCHFLOW_INTAKE_ADDR: %q is not host:port", c.IntakeAddr)
		}
		if c.IntakeAddr == c.HTTPAddr {
			return fmt.Errorf("DISPATCHFLOW_INTAKE_ADDR: %q is DISPATCHFLOW_HTTP_ADDR too (leave it empty to share the listener)", c.IntakeAddr)
		}
		if c.PublicURL == "" { // ESPs reach the intake's listener
			host, port = ihost, iport
		}
	}
	if c.PublicURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	if err := message.CheckEndpointURL(c.PublicURL); err != nil {
		return fmt.Errorf("DISPATCHFLOW_PUBLIC_URL: %w", err)
	}
	if c.PostbackURL != "" {
		if err := message.CheckEndpointURL(c.PostbackURL); err != nil {
			return fmt.Errorf("DISPATCHFLOW_POSTBACK_URL: %w", err)
		}
	}
	if err := c.validateESP(); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{
		"DISPATCHFLOW_SANDBOX_DELAY":     c.SandboxDelay,
		"DISPATCHFLOW_TRACKING_WINDOW":   c.TrackingWindow,
		"DISPATCHFLOW_SEND_RETRY_WINDOW": c.SendRetryWindow,
		"DISPATCHFLOW_POSTBACK_MAX_HOLD": c.PostbackMaxHold,
	} {
		if d < 0 || (d == 0 && name != "DISPATCHFLOW_SANDBOX_DELAY") {
			return fmt.Errorf("%s: %s must be positive", name, d)
		}
	}
	for name, d := range map[string]time.Duration{
		"DISPATCHFLOW_FALLBACK_SENT_WITHIN":      c.FallbackSentWithin,
		"DISPATCHFLOW_FALLBACK_DELIVERED_WITHIN": c.FallbackDeliveredWithin,
		"DISPATCHFLOW_ENDPOINT_DISABLE_AFTER":    c.EndpointDisableAfter,
	} {
		if d < 0 {
			return fmt.Errorf("%s: %s must not be negative", name, d)
		}
	}
	if _, err := fallback.ParseCallingCodes(c.SMSAllowedCountries); err != nil {
		return fmt.Errorf("DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: %w", err)
	}
	for _, h := range c.FallbackWebhookHosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			return fmt.Errorf("DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS: %q is not a host name (or host:port)", h)
		}
	}
	if c.FallbackMinDuration < 0 || c.FallbackMaxDuration <= 0 || c.FallbackMinDuration > c.FallbackMaxDuration {
		return fmt.Errorf("DISPATCHFLOW_FALLBACK_MIN_DURATION, DISPATCHFLOW_FALLBACK_MAX_DURATION: %s and %s must be 0 <= min <= max, max positive",
			c.FallbackMinDuration, c.FallbackMaxDuration)
	}
	for name, d := range map[string]time.Duration{
		"DISPATCHFLOW_FALLBACK_SENT_WITHIN":      c.FallbackSentWithin,
		"DISPATCHFLOW_FALLBACK_DELIVERED_WITHIN": c.FallbackDeliveredWithin,
	} {
		if d != 0 && (d < c.FallbackMinDuration || d > c.FallbackMaxDuration) {
			return fmt.Errorf("%s: %s is outside DISPATCHFLOW_FALLBACK_MIN_DURATION..MAX_DURATION (%s..%s): every policy would be refused", name, d, c.FallbackMinDuration, c.FallbackMaxDuration)
		}
	}
	if c.IntakeRetryWindow < 0 {
		return fmt.Errorf("DISPATCHFLOW_INTAKE_RETRY_WINDOW: %s must not be negative", c.IntakeRetryWindow)
	}
	if c.FallbackRetryWindow <= 0 {
		return fmt.Errorf("DISPATCHFLOW_FALLBACK_RETRY_WINDOW: %s must be positive", c.FallbackRetryWindow)
	}
	for _, s := range c.FallbackOn {
		if !slices.Contains(fallback.EscalatingStatuses, message.Status(s)) {
			return fmt.Errorf("DISPATCHFLOW_FALLBACK_ON: %q cannot escalate (want bounced and/or aborted)", s)
		}
	}
	if c.TwilioAccountSID != "" {
		if c.TwilioAuthToken == "" || c.TwilioFrom == "" {
			return fmt.Errorf("DISPATCHFLOW_TWILIO_AUTH_TOKEN and DISPATCHFLOW_TWILIO_FROM: required with DISPATCHFLOW_TWILIO_ACCOUNT_SID")
		}
		if len(c.SMSAllowedCountries) == 0 {
			return fmt.Errorf("DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: required with DISPATCHFLOW_TWILIO_ACCOUNT_SID: the country calling codes fallback SMS may go to, e.g. 33,44 (SMS pumping fraud)")
		}
		if err := message.CheckEndpointURL(c.TwilioBaseURL); err != nil {
			return fmt.Errorf("DISPATCHFLOW_TWILIO_BASE_URL: %w", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("DISPATCHFLOW_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.PayloadKey != "" {
		if _, err := codec.ParseKey(c.PayloadKey); err != nil {
			return fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEY: %w", err)
		}
	}
	if len(c.PayloadKeys) > 0 {
		if c.PayloadKey != "" {
			return fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEYS: set it or DISPATCHFLOW_PAYLOAD_KEY, not both")
		}
		raw, err := codec.ParseKeys(c.PayloadKeys)
		if err == nil {
			_, err = codec.NewKeyring(raw...)
		}
		if err != nil {
			return fmt.Errorf("DISPATCHFLOW_PAYLOAD_KEYS: %w", err)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("DISPATCHFLOW_LOG_FORMAT: %q is not one of text, json", c.LogFormat)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("DISPATCHFLOW_METRICS_ADDR: %q is not host:port", c.MetricsAddr)
		}
	}
	if err := c.validateCodecFormat(); err != nil {
		return err
	}
	if _, err := netguard.ParseNetworks(c.TrustedProxies); err != nil {
		return fmt.Errorf("DISPATCHFLOW_TRUSTED_PROXIES: %w", err)
	}
	if _, err := netguard.ParseNetworks(c.AllowNetworks); err != nil {
		return fmt.Errorf("DISPATCHFLOW_ALLOW_NETWORKS: %w", err)
	}
	if c.PostbackTimeout <= 0 {
		return fmt.Errorf("DISPATCHFLOW_POSTBACK_TIMEOUT: %s must be positive", c.PostbackTimeout)
	}
	switch c.Auth {
	case "on", "off":
	default:
		return fmt.Errorf("DISPATCHFLOW_AUTH: %q is not one of on, off", c.Auth)
	}
	if c.APIKeysFile != "" {
		if _, err := auth.LoadFile(c.APIKeysFile); err != nil {
			return fmt.Errorf("DISPATCHFLOW_API_KEYS_FILE: %w", err)
		}
	}
	if c.IDSecret != "" && len(c.IDSecret) < MinIDSecretLength {
		return fmt.Errorf("DISPATCHFLOW_ID_SECRET: %d characters, at least %d are required (e.g. openssl rand -base64 32)", len(c.IDSecret), MinIDSecretLength)
	}
	if c.SuppressionKey != "" && len(c.SuppressionKey) < suppression.MinKeyLength {
		return fmt.Errorf("DISPATCHFLOW_SUPPRESSION_KEY: %d characters, at least %d are required (e.g. openssl rand -base64 32)", len(c.SuppressionKey), suppression.MinKeyLength)
	}
	if c.EndpointsFile != "" && c.PostbackURL != "" {
		return fmt.Errorf("DISPATCHFLOW_POSTBACK_URL: set it or DISPATCHFLOW_ENDPOINTS_FILE, not both (give the endpoint an entry in the file)")
	}
	if _, err := c.Endpoints(); err != nil {
		if c.EndpointsFile == "" {
			return err
		}
		return fmt.Errorf("DISPATCHFLOW_ENDPOINTS_FILE: %w", err)
	}
	if c.WorkflowCacheSize < 1 {
		return fmt.Errorf("DISPATCHFLOW_WORKFLOW_CACHE_SIZE: %d must be at least 1", c.WorkflowCacheSize)
	}
	if c.TaskQueue == "" {
		return fmt.Errorf("DISPATCHFLOW_TASK_QUEUE: must not be empty")
	}
	switch c.WebhookVerify {
	case "on", "off":
	default:
		return fmt.Errorf("DISPATCHFLOW_WEBHOOK_VERIFY: %q is not one of on, off (every mounted intake is verified; DISPATCHFLOW_INTAKES chooses them)", c.WebhookVerify)
	}
	if c.SMTPProvider != "" && !slices.Contains(intake.Providers, c.SMTPProvider) {
		return fmt.Errorf("DISPATCHFLOW_SMTP_PROVIDER: %q is not one of %s", c.SMTPProvider, strings.Join(intake.Providers, ", "))
	}
	if err := c.validateWebhooks(false); err != nil {
		return err
	}
	if c.From != "" {
		if err := message.CheckAddress(c.From); err != nil {
			return fmt.Errorf("DISPATCHFLOW_FROM: %w", err)
		}
	}
	return nil
}

// PayloadKeyList is the payload keys in use, newest first:
// DISPATCHFLOW_PAYLOAD_KEYS, or DISPATCHFLOW_PAYLOAD_KEY alone; none: in clear.
func (c Config) PayloadKeyList() []string {
	if len(c.PayloadKeys) > 0 {
		return c.PayloadKeys
	}
	if c.PayloadKey != "" {
		return []string{c.PayloadKey}
	}
	return nil
}

// MinIDSecretLength is the shortest DISPATCHFLOW_ID_SECRET accepted.
const MinIDSecretLength = 32

// ValidateAPI checks what the API needs beyond Load's checks: the keys file
// (unless DISPATCHFLOW_AUTH=off) and the dispatch_id secret. The worker needs
// neither, so Load does not require them.
func (c Config) ValidateAPI() error {
	if c.Auth == "on" && c.APIKeysFile == "" {
		return fmt.Errorf("DISPATCHFLOW_API_KEYS_FILE: required: the API's management routes need keys " +
			"(make one with: dispatchflow keys new --workspace default --scopes '*'; see docs/security.md), " +
			"or set DISPATCHFLOW_AUTH=off on a private network")
	}
	if c.IDSecret == "" {
		return fmt.Errorf("DISPATCHFLOW_ID_SECRET: required: %d or more random characters keying dispatch_ids (e.g. openssl rand -base64 32)", MinIDSecretLength)
	}
	if err := c.validateCodec(); err != nil {
		return err
	}
	return c.validateWebhooks(true)
}

// validateCodecFormat checks the form of the codec server's variables.
func (c Config) validateCodecFormat() error {
	switch c.CodecAuth {
	case "", "on", "off":
	default:
		return fmt.Errorf("DISPATCHFLOW_CODEC_AUTH: %q is not one of on, off", c.CodecAuth)
	}
	if c.CodecAddr != "" {
		if _, _, err := net.SplitHostPort(c.CodecAddr); err != nil {
			return fmt.Errorf("DISPATCHFLOW_CODEC_ADDR: %q is not host:port", c.CodecAddr)
		}
		for name, addr := range map[string]string{
			"DISPATCHFLOW_HTTP_ADDR":    c.HTTPAddr,
			"DISPATCHFLOW_INTAKE_ADDR":  c.IntakeAddr,
			"DISPATCHFLOW_METRICS_ADDR": c.MetricsAddr,
		} {
			if addr != "" && addr == c.CodecAddr {
				return fmt.Errorf("DISPATCHFLOW_CODEC_ADDR: %q is %s too: the codec server has a listener of its own", c.CodecAddr, name)
			}
		}
	}
	for _, o := range c.CodecCORSOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("DISPATCHFLOW_CODEC_CORS_ORIGINS: %w", err)
		}
	}
	return nil
}

// validateCodec checks what the codec server needs to start: a payload key to
// decode with, keys to authenticate its callers (unless DISPATCHFLOW_CODEC_AUTH=off,
// which only a loopback address may have).
func (c Config) validateCodec() error {
	if err := c.validateCodecFormat(); err != nil {
		return err
	}
	if c.CodecAddr == "" {
		return nil
	}
	if len(c.PayloadKeyList()) == 0 {
		return fmt.Errorf("DISPATCHFLOW_CODEC_ADDR: the codec server needs DISPATCHFLOW_PAYLOAD_KEY (or DISPATCHFLOW_PAYLOAD_KEYS): without one, payloads are not encrypted and there is nothing to decode")
	}
	if c.CodecAuth == "off" {
		if !loopbackAddr(c.CodecAddr) {
			return fmt.Errorf("DISPATCHFLOW_CODEC_AUTH: off is for a developer's machine: DISPATCHFLOW_CODEC_ADDR %q must then be a loopback address (127.0.0.1:port, [::1]:port, localhost:port)", c.CodecAddr)
		}
		return nil
	}
	if c.APIKeysFile == "" {
		return fmt.Errorf("DISPATCHFLOW_API_KEYS_FILE: required by the codec server (DISPATCHFLOW_CODEC_ADDR): its callers need a key with the scope payloads:decode")
	}
	return nil
}

// loopbackAddr reports whether host:port addr listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkOrigin accepts a browser origin as Origin headers carry it:
// http(s)://host[:port], nothing else (no path, no trailing slash, no wildcard).
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(u.Host, "*") ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://temporal.example.com (exact; no wildcard, no path)", o)
	}
	host := u.Host
	if (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443") {
		host = u.Hostname() // browsers leave the scheme's default port out
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	if want := strings.ToLower(u.Scheme + "://" + host); o != want {
		return fmt.Errorf("%q is not an origin as browsers send it: want %s", o, want)
	}
	return nil
}

// Keys reads DISPATCHFLOW_API_KEYS_FILE (checked by Load). Nil without one.
func (c Config) Keys() (*auth.Keys, error) {
	if c.APIKeysFile == "" {
		return nil, nil
	}
	ks, err := auth.LoadFile(c.APIKeysFile)
	if err != nil {
		return nil, fmt.Errorf("DISPATCHFLOW_API_KEYS_FILE: %w", err)
	}
	return ks, nil
}

// FallbackLimits are the caps on fallback policies (DISPATCHFLOW_FALLBACK_*,
// DISPATCHFLOW_SMS_ALLOWED_COUNTRIES) with webhookHosts (the workspace's
// endpoints' hosts) allowed besides DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS.
func (c Config) FallbackLimits(webhookHosts []string) fallback.Limits {
	lim := fallback.DefaultLimits
	lim.MinDuration, lim.MaxDuration = c.FallbackMinDuration, c.FallbackMaxDuration
	lim.SMSCountries, _ = fallback.ParseCallingCodes(c.SMSAllowedCountries)
	lim.WebhookHosts = append(slices.Clone(c.FallbackWebhookHosts), webhookHosts...)
	return lim
}

// ESPs is DISPATCHFLOW_ESP as a list: its one provider, or its failover list
// in order. Load refuses empty entries and repeats.
func (c Config) ESPs() []string {
	if strings.TrimSpace(c.ESP) == "" {
		return nil
	}
	out := strings.Split(c.ESP, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

// PrimaryESP is the first provider of DISPATCHFLOW_ESP ("" when none is set).
func (c Config) PrimaryESP() string {
	if ps := c.ESPs(); len(ps) > 0 {
		return ps[0]
	}
	return ""
}

// Bounds of the failover settings (DISPATCHFLOW_ESP_FAILOVER_AFTER,
// DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR, DISPATCHFLOW_ESP_CIRCUIT_FAILURES).
const (
	MinESPFailoverAfter   = time.Second
	MinESPCircuitOpenFor  = time.Second
	MaxESPCircuitOpenFor  = 24 * time.Hour
	MaxESPCircuitFailures = 1000
)

// validateESP checks DISPATCHFLOW_ESP, each of its providers' variables and,
// with several providers, the failover settings.
func (c *Config) validateESP() error {
	providers := c.ESPs()
	if len(providers) == 0 {
		return fmt.Errorf("DISPATCHFLOW_ESP: empty: name a provider (sandbox, smtp, sendgrid, mailgun, postmark, ses, brevo, mailjet, sparkpost, resend) or a failover list of them")
	}
	for i, p := range providers {
		switch p {
		case "":
			return fmt.Errorf("DISPATCHFLOW_ESP: entry %d is empty (want a comma-separated list of providers, e.g. sendgrid,postmark)", i+1)
		case "sandbox":
		case "smtp":
			if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
				return fmt.Errorf("DISPATCHFLOW_SMTP_ADDR: %q is not host:port (required with DISPATCHFLOW_ESP=smtp)", c.SMTPAddr)
			}
		case "sendgrid", "mailgun", "postmark", "ses", "brevo", "mailjet", "sparkpost", "resend":
			if err := c.validateESPAPI(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("DISPATCHFLOW_ESP: %q is not one of sandbox, smtp, sendgrid, mailgun, postmark, ses, brevo, mailjet, sparkpost, resend", p)
		}
		if slices.Contains(providers[:i], p) {
			return fmt.Errorf("DISPATCHFLOW_ESP: %q is listed twice (a failover list names each provider once)", p)
		}
	}
	if len(providers) == 1 {
		return nil // the failover settings are not used
	}
	if c.ESPFailoverAfter < MinESPFailoverAfter || c.ESPFailoverAfter > c.SendRetryWindow {
		return fmt.Errorf("DISPATCHFLOW_ESP_FAILOVER_AFTER: %s must be from %s to DISPATCHFLOW_SEND_RETRY_WINDOW (%s): a message would never fail over",
			c.ESPFailoverAfter, MinESPFailoverAfter, c.SendRetryWindow)
	}
	if c.ESPCircuitOpenFor < MinESPCircuitOpenFor || c.ESPCircuitOpenFor > MaxESPCircuitOpenFor {
		return fmt.Errorf("DISPATCHFLOW_ESP_CIRCUIT_OPEN_FOR: %s must be from %s to %s", c.ESPCircuitOpenFor, MinESPCircuitOpenFor, MaxESPCircuitOpenFor)
	}
	if c.ESPCircuitFailures < 1 || c.ESPCircuitFailures > MaxESPCircuitFailures {
		return fmt.Errorf("DISPATCHFLOW_ESP_CIRCUIT_FAILURES: %d must be from 1 to %d", c.ESPCircuitFailures, MaxESPCircuitFailures)
	}
	return nil
}

// validateESPAPI checks the variables of the API provider name (an ESP): its
// credentials are required and its base URL must be an absolute http(s) URL.
func (c *Config) validateESPAPI(name string) error {
	type setting struct{ name, value string }
	var required []setting
	var baseURL setting
	switch name {
	case "sendgrid":
		required = []setting{{"DISPATCHFLOW_SENDGRID_API_KEY", c.SendGridAPIKey}}
		baseURL = setting{"DISPATCHFLOW_SENDGRID_BASE_URL", c.SendGridBaseURL}
	case "mailgun":
		required = []setting{{"DISPATCHFLOW_MAILGUN_API_KEY", c.MailgunAPIKey}, {"DISPATCHFLOW_MAILGUN_DOMAIN", c.MailgunDomain}}
		baseURL = setting{"DISPATCHFLOW_MAILGUN_BASE_URL", c.MailgunBaseURL}
	case "postmark":
		required = []setting{{"DISPATCHFLOW_POSTMARK_SERVER_TOKEN", c.PostmarkServerToken}}
		baseURL = setting{"DISPATCHFLOW_POSTMARK_BASE_URL", c.PostmarkBaseURL}
	case "ses":
		required = []setting{
			{"DISPATCHFLOW_SES_REGION", c.SESRegion},
			{"DISPATCHFLOW_SES_ACCESS_KEY_ID", c.SESAccessKeyID},
			{"DISPATCHFLOW_SES_SECRET_ACCESS_KEY", c.SESSecretAccessKey},
			{"DISPATCHFLOW_SES_CONFIGURATION_SET", c.SESConfigurationSet},
		}
		baseURL = setting{"DISPATCHFLOW_SES_BASE_URL", c.SESBaseURL}
	case "brevo":
		required = []setting{{"DISPATCHFLOW_BREVO_API_KEY", c.BrevoAPIKey}}
		baseURL = setting{"DISPATCHFLOW_BREVO_BASE_URL", c.BrevoBaseURL}
	case "mailjet":
		required = []setting{{"DISPATCHFLOW_MAILJET_API_KEY", c.MailjetAPIKey}, {"DISPATCHFLOW_MAILJET_API_SECRET", c.MailjetAPISecret}}
		baseURL = setting{"DISPATCHFLOW_MAILJET_BASE_URL", c.MailjetBaseURL}
	case "sparkpost":
		required = []setting{{"DISPATCHFLOW_SPARKPOST_API_KEY", c.SparkPostAPIKey}}
		baseURL = setting{"DISPATCHFLOW_SPARKPOST_BASE_URL", c.SparkPostBaseURL}
	case "resend":
		required = []setting{{"DISPATCHFLOW_RESEND_API_KEY", c.ResendAPIKey}}
		baseURL = setting{"DISPATCHFLOW_RESEND_BASE_URL", c.ResendBaseURL}
	}
	for _, r := range required {
		if r.value == "" {
			return fmt.Errorf("%s: required with DISPATCHFLOW_ESP=%s", r.name, name)
		}
	}
	if baseURL.value != "" || name != "ses" {
		if err := message.CheckEndpointURL(baseURL.value); err != nil {
			return fmt.Errorf("%s: %w", baseURL.name, err)
		}
	}
	return nil
}

// Endpoints reads DISPATCHFLOW_ENDPOINTS_FILE. Without one, DISPATCHFLOW_POSTBACK_URL
// is the one endpoint "default" of workspace "default" (receiving the fallback
// outcomes when DISPATCHFLOW_POSTBACK_FALLBACK_OUTCOMES is true); without either,
// the set is empty. Errors name the file, the entry and the field.
//
// Each workspace of DISPATCHFLOW_API_KEYS_FILE signs with its signing_secrets
// the postbacks of its endpoints that have no secrets of their own, and of its
// messages' ad-hoc postback_url.
func (c Config) Endpoints() (*postback.Set, error) {
	set, err := c.endpoints()
	if err != nil {
		return nil, err
	}
	ks, err := c.Keys()
	if err != nil || ks == nil {
		return set, err
	}
	secrets := map[string][]postback.Secret{}
	for _, ws := range ks.Workspaces() {
		for _, s := range ws.SigningSecrets {
			secrets[ws.Name] = append(secrets[ws.Name], postback.Secret(s))
		}
	}
	set, err = set.WithSigningSecrets(secrets)
	if err != nil {
		return nil, fmt.Errorf("DISPATCHFLOW_API_KEYS_FILE: %w", err)
	}
	return set, nil
}

func (c Config) endpoints() (*postback.Set, error) {
	if c.EndpointsFile != "" {
		return postback.LoadFile(c.EndpointsFile)
	}
	if c.PostbackURL == "" {
		return postback.NewSet()
	}
	ep, err := postback.FromURL(c.PostbackURL)
	if err != nil {
		return nil, fmt.Errorf("DISPATCHFLOW_POSTBACK_URL: %w", err)
	}
	ep.FallbackOutcomes = c.PostbackFallbackOutcomes
	return postback.NewSet(ep)
}

// Guard is the SSRF guard of postbacks and fallback webhooks, allowing
// DISPATCHFLOW_ALLOW_NETWORKS (checked by Load).
func (c Config) Guard() *netguard.Guard {
	allow, _ := netguard.ParseNetworks(c.AllowNetworks)
	return netguard.New(allow)
}

// FallbackDefaults are the policy defaults of DISPATCHFLOW_FALLBACK_*.
func (c Config) FallbackDefaults() fallback.Defaults {
	on := make([]message.Status, len(c.FallbackOn))
	for i, s := range c.FallbackOn {
		on[i] = message.Status(s)
	}
	return fallback.Defaults{SentWithin: c.FallbackSentWithin, DeliveredWithin: c.FallbackDeliveredWithin, On: on}
}

// FallbackChannels lists the fallback channels this configuration can use.
func (c Config) FallbackChannels() []string {
	ch := []string{fallback.ChannelSandbox, fallback.ChannelWebhook}
	if c.TwilioAccountSID != "" {
		ch = append(ch, fallback.ChannelSMS)
	}
	return ch
}

// TwilioCallbackURL is where Twilio reports the status of fallback SMS.
func (c Config) TwilioCallbackURL() string {
	u, _ := url.JoinPath(c.PublicURL, "/v1/callbacks/twilio")
	return u
}

// MandrillEventsURL is the webhook URL Mandrill signs:
// DISPATCHFLOW_MANDRILL_WEBHOOK_URL, else {PublicURL}/v1/events/mandrill.
func (c Config) MandrillEventsURL() string {
	if c.MandrillWebhookURL != "" || c.PublicURL == "" {
		return c.MandrillWebhookURL
	}
	u, _ := url.JoinPath(c.PublicURL, "/v1/events", intake.ProviderMandrill)
	return u
}

// SandboxEventsURL is where the sandbox ESP posts its events.
func (c Config) SandboxEventsURL() string {
	u, _ := url.JoinPath(c.PublicURL, "/v1/events/sandbox")
	return u
}

// MountedIntakes are the intakes the API serves: DISPATCHFLOW_INTAKES, or what
// the providers of DISPATCHFLOW_ESP need (each one's, in order).
func (c Config) MountedIntakes() []string {
	if len(c.Intakes) > 0 {
		return c.Intakes
	}
	var out []string
	for _, p := range c.ESPs() {
		var own []string
		switch p {
		case "sandbox":
			own = []string{intake.ProviderSandbox, intake.ProviderGeneric}
		case "smtp":
			own = []string{intake.ProviderGeneric}
			if c.SMTPProvider != "" {
				own = append(own, c.SMTPProvider)
			}
		default:
			own = []string{p}
		}
		for _, name := range own {
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// Intake is the configuration of the webhook normalizers, verifying as
// DISPATCHFLOW_WEBHOOK_VERIFY says when verify is true (the API), only the
// credentials' form when false (Load, for every process).
func (c Config) Intake(verify bool) intake.Config {
	ic := intake.Config{
		Mount:                   c.MountedIntakes(),
		Verify:                  verify && c.WebhookVerify != "off",
		SandboxSecret:           c.SandboxWebhookSecret,
		SendGridPublicKey:       c.SendGridWebhookPublicKey,
		MailgunSigningKey:       c.MailgunWebhookSigningKey,
		MailgunMaxAge:           c.MailgunWebhookMaxAge,
		PostmarkUsername:        c.PostmarkWebhookUsername,
		PostmarkPassword:        c.PostmarkWebhookPassword,
		SESTopicARNs:            c.SESTopicARNs,
		SNSHostPattern:          c.SESSNSHostPattern,
		SarbacaneToken:          c.SarbacaneWebhookToken,
		AJOJWTSecret:            c.AJOWebhookJWTSecret,
		AJOJWTPublicKey:         c.AJOWebhookJWTPublicKey,
		AJOJWTAudience:          c.AJOWebhookJWTAudience,
		AJOJWTIssuer:            c.AJOWebhookJWTIssuer,
		ResendSecret:            c.ResendWebhookSecret,
		MailerSendSigningSecret: c.MailerSendWebhookSigningSecret,
		PostalPublicKey:         c.PostalWebhookPublicKey,
		PostalMaxAge:            c.PostalWebhookMaxAge,
		BrevoUsername:           c.BrevoWebhookUsername,
		BrevoPassword:           c.BrevoWebhookPassword,
		MailjetUsername:         c.MailjetWebhookUsername,
		MailjetPassword:         c.MailjetWebhookPassword,
		SparkPostUsername:       c.SparkPostWebhookUsername,
		SparkPostPassword:       c.SparkPostWebhookPassword,
		MandrillWebhookKey:      c.MandrillWebhookKey,
		MandrillWebhookURL:      c.MandrillEventsURL(),
	}
	if ks, err := c.Keys(); err == nil && ks != nil {
		for _, ws := range ks.Workspaces() {
			if len(ws.IntakeSecrets) > 0 {
				if ic.GenericSecrets == nil {
					ic.GenericSecrets = map[string][]string{}
				}
				ic.GenericSecrets[ws.Name] = ws.IntakeSecrets
			}
		}
	}
	return ic
}

// intakeVariables names the variable of each intake.Config field.
var intakeVariables = map[string]string{
	"Mount":                   "DISPATCHFLOW_INTAKES",
	"GenericSecrets":          "DISPATCHFLOW_API_KEYS_FILE (workspaces[].intake_secrets)",
	"SandboxSecret":           "DISPATCHFLOW_SANDBOX_WEBHOOK_SECRET",
	"SendGridPublicKey":       "DISPATCHFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY",
	"MailgunSigningKey":       "DISPATCHFLOW_MAILGUN_WEBHOOK_SIGNING_KEY",
	"MailgunMaxAge":           "DISPATCHFLOW_MAILGUN_WEBHOOK_MAX_AGE",
	"PostmarkUsername":        "DISPATCHFLOW_POSTMARK_WEBHOOK_USERNAME",
	"PostmarkPassword":        "DISPATCHFLOW_POSTMARK_WEBHOOK_PASSWORD",
	"SESTopicARNs":            "DISPATCHFLOW_SES_TOPIC_ARNS",
	"SNSHostPattern":          "DISPATCHFLOW_SES_SNS_HOST_PATTERN",
	"SarbacaneToken":          "DISPATCHFLOW_SARBACANE_WEBHOOK_TOKEN",
	"AJOJWTSecret":            "DISPATCHFLOW_AJO_WEBHOOK_JWT_SECRET",
	"AJOJWTPublicKey":         "DISPATCHFLOW_AJO_WEBHOOK_JWT_PUBLIC_KEY",
	"ResendSecret":            "DISPATCHFLOW_RESEND_WEBHOOK_SECRET",
	"MailerSendSigningSecret": "DISPATCHFLOW_MAILERSEND_WEBHOOK_SIGNING_SECRET",
	"PostalPublicKey":         "DISPATCHFLOW_POSTAL_WEBHOOK_PUBLIC_KEY",
	"PostalMaxAge":            "DISPATCHFLOW_POSTAL_WEBHOOK_MAX_AGE",
	"BrevoUsername":           "DISPATCHFLOW_BREVO_WEBHOOK_USERNAME",
	"BrevoPassword":           "DISPATCHFLOW_BREVO_WEBHOOK_PASSWORD",
	"MailjetUsername":         "DISPATCHFLOW_MAILJET_WEBHOOK_USERNAME",
	"MailjetPassword":         "DISPATCHFLOW_MAILJET_WEBHOOK_PASSWORD",
	"SparkPostUsername":       "DISPATCHFLOW_SPARKPOST_WEBHOOK_USERNAME",
	"SparkPostPassword":       "DISPATCHFLOW_SPARKPOST_WEBHOOK_PASSWORD",
	"MandrillWebhookKey":      "DISPATCHFLOW_MANDRILL_WEBHOOK_KEY",
	"MandrillWebhookURL":      "DISPATCHFLOW_MANDRILL_WEBHOOK_URL",
}

// validateWebhooks builds the webhook normalizers once, so that a bad key (or,
// with verify, a mounted intake without its credential) stops the process at
// start, naming its variable.
func (c Config) validateWebhooks(verify bool) error {
	_, err := intake.New(c.Intake(verify), nil)
	var ce *intake.ConfigError
	if errors.As(err, &ce) {
		name := intakeVariables[ce.Field]
		if ce.Field == "AJOJWTSecret" {
			name += " or DISPATCHFLOW_AJO_WEBHOOK_JWT_PUBLIC_KEY"
		}
		hint := ""
		if verify {
			hint = " (or DISPATCHFLOW_WEBHOOK_VERIFY=off on a private network)"
		}
		return fmt.Errorf("%s: %w%s", name, ce.Err, hint)
	}
	return err
}

// OTel is OpenTelemetry tracing, read under the variable names of the
// OpenTelemetry specification
// (opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables).
// These decide whether and how spans are exported; the OTLP exporter and the SDK
// read the same variables, and the others of the specification
// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _CERTIFICATE, _COMPRESSION, _INSECURE and
// their _TRACES_ forms, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, OTEL_SPAN_*_LIMIT),
// themselves (docs/observability.md). Tracing is off by default.
type OTel struct {
	// SDKDisabled "true" turns tracing off, whatever the others say. Defaults to false.
	SDKDisabled string `envconfig:"OTEL_SDK_DISABLED" desc:"true: no tracing, whatever the other OTEL_* say (default false)"`
	// TracesExporter "otlp" turns tracing on, "none" off. Empty: on when an
	// OTLP endpoint is set.
	TracesExporter string `envconfig:"OTEL_TRACES_EXPORTER" desc:"otlp | none: export spans over OTLP (default: otlp when an OTLP endpoint is set, else none)"`
	// Endpoint is the collector's base URL (http/protobuf posts to its
	// /v1/traces); http:// is plaintext, https:// TLS. Setting it turns
	// tracing on. Defaults to the Go exporters' https://localhost:4318, or
	// https://localhost:4317 with grpc.
	Endpoint string `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT" desc:"OTLP collector base URL, http(s)://host:port; turns tracing on (default https://localhost:4318, :4317 with grpc)"`
	// TracesEndpoint is the URL spans go to, used as is; it wins over
	// Endpoint, and turns tracing on too.
	TracesEndpoint string `envconfig:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" desc:"OTLP URL of traces, used as is (http/protobuf: include /v1/traces); turns tracing on"`
	// Protocol is the OTLP transport: "grpc" or "http/protobuf". Defaults to
	// "http/protobuf", the specification's default.
	Protocol string `envconfig:"OTEL_EXPORTER_OTLP_PROTOCOL" desc:"grpc | http/protobuf: OTLP transport (default http/protobuf)"`
	// TracesProtocol is Protocol for traces; it wins over Protocol.
	TracesProtocol string `envconfig:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" desc:"grpc | http/protobuf: OTLP transport of traces (default OTEL_EXPORTER_OTLP_PROTOCOL)"`
	// ServiceName is the spans' service.name. Defaults to "dispatchflow" (or
	// the service.name of OTEL_RESOURCE_ATTRIBUTES).
	ServiceName string `envconfig:"OTEL_SERVICE_NAME" desc:"service.name of the spans (default dispatchflow)"`
	// TracesSampler chooses the traces kept. Defaults to parentbased_always_on.
	TracesSampler string `envconfig:"OTEL_TRACES_SAMPLER" desc:"always_on | always_off | traceidratio | parentbased_always_on | parentbased_always_off | parentbased_traceidratio (default parentbased_always_on)"`
	// TracesSamplerArg is the share of traces a traceidratio sampler keeps,
	// 0 to 1. Defaults to 1.
	TracesSamplerArg string `envconfig:"OTEL_TRACES_SAMPLER_ARG" desc:"share of traces kept by a traceidratio sampler, 0 to 1 (default 1)"`
}

// OTLP transports (OTEL_EXPORTER_OTLP_PROTOCOL). http/json is the
// specification's third, which the Go exporters do not speak.
const (
	OTLPGRPC         = "grpc"
	OTLPHTTPProtobuf = "http/protobuf"
)

// TracesOn reports whether spans are exported: not with OTEL_SDK_DISABLED=true
// nor OTEL_TRACES_EXPORTER=none; with OTEL_TRACES_EXPORTER=otlp, or an OTLP
// endpoint variable set.
func (o OTel) TracesOn() bool {
	if strings.EqualFold(o.SDKDisabled, "true") {
		return false
	}
	switch o.TracesExporter {
	case "otlp":
		return true
	case "none":
		return false
	}
	return o.Endpoint != "" || o.TracesEndpoint != ""
}

// TracesProtocolOrDefault is the OTLP transport of traces: OTLPGRPC or OTLPHTTPProtobuf.
func (o OTel) TracesProtocolOrDefault() string {
	if o.TracesProtocol != "" {
		return o.TracesProtocol
	}
	if o.Protocol != "" {
		return o.Protocol
	}
	return OTLPHTTPProtobuf
}

// otelSamplers are the values of OTEL_TRACES_SAMPLER the Go SDK implements.
var otelSamplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// validate checks every variable, whether tracing is on or not: a typo does
// not wait for the day tracing is turned on.
func (o OTel) validate() error {
	if v := o.SDKDisabled; v != "" && !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
		return fmt.Errorf("OTEL_SDK_DISABLED: %q is not true or false", v)
	}
	if v := o.TracesExporter; v != "" && v != "otlp" && v != "none" {
		return fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported: otlp or none", v)
	}
	for _, p := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", o.Protocol},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", o.TracesProtocol},
	} {
		if p.value != "" && p.value != OTLPGRPC && p.value != OTLPHTTPProtobuf {
			return fmt.Errorf("%s: %q is not supported: grpc or http/protobuf", p.name, p.value)
		}
	}
	for _, e := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", o.Endpoint},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", o.TracesEndpoint},
	} {
		if e.value == "" {
			continue
		}
		// The value is not quoted: a URL may carry credentials.
		if u, err := url.Parse(e.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: not an http:// or https:// URL with a host", e.name)
		}
	}
	if v := o.TracesSampler; v != "" && !slices.Contains(otelSamplers, v) {
		return fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of %s", v, strings.Join(otelSamplers, ", "))
	}
	if v := o.TracesSamplerArg; v != "" && strings.HasSuffix(o.TracesSampler, "traceidratio") {
		if r, err := strconv.ParseFloat(v, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio from 0 to 1", v)
		}
	}
	return nil
}
