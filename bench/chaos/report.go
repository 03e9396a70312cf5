package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/dispatchflow/dispatchflow/bench"
)

// Report is what a run found.
type Report struct {
	// Messages is how many messages the run meant to send; Accepted how many the
	// API accepted (answered a dispatch_id).
	Messages, Accepted int
	Faults             Faults
	// Timeline lists the faults: time since the load began, and what.
	Timeline []string
	// HandOvers counts the mails the SMTP sink received; DoubleHandOvers the
	// dispatch_ids it received more than once (a second email to the recipient);
	// NotHandedOver the accepted messages it never received.
	HandOvers, DoubleHandOvers, NotHandedOver int
	// CrashWindowRepeats counts the dispatch_ids received twice whose first
	// hand-over was within a moment of a worker kill: the relay took the mail,
	// the worker died before Temporal recorded it, and the retry sent it again.
	// No SMTP relay takes an idempotency key, so no sender can avoid that
	// window (README, design notes); the run reports it and stays clean. Any
	// other repeat is a DoubleHandOver.
	CrashWindowRepeats int
	// StrayMails counts mails without X-Dispatch-ID, or whose Message-ID is not
	// <dispatch_id@dispatchflow>.
	StrayMails int
	// Lost counts messages with an expected postback not delivered by the end of
	// the settle wait (Options.SettleTimeout).
	Lost int
	// Wrong counts messages whose final status (GET /v1/messages/{id}) is not the
	// one the ESP's events lead to, or that got a status postback they should not.
	Wrong int
	// OutOfOrder counts messages whose status postbacks were first delivered out
	// of status order (or one status under two webhook-ids).
	OutOfOrder int
	// Postbacks counts the webhook-ids delivered; DuplicateDeliveries those
	// delivered more than once (allowed: delivery is at least once; receivers
	// dedupe on webhook-id); TwoBodies those that came with two different bodies.
	Postbacks, DuplicateDeliveries, TwoBodies int
	// PostbackRequests counts every request the receiver got, Refused those it
	// answered 500 (its outage).
	PostbackRequests, Refused int
	// BadSignatures counts postbacks without a valid signature, Unreadable those
	// whose body is not a braze postback.
	BadSignatures, Unreadable int
	// FailedRequests counts messages whose send or event posts were never
	// accepted within Options.RetryFor; ClientRetries the attempts the load had to
	// retry (non-2xx answers, connection errors).
	FailedRequests, ClientRetries int
	// MaxDelay and P99Delay are from an event (for sent: the hand-over at the
	// sink) to the first delivery of the postback it caused.
	MaxDelay, P99Delay time.Duration
	// Slowest names the postback of MaxDelay: dispatch_id and status.
	Slowest string
	// Examples are a few of the problems found, for a start (times since the
	// load began).
	Examples []string
	Seed     uint64
	Duration time.Duration
}

// Clean reports whether the run found nothing wrong: nothing lost, wrong, out of
// order, handed over twice (or never, or without its dispatch_id) or posted back
// with two bodies under one webhook-id, every postback signed, every request
// eventually accepted.
func (r Report) Clean() bool {
	return r.Accepted == r.Messages && r.Lost == 0 && r.Wrong == 0 && r.OutOfOrder == 0 && r.DoubleHandOvers == 0 &&
		r.NotHandedOver == 0 && r.StrayMails == 0 && r.TwoBodies == 0 && r.BadSignatures == 0 && r.Unreadable == 0 && r.FailedRequests == 0
}

