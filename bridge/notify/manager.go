// Package notify turns Microsoft Graph change notifications into wake-ups
// for the channel runners: it keeps one subscription per channel on the
// channel's folder (created, renewed before expiry, recreated when Graph
// removed it) and serves the notification URL Graph posts to.
//
// A notification only wakes a runner for an immediate delta round; the
// delta cursor stays the single source of truth. A notification that never
// arrives (lost in transit, endpoint down for longer than Graph's 4 hours of
// resends, subscription gone) is therefore detected by nothing here: the
// runner's regular poll finds the mail, one poll interval later. "missed"
// and "subscriptionRemoved" lifecycle notifications, and every (re)created
// subscription, wake the runner at once for that catch-up round.
//
// Microsoft allows delegated subscriptions only on the signed-in user's own
// mailbox (GDC api-reference/includes/outlook-subscription-notes.md); a
// shared-mailbox channel is never subscribed and stays on (adaptive) polling,
// see PollPolicy.
//
// Lifecycle: NewManager → Add channels → mount Handler on the public
// listener → Run(ctx) → Close(ctx). Every time comes from Options.Now.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
)

// Path is where Handler expects to be mounted on the public listener; the
// notification and lifecycle URLs are both public_url + Path (Graph allows
// them to be the same: GDC concepts/change-notifications-lifecycle-events.md).
const Path = "/graph/notifications"

// Defaults. DefaultLifetime is 4,230 minutes, the maximum for Outlook
// messages in the older Graph docs and below the current 10,080, so Graph
// accepts it under either reading (GDC resources/subscription.md).
const (
	DefaultLifetime   = 4230 * time.Minute
	DefaultMinBackoff = time.Minute
	DefaultMaxBackoff = time.Hour
	DefaultMaxBody    = 1 << 20
)

// Reason says why a channel is woken.
type Reason string

const (
	// ReasonNotification: Graph notified new mail in the folder.
	ReasonNotification Reason = "notification"
	// ReasonMissed: Graph says notifications were missed; catch up.
	ReasonMissed Reason = "missed"
	// ReasonSubscribed: a subscription was (re)created; anything that
	// arrived while there was none is found by this round.
	ReasonSubscribed Reason = "subscribed"
)

