package m365sim

// Delivery of change and lifecycle notifications to subscribers.
//
// Sources (GDC = microsoftgraph/microsoft-graph-docs-contrib):
//   - concepts/change-notifications-delivery-webhooks.md: a message that
//     arrives in the subscribed folder is POSTed to notificationUrl as
//     {"value":[{id, subscriptionId, subscriptionExpirationDateTime,
//     clientState, changeType, resource, tenantId, resourceData{…}}]};
//     several notifications may share one POST. Without a 2xx "within 3
//     seconds" Graph "tries to resend the change notification multiple
//     times, for up to 4 hours", then discards it; "Notifications are
//     published using an HTTP client with a 3-second timeout".
//   - concepts/change-notifications-lifecycle-events.md: lifecycle
//     notifications go to lifecycleNotificationUrl as {"value":[{
//     subscriptionId, subscriptionExpirationDateTime, tenantId, clientState,
//     lifecycleEvent}]} with lifecycleEvent reauthorizationRequired,
//     subscriptionRemoved or missed; they reference no resource.
//
// Where the docs give no figure the sim chooses and says so: the resend
// schedule (1, 2, 4 … minutes, at most 1 hour apart, on the sim clock), and
// a "missed" lifecycle notification once a change notification is discarded
// after 4 hours (the docs say missed means notifications were not delivered).
//
// Retries fall due on the sim clock, so they go out when something moves
// it on or looks at it: Advance, any Graph mail request, or
// FlushNotifications. The first attempt of a new notification goes out at
// once, from a goroutine (the mailbox change never waits for the endpoint).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// notifyTimeout is Graph's publishing client timeout (3 s, see above).
const notifyTimeout = 3 * time.Second

// notifyRetryWindow is how long Graph keeps resending ("up to 4 hours").
const notifyRetryWindow = 4 * time.Hour

// Lifecycle events (GDC concepts/change-notifications-lifecycle-events.md).
const (
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	LifecycleSubscriptionRemoved     = "subscriptionRemoved"
	LifecycleMissed                  = "missed"
)

// NotifyAttempt is one request the sim made to a subscriber, for
// Options.OnNotify: Kind is "validation", "change" or "lifecycle"; Status
// is the HTTP status (0 on a transport error, Err set); Dropped means a
// DropNotifications fault swallowed a change notification and nothing was
// sent. Lifecycle is the lifecycle event, Count the notifications carried.
type NotifyAttempt struct {
	Kind            string
	URL             string
	SubscriptionIDs []string
	Lifecycle       string
	Count           int
	Status          int
	Err             error
	Dropped         bool
}

// pendingNotification is one notification waiting for (re)delivery.
type pendingNotification struct {
	url       string
	subID     string
	item      jobj
	kind      string // "change" or "lifecycle"
	lifecycle string
	// lifecycleURL and the fields after it let a discarded change
	// notification turn into a "missed" lifecycle notification.
	lifecycleURL string
	clientState  string
	tenantID     string
	expires      time.Time
	first, due   time.Time
	attempt      int
	dropped      bool
}

// notifyState is the Graph side's notification queue. Guarded by Sim.mu.
type notifyState struct {
	queue    []*pendingNotification
	flushing bool // a flush goroutine is running
	drop     int  // the next drop change notifications are lost
}

func (s *Sim) notifyClient() *http.Client {
	if s.opts.NotifyHTTPClient != nil {
		return s.opts.NotifyHTTPClient
	}
	return http.DefaultClient
}

func (s *Sim) observeNotify(a NotifyAttempt) {
	if s.opts.OnNotify != nil {
		s.opts.OnNotify(a)
	}
}

// messageArrivedLocked queues a "created" notification for every
// subscription watching the folder m is now in (new mail, a move or a copy
// into it: each is a new item there, as Exchange reports it).
func (s *Sim) messageArrivedLocked(d *mailData, m *message) {
	if len(s.graph.subs) == 0 {
		return
	}
	s.expireSubscriptionsLocked()
	now := s.now()
	ids := make([]string, 0, len(s.graph.subs))
	for id := range s.graph.subs {
		ids = append(ids, id)
	}
	sort.Strings(ids) // a seeded run sends in a stable order
	for _, id := range ids {
		sub := s.graph.subs[id]
		if sub.mailboxID != d.mb.ID || !sub.changeTypes["created"] || (sub.folderID != "" && sub.folderID != m.folderID) {
			continue
		}
		mid := m.restID
		if sub.immutable {
			mid = m.immutableID
		}
		res := "Users/" + d.mb.ID + "/Messages/" + mid
		item := jobj{
			{"id", randomToken(8)},
			{"subscriptionId", sub.id},
			{"subscriptionExpirationDateTime", sub.expires.UTC().Format("2006-01-02T15:04:05.0000000Z")},
			{"clientState", sub.clientState},
			{"changeType", "created"},
			{"resource", res},
			{"tenantId", sub.tenantID},
			{"resourceData", jobj{
				{"@odata.type", "#Microsoft.Graph.Message"},
				{"@odata.id", res},
				{"@odata.etag", `W/"` + m.changeKey() + `"`},
				{"id", mid},
			}},
		}
		p := &pendingNotification{
			url: sub.notifyURL, subID: sub.id, item: item, kind: "change",
			lifecycleURL: sub.lifecycleURL, clientState: sub.clientState, tenantID: sub.tenantID, expires: sub.expires,
			first: now, due: now,
		}
		if s.graph.notify.drop > 0 {
			s.graph.notify.drop--
			p.dropped = true
		}
		s.graph.notify.queue = append(s.graph.notify.queue, p)
	}
	s.kickNotificationsLocked()
}

