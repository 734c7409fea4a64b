package graph

import (
	"context"
	"sync"
	"time"
)

// Graph's documented Outlook limit is 10,000 API requests per 10 minutes
// per app and mailbox, each request inside a $batch counted on its own
// (https://learn.microsoft.com/graph/throttling-limits, "Outlook service
// limits"). The client paces each mailbox below it instead of finding it
// with a 429: a large import is then as fast as the limit allows and
// causes no throttling. The margin leaves room for the app's other
// requests to the mailbox (replies, attachment links) and for the few
// requests that may pass together after a wait.
const (
	DefaultMailboxBudget = 9500
	mailboxBudgetSpan    = 10 * time.Minute
)

// paceWindow is a sliding window of the units (requests, $batch items)
// sent to one mailbox: at most limit in any span.
type paceWindow struct {
	mu    sync.Mutex
	limit int64
	span  time.Duration
	sent  []paceMark // oldest first
	total int64
}

type paceMark struct {
	at time.Time
	n  int64
}

// reserve takes n units at now if they fit and returns 0; otherwise it
// takes nothing and returns how long until they fit.
func (w *paceWindow) reserve(now time.Time, n int64) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	n = min(n, w.limit)
	if w.total+n <= w.limit {
		w.take(now, n)
		return 0
	}
	need, freed := w.total+n-w.limit, int64(0)
	for _, mk := range w.sent {
		if freed += mk.n; freed >= need {
			return max(mk.at.Add(w.span).Sub(now), time.Millisecond)
		}
	}
	return w.span
}

// force takes n units at now whether or not they fit: after one wait the
// request goes (a clock that did not move must not stall the client).
func (w *paceWindow) force(now time.Time, n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	w.take(now, min(n, w.limit))
}

func (w *paceWindow) take(now time.Time, n int64) {
	w.sent = append(w.sent, paceMark{now, n})
	w.total += n
}

func (w *paceWindow) expire(now time.Time) {
	i := 0
	for i < len(w.sent) && now.Sub(w.sent[i].at) >= w.span {
		w.total -= w.sent[i].n
		i++
	}
	if i > 0 {
		w.sent = append(w.sent[:0], w.sent[i:]...)
	}
}

// pace waits until n more units fit in the mailbox's budget and takes them.
func (m *MailboxClient) pace(ctx context.Context, n int64) error {
	c := m.c
	if d := m.window.reserve(c.Now(), n); d > 0 {
		m.log.Debug("pacing requests within the mailbox's Graph budget", "wait", d)
		if err := c.Sleep(ctx, d); err != nil {
			return err
		}
		m.window.force(c.Now(), n)
	}
	return nil
}

// paceWindow returns the shared request budget of a mailbox key.
func (c *Client) paceWindow(key string) *paceWindow {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	w := c.paces[key]
	if w == nil {
		w = &paceWindow{limit: int64(c.MailboxBudget), span: mailboxBudgetSpan}
		c.paces[key] = w
	}
	return w
}
