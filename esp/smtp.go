package esp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// SMTP hands messages to an SMTP relay (DISPATCHFLOW_SMTP_ADDR): a local MTA, a
// provider's SMTP endpoint or a test server. Name() is "smtp".
//
// Each Send is one conversation: connect, EHLO, STARTTLS whenever the relay offers
// it (the relay's certificate must verify for the host in Addr; there is no
// fallback to plaintext once STARTTLS is offered), AUTH PLAIN when Username is set,
// then one message to one recipient. The message carries the header
// "X-Dispatch-ID: {dispatch_id}" and the Message-ID "<{dispatch_id}@dispatchflow>",
// so relays, providers and tests can tie it back to its dispatch.
//
// Outcomes follow the Sender contract: a permanent (5xx) reply to MAIL FROM,
// RCPT TO or DATA, or a From/To/DispatchID that cannot make a valid message, is a
// *RefusedError whose Reason is the relay's reply ("550 5.1.1 user unknown").
// Anything else — temporary (4xx) replies, connection, TLS or authentication
// failures, timeouts — is transient. Once the relay has accepted the message, a
// failing QUIT is ignored so that the caller does not send it twice.
type SMTP struct {
	// Addr is the relay's host:port. Required.
	Addr string
	// Provider names the relay's provider when its webhooks report on the mail
	// (sarbacane, sendgrid, mailgun, postmark, ses, ajo: DISPATCHFLOW_SMTP_PROVIDER):
	// the receipt names it, so the message accepts that provider's events. Empty:
	// "smtp" (events only through the generic intake).
	Provider string
	// Username and Password, when Username is set, authenticate with AUTH PLAIN.
	// net/smtp only sends PLAIN credentials over TLS (after STARTTLS) or to
	// localhost, 127.0.0.1 or ::1; against any other relay that does not offer
	// STARTTLS every Send fails (transiently) rather than leak the password.
	Username string
	Password string
	// HelloName is the name given in EHLO; "localhost" when empty.
	HelloName string
	// Timeout bounds the whole conversation, connecting included; 30s when zero.
	// The context's deadline applies too, whichever comes first.
	Timeout time.Duration
}

var _ Sender = (*SMTP)(nil)

// Name returns "smtp".
func (s *SMTP) Name() string { return "smtp" }

// Send hands e to the relay; see SMTP for what its errors mean.
func (s *SMTP) Send(ctx context.Context, e Email) (Receipt, error) {
	if s.Addr == "" {
		return Receipt{}, errors.New("smtp: no relay address configured")
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return Receipt{}, fmt.Errorf("smtp: relay address %q: %w", s.Addr, err)
	}
	msg, err := smtpBuildMessage(e, s.Provider, time.Now())
	if err != nil {
		return Receipt{}, err
	}

	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return Receipt{}, fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	deadline, _ := ctx.Deadline() // always set: ctx has a timeout
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return Receipt{}, fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	// Cancelling ctx interrupts whatever read or write is in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	// fail wraps err with the step it happened at; at MAIL, RCPT and DATA a
	// permanent reply becomes a refusal — except 530 "authentication required",
	// which is our configuration's fault, not the message's: it is retried.
	fail := func(step string, refusable bool, err error) error {
		var te *textproto.Error
		if refusable && errors.As(err, &te) && te.Code >= 500 && te.Code < 600 && te.Code != 530 {
			return &RefusedError{Reason: fmt.Sprintf("%d %s", te.Code, strings.ReplaceAll(te.Msg, "\n", " "))}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("smtp %s: %w: %w", step, ctxErr, err)
		}
		return fmt.Errorf("smtp %s: %w", step, err)
	}

	c, err := smtp.NewClient(conn, host) // reads the greeting; closes conn on error
	if err != nil {
		return Receipt{}, fail("greeting", false, err)
	}
	defer c.Close()

	hello := s.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return Receipt{}, fail("ehlo", false, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return Receipt{}, fail("starttls", false, err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return Receipt{}, fail("auth", false, err)
		}
	}
	if err := c.Mail(msg.from); err != nil {
		return Receipt{}, fail("mail from", true, err)
	}
	if err := c.Rcpt(msg.to); err != nil {
		return Receipt{}, fail("rcpt to", true, err)
	}
	reply, err := smtpData(c, msg.data)
	if err != nil {
		return Receipt{}, fail("data", true, err)
	}
	// The relay has the message: a failing QUIT must not make the caller resend it.
	_ = c.Quit()

	provider := s.Provider
	if provider == "" {
		provider = s.Name()
	}
	return Receipt{Provider: provider, MessageID: msg.messageID, Response: reply}, nil
}