// lifecycleItem is the documented lifecycle payload item.
func lifecycleItem(subID, event, clientState, tenantID string, expires time.Time) jobj {
	return jobj{
		{"subscriptionId", subID},
		{"subscriptionExpirationDateTime", expires.UTC().Format("2006-01-02T15:04:05.0000000Z")},
		{"tenantId", tenantID},
		{"clientState", clientState},
		{"lifecycleEvent", event},
	}
}

// SendLifecycleEvent makes Graph send a lifecycle notification for a
// subscription: reauthorizationRequired, subscriptionRemoved (the
// subscription is deleted, as Graph does when it removes one) or missed.
// The subscription must have a lifecycleNotificationUrl.
func (s *Sim) SendLifecycleEvent(subscriptionID, event string) error {
	switch event {
	case LifecycleReauthorizationRequired, LifecycleSubscriptionRemoved, LifecycleMissed:
	default:
		return fmt.Errorf("lifecycle event %q: want %s, %s or %s", event, LifecycleReauthorizationRequired, LifecycleSubscriptionRemoved, LifecycleMissed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireSubscriptionsLocked()
	sub := s.graph.subs[subscriptionID]
	if sub == nil {
		return fmt.Errorf("subscription %q: %w", subscriptionID, ErrNotFound)
	}
	if sub.lifecycleURL == "" {
		return fmt.Errorf("subscription %q has no lifecycleNotificationUrl", subscriptionID)
	}
	if event == LifecycleSubscriptionRemoved {
		delete(s.graph.subs, sub.id)
	}
	now := s.now()
	s.graph.notify.queue = append(s.graph.notify.queue, &pendingNotification{
		url: sub.lifecycleURL, subID: sub.id, kind: "lifecycle", lifecycle: event,
		item: lifecycleItem(sub.id, event, sub.clientState, sub.tenantID, sub.expires), first: now, due: now,
	})
	s.kickNotificationsLocked()
	return nil
}

// DropNotifications loses the next n change notifications: Graph never
// sends them and sends no "missed" either (a notification lost in
// transit). Nothing but the next delta round can find the mail.
func (s *Sim) DropNotifications(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graph.notify.drop = max(n, 0)
}

// FlushNotifications sends every notification whose (re)delivery is due on
// the sim clock.
func (s *Sim) FlushNotifications() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kickNotificationsLocked()
}

// PendingNotifications is how many notifications wait for (re)delivery.
func (s *Sim) PendingNotifications() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.graph.notify.queue)
}

// kickNotificationsLocked starts a flush goroutine if something is due and
// none runs.
func (s *Sim) kickNotificationsLocked() {
	if s.graph.notify.flushing || len(s.graph.notify.queue) == 0 {
		return
	}
	now := s.now()
	for _, p := range s.graph.notify.queue {
		if !p.due.After(now) {
			s.graph.notify.flushing = true
			go s.flushNotifications()
			return
		}
	}
}

// flushNotifications sends what is due, grouped per URL into one POST,
// until nothing is due.
func (s *Sim) flushNotifications() {
	for {
		s.mu.Lock()
		now := s.now()
		var due, later []*pendingNotification
		for _, p := range s.graph.notify.queue {
			if p.due.After(now) {
				later = append(later, p)
			} else {
				due = append(due, p)
			}
		}
		s.graph.notify.queue = later
		if len(due) == 0 {
			s.graph.notify.flushing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		var order []string
		groups := map[string][]*pendingNotification{}
		for _, p := range due {
			if p.dropped {
				s.observeNotify(NotifyAttempt{Kind: p.kind, URL: p.url, SubscriptionIDs: []string{p.subID}, Count: 1, Dropped: true})
				continue
			}
			key := p.kind + " " + p.url
			if _, ok := groups[key]; !ok {
				order = append(order, key)
			}
			groups[key] = append(groups[key], p)
		}
		for _, key := range order {
			s.deliver(groups[key])
		}
	}
}

// deliver POSTs one batch and reschedules it on failure.
func (s *Sim) deliver(batch []*pendingNotification) {
	items := make([]any, len(batch))
	var subIDs []string
	for i, p := range batch {
		items[i] = p.item
		subIDs = append(subIDs, p.subID)
	}
	body := marshalJSON(jobj{{"value", items}})
	status, err := s.postNotification(batch[0].url, body)
	// The attempt is reported once its resend (if any) is queued: a test
	// that moves the clock on as soon as it sees the attempt must find the
	// resend there to fall due.
	defer s.observeNotify(NotifyAttempt{Kind: batch[0].kind, URL: batch[0].url, SubscriptionIDs: subIDs, Lifecycle: batch[0].lifecycle, Count: len(batch), Status: status, Err: err})
	if err == nil && status/100 == 2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, p := range batch {
		p.attempt++
		if now.Sub(p.first) >= notifyRetryWindow {
			// Discarded after 4 hours; say so on the lifecycle URL.
			if p.kind == "change" && p.lifecycleURL != "" {
				s.graph.notify.queue = append(s.graph.notify.queue, &pendingNotification{
					url: p.lifecycleURL, subID: p.subID, kind: "lifecycle", lifecycle: LifecycleMissed,
					item: lifecycleItem(p.subID, LifecycleMissed, p.clientState, p.tenantID, p.expires), first: now, due: now,
				})
			}
			continue
		}
		p.due = now.Add(notifyBackoff(p.attempt))
		s.graph.notify.queue = append(s.graph.notify.queue, p)
	}
}

// notifyBackoff is the sim's resend schedule (not documented by Microsoft):
// 1, 2, 4 … minutes, at most an hour.
func notifyBackoff(attempt int) time.Duration {
	d := time.Minute << min(attempt-1, 6)
	return min(d, time.Hour)
}

func (s *Sim) postNotification(u string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.notifyClient().Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s: %w", notifyTimeout, err)
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
