// Package fallback is the escalation policy of a message: when to give up on the
// email (deadlines and statuses) and the ladder of other channels to reach the
// user through, tried in order. Like Courier's provider and channel clocks, and
// Knock's "first matching event wins" — but run inside the message's own
// workflow, on durable timers.
package fallback

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dispatchflow/dispatchflow/message"
)

// Reason says why a message escalated.
type Reason string

const (
	ReasonNotSent      Reason = "not_sent_in_time"      // sent_within ran out before the ESP accepted it
	ReasonNotDelivered Reason = "not_delivered_in_time" // delivered_within ran out after sent
	ReasonBounced      Reason = "bounced"
	ReasonAborted      Reason = "aborted"
)

// Channels a step may use. Which of them are usable depends on configuration (sms
// needs a Twilio account); the API checks that.
const (
	ChannelSandbox = "sandbox"
	ChannelSMS     = "sms"
	ChannelWebhook = "webhook"
)

// Policy is a message's fallback policy: "fallback" in the send request.
type Policy struct {
	// SentWithin: escalate if the ESP has not accepted the message this long after
	// it was queued (its workflow started). "0s" turns the deadline off.
	SentWithin Duration `json:"sent_within,omitzero"`
	// DeliveredWithin: escalate if the message is not delivered this long after sent.
	DeliveredWithin Duration `json:"delivered_within,omitzero"`
	// On: statuses that escalate at once (bounced, aborted).
	On []message.Status `json:"on,omitempty"`
	// Steps: the ladder, tried in order until one is confirmed.
	Steps []Step `json:"steps"`
}

// Step is one rung of the ladder.
type Step struct {
	Channel string `json:"channel"`
	// To is the phone number (E.164) of sms and sandbox steps.
	To string `json:"to,omitempty"`
	// URL is the internal system a webhook step posts to.
	URL string `json:"url,omitempty"`
	// Text is the message of sms and sandbox steps.
	Text string `json:"text,omitempty"`
	// Wait is how long to wait for the step's confirmation before trying the next
	// step. Zero: the step is final once its channel accepted it.
	Wait Duration `json:"wait,omitzero"`
}

// Defaults fill what a policy does not say (DISPATCHFLOW_FALLBACK_*).
type Defaults struct {
	SentWithin      time.Duration
	DeliveredWithin time.Duration
	On              []message.Status
}

// WithDefaults returns p with the deadlines and statuses it did not set taken from d.
func (p Policy) WithDefaults(d Defaults) Policy {
	if !p.SentWithin.Set {
		p.SentWithin = Dur(d.SentWithin)
	}
	if !p.DeliveredWithin.Set {
		p.DeliveredWithin = Dur(d.DeliveredWithin)
	}
	if p.On == nil {
		p.On = slices.Clone(d.On)
	}
	return p
}

// Escalates reports whether reaching status s escalates at once.
func (p Policy) Escalates(s message.Status) bool { return slices.Contains(p.On, s) }

// EscalatingStatuses are the statuses "on" may name.
var EscalatingStatuses = []message.Status{message.StatusBounced, message.StatusAborted}

// Limits bound what a policy may ask for: the caps against abuse of the
// customer's SMS account and of webhook steps. The API builds them from
// configuration (and, for webhook hosts, from the workspace's registered endpoints).
type Limits struct {
	// MaxSteps: at most this many steps; 0: no cap. DefaultLimits: 5.
	MaxSteps int
	// MinDuration and MaxDuration bound sent_within, delivered_within and each step's wait;
	// "0s" stays allowed everywhere (it turns a deadline off, or makes a step final once accepted).
	// 0: no minimum, no maximum. DefaultLimits: 1m and 168h (7 days).
	MinDuration, MaxDuration time.Duration
	// MaxText: at most this many characters (runes) in an sms or sandbox step's text; 0: no cap.
	// DefaultLimits: 1600.
	MaxText int
	// SMSCountries are the country calling codes ("1", "33", "44") sms steps may text: the number's digits
	// after '+' must start with one of them (calling codes are prefix-free). Empty: every sms step is refused.
	// Sandbox steps (a fake channel) are not bound by it. ParseCallingCodes checks configured ones.
	SMSCountries []string
	// WebhookHosts are the hosts webhook steps may post to (compared case-insensitively with the URL's
	// Hostname(); an entry with a port "host:8443" must match host and port exactly, a URL without a port
	// having its scheme's: 80 or 443). Empty: every webhook step is refused.
	WebhookHosts []string
	// AnyDestination skips the SMSCountries and WebhookHosts checks: for the
	// workflow's own check of a patch, whose destinations the API has bounded.
	AnyDestination bool
}

// DefaultLimits are the caps without configuration (no SMS countries, no webhook hosts).
var DefaultLimits = Limits{MaxSteps: 5, MinDuration: time.Minute, MaxDuration: 7 * 24 * time.Hour, MaxText: 1600}