// smtpData sends DATA, the message and the final dot, and returns the relay's
// reply to it ("250 2.0.0 OK: queued as …"). It does what (*smtp.Client).Data and
// its writer's Close do, except that it keeps that reply instead of dropping it.
func smtpData(c *smtp.Client, data []byte) (string, error) {
	id, err := c.Text.Cmd("DATA")
	if err != nil {
		return "", err
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(354)
	c.Text.EndResponse(id)
	if err != nil {
		return "", err
	}
	w := c.Text.DotWriter()
	if _, err := w.Write(data); err != nil {
		w.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	code, msg, err := c.Text.ReadResponse(250)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s", code, strings.ReplaceAll(msg, "\n", " ")), nil
}

// smtpMessage is an Email made ready for the wire.
type smtpMessage struct {
	from, to  string // bare envelope addresses
	messageID string // "<dispatch_id@dispatchflow>"
	data      []byte // RFC 5322 message, CRLF line endings
}

// relayHeaders are the headers through which the relay of provider (DISPATCHFLOW_SMTP_PROVIDER)
// attaches the dispatch_id to the events its webhooks post, where its SMTP
// service documents one: the same fields its send API fills, which its intake
// reads. A dispatch_id is 32 hexadecimal digits (smtpValidIDLeft), so it needs
// no quoting in JSON or in a header.
func relayHeaders(provider, dispatchID string) [][2]string {
	switch provider {
	case "sendgrid": // unique_args come back as top-level fields of each event
		return [][2]string{{"X-SMTPAPI", `{"unique_args":{"dispatch_id":"` + dispatchID + `"}}`}}
	case "mailgun": // user variables: "user-variables" of each event
		return [][2]string{{"X-Mailgun-Variables", `{"dispatch_id":"` + dispatchID + `"}`}}
	case "postmark": // Metadata of each webhook
		return [][2]string{{"X-PM-Metadata-dispatch_id", dispatchID}}
	case "mandrill": // msg.metadata of each event
		return [][2]string{{"X-MC-Metadata", `{"dispatch_id":"` + dispatchID + `"}`}}
	case "mailjet": // CustomID of each event
		return [][2]string{{"X-MJ-CustomID", dispatchID}}
	case "brevo": // X-Mailin-custom of each event
		return [][2]string{{"X-Mailin-custom", "dispatch_id:" + dispatchID}}
	}
	return nil
}

// smtpBuildMessage renders e as a MIME message dated now, with the relay
// headers of provider. An Email that cannot make a valid message is refused:
// sending it again would not help.
func smtpBuildMessage(e Email, provider string, now time.Time) (smtpMessage, error) {
	if !smtpValidIDLeft(e.DispatchID) {
		return smtpMessage{}, &RefusedError{Reason: fmt.Sprintf("invalid dispatch id %q for a Message-ID", e.DispatchID)}
	}
	from, err := mail.ParseAddress(e.From)
	if err != nil {
		return smtpMessage{}, &RefusedError{Reason: fmt.Sprintf("invalid from address %q: %v", e.From, err)}
	}
	to, err := mail.ParseAddress(e.To)
	if err != nil {
		return smtpMessage{}, &RefusedError{Reason: fmt.Sprintf("invalid to address %q: %v", e.To, err)}
	}
	messageID := "<" + e.DispatchID + "@dispatchflow>"

	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("From", from.String()) // String encodes non-ASCII display names
	header("To", to.String())
	// Encode leaves a printable ASCII subject as is and encodes anything else,
	// CR and LF included, so the subject cannot inject headers.
	header("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID)
	header("X-Dispatch-ID", e.DispatchID)
	for _, h := range relayHeaders(provider, e.DispatchID) {
		header(h[0], h[1])
	}
	header("MIME-Version", "1.0")

	switch {
	case e.Text != "" && e.HTML != "":
		mw := multipart.NewWriter(&b)
		header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
		b.WriteString("\r\n")
		for _, part := range []struct{ contentType, body string }{
			{"text/plain; charset=utf-8", e.Text},
			{"text/html; charset=utf-8", e.HTML},
		} {
			pw, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {part.contentType},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			if err != nil {
				return smtpMessage{}, fmt.Errorf("smtp message: %w", err)
			}
			if err := smtpWriteQP(pw, part.body); err != nil {
				return smtpMessage{}, err
			}
		}
		if err := mw.Close(); err != nil {
			return smtpMessage{}, fmt.Errorf("smtp message: %w", err)
		}
	default: // a single part; an Email with neither body is sent as empty text
		contentType, body := "text/plain; charset=utf-8", e.Text
		if e.HTML != "" {
			contentType, body = "text/html; charset=utf-8", e.HTML
		}
		header("Content-Type", contentType)
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := smtpWriteQP(&b, body); err != nil {
			return smtpMessage{}, err
		}
	}
	return smtpMessage{from: from.Address, to: to.Address, messageID: messageID, data: b.Bytes()}, nil
}

// smtpWriteQP writes body quoted-printable, with CRLF line breaks.
func smtpWriteQP(w io.Writer, body string) error {
	qw := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qw, body); err != nil {
		return fmt.Errorf("smtp message: %w", err)
	}
	if err := qw.Close(); err != nil {
		return fmt.Errorf("smtp message: %w", err)
	}
	return nil
}

// smtpValidIDLeft reports whether id can stand left of the @ of a Message-ID
// (RFC 5322 dot-atom-text).
func smtpValidIDLeft(id string) bool {
	if id == "" || id[0] == '.' || id[len(id)-1] == '.' || strings.Contains(id, "..") {
		return false
	}
	for _, r := range id {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}