// Graph is what the manager needs of a mailbox client; *graph.MailboxClient
// implements it.
type Graph interface {
	SubscriptionsSupported() bool
	CreateSubscription(ctx context.Context, req graph.SubscriptionRequest) (graph.Subscription, error)
	RenewSubscription(ctx context.Context, id string, expiration time.Time) (graph.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
	ListSubscriptions(ctx context.Context) ([]graph.Subscription, error)
	SubscriptionResource(folderID string) string
}

// Channel is one channel to subscribe for.
type Channel struct {
	Name     string
	Graph    Graph
	FolderID string // the resolved folder id (the runner's cached one)
}

// Options configure a Manager. PublicURL and Wake are required.
type Options struct {
	// PublicURL is the daemon's https address (config public_url); Graph
	// posts to PublicURL + Path.
	PublicURL string
	// Wake is called (from its own goroutine, never with a lock held) when
	// a channel should run a delta round now. It must not block for long:
	// a non-blocking send on a 1-buffered channel is the intended shape.
	Wake func(channel string, why Reason)
	// Now is the clock for expiry, renewal and backoff. Default time.Now.
	Now func() time.Time
	// After waits on the same clock (Run's timer). Default time.After.
	After func(time.Duration) <-chan time.Time
	// Lifetime is the requested subscription lifetime; RenewBefore the
	// margin before expiry at which it is renewed (default Lifetime/2).
	Lifetime, RenewBefore time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed create or
	// renew (doubling from MinBackoff).
	MinBackoff, MaxBackoff time.Duration
	// MaxBody caps a notification request body (default 1 MiB): larger
	// ones answer 413.
	MaxBody int64
	// Logger; default slog.Default(). No clientState or token is logged.
	Logger *slog.Logger
	// OnEvent, if set, hears what the manager did, for tests and metrics:
	// "created", "renewed", "recreate", "unsupported", "failed",
	// "notification", "ignored", "lifecycle:<event>", "wake" (just before
	// each call of Wake).
	OnEvent func(channel, event string)
}

// Manager keeps the channels' subscriptions and serves notifications.
// Safe for concurrent use.
type Manager struct {
	opts Options
	url  string
	log  *slog.Logger
	kick chan struct{}

	mu       sync.Mutex
	channels map[string]*channelState
	bySub    map[string]*channelState // subscription id → channel
	counts   map[string]*counters     // by channel name, for Status
	closed   bool
}

// channelState is one channel's subscription. Guarded by Manager.mu.
type channelState struct {
	ch          Channel
	subID       string
	clientState string
	expires     time.Time
	renewNow    bool // reauthorizationRequired: renew at the next tick
	unsupported bool
	swept       bool // stale subscriptions of an earlier run were deleted
	failures    int
	retryAt     time.Time
}

// NewManager checks the options; nothing runs until Run or Tick.
func NewManager(opts Options) (*Manager, error) {
	u, err := url.Parse(strings.TrimRight(opts.PublicURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("notify: public_url %q is not an absolute http(s) URL: set public_url to the daemon's https address", opts.PublicURL)
	}
	if opts.Wake == nil {
		return nil, errors.New("notify: Options.Wake is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = DefaultLifetime
	}
	if opts.RenewBefore <= 0 || opts.RenewBefore >= opts.Lifetime {
		opts.RenewBefore = opts.Lifetime / 2
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Manager{
		opts: opts, url: u.String() + Path, log: opts.Logger.With(slog.String("component", "notify")),
		kick: make(chan struct{}, 1), channels: map[string]*channelState{}, bySub: map[string]*channelState{},
		counts: map[string]*counters{},
	}
	wake := opts.Wake
	m.opts.Wake = func(channel string, why Reason) {
		m.event(channel, "wake")
		wake(channel, why)
	}
	return m, nil
}

// NotificationURL is the URL given to Graph.
func (m *Manager) NotificationURL() string { return m.url }

// Add registers a channel (or replaces it, e.g. after its folder id
// changed: the old subscription is forgotten and left to expire). Its
// subscription is made at the next tick.
func (m *Manager) Add(ch Channel) {
	m.mu.Lock()
	if old := m.channels[ch.Name]; old != nil && old.subID != "" {
		delete(m.bySub, old.subID)
	}
	m.channels[ch.Name] = &channelState{ch: ch}
	m.mu.Unlock()
	m.poke()
}

// Remove forgets a channel and deletes its subscription.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	cs := m.channels[name]
	delete(m.channels, name)
	var id string
	if cs != nil {
		id = cs.subID
		delete(m.bySub, id)
	}
	m.mu.Unlock()
	if id == "" {
		return nil
	}
	return cs.ch.Graph.DeleteSubscription(ctx, id)
}

// Subscribed reports whether a channel has a live subscription: the
// runner then needs polling only as the safety net.
func (m *Manager) Subscribed(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.channels[name]
	return cs != nil && cs.subID != "" && m.opts.Now().Before(cs.expires)
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) event(channel, ev string) {
	m.count(channel, ev)
	if m.opts.OnEvent != nil {
		m.opts.OnEvent(channel, ev)
	}
}

// Run keeps the subscriptions until ctx ends: a tick whenever one is due
// (renewal, retry) or something changed (Add, a lifecycle notification).
func (m *Manager) Run(ctx context.Context) error {
	for {
		next := m.Tick(ctx)
		wait := next.Sub(m.opts.Now())
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = m.opts.After(max(wait, 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-timer:
		}
	}
}

// Tick does what is due now for every channel — create, renew, recreate —
// and returns when the next thing falls due (zero: nothing scheduled).
// Run calls it; tests call it directly on their clock.
func (m *Manager) Tick(ctx context.Context) time.Time {
	m.mu.Lock()
	names := make([]string, 0, len(m.channels))
	for n := range m.channels {
		names = append(names, n)
	}
	m.mu.Unlock()
	sort.Strings(names)
	var next time.Time
	for _, n := range names {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if due := m.ensure(ctx, n); !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next
}

// Ensure makes sure one channel has a subscription that is not due for
// renewal, creating or renewing it now if needed.
func (m *Manager) Ensure(ctx context.Context, name string) error {
	m.ensure(ctx, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.channels[name]
	switch {
	case cs == nil:
		return fmt.Errorf("notify: no channel %q", name)
	case cs.unsupported:
		return fmt.Errorf("notify: channel %q: %w", name, graph.ErrSubscriptionsUnsupported)
	case cs.subID == "":
		return fmt.Errorf("notify: channel %q has no subscription (retry at %s)", name, cs.retryAt.Format(time.RFC3339))
	}
	return nil
}

// ensure works on one channel and returns when it next needs attention.
func (m *Manager) ensure(ctx context.Context, name string) time.Time {
	now := m.opts.Now()
	m.mu.Lock()
	cs := m.channels[name]
	if cs == nil || cs.unsupported || m.closed {
		m.mu.Unlock()
		return time.Time{}
	}
	if !cs.retryAt.IsZero() && now.Before(cs.retryAt) {
		m.mu.Unlock()
		return cs.retryAt
	}
	if !cs.ch.Graph.SubscriptionsSupported() {
		cs.unsupported = true
		m.mu.Unlock()
		m.log.Info("channel mailbox cannot have change notifications with delegated permissions; it is polled",
			slog.String("channel", name))
		m.event(name, "unsupported")
		return time.Time{}
	}
	id, expires, renew := cs.subID, cs.expires, cs.renewNow
	ch := cs.ch
	m.mu.Unlock()

	if id != "" && now.Before(expires) && !renew && expires.Sub(now) > m.opts.RenewBefore {
		return expires.Add(-m.opts.RenewBefore)
	}
	exp := now.Add(m.opts.Lifetime)
	if id != "" && now.Before(expires) {
		sub, err := ch.Graph.RenewSubscription(ctx, id, exp)
		if err == nil {
			m.mu.Lock()
			if cs.subID == id {
				cs.expires, cs.renewNow, cs.failures, cs.retryAt = sub.ExpirationDateTime, false, 0, time.Time{}
			}
			m.mu.Unlock()
			m.event(name, "renewed")
			return sub.ExpirationDateTime.Add(-m.opts.RenewBefore)
		}
		if !errors.Is(err, graph.ErrSubscriptionNotFound) {
			return m.failed(name, cs, "renew", err)
		}
		m.log.Info("subscription is gone, creating a new one", slog.String("channel", name))
		m.event(name, "recreate")
	}
	return m.create(ctx, name, cs, ch, exp)
}

// create replaces the channel's subscription (none, an expired one, or one
// Graph no longer has) with a new one expiring at exp, and returns when the
// channel next needs attention.
func (m *Manager) create(ctx context.Context, name string, cs *channelState, ch Channel, exp time.Time) time.Time {
	// No subscription, an expired one, or one Graph no longer has.
	m.mu.Lock()
	if cs.subID != "" {
		delete(m.bySub, cs.subID)
		cs.subID = ""
	}
	m.mu.Unlock()
	m.sweep(ctx, name, cs)
	state, err := newClientState()
	if err != nil {
		return m.failed(name, cs, "create", err)
	}
	sub, err := ch.Graph.CreateSubscription(ctx, graph.SubscriptionRequest{
		FolderID: ch.FolderID, NotificationURL: m.url, LifecycleNotificationURL: m.url,
		ClientState: state, Expiration: exp,
	})
	if errors.Is(err, graph.ErrSubscriptionsUnsupported) {
		m.mu.Lock()
		cs.unsupported = true
		m.mu.Unlock()
		m.event(name, "unsupported")
		return time.Time{}
	}
	if err != nil {
		return m.failed(name, cs, "create", err)
	}
	m.mu.Lock()
	if m.channels[name] != cs || m.closed {
		// Removed (or replaced) while Graph answered: do not keep it.
		m.mu.Unlock()
		ch.Graph.DeleteSubscription(ctx, sub.ID)
		return time.Time{}
	}
	cs.subID, cs.clientState, cs.expires = sub.ID, state, sub.ExpirationDateTime
	cs.renewNow, cs.failures, cs.retryAt = false, 0, time.Time{}
	m.bySub[sub.ID] = cs
	m.mu.Unlock()
	m.log.Info("change notifications on", slog.String("channel", name),
		slog.String("subscription", sub.ID), slog.Time("expires", sub.ExpirationDateTime))
	m.event(name, "created")
	// Mail that arrived while there was no subscription has no
	// notification coming: a round now finds it.
	go m.opts.Wake(name, ReasonSubscribed)
	return sub.ExpirationDateTime.Add(-m.opts.RenewBefore)
}

// sweep deletes, once per channel, the subscriptions an earlier run of the
// daemon left on this channel's folder and URL: their clientState is lost
// with that run, so their notifications would only be ignored until they
// expire (and each counts against Graph's per-mailbox limit). A failure is
// logged and tried again before the next create.
func (m *Manager) sweep(ctx context.Context, name string, cs *channelState) {
	m.mu.Lock()
	done, ch := cs.swept, cs.ch
	m.mu.Unlock()
	if done {
		return
	}
	subs, err := ch.Graph.ListSubscriptions(ctx)
	if err != nil {
		m.log.Info("could not list earlier subscriptions", slog.String("channel", name), slog.String("err", err.Error()))
		return
	}
	resource := ch.Graph.SubscriptionResource(ch.FolderID)
	for _, s := range subs {
		m.mu.Lock()
		_, ours := m.bySub[s.ID]
		m.mu.Unlock()
		if ours || !strings.EqualFold(s.NotificationURL, m.url) || !strings.EqualFold(strings.TrimPrefix(s.Resource, "/"), resource) {
			continue
		}
		if err := ch.Graph.DeleteSubscription(ctx, s.ID); err != nil {
			m.log.Info("could not delete an earlier subscription", slog.String("channel", name), slog.String("subscription", s.ID), slog.String("err", err.Error()))
			return
		}
		m.event(name, "stale-deleted")
	}
	m.mu.Lock()
	cs.swept = true
	m.mu.Unlock()
}

// failed schedules a retry with doubling backoff.
func (m *Manager) failed(name string, cs *channelState, op string, err error) time.Time {
	m.mu.Lock()
	cs.failures++
	wait := m.opts.MinBackoff << min(cs.failures-1, 20)
	wait = min(wait, m.opts.MaxBackoff)
	cs.retryAt = m.opts.Now().Add(wait)
	at := cs.retryAt
	m.mu.Unlock()
	m.log.Warn("change notification subscription failed; polling continues", slog.String("channel", name),
		slog.String("op", op), slog.Duration("retry_in", wait), slog.String("err", err.Error()))
	m.event(name, "failed")
	return at
}

// newClientState is 32 random bytes, base64url: 43 characters, under
// Graph's 128.
func newClientState() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Close stops the manager and deletes the subscriptions (best effort,
// bounded by ctx: one left behind expires by itself). Idempotent.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	type del struct {
		g  Graph
		id string
	}
	var dels []del
	for _, cs := range m.channels {
		if cs.subID != "" {
			dels = append(dels, del{cs.ch.Graph, cs.subID})
		}
	}
	m.bySub = map[string]*channelState{}
	m.mu.Unlock()
	var errs []error
	for _, d := range dels {
		if err := d.g.DeleteSubscription(ctx, d.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