// ParseCallingCodes checks configured country calling codes ("33" or "+33": 1 to
// 3 digits, not starting with 0) and returns them without their '+', for
// Limits.SMSCountries. Its errors name the bad entry, not the variable.
func ParseCallingCodes(list []string) ([]string, error) {
	codes := make([]string, 0, len(list))
	for _, entry := range list {
		code := strings.TrimPrefix(strings.TrimSpace(entry), "+")
		if !isDigits(code) || len(code) > 3 {
			return nil, fmt.Errorf("%q is not a country calling code (1 to 3 digits, like 1, 33 or +44)", entry)
		}
		if code[0] == '0' {
			return nil, fmt.Errorf("%q is not a country calling code (none starts with 0)", entry)
		}
		if !slices.Contains(codes, code) {
			codes = append(codes, code)
		}
	}
	return codes, nil
}

// Validate checks p against lim; errors name the field under prefix ("fallback").
// usable lists the channels configured on this deployment.
func (p Policy) Validate(prefix string, usable []string, lim Limits) error {
	if err := p.SentWithin.check(prefix+".sent_within", lim, "0s turns the deadline off"); err != nil {
		return err
	}
	if err := p.DeliveredWithin.check(prefix+".delivered_within", lim, "0s turns the deadline off"); err != nil {
		return err
	}
	if err := validateOn(prefix, p.On); err != nil {
		return err
	}
	return validateSteps(prefix, p.Steps, usable, lim)
}

func validateOn(prefix string, on []message.Status) error {
	for i, s := range on {
		if !slices.Contains(EscalatingStatuses, s) {
			return fmt.Errorf("%s.on[%d]: %q cannot escalate (want bounced or aborted)", prefix, i, s)
		}
	}
	return nil
}

func validateSteps(prefix string, steps []Step, usable []string, lim Limits) error {
	if len(steps) == 0 {
		return fmt.Errorf("%s.steps: at least one step is required", prefix)
	}
	if lim.MaxSteps > 0 && len(steps) > lim.MaxSteps {
		return fmt.Errorf("%s.steps: %d steps, at most %d are allowed", prefix, len(steps), lim.MaxSteps)
	}
	for i, st := range steps {
		if err := st.validate(fmt.Sprintf("%s.steps[%d]", prefix, i), usable, lim); err != nil {
			return err
		}
	}
	return nil
}

func (s Step) validate(field string, usable []string, lim Limits) error {
	var u *url.URL
	switch s.Channel {
	case ChannelSMS, ChannelSandbox:
		if !isPhoneNumber(s.To) {
			return fmt.Errorf("%s.to: %q is not an E.164 phone number like +33612345678", field, s.To)
		}
		if strings.TrimSpace(s.Text) == "" {
			return fmt.Errorf("%s.text: is required for %s", field, s.Channel)
		}
	case ChannelWebhook:
		var err error
		u, err = url.Parse(s.URL)
		if s.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.url: %q is not an absolute http(s) URL", field, s.URL)
		}
	case "":
		return fmt.Errorf("%s.channel: is required", field)
	default:
		return fmt.Errorf("%s.channel: unknown channel %q (want one of %s)", field, s.Channel, strings.Join([]string{ChannelSandbox, ChannelSMS, ChannelWebhook}, ", "))
	}
	if !slices.Contains(usable, s.Channel) {
		return fmt.Errorf("%s.channel: %s is not configured on this deployment (usable: %s)", field, s.Channel, strings.Join(usable, ", "))
	}
	switch s.Channel {
	case ChannelSMS, ChannelSandbox:
		if n := utf8.RuneCountInString(s.Text); lim.MaxText > 0 && n > lim.MaxText {
			return fmt.Errorf("%s.text: %d characters, at most %d are allowed", field, n, lim.MaxText)
		}
		// Only sms bills the customer: sandbox numbers are never texted.
		if s.Channel == ChannelSMS && !lim.AnyDestination && !lim.smsAllowed(s.To) {
			allowed := strings.Join(lim.SMSCountries, ", ")
			if allowed == "" {
				allowed = "none"
			}
			return fmt.Errorf("%s.to: %s: calling code not allowed for sms (DISPATCHFLOW_SMS_ALLOWED_COUNTRIES: %s)", field, MaskPhone(s.To), allowed)
		}
	case ChannelWebhook:
		if !lim.AnyDestination && !lim.webhookAllowed(u) {
			return fmt.Errorf("%s.url: host %s is not a registered endpoint host or in DISPATCHFLOW_FALLBACK_WEBHOOK_HOSTS", field, u.Host)
		}
	}
	return s.Wait.check(field+".wait", lim, "0s makes the step final once accepted")
}

// smsAllowed reports whether the E.164 number to starts with an allowed calling code.
func (lim Limits) smsAllowed(to string) bool {
	digits := strings.TrimPrefix(to, "+")
	for _, code := range lim.SMSCountries {
		// An empty code would be a prefix of every number; "+33" is taken as "33".
		if code = strings.TrimPrefix(code, "+"); code != "" && strings.HasPrefix(digits, code) {
			return true
		}
	}
	return false
}