// String renders the report as a table, the problems' examples below it.
func (r Report) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	row := func(name string, v any, note string) { fmt.Fprintf(tw, "| %s\t %v\t %s\t\n", name, v, note) }
	fmt.Fprintf(tw, "| figure\t value\t \t\n|---\t---\t---\t\n")
	row("messages (accepted)", fmt.Sprintf("%d (%d)", r.Messages, r.Accepted), "")
	f := r.Faults
	row("faults", f.Total(), fmt.Sprintf("worker kills %d, API kills %d, server kills %d, receiver outages %d", f.WorkerKills, f.APIKills, f.ServerKills, f.ReceiverOutages))
	row("unexpected exits", f.UnexpectedExits, "processes that died by themselves (restarted)")
	row("hand-overs", r.HandOvers, "mails received by the SMTP sink")
	row("stray mails", r.StrayMails, mark(r.StrayMails, "mails without X-Dispatch-ID or its Message-ID"))
	row("double hand-overs", r.DoubleHandOvers, mark(r.DoubleHandOvers, "dispatch_ids received more than once"))
	row("crash-window repeats", r.CrashWindowRepeats, "sent again after the worker died mid hand-over (allowed: SMTP has no idempotency key)")
	row("never handed over", r.NotHandedOver, mark(r.NotHandedOver, ""))
	row("lost", r.Lost, mark(r.Lost, "messages missing an expected postback after the settle wait"))
	row("wrong", r.Wrong, mark(r.Wrong, "final status not as expected, or an unexpected postback"))
	row("out of order", r.OutOfOrder, mark(r.OutOfOrder, "status postbacks not in status order"))
	row("postbacks", r.Postbacks, fmt.Sprintf("webhook-ids delivered, in %d requests (%d answered 500)", r.PostbackRequests, r.Refused))
	row("duplicate deliveries", r.DuplicateDeliveries, "webhook-ids delivered more than once (allowed)")
	row("webhook-ids with two bodies", r.TwoBodies, mark(r.TwoBodies, ""))
	row("bad signatures", r.BadSignatures+r.Unreadable, mark(r.BadSignatures+r.Unreadable, "postbacks unsigned, badly signed or unreadable"))
	row("failed requests", r.FailedRequests, mark(r.FailedRequests, "sends or events never accepted"))
	row("client retries", r.ClientRetries, "request attempts retried (non-2xx, connection errors)")
	row("event → postback max", r.MaxDelay.Round(time.Millisecond), r.Slowest)
	row("event → postback p99", r.P99Delay.Round(time.Millisecond), "")
	tw.Flush()
	verdict := "CLEAN"
	if !r.Clean() {
		verdict = "NOT CLEAN"
	}
	fmt.Fprintf(&b, "\n%s: %d messages in %s (seed %d).\n", verdict, r.Messages, r.Duration.Round(time.Second), r.Seed)
	if len(r.Timeline) > 0 {
		fmt.Fprintf(&b, "Faults at: %s.\n", strings.Join(r.Timeline, ", "))
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "  - %s\n", e)
	}
	return b.String()
}

// mark flags a non-zero figure that makes the run unclean.
func mark(n int, note string) string {
	if n == 0 {
		return note
	}
	return strings.TrimSpace("FAIL " + note)
}

// maxExamples bounds Report.Examples.
const maxExamples = 15

// rank orders the statuses a message's postbacks may carry.
var rank = map[string]int{statusSent: 1, statusProcessed: 2, statusDelivered: 3, statusBounced: 4}

// check compares every message with what its life should have produced; start
// is when the load began (examples give times since then).
func (s *stage) check(ctx context.Context, api *apiClient, lives []*life, start time.Time, workerKills []time.Time) Report {
	c := &checker{s: s, start: start, r: Report{Messages: len(lives)}, workerKills: workerKills}
	c.r.HandOvers, c.r.StrayMails = s.sink.totals()
	finals := s.finalStatuses(ctx, api, lives)
	for _, lv := range lives {
		if lv.err != nil && !errors.Is(lv.err, errNotHandedOver) {
			c.r.FailedRequests++
			c.example("message %d (%s): %v", lv.index, lv.dispatchID, lv.err)
		}
		if lv.dispatchID == "" {
			continue
		}
		c.r.Accepted++
		c.handOvers(lv.dispatchID)
		c.postbacks(lv, finals[lv.dispatchID])
	}
	st := s.rec.stats()
	c.r.Postbacks, c.r.DuplicateDeliveries, c.r.TwoBodies = st.webhookIDs, st.duplicated, st.twoBodies
	c.r.BadSignatures, c.r.Unreadable = st.badSigned, st.unreadable
	c.r.PostbackRequests, c.r.Refused = st.requests, st.refused
	for _, id := range st.twoBodiesIDs {
		c.example("two bodies under webhook-id %s", id)
	}
	c.r.P99Delay = bench.Percentile(c.delays, 99)
	return c.r
}

