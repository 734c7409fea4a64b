package deliver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// fakeClock is the dispatcher's clock in tests: time moves only when the
// test fires a timer, which the harness does only when every lane of the
// dispatcher waits on one (see lanes).
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[<-chan time.Time]*waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(start time.Time) *fakeClock {
	return &fakeClock{now: start, waiters: map[<-chan time.Time]*waiter{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &waiter{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.waiters[w.ch] = w
	return w.ch
}

// waiter returns the timer behind a channel After returned.
func (c *fakeClock) waiter(ch <-chan time.Time) *waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiters[ch]
}

// fire moves the clock to w's time (never backwards) and fires w.
func (c *fakeClock) fire(w *waiter) {
	c.mu.Lock()
	if w.at.After(c.now) {
		c.now = w.at
	}
	now := c.now
	delete(c.waiters, w.ch)
	c.mu.Unlock()
	w.ch <- now
}

// lanes follows the dispatcher's lane test signal: which lanes run, which
// wait in their select, on which timer and with how many POSTs in flight.
// Every change is announced on changed, so the test re-checks what it
// waits for as soon as anything happened, and advances the fake clock
// only when the whole dispatcher waits for it.
type lanes struct {
	mu      sync.Mutex
	state   map[string]deliver.LaneSignal
	changed chan struct{}
}

func newLanes() *lanes {
	return &lanes{state: map[string]deliver.LaneSignal{}, changed: make(chan struct{}, 1)}
}

func (l *lanes) signal(endpoint string, s deliver.LaneSignal) {
	l.mu.Lock()
	if s.Stopped {
		delete(l.state, endpoint)
	} else {
		l.state[endpoint] = s
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// next returns the earliest timer to fire when every lane is parked with
// no POST in flight, and marks its lane busy; nil while anything runs.
func (l *lanes) next(c *fakeClock) *waiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first *waiter
	var firstLane string
	for name, s := range l.state {
		if !s.Parked || s.Inflight > 0 {
			return nil
		}
		if s.Wait == nil {
			continue
		}
		if w := c.waiter(s.Wait); w != nil && (first == nil || w.at.Before(first.at)) {
			first, firstLane = w, name
		}
	}
	if first != nil {
		l.state[firstLane] = deliver.LaneSignal{} // it leaves its select
	}
	return first
}

// received is one request the test receiver saw.
type received struct {
	ID      string
	Attempt int
	At      time.Time // fake time
	Status  int
	Body    []byte
	Header  http.Header
}

// harness is a file-backed outbox, a loopback receiver and a dispatcher on
// a fake clock.
type harness struct {
	t     *testing.T
	db    *store.DB
	q     *store.Outbox
	clock *fakeClock
	srv   *httptest.Server
	d     *deliver.Dispatcher
	lanes *lanes
	ep    deliver.Endpoint

	mu   sync.Mutex
	reqs []received
	// respond chooses the answer to the n-th request (0-based) for id and
	// its attempt number; nil answers 204.
	respond func(n int, id string, attempt int) (int, http.Header)
}

func newHarness(t *testing.T, ep deliver.Endpoint) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, clock: newFakeClock(deliver.Epoch(t))}
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Now = h.clock.Now
	h.db, h.q = db, db.Outbox()
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	if ep.Name == "" {
		ep.Name = "helpdesk"
	}
	if ep.URL == "" {
		ep.URL = h.srv.URL + "/hooks"
	}
	if ep.Secrets == nil {
		ep.Secrets = []string{testSecret}
	}
	h.ep = ep
	return h
}

func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := received{ID: r.Header.Get(webhooks.HeaderID), Body: body, Header: r.Header.Clone(), At: h.clock.Now()}
	rec.Attempt, _ = strconv.Atoi(r.Header.Get(deliver.AttemptHeader))
	if err := webhooks.Verify(r.Header, body, []string{testSecret}, webhooks.WithNow(h.clock.Now)); err != nil {
		rec.Status = http.StatusUnauthorized
	} else {
		h.mu.Lock()
		n := len(h.reqs)
		respond := h.respond
		h.mu.Unlock()
		rec.Status = http.StatusNoContent
		if respond != nil {
			var hdr http.Header
			rec.Status, hdr = respond(n, rec.ID, rec.Attempt)
			for k, v := range hdr {
				w.Header()[k] = v
			}
		}
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, rec)
	h.mu.Unlock()
	w.WriteHeader(rec.Status)
	if rec.Status >= 400 {
		io.WriteString(w, http.StatusText(rec.Status)+" from the test receiver")
	}
}

func (h *harness) requests() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.reqs...)
}

func (h *harness) setRespond(f func(n int, id string, attempt int) (int, http.Header)) {
	h.mu.Lock()
	h.respond = f
	h.mu.Unlock()
}

// enqueue adds a mail event with the given id and channel.
func (h *harness) enqueue(id, channel string) {
	h.t.Helper()
	ev, err := webhooks.NewEvent(webhooks.TypeMailReceived, h.clock.Now(), webhooks.MailData{
		ID: id, Version: webhooks.Version, Channel: channel, Mailbox: webhooks.Mailbox{Type: "shared", Address: "support@contoso.com"},
		Ticket:  webhooks.Ticket{Title: "Subject " + id, State: "new", Customer: webhooks.Address{Name: "Alice", Address: "alice@example.org"}},
		Article: webhooks.Article{Subject: "Subject " + id, From: webhooks.Address{Address: "alice@example.org"}, BodyText: "hello"},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := json.Marshal(ev)
	if err := h.db.Enqueue(context.Background(), store.OutboxEvent{EventID: id, Endpoint: h.ep.Name, Channel: channel, Type: ev.Type, Body: body}); err != nil {
		h.t.Fatal(err)
	}
	if h.d != nil {
		h.d.Wake()
	}
}

// start runs the dispatcher until the test ends.
func (h *harness) start(opts deliver.Options) {
	h.t.Helper()
	opts.Now, opts.After = h.clock.Now, h.clock.After
	d, err := deliver.New(h.q, []deliver.Endpoint{h.ep}, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.d, h.lanes = d, newLanes()
	deliver.SetLaneSignal(d, h.lanes.signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// runUntil re-checks cond after every change of a lane's state (a row
// taken, a POST answered, a lane gone idle) and, whenever every lane waits
// on a timer with nothing in flight, fires the earliest timer, until cond
// holds. The 20 s deadline is only a safety net: the tests take well under
// a second.
func (h *harness) runUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !cond() {
		if w := h.lanes.next(h.clock); w != nil {
			h.clock.fire(w)
			continue
		}
		select {
		case <-h.lanes.changed:
		case <-deadline.C:
			h.t.Fatalf("timed out waiting for %s; requests: %d, rows: %+v", what, len(h.requests()), h.rows())
		}
	}
}

// rows returns the outbox rows by event id.
func (h *harness) rows() map[string]deliver.Row {
	h.t.Helper()
	rows, err := h.q.List(context.Background(), deliver.Filter{})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]deliver.Row{}
	for _, r := range rows {
		out[r.EventID] = r
	}
	return out
}

func (h *harness) allIn(state deliver.State, ids ...string) func() bool {
	return func() bool {
		rows := h.rows()
		for _, id := range ids {
			if rows[id].State != state {
				return false
			}
		}
		return true
	}
}

func within(d, want time.Duration, jitter float64) bool {
	return float64(d) >= float64(want)*(1-jitter)-float64(time.Second) && float64(d) <= float64(want)*(1+jitter)+float64(time.Second)
}