// webhookAllowed reports whether u's host is one of lim.WebhookHosts.
func (lim Limits) webhookAllowed(u *url.URL) bool {
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	for _, entry := range lim.WebhookHosts {
		host, entryPort, err := net.SplitHostPort(entry)
		if err != nil { // no port: any port of that host
			host, entryPort = strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"), ""
		}
		if host != "" && strings.EqualFold(host, u.Hostname()) && (entryPort == "" || entryPort == port) {
			return true
		}
	}
	return false
}

func isPhoneNumber(s string) bool {
	return len(s) >= 8 && len(s) <= 16 && s[0] == '+' && isDigits(s[1:])
}

// isDigits reports whether s is a non-empty string of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Target is the step's destination as shown to people: phone numbers masked.
func (s Step) Target() string {
	if s.Channel == ChannelWebhook {
		return s.URL
	}
	return MaskPhone(s.To)
}

// MaskPhone keeps a phone number's country prefix and last two digits:
// "+33612345678" → "+33*******78".
func MaskPhone(s string) string {
	if len(s) <= 5 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + strings.Repeat("*", len(s)-5) + s[len(s)-2:]
}

// Masked returns a copy of p whose phone numbers are masked, for answers and logs.
func (p Policy) Masked() Policy {
	p.Steps = slices.Clone(p.Steps)
	for i := range p.Steps {
		if p.Steps[i].To != "" {
			p.Steps[i].To = MaskPhone(p.Steps[i].To)
		}
	}
	p.On = slices.Clone(p.On)
	return p
}

// Patch is the body of PATCH /v1/messages/{id}/fallback: the fields present
// replace the policy's.
type Patch struct {
	SentWithin      *Duration         `json:"sent_within,omitempty"`
	DeliveredWithin *Duration         `json:"delivered_within,omitempty"`
	On              *[]message.Status `json:"on,omitempty"`
	Steps           *[]Step           `json:"steps,omitempty"`
}

// Validate checks the fields present against lim; errors name the field under prefix.
func (pt Patch) Validate(prefix string, usable []string, lim Limits) error {
	if pt.Empty() {
		return fmt.Errorf("%s: nothing to change: give sent_within, delivered_within, on or steps", prefix)
	}
	if pt.SentWithin != nil {
		if err := pt.SentWithin.check(prefix+".sent_within", lim, "0s turns the deadline off"); err != nil {
			return err
		}
	}
	if pt.DeliveredWithin != nil {
		if err := pt.DeliveredWithin.check(prefix+".delivered_within", lim, "0s turns the deadline off"); err != nil {
			return err
		}
	}
	if pt.On != nil {
		if err := validateOn(prefix, *pt.On); err != nil {
			return err
		}
	}
	if pt.Steps != nil {
		return validateSteps(prefix, *pt.Steps, usable, lim)
	}
	return nil
}

// Empty reports whether the patch changes nothing.
func (pt Patch) Empty() bool {
	return pt.SentWithin == nil && pt.DeliveredWithin == nil && pt.On == nil && pt.Steps == nil
}

// Apply returns p with the patch's fields.
func (pt Patch) Apply(p Policy) Policy {
	if pt.SentWithin != nil {
		p.SentWithin = *pt.SentWithin
		p.SentWithin.Set = true
	}
	if pt.DeliveredWithin != nil {
		p.DeliveredWithin = *pt.DeliveredWithin
		p.DeliveredWithin.Set = true
	}
	if pt.On != nil {
		p.On = slices.Clone(*pt.On)
	}
	if pt.Steps != nil {
		p.Steps = slices.Clone(*pt.Steps)
	}
	return p
}

// Duration is a time.Duration written as a Go duration string ("30m"). A value
// that does not parse is kept and reported by Validate, naming its field.
type Duration struct {
	D time.Duration
	// Set tells whether the JSON gave a value ("0s" included).
	Set     bool
	invalid string
}

// Dur returns d as a set Duration.
func Dur(d time.Duration) Duration { return Duration{D: d, Set: true} }

func (d Duration) IsZero() bool { return !d.Set }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	d.Set = true
	if err := json.Unmarshal(b, &s); err != nil {
		d.invalid = string(b)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.invalid = s
		return nil
	}
	d.D = v
	return nil
}

// check reports an unparsed or negative d, or one outside lim's bounds; zero
// says what "0s" means for the field, always allowed.
func (d Duration) check(field string, lim Limits, zero string) error {
	switch {
	case d.invalid != "":
		return fmt.Errorf("%s: %q is not a duration (like \"30m\" or \"1h30m\")", field, d.invalid)
	case d.D < 0:
		return fmt.Errorf("%s: %s is negative", field, d.D)
	case d.D > 0 && d.D < lim.MinDuration:
		return fmt.Errorf("%s: %s is shorter than the minimum %s (%s)", field, d.D, lim.MinDuration, zero)
	case lim.MaxDuration > 0 && d.D > lim.MaxDuration:
		return fmt.Errorf("%s: %s is longer than the maximum %s", field, d.D, lim.MaxDuration)
	}
	return nil
}
