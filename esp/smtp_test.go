package esp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// smtpTestMessage is one message the test relay accepted.
type smtpTestMessage struct {
	from string
	to   []string
	data []byte
}

// smtpTestBackend is a go-smtp backend that records what it accepts and refuses
// what it is told to.
type smtpTestBackend struct {
	refuseMail map[string]*gosmtp.SMTPError // by envelope sender
	refuseRcpt map[string]*gosmtp.SMTPError // by envelope recipient
	refuseData *gosmtp.SMTPError            // for every message
	// user and pass, when user is set, are the only credentials AUTH PLAIN
	// accepts, and MAIL FROM requires them.
	user, pass string

	mu       sync.Mutex
	messages []smtpTestMessage
	logins   []string // "username:password" of every AUTH PLAIN attempt
}

func (b *smtpTestBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) {
	return &smtpTestSession{b: b}, nil
}

func (b *smtpTestBackend) received() []smtpTestMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]smtpTestMessage(nil), b.messages...)
}

func (b *smtpTestBackend) attempts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logins...)
}

type smtpTestSession struct {
	b      *smtpTestBackend
	authed bool
	from   string
	to     []string
}

var _ gosmtp.AuthSession = (*smtpTestSession)(nil)

func (s *smtpTestSession) AuthMechanisms() []string {
	if s.b.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpTestSession) Auth(mech string) (sasl.Server, error) {
	if s.b.user == "" || mech != sasl.Plain {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.b.mu.Lock()
		s.b.logins = append(s.b.logins, username+":"+password)
		s.b.mu.Unlock()
		if username != s.b.user || password != s.b.pass {
			return gosmtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpTestSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.b.user != "" && !s.authed {
		return gosmtp.ErrAuthRequired
	}
	if err := s.b.refuseMail[from]; err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *smtpTestSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if err := s.b.refuseRcpt[to]; err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpTestSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.b.refuseData != nil {
		return s.b.refuseData
	}
	s.b.mu.Lock()
	s.b.messages = append(s.b.messages, smtpTestMessage{from: s.from, to: s.to, data: data})
	s.b.mu.Unlock()
	return nil
}

func (s *smtpTestSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpTestSession) Logout() error { return nil }

// startSMTPTestServer starts a go-smtp relay for b on a loopback port, stopped
// when the test ends, and returns its host:port. tlsConfig, when set, makes it
// offer STARTTLS.
func startSMTPTestServer(t *testing.T, b *smtpTestBackend, tlsConfig *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gosmtp.NewServer(b)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.TLSConfig = tlsConfig
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// closedSMTPAddr returns a loopback address nothing listens on.
func closedSMTPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func smtpTestEmail() Email {
	return Email{
		DispatchID: "acf471119f7449d579e8089032003ded",
		From:       "Boutique Zoé <shop@example.com>",
		To:         "Jean Dupont <jean@example.net>",
		Subject:    "Votre commande n° 1234 — confirmée",
		Text:       "Bonjour Jean,\n\nVotre commande n° 1234 est confirmée.\n.\nUne ligne qui commence par un point, une autre avec = et une très longue ligne qui dépasse largement les soixante-seize caractères du quoted-printable.\n",
		HTML:       "<p>Bonjour Jean,</p>\n<p>Votre commande n° 1234 est <b style=\"color:#0a0\">confirmée</b>. Une très longue ligne qui dépasse largement les soixante-seize caractères.</p>\n",
	}
}

// crlf is s with the CRLF line endings it has on the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// readQPPart reads a quoted-printable body, checking its transfer encoding.
func readQPPart(t *testing.T, encoding string, body io.Reader) string {
	t.Helper()
	if encoding != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding: got %q, want %q", encoding, "quoted-printable")
	}
	b, err := io.ReadAll(quotedprintable.NewReader(body))
	if err != nil {
		t.Fatalf("quoted-printable body: %v", err)
	}
	return string(b)
}

// onlySMTPMessage returns the one message b received, parsed, after checking
// its envelope and the headers every message carries.
func onlySMTPMessage(t *testing.T, b *smtpTestBackend, e Email) *mail.Message {
	t.Helper()
	got := b.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	m := got[0]
	from, _ := mail.ParseAddress(e.From)
	to, _ := mail.ParseAddress(e.To)
	if m.from != from.Address {
		t.Errorf("envelope from: got %q, want %q", m.from, from.Address)
	}
	if len(m.to) != 1 || m.to[0] != to.Address {
		t.Errorf("envelope to: got %q, want [%q]", m.to, to.Address)
	}
	if i := bytes.IndexByte(bytes.ReplaceAll(m.data, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Errorf("message has a bare LF; want CRLF line endings only")
	}

	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, m.data)
	}
	h := msg.Header
	if got, want := h.Get("X-Dispatch-ID"), e.DispatchID; got != want {
		t.Errorf("X-Dispatch-ID: got %q, want %q", got, want)
	}
	if got, want := h.Get("Message-ID"), "<"+e.DispatchID+"@dispatchflow>"; got != want {
		t.Errorf("Message-ID: got %q, want %q", got, want)
	}
	if got := h.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version: got %q, want %q", got, "1.0")
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Errorf("Subject %q: %v", h.Get("Subject"), err)
	}
	if subject != e.Subject {
		t.Errorf("Subject: got %q, want %q", subject, e.Subject)
	}
	for _, name := range []string{"From", "To"} {
		want, _ := mail.ParseAddress(map[string]string{"From": e.From, "To": e.To}[name])
		got, err := h.AddressList(name)
		if err != nil || len(got) != 1 || *got[0] != *want {
			t.Errorf("%s: got %v (%v), want %v", name, got, err, want)
		}
	}
	return msg
}

