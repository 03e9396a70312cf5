package integration

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"slices"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/message"
)

// relay is a real SMTP server (go-smtp) that keeps what it accepts and answers
// 550 for one recipient.
type relay struct {
	mu       sync.Mutex
	messages []*mail.Message
	refuse   string
}

func (r *relay) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &relaySession{r: r}, nil }

type relaySession struct{ r *relay }

func (s *relaySession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *relaySession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if to == s.r.refuse {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	}
	return nil
}
func (s *relaySession) Data(rd io.Reader) error {
	raw, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.messages = append(s.r.messages, m)
	s.r.mu.Unlock()
	return nil
}
func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

func startRelay(t *testing.T) (*relay, string) {
	t.Helper()
	r := &relay{refuse: "nobody@example.com"}
	srv := gosmtp.NewServer(r)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r, ln.Addr().String()
}

// The smtp ESP hands the message to a real relay: sent when it says 250, aborted
// with the relay's reply when it refuses the recipient for good.
func TestSMTPProvider(t *testing.T) {
	t.Parallel()
	r, addr := startRelay(t)
	s := setup(t, func(c *config.Config) { c.ESP, c.SMTPAddr = "smtp", addr })

	id := s.send(message.SendRequest{To: "Ann <ann@example.com>", From: "shop@example.com", Subject: "Order confirmed", Text: "Thanks", PostbackURL: s.postback.URL})
	pbs := s.postback.waitFor(t, id, 1)
	if got := statuses(pbs); !slices.Equal(got, []string{"sent"}) {
		t.Fatalf("postbacks %v, want [sent] (an SMTP relay reports no further events)", got)
	}
	checkShape(t, pbs[0], id, "", "")
	r.mu.Lock()
	if len(r.messages) != 1 || r.messages[0].Header.Get("X-Dispatch-ID") != id {
		t.Errorf("relay received %d messages, X-Dispatch-ID %q; want 1 carrying %s", len(r.messages), header(r.messages), id)
	}
	r.mu.Unlock()
	if st := s.state(id); st.Status != message.StatusSent || st.ESP == nil || st.ESP.Provider != "smtp" {
		t.Errorf("state %s esp %+v, want sent through smtp", st.Status, st.ESP)
	}

	refused := s.send(message.SendRequest{To: "nobody@example.com", Subject: "s", Text: "t", PostbackURL: s.postback.URL})
	pbs = s.postback.waitFor(t, refused, 1)
	md := pbs[0]["metadata"].(map[string]any)
	if pbs[0]["status"] != "aborted" || md["reason"] != "550 5.1.1 mailbox unavailable" {
		t.Errorf("refused recipient: postback %v, want aborted with reason \"550 5.1.1 mailbox unavailable\"", pbs[0])
	}
}

func header(ms []*mail.Message) string {
	if len(ms) == 0 {
		return ""
	}
	return ms[0].Header.Get("X-Dispatch-ID")
}