// checker accumulates the report of check.
type checker struct {
	s           *stage
	start       time.Time
	r           Report
	delays      []time.Duration
	workerKills []time.Time
}

// killedDuring reports whether a worker was killed while the hand-over received
// at t was being made or recorded: from 500 ms before the relay had the mail
// (the end of its DATA) to 2 s after (the activity's completion reaching
// Temporal).
func (c *checker) killedDuring(t time.Time) bool {
	for _, k := range c.workerKills {
		if !k.Before(t.Add(-500*time.Millisecond)) && !k.After(t.Add(2*time.Second)) {
			return true
		}
	}
	return false
}

// example keeps a problem's description, up to maxExamples.
func (c *checker) example(format string, args ...any) {
	if len(c.r.Examples) < maxExamples {
		c.r.Examples = append(c.r.Examples, fmt.Sprintf(format, args...))
	}
}

// handOvers checks that the SMTP sink received message id once.
func (c *checker) handOvers(id string) {
	switch ts := c.s.sink.handOvers(id); {
	case len(ts) == 0:
		c.r.NotHandedOver++
		c.example("never handed over: %s", id)
	case len(ts) == 2 && c.killedDuring(ts[0]):
		c.r.CrashWindowRepeats++
	case len(ts) > 1:
		c.r.DoubleHandOvers++
		c.example("double hand-over: %s received %d times, at %.1f s and %.1f s", id, len(ts),
			ts[0].Sub(c.start).Seconds(), ts[1].Sub(c.start).Seconds())
	}
}

// postbacks checks a message's postbacks and final status (as the API answered
// it): every expected postback delivered, in order, none other; and it notes
// their delays.
func (c *checker) postbacks(lv *life, final string) {
	id, want := lv.dispatchID, lv.expected()
	var missing []string
	for _, st := range want {
		at, ok := c.s.rec.deliveredAt(id, st)
		if !ok {
			missing = append(missing, st)
			continue
		}
		if ev, ok := lv.eventAt[st]; ok {
			d := at.Sub(ev)
			c.delays = append(c.delays, d)
			if d > c.r.MaxDelay {
				c.r.MaxDelay, c.r.Slowest = d, id+" "+st
			}
		}
	}
	if len(missing) > 0 {
		c.r.Lost++
		c.example("lost: %s never got %v", id, missing)
	}
	got := statuses(c.s.rec.received(id))
	if !inOrder(got) {
		c.r.OutOfOrder++
		c.example("out of order: %s got %v, want %v", id, got, want)
	}
	if final != lv.outcome || !subset(got, want) {
		c.r.Wrong++
		c.example("wrong: %s is %q with postbacks %v, want %q with %v", id, final, got, lv.outcome, want)
	}
}

// finalStatuses reads every accepted message's status from the API
// (GET /v1/messages/{id}), Concurrency at a time; a message that cannot be read
// has status "GET failed: …".
func (s *stage) finalStatuses(ctx context.Context, api *apiClient, lives []*life) map[string]string {
	var (
		mu  sync.Mutex
		out = map[string]string{}
		wg  sync.WaitGroup
		sem = make(chan struct{}, s.o.Concurrency)
	)
	for _, lv := range lives {
		if lv.dispatchID == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			var st struct {
				Status string `json:"status"`
			}
			status := ""
			if err := api.call(ctx, "GET", "/v1/messages/"+id, nil, "", &st); err != nil {
				status = "GET failed: " + err.Error()
			} else {
				status = st.Status
			}
			mu.Lock()
			out[id] = status
			mu.Unlock()
		}(lv.dispatchID)
	}
	wg.Wait()
	return out
}

// inOrder reports whether the statuses rise strictly: no status after a higher
// one, none twice.
func inOrder(got []string) bool {
	for i := 1; i < len(got); i++ {
		if rank[got[i]] <= rank[got[i-1]] {
			return false
		}
	}
	return true
}

func statuses(as []arrival) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.status
	}
	return out
}

// subset reports whether every status of got is in want.
func subset(got, want []string) bool {
	for _, s := range got {
		if !slices.Contains(want, s) {
			return false
		}
	}
	return true
}