func TestSMTPSendAccepted(t *testing.T) {
	t.Parallel()
	subjects := map[string]string{
		"non-ASCII":      "Votre commande n° 1234 — confirmée",
		"ASCII":          "Your order 1234 is confirmed",
		"long non-ASCII": strings.Repeat("Votre commande n° 1234 — confirmée, ", 5),
		"header break":   "Hello\r\nBcc: intruder@example.org",
	}
	for name, subject := range subjects {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := &smtpTestBackend{}
			addr := startSMTPTestServer(t, b, nil)
			e := smtpTestEmail()
			e.Subject = subject

			receipt, err := (&SMTP{Addr: addr}).Send(context.Background(), e)
			if err != nil {
				t.Fatalf("Send: got error %v, want nil", err)
			}
			want := Receipt{Provider: "smtp", MessageID: "<" + e.DispatchID + "@dispatchflow>", Response: "250 2.0.0 OK: queued"}
			if receipt != want {
				t.Errorf("receipt: got %+v, want %+v", receipt, want)
			}

			msg := onlySMTPMessage(t, b, e)
			if got := msg.Header.Get("Bcc"); got != "" {
				t.Errorf("Bcc: got %q, want no such header", got)
			}
			mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
			if err != nil || mediaType != "multipart/alternative" {
				t.Fatalf("Content-Type: got %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
			}
			mr := multipart.NewReader(msg.Body, params["boundary"])
			wantParts := []struct{ mediaType, body string }{
				{"text/plain", crlf(e.Text)},
				{"text/html", crlf(e.HTML)},
			}
			for i, wp := range wantParts {
				p, err := mr.NextRawPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				mt, ps, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
				if err != nil || mt != wp.mediaType || ps["charset"] != "utf-8" {
					t.Errorf("part %d Content-Type: got %q, want %s; charset=utf-8", i, p.Header.Get("Content-Type"), wp.mediaType)
				}
				if got := readQPPart(t, p.Header.Get("Content-Transfer-Encoding"), p); got != wp.body {
					t.Errorf("part %d body: got %q, want %q", i, got, wp.body)
				}
			}
			if _, err := mr.NextRawPart(); err != io.EOF {
				t.Errorf("after two parts: got %v, want io.EOF", err)
			}
		})
	}
}

