// Package deliver posts signed webhook events to the helpdesk's endpoints
// and keeps trying until each is acknowledged, refused for good or out of
// retries. A Dispatcher works over a Queue (the bridge's SQLite outbox, a
// durable store that survives a crash) with one lane per endpoint; the
// Sender signs each request (Standard Webhooks) and classifies the answer:
// 2xx acknowledges, a permanent 4xx rejects, the rest is retried on the
// endpoint's Schedule. RedactURL keeps secrets in URLs out of what it logs
// and stores.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/bridge/membudget"
)

// Options configures a Dispatcher. Zero fields take defaults.
type Options struct {
	Logger     *slog.Logger
	HTTPClient *http.Client
	// UserAgent, e.g. "m365bridge/1.2.3".
	UserAgent string
	// RetryMax: quick in-process retries per attempt (default 0: the
	// durable schedule alone decides).
	RetryMax int
	// RetryAfterCap bounds an honoured Retry-After (default 1 h).
	RetryAfterCap time.Duration
	// Now and After are the clock; tests inject a fake one so that no test
	// waits in real time. After must return a channel that receives once d
	// has passed on that clock.
	Now   func() time.Time
	After func(d time.Duration) <-chan time.Time
	// Jitter spreads a scheduled delay; default ±20% at random.
	Jitter func(time.Duration) time.Duration
	// PollInterval is the longest a lane sleeps without looking at the
	// queue (rows replayed by another process, endpoint state changed by
	// the CLI); default 30 s.
	PollInterval time.Duration
	// ShutdownGrace is how long Run lets in-flight POSTs finish after its
	// context ends before cancelling them; default 10 s.
	ShutdownGrace time.Duration
	// RetireInterval is how often delivered rows past their retention are
	// deleted; default 1 h.
	RetireInterval time.Duration
	// OnResult, when set, sees every attempt's result (metrics, tests).
	OnResult func(endpoint string, row Row, res Result)
	// Memory is the byte budget the bodies being delivered claim from (the
	// daemon's memory_budget_bytes, shared with the channel runners): a
	// lane waits for room before it reads a body, and a body larger than
	// the budget goes alone. nil: no limit.
	Memory *membudget.Budget
}

// Dispatcher delivers outbox rows to their endpoints: one lane per
// endpoint, Concurrency deliveries in flight per lane. Every attempt's
// count and next time are committed before its POST, so a crash loses no
// event and a retry reuses its id.
type Dispatcher struct {
	q      Queue
	opts   Options
	sender *Sender
	log    *slog.Logger

	mu      sync.Mutex
	eps     map[string]Endpoint
	lanes   map[string]*lane
	running bool
	runCtx  context.Context // lanes' parent while running
	postCtx context.Context // deliveries' context: outlives runCtx by the grace
	wg      sync.WaitGroup

	// signal, set only by tests (export_test.go) before Run, is told each
	// time a lane starts, parks on its select, leaves it or stops: the
	// test signal that lets a fake clock advance only when every lane
	// waits and no POST is in flight.
	signal       func(endpoint string, s laneSignal)
	lanesStarted uint64 // numbers lanes for signal
}

// laneSignal is one lane state change reported to Dispatcher.signal.
type laneSignal struct {
	Lane     uint64           // which lane: a re-added endpoint gets a new one
	Parked   bool             // waiting in its select
	Inflight int              // POSTs running when it parked
	Wait     <-chan time.Time // the timer it parked on; nil: none
	Stopped  bool             // the lane goroutine ended
}

type lane struct {
	mu     sync.Mutex
	ep     Endpoint
	wake   chan struct{}
	cancel context.CancelFunc
	signal func(laneSignal) // never nil
}

func (l *lane) endpoint() Endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ep
}

