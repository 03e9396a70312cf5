package chaos

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/mail"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// sink is the ESP as dispatchflow's smtp provider sees it: a real SMTP server on
// loopback that accepts every message and counts the hand-overs of each
// dispatch_id (its X-Dispatch-ID header).
type sink struct {
	srv  *gosmtp.Server
	addr string

	mu     sync.Mutex
	cond   *sync.Cond
	times  map[string][]time.Time // dispatch_id → its hand-overs
	total  int
	stray  int // messages without X-Dispatch-ID, or whose Message-ID is not <id@dispatchflow>
	closed bool
}

// startSink listens on a loopback port and serves SMTP until close.
func startSink() (*sink, error) {
	s := &sink{times: map[string][]time.Time{}}
	s.cond = sync.NewCond(&s.mu)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv = gosmtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = log.New(io.Discard, "", 0) // connections cut by kills are expected
	s.addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) close() {
	_ = s.srv.Close()
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// NewSession implements gosmtp.Backend.
func (s *sink) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return sinkSession{s}, nil }

type sinkSession struct{ s *sink }

func (sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (sinkSession) Reset()                                 {}
func (sinkSession) Logout() error                          { return nil }

// Data records one hand-over: the relay answers 250 when it returns nil.
func (ss sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	id := ""
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		id = m.Header.Get("X-Dispatch-ID")
		if id != "" && m.Header.Get("Message-ID") != "<"+id+"@dispatchflow>" {
			id = ""
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if id == "" {
		s.stray++
		return nil
	}
	s.times[id] = append(s.times[id], now)
	s.cond.Broadcast()
	return nil
}

// wait returns when dispatch id was first handed over, waiting for it until ctx
// is done.
func (s *sink) wait(ctx context.Context, id string) (time.Time, bool) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ts := s.times[id]; len(ts) > 0 {
			return ts[0], true
		}
		if ctx.Err() != nil || s.closed {
			return time.Time{}, false
		}
		s.cond.Wait()
	}
}

// handOvers returns when id was handed over, each time.
func (s *sink) handOvers(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times[id]...)
}

// totals returns every message received and those that named no dispatch.
func (s *sink) totals() (total, stray int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.stray
}