func TestSMTPSendSinglePart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		text, html    string
		wantMediaType string
		wantBody      string
	}{
		{"text only", "Bonjour,\nvotre commande n° 1234 est confirmée.\n", "", "text/plain", "Bonjour,\r\nvotre commande n° 1234 est confirmée.\r\n"},
		{"html only", "", "<p>Votre commande n° 1234 est confirmée.</p>\n", "text/html", "<p>Votre commande n° 1234 est confirmée.</p>\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &smtpTestBackend{}
			addr := startSMTPTestServer(t, b, nil)
			e := smtpTestEmail()
			e.Text, e.HTML = tt.text, tt.html

			if _, err := (&SMTP{Addr: addr}).Send(context.Background(), e); err != nil {
				t.Fatalf("Send: got error %v, want nil", err)
			}
			msg := onlySMTPMessage(t, b, e)
			mt, ps, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
			if err != nil || mt != tt.wantMediaType || ps["charset"] != "utf-8" {
				t.Errorf("Content-Type: got %q, want %s; charset=utf-8", msg.Header.Get("Content-Type"), tt.wantMediaType)
			}
			if got := readQPPart(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body); got != tt.wantBody {
				t.Errorf("body: got %q, want %q", got, tt.wantBody)
			}
		})
	}
}

func TestSMTPSendRelayReplies(t *testing.T) {
	t.Parallel()
	e := smtpTestEmail()
	const sender, recipient = "shop@example.com", "jean@example.net"
	tests := []struct {
		name        string
		backend     *smtpTestBackend
		wantRefused bool
		wantIn      []string // substrings of the reason (refused) or the error text
	}{
		{
			name: "550 recipient",
			backend: &smtpTestBackend{refuseRcpt: map[string]*gosmtp.SMTPError{
				recipient: {Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "user unknown"},
			}},
			wantRefused: true,
			wantIn:      []string{"550", "5.1.1", "user unknown"},
		},
		{
			name: "451 recipient",
			backend: &smtpTestBackend{refuseRcpt: map[string]*gosmtp.SMTPError{
				recipient: {Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"},
			}},
			wantIn: []string{"smtp rcpt to", "451", "greylisted"},
		},
		{
			name: "553 sender",
			backend: &smtpTestBackend{refuseMail: map[string]*gosmtp.SMTPError{
				sender: {Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"},
			}},
			wantRefused: true,
			wantIn:      []string{"553", "sender not allowed"},
		},
		{
			name: "530 sender: relay wants credentials we lack, retried",
			backend: &smtpTestBackend{refuseMail: map[string]*gosmtp.SMTPError{
				sender: {Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "authentication required"},
			}},
			wantIn: []string{"smtp mail from", "530"},
		},
		{
			name: "421 sender",
			backend: &smtpTestBackend{refuseMail: map[string]*gosmtp.SMTPError{
				sender: {Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"},
			}},
			wantIn: []string{"smtp mail from", "421"},
		},
		{
			name:        "554 data",
			backend:     &smtpTestBackend{refuseData: &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}},
			wantRefused: true,
			wantIn:      []string{"554", "content rejected"},
		},
		{
			name:    "452 data",
			backend: &smtpTestBackend{refuseData: &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "insufficient storage"}},
			wantIn:  []string{"smtp data", "452"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startSMTPTestServer(t, tt.backend, nil)
			_, err := (&SMTP{Addr: addr}).Send(context.Background(), e)
			if err == nil {
				t.Fatal("Send: got nil error, want one")
			}
			reason, refused := IsRefused(err)
			if refused != tt.wantRefused {
				t.Fatalf("IsRefused(%v): got %v, want %v", err, refused, tt.wantRefused)
			}
			text := err.Error()
			if refused {
				var r *RefusedError
				if !errors.As(err, &r) {
					t.Fatalf("got %T, want *RefusedError", err)
				}
				text = reason
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(text, want) {
					t.Errorf("got %q, want it to contain %q", text, want)
				}
			}
			if got := tt.backend.received(); len(got) != 0 {
				t.Errorf("server received %d messages, want 0", len(got))
			}
		})
	}
}

func TestSMTPSendInvalidEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Email)
		wantIn string
	}{
		{"bad to", func(e *Email) { e.To = "not an address" }, "to address"},
		{"bad from", func(e *Email) { e.From = "" }, "from address"},
		{"dispatch id breaks the headers", func(e *Email) { e.DispatchID = "abc\r\nBcc: intruder@example.org" }, "dispatch id"},
		{"no dispatch id", func(e *Email) { e.DispatchID = "" }, "dispatch id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := smtpTestEmail()
			tt.modify(&e)
			// Nothing listens at Addr: a refusal proves Send gave up before dialing.
			_, err := (&SMTP{Addr: closedSMTPAddr(t)}).Send(context.Background(), e)
			reason, refused := IsRefused(err)
			if !refused {
				t.Fatalf("IsRefused(%v): got false, want true", err)
			}
			if !strings.Contains(reason, tt.wantIn) {
				t.Errorf("reason: got %q, want it to contain %q", reason, tt.wantIn)
			}
		})
	}
}