func (l *lane) poke() {
	l.signal(laneSignal{}) // about to leave its select, if parked
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// New returns a Dispatcher over q for eps. It starts nothing until Run.
func New(q Queue, eps []Endpoint, opts Options) (*Dispatcher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Jitter == nil {
		opts.Jitter = func(d time.Duration) time.Duration { return backoff.Spread(d, 0.2, nil) }
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.RetireInterval <= 0 {
		opts.RetireInterval = time.Hour
	}
	d := &Dispatcher{
		q:     q,
		opts:  opts,
		log:   opts.Logger.With("component", "dispatcher"),
		lanes: map[string]*lane{},
		sender: NewSender(SenderOptions{
			HTTPClient: opts.HTTPClient, Logger: opts.Logger, UserAgent: opts.UserAgent,
			RetryMax: opts.RetryMax, RetryAfterCap: opts.RetryAfterCap, Now: opts.Now,
		}),
	}
	if err := d.SetEndpoints(eps); err != nil {
		return nil, err
	}
	return d, nil
}

// SetEndpoints replaces the endpoint set (a configuration reload). Lanes
// of removed endpoints stop after their in-flight POSTs; their rows stay
// pending. It validates every endpoint first and changes nothing on error.
func (d *Dispatcher) SetEndpoints(eps []Endpoint) error {
	next := map[string]Endpoint{}
	var errs []error
	for _, ep := range eps {
		if err := ep.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := next[ep.Name]; dup {
			errs = append(errs, fmt.Errorf("webhook endpoint %q: defined twice", ep.Name))
		}
		next[ep.Name] = ep.WithDefaults()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set endpoints: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eps = next
	if !d.running {
		return nil
	}
	for name, l := range d.lanes {
		if ep, ok := next[name]; ok {
			l.mu.Lock()
			l.ep = ep
			l.mu.Unlock()
			l.poke()
		} else {
			l.cancel()
			delete(d.lanes, name)
		}
	}
	for name, ep := range next {
		if _, ok := d.lanes[name]; !ok {
			d.startLane(ep)
		}
	}
	return nil
}

// startLane runs ep's lane; d.mu is held.
func (d *Dispatcher) startLane(ep Endpoint) {
	ctx, cancel := context.WithCancel(d.runCtx)
	l := &lane{ep: ep, wake: make(chan struct{}, 1), cancel: cancel, signal: func(laneSignal) {}}
	if d.signal != nil {
		d.lanesStarted++
		id := d.lanesStarted
		l.signal = func(s laneSignal) { s.Lane = id; d.signal(ep.Name, s) }
	}
	d.lanes[ep.Name] = l
	l.signal(laneSignal{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer l.signal(laneSignal{Stopped: true})
		d.runLane(ctx, l)
	}()
}

// Run delivers until ctx ends, then lets in-flight POSTs finish for up to
// ShutdownGrace (cancelling them after that) and returns nil. Rows whose
// POST was cut off are retried at their committed next time.
func (d *Dispatcher) Run(ctx context.Context) error {
	postCtx, cancelPosts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPosts()
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("run dispatcher: already running")
	}
	d.running, d.runCtx, d.postCtx = true, ctx, postCtx
	for _, ep := range d.eps {
		d.startLane(ep)
	}
	d.mu.Unlock()

	<-ctx.Done()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	grace := time.NewTimer(d.opts.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		d.log.Warn("cancelling in-flight deliveries after the shutdown grace", "grace", d.opts.ShutdownGrace)
		cancelPosts()
		<-done
	}
	d.mu.Lock()
	d.running = false
	d.lanes = map[string]*lane{}
	d.mu.Unlock()
	return nil
}

// Wake makes every lane look at the queue now; call it after committing an
// enqueue (or a replay) so delivery starts at once.
func (d *Dispatcher) Wake() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lanes {
		l.poke()
	}
}

// Pause stops deliveries to endpoint (persisted) until Resume; rows stay
// pending and in-flight POSTs finish.
func (d *Dispatcher) Pause(ctx context.Context, endpoint, reason string) error {
	if reason == "" {
		reason = "paused by operator"
	}
	if err := d.q.SetEndpoint(ctx, endpoint, EndpointPaused, reason, d.opts.Now()); err != nil {
		return fmt.Errorf("pause endpoint %s: %w", endpoint, err)
	}
	d.log.Warn("webhook endpoint paused", "endpoint", endpoint, "reason", reason)
	d.Wake()
	return nil
}

// Resume re-activates a paused or disabled endpoint; its pending rows are
// delivered at once.
func (d *Dispatcher) Resume(ctx context.Context, endpoint string) error {
	if err := d.q.SetEndpoint(ctx, endpoint, EndpointActive, "resumed", d.opts.Now()); err != nil {
		return fmt.Errorf("resume endpoint %s: %w", endpoint, err)
	}
	d.log.Info("webhook endpoint resumed", "endpoint", endpoint)
	d.Wake()
	return nil
}

// laneDone reports a finished delivery to its lane.
type laneDone struct {
	seq  int64
	gone bool // the endpoint answered 410: re-read its state
}

// runLane is one endpoint's loop. Only this goroutine touches inflight.
func (d *Dispatcher) runLane(ctx context.Context, l *lane) {
	inflight := map[int64]bool{}
	done := make(chan laneDone)
	var posts sync.WaitGroup
	defer func() {
		// Drain finished deliveries until all in-flight POSTs are back.
		go func() { posts.Wait(); close(done) }()
		for range done {
		}
	}()
	var nextRetire time.Time
	var st EndpointStatus
	var stateRead time.Time
	stale := true // st must be re-read: at start, on a wake, a timer or a 410
	for {
		if ctx.Err() != nil {
			return
		}
		ep := l.endpoint()
		now := d.opts.Now()
		if !now.Before(nextRetire) {
			if n, err := d.q.Retire(ctx, ep.Name, now.Add(-ep.Retention)); err != nil {
				d.logErr(ctx, "retire delivered rows", err, "endpoint", ep.Name)
			} else if n > 0 {
				d.log.Info("retired delivered rows", "endpoint", ep.Name, "count", n)
			}
			nextRetire = now.Add(d.opts.RetireInterval)
		}
		var wait <-chan time.Time
		if stale || now.Sub(stateRead) >= d.opts.PollInterval { // the CLI may pause it during a long backlog
			prev := st.State
			next, err := d.q.Endpoint(ctx, ep.Name)
			if err != nil {
				d.logErr(ctx, "read endpoint state", err, "endpoint", ep.Name)
				next = EndpointStatus{State: "unknown"}
			} else if next.State != EndpointActive && next.State != prev {
				d.log.Warn("webhook endpoint not active: deliveries wait", "endpoint", ep.Name, "state", next.State, "reason", next.Reason)
			}
			st, stale, stateRead = next, false, now
		}
		if st.State == EndpointActive {
			wait = d.fill(ctx, l, ep, inflight, done, &posts)
		} else {
			wait = d.opts.After(d.opts.PollInterval)
		}
		l.signal(laneSignal{Parked: true, Inflight: len(inflight), Wait: wait})
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			stale = true
		case r := <-done:
			delete(inflight, r.seq)
			stale = stale || r.gone
		case <-wait:
			stale = true
		}
		l.signal(laneSignal{})
	}
}

// fill starts due deliveries up to the lane's concurrency and returns the
// timer to sleep on, nil when a finishing delivery will wake the lane.
func (d *Dispatcher) fill(ctx context.Context, l *lane, ep Endpoint, inflight map[int64]bool, done chan laneDone, posts *sync.WaitGroup) <-chan time.Time {
	ordered := ep.Concurrency == 1
	if free := ep.Concurrency - len(inflight); free > 0 {
		skip := make([]int64, 0, len(inflight))
		for seq := range inflight {
			skip = append(skip, seq)
		}
		rows, err := d.q.DueMeta(ctx, ep.Name, d.opts.Now(), free, ordered, skip)
		if err != nil {
			d.logErr(ctx, "read due rows", err, "endpoint", ep.Name)
			return d.opts.After(d.opts.PollInterval)
		}
		for _, row := range rows {
			if inflight[row.Seq] || len(inflight) >= ep.Concurrency {
				continue
			}
			// The body's bytes come out of the byte budget the channel
			// runners share before it is read, and go back when the
			// attempt ends (before done: the lane may be waiting here).
			claim, err := d.opts.Memory.Claim(ctx, row.BodySize)
			if err != nil {
				return nil // shutting down
			}
			inflight[row.Seq] = true
			posts.Add(1)
			go func() {
				defer posts.Done()
				gone := d.deliver(ep, row)
				claim.Release()
				done <- laneDone{seq: row.Seq, gone: gone}
			}()
		}
	}
	if len(inflight) >= ep.Concurrency {
		return nil
	}
	next, ok, err := d.q.NextDue(ctx, ep.Name, ordered)
	if err != nil {
		d.logErr(ctx, "read next due time", err, "endpoint", ep.Name)
		return d.opts.After(d.opts.PollInterval)
	}
	delay := d.opts.PollInterval
	if ok {
		delay = min(next.Sub(d.opts.Now()), delay)
	}
	if delay <= 0 {
		if len(inflight) > 0 {
			return nil // what is due is in flight
		}
		delay = 10 * time.Millisecond // due but not yet visible: look again shortly
	}
	return d.opts.After(delay)
}
