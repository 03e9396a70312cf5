package suppression

import (
	"strings"

	"github.com/dispatchflow/dispatchflow/message"
)

// CauseOf says whether an event a message accepted suppresses its address,
// and why: a hard bounce, a complaint or an unsubscribe, whatever the provider.
// rawType is the event's message.Event.RawType, whose subtypes tell the
// bounces that were no fault of the address (notBounceOfAddress).
//
// It runs in workflow code, so it is deterministic; a change to what it
// returns for an event a recorded history holds changes that workflow's
// commands, and must be guarded there with workflow.GetVersion.
func CauseOf(provider string, t message.EventType, rawType string) (Cause, bool) {
	switch t {
	case message.EventComplaint:
		return CauseComplaint, true
	case message.EventUnsubscribe:
		return CauseUnsubscribe, true
	case message.EventBounced:
		if notBounceOfAddress(provider, strings.Split(rawType, "/")) {
			return "", false
		}
		return CauseHardBounce, true
	}
	return "", false
}

// notBounceOfAddress reports whether a bounced event is, by its provider's own
// subtype (raw, the RawType's parts), a refusal of this message rather than of
// the address: the message status model counts it bounced (final), but
// suppressing the address for it would stop mail that can still arrive. The
// provider names are intake's (intake.ProviderSendGrid, …).
//
//   - SendGrid "bounce" of type "blocked": the receiving server refused the
//     message or the sending IP (reputation, content), not the mailbox; SendGrid
//     files it under Blocks, apart from Bounces (Event Webhook reference;
//     django-anymail anymail/webhooks/sendgrid.py maps it to BLOCKED, not BOUNCED).
//   - Postmark bounce Types SoftBounce, Blocked, DMARCPolicy and
//     VirusNotification: a temporary failure, a block of the sender or a
//     refusal of the content; only HardBounce and BadEmailAddress condemn the
//     address (django-anymail anymail/webhooks/postmark.py: BLOCKED, OTHER;
//     Postmark Bounce API bounce types).
//   - SES Bounce of bounceType Transient or Undetermined: SES reports a soft
//     bounce once it stopped retrying; only Permanent is a hard bounce (SES
//     event publishing, "Bounce object").
//   - Adobe Journey Optimizer failure code 24, Timeout: the message expired in
//     AJO's retries (AJO "email error types"); 10 Invalid Recipient and 15
//     Recipient Refused are hard bounces.
//   - Resend bounce of type Transient or Undetermined: Resend's bounce types
//     are Amazon SES's (as above).
//   - SparkPost bounce classes other than 10 Invalid Recipient and 30 Generic
//     Bounce: No RCPT: soft (1, 20–24, 40, 70), blocks of the sender or content
//     (50–54), admin (25) or replies (60, 80, 100) — SparkPost support-docs
//     deliverability/bounce-classification-codes.md ("Hard" class 10, 30, 90;
//     90 arrives as an unsubscribe).
//   - Brevo soft_bounce, Mandrill (Mailchimp Transactional) soft_bounce,
//     MailerSend activity.soft_bounced and Mailjet bounces with hard_bounce
//     false: the providers' own soft bounces, which their intakes count
//     bounced (final for the message) but which say the mailbox may accept
//     mail later.
//
// Mailgun's permanent failures, Postal's failed and bounced messages,
// Sarbacane's hard_bounce and the generic and sandbox formats' "bounced" are
// hard bounces as reported. A provider added to intake whose bounced events
// include refusals of the message, not the address, must be added here.
func notBounceOfAddress(provider string, raw []string) bool {
	sub := func(i int) string {
		if i < len(raw) {
			return raw[i]
		}
		return ""
	}
	switch provider {
	case "sendgrid": // raw: "bounce/<type>"
		return strings.EqualFold(sub(1), "blocked")
	case "postmark": // raw: "Bounce/<Type>"
		switch sub(1) {
		case "SoftBounce", "Blocked", "DMARCPolicy", "VirusNotification":
			return true
		}
	case "ses": // raw: "Bounce/<bounceType>/<bounceSubType>"
		return sub(1) != "Permanent"
	case "ajo": // raw: "bounce/<type>/<code>", type or code may be absent
		return raw[len(raw)-1] == "24"
	case "resend": // raw: "email.bounced/<type>/<subtype>"
		return sub(1) != "Permanent"
	case "sparkpost": // raw: "<type>/<bounce class>"
		return sub(1) != "10" && sub(1) != "30"
	case "brevo", "mandrill": // raw: "<event>[/<bounce description>]"
		return sub(0) == "soft_bounce"
	case "mailersend": // raw: "activity.<type>"
		return sub(0) == "activity.soft_bounced"
	case "mailjet": // raw: "bounce/<hard|soft>/<error related to>/<error>"
		return sub(1) != "hard"
	}
	return false
}