func TestSMTPSendUnreachable(t *testing.T) {
	t.Parallel()

	// A relay that accepts the connection but never greets.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()

	tests := []struct {
		name        string
		sender      *SMTP
		cancelAfter time.Duration // cancel Send's context after this long, when set
		wantErr     error         // errors.Is target, when there is one to check
	}{
		{"nothing listening", &SMTP{Addr: closedSMTPAddr(t)}, 0, nil},
		{"silent relay, Timeout", &SMTP{Addr: silent.Addr().String(), Timeout: 200 * time.Millisecond}, 0, os.ErrDeadlineExceeded},
		{"silent relay, ctx cancelled", &SMTP{Addr: silent.Addr().String()}, 200 * time.Millisecond, context.Canceled},
		{"no address", &SMTP{}, 0, nil},
		{"address without port", &SMTP{Addr: "127.0.0.1"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.cancelAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				time.AfterFunc(tt.cancelAfter, cancel)
			}
			start := time.Now()
			_, err := tt.sender.Send(ctx, smtpTestEmail())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Send took %v, want it to give up promptly", elapsed)
			}
			if err == nil {
				t.Fatal("Send: got nil error, want one")
			}
			if _, refused := IsRefused(err); refused {
				t.Errorf("IsRefused(%v): got true, want false (transient)", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.wantErr)
			}
		})
	}
}

func TestSMTPSendAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		username   string
		password   string
		wantErr    bool
		wantLogins []string
	}{
		{"right credentials", "dispatch", "s3cret", false, []string{"dispatch:s3cret"}},
		{"wrong password", "dispatch", "wrong", true, []string{"dispatch:wrong"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &smtpTestBackend{user: "dispatch", pass: "s3cret"}
			// net/smtp sends PLAIN over plaintext only to localhost/127.0.0.1/::1;
			// the relay is on 127.0.0.1.
			addr := startSMTPTestServer(t, b, nil)
			e := smtpTestEmail()
			_, err := (&SMTP{Addr: addr, Username: tt.username, Password: tt.password}).Send(context.Background(), e)
			if got := b.attempts(); strings.Join(got, ",") != strings.Join(tt.wantLogins, ",") {
				t.Errorf("server saw logins %q, want %q", got, tt.wantLogins)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send: got error %v, want nil", err)
				}
				onlySMTPMessage(t, b, e)
				return
			}
			if err == nil {
				t.Fatal("Send: got nil error, want one")
			}
			if _, refused := IsRefused(err); refused {
				t.Errorf("IsRefused(%v): got true, want false (credentials are configuration, not the message)", err)
			}
			if !strings.Contains(err.Error(), "smtp auth") {
				t.Errorf("got %q, want it to contain %q", err, "smtp auth")
			}
		})
	}
}

