package notify

import (
	"strings"
	"time"
)

// Channel subscription states, as ChannelStatus reports them.
const (
	// StateSubscribed: a live subscription; polling is the safety net.
	StateSubscribed = "subscribed"
	// StatePending: registered, the subscription is being made.
	StatePending = "pending"
	// StateRetrying: creating or renewing failed; retried with backoff
	// while the channel polls.
	StateRetrying = "retrying"
	// StateUnsupported: Graph does not allow a delegated subscription on
	// this mailbox (a shared mailbox); the channel polls adaptively.
	StateUnsupported = "unsupported"
)

// ChannelStatus is one channel's change-notification state for the status
// page, the admin API and the metrics. The counters run since the daemon
// started and survive a re-Add (a re-resolved folder).
type ChannelStatus struct {
	State string `json:"state"`
	// Expires is the live subscription's expiry (StateSubscribed only).
	Expires time.Time `json:"expires,omitzero"`
	// RetryAt is when a failed create or renew is tried again
	// (StateRetrying only).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Notifications counts change notifications accepted for the channel
	// (clientState matched); Lifecycle the lifecycle notifications;
	// Wakes the wake-ups handed to the runner (notifications, "missed",
	// and the catch-up after each new subscription); Created, Renewed and
	// Failed the subscription operations.
	Notifications int64 `json:"notifications"`
	Lifecycle     int64 `json:"lifecycle"`
	Wakes         int64 `json:"wakes"`
	Created       int64 `json:"created"`
	Renewed       int64 `json:"renewed"`
	Failed        int64 `json:"failed"`
}

// counters are one channel's ChannelStatus counters. Guarded by Manager.mu.
type counters struct {
	notifications, lifecycle, wakes, created, renewed, failed int64
}

// count records what the manager did for a channel (see Options.OnEvent).
func (m *Manager) count(channel, ev string) {
	if channel == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[channel]
	if c == nil {
		c = &counters{}
		m.counts[channel] = c
	}
	switch {
	case ev == "notification":
		c.notifications++
	case ev == "wake":
		c.wakes++
	case ev == "created":
		c.created++
	case ev == "renewed":
		c.renewed++
	case ev == "failed":
		c.failed++
	case strings.HasPrefix(ev, "lifecycle:"):
		c.lifecycle++
	}
}

// Status reports a channel's subscription state; ok is false for a
// channel that was never added (change_notifications: off) or was removed.
func (m *Manager) Status(name string) (ChannelStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.channels[name]
	if cs == nil {
		return ChannelStatus{}, false
	}
	var s ChannelStatus
	switch {
	case cs.unsupported:
		s.State = StateUnsupported
	case cs.subID != "" && m.opts.Now().Before(cs.expires):
		s.State, s.Expires = StateSubscribed, cs.expires
	case cs.failures > 0:
		s.State, s.RetryAt = StateRetrying, cs.retryAt
	default:
		s.State = StatePending
	}
	if c := m.counts[name]; c != nil {
		s.Notifications, s.Lifecycle, s.Wakes = c.notifications, c.lifecycle, c.wakes
		s.Created, s.Renewed, s.Failed = c.created, c.renewed, c.failed
	}
	return s, true
}