// TestSMTPSendSTARTTLS checks that a relay offering STARTTLS gets it, and that a
// certificate that does not verify fails the send (transiently) instead of
// falling back to plaintext.
func TestSMTPSendSTARTTLS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	b := &smtpTestBackend{}
	addr := startSMTPTestServer(t, b, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})

	_, err = (&SMTP{Addr: addr}).Send(context.Background(), smtpTestEmail())
	if err == nil {
		t.Fatal("Send: got nil error, want a certificate error")
	}
	if _, refused := IsRefused(err); refused {
		t.Errorf("IsRefused(%v): got true, want false", err)
	}
	var unknownAuthority x509.UnknownAuthorityError
	if !strings.Contains(err.Error(), "smtp starttls") || !errors.As(err, &unknownAuthority) {
		t.Errorf("got %v, want an smtp starttls x509.UnknownAuthorityError", err)
	}
	if got := b.received(); len(got) != 0 {
		t.Errorf("server received %d messages, want 0", len(got))
	}
}

// Through a provider's SMTP relay, the mail carries the dispatch_id in the
// header that provider's SMTP service documents and echoes in its webhooks, in
// the field its intake reads; a plain relay gets none of them.
func TestSMTPRelayHeaders(t *testing.T) {
	t.Parallel()
	id := smtpTestEmail().DispatchID
	for _, tc := range []struct {
		provider, header, want string
		jsonPath               []string // the header is JSON: the dispatch_id at this path
	}{
		// https://www.twilio.com/docs/sendgrid/for-developers/sending-email/building-an-x-smtpapi-header
		{provider: "sendgrid", header: "X-SMTPAPI", jsonPath: []string{"unique_args", "dispatch_id"}},
		// https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/#attaching-data-to-messages
		{provider: "mailgun", header: "X-Mailgun-Variables", jsonPath: []string{"dispatch_id"}},
		// https://postmarkapp.com/developer/user-guide/send-email-with-smtp#custom-metadata
		{provider: "postmark", header: "X-PM-Metadata-dispatch_id", want: id},
		// https://mailchimp.com/developer/transactional/docs/smtp-integration/#x-mc-metadata
		{provider: "mandrill", header: "X-MC-Metadata", jsonPath: []string{"dispatch_id"}},
		// symfony/symfony src/Symfony/Component/Mailer/Bridge/Mailjet/README.md (X-MJ-CustomID, as Mailjet documents for SMTP)
		{provider: "mailjet", header: "X-MJ-CustomID", want: id},
		// https://developers.brevo.com/docs/smtp-integration (X-Mailin-custom)
		{provider: "brevo", header: "X-Mailin-custom", want: "dispatch_id:" + id},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			b := &smtpTestBackend{}
			addr := startSMTPTestServer(t, b, nil)
			e := smtpTestEmail()
			if _, err := (&SMTP{Addr: addr, Provider: tc.provider}).Send(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			got := onlySMTPMessage(t, b, e).Header.Get(tc.header)
			if tc.jsonPath == nil {
				if got != tc.want {
					t.Errorf("%s: %q, want %q", tc.header, got, tc.want)
				}
				return
			}
			var v any
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Fatalf("%s: %q is not JSON: %v", tc.header, got, err)
			}
			for _, k := range tc.jsonPath {
				m, _ := v.(map[string]any)
				v = m[k]
			}
			if v != id {
				t.Errorf("%s: %q, want the dispatch_id at %v", tc.header, got, tc.jsonPath)
			}
		})
	}
	b := &smtpTestBackend{}
	addr := startSMTPTestServer(t, b, nil)
	e := smtpTestEmail()
	if _, err := (&SMTP{Addr: addr}).Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-SMTPAPI", "X-Mailgun-Variables", "X-MC-Metadata", "X-MJ-CustomID", "X-Mailin-custom"} {
		if v := onlySMTPMessage(t, b, e).Header.Get(h); v != "" {
			t.Errorf("plain relay: %s: %q, want none", h, v)
		}
	}
}
