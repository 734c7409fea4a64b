package notify

// The notification URL: Graph's validation handshake, change notifications
// and lifecycle notifications on one endpoint (Graph allows the lifecycle
// URL to equal the notification URL).
//
// Rules followed (GDC = microsoftgraph/microsoft-graph-docs-contrib):
//   - concepts/includes/change-notifications-delivery-notificationurl-validation.md:
//     a POST with ?validationToken= is answered 200, Content-Type text/plain,
//     body the URL-decoded token, within 10 seconds.
//   - concepts/change-notifications-delivery-webhooks.md: answer 2xx within
//     3 seconds ("202 - Accepted" when processing happens later), validate
//     clientState and disregard a notification whose clientState does not
//     match.
//   - concepts/change-notifications-lifecycle-events.md: acknowledge a
//     lifecycle notification with 202; reauthorizationRequired → reauthorize
//     or renew; subscriptionRemoved → create a new subscription, then sync
//     with delta; missed → resync with delta.

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
)

// notification is one item of a changeNotificationCollection; the fields
// not used are not decoded, and a field of an unexpected type makes the
// whole body a 400 (Graph never sends one; something else did).
type notification struct {
	SubscriptionID string `json:"subscriptionId"`
	ClientState    string `json:"clientState"`
	ChangeType     string `json:"changeType"`
	LifecycleEvent string `json:"lifecycleEvent"`
}

// Handler serves Path. Mount it on the public listener without
// authentication in front (Graph has no credentials to offer); it trusts
// nothing but the per-subscription clientState.
func (m *Manager) Handler() http.Handler { return http.HandlerFunc(m.serveHTTP) }

func (m *Manager) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Query().Has("validationToken") {
		// Query().Get has already URL-decoded the token, as Graph requires.
		// The token is opaque and echoed as is; it needs no check: it only
		// proves to Graph that this endpoint is ours.
		tok := r.URL.Query().Get("validationToken")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, tok)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.opts.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, "notification body too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	var coll struct {
		Value []notification `json:"value"`
	}
	if err := json.Unmarshal(body, &coll); err != nil {
		http.Error(w, "body is not a change notification collection", http.StatusBadRequest)
		return
	}
	wakes := map[string]Reason{}
	var renew bool
	for _, n := range coll.Value {
		name, ok := m.accept(n)
		if !ok {
			continue
		}
		switch n.LifecycleEvent {
		case "":
			if _, set := wakes[name]; !set {
				wakes[name] = ReasonNotification
			}
			m.event(name, "notification")
		case "missed":
			wakes[name] = ReasonMissed
			m.event(name, "lifecycle:missed")
		case "subscriptionRemoved":
			// The next tick creates a new subscription and wakes the
			// channel for the catch-up round once it exists.
			m.forget(n.SubscriptionID, false)
			renew = true
			m.event(name, "lifecycle:subscriptionRemoved")
		case "reauthorizationRequired":
			// A renewal reauthorizes too (lifecycle-events.md).
			m.forget(n.SubscriptionID, true)
			renew = true
			m.event(name, "lifecycle:reauthorizationRequired")
		default:
			m.log.Info("unknown lifecycle event ignored", slog.String("channel", name), slog.String("event", n.LifecycleEvent))
		}
	}
	w.WriteHeader(http.StatusAccepted)
	if renew {
		m.poke()
	}
	if len(wakes) > 0 {
		go func() {
			for name, why := range wakes {
				m.opts.Wake(name, why)
			}
		}()
	}
}

// accept finds the channel of a notification and checks its clientState in
// constant time. Unknown subscriptions (an old one from before a restart,
// another app's) and mismatches are ignored.
func (m *Manager) accept(n notification) (string, bool) {
	m.mu.Lock()
	cs := m.bySub[n.SubscriptionID]
	var name, want string
	if cs != nil {
		name, want = cs.ch.Name, cs.clientState
	}
	m.mu.Unlock()
	if cs == nil {
		m.log.Debug("notification for an unknown subscription ignored", slog.String("subscription", n.SubscriptionID))
		m.event("", "ignored")
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(n.ClientState), []byte(want)) != 1 {
		// Never log either value: the state is the subscription's secret.
		m.log.Warn("notification with a wrong clientState ignored (not from Graph?)",
			slog.String("channel", name), slog.String("subscription", n.SubscriptionID))
		m.event(name, "ignored")
		return "", false
	}
	return name, true
}

// forget acts on a lifecycle event: renew marks the subscription for
// renewal at the next tick; otherwise it is dropped (Graph removed it) and
// the next tick creates a new one.
func (m *Manager) forget(subID string, renew bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.bySub[subID]
	if cs == nil {
		return
	}
	if renew {
		cs.renewNow = true
		cs.retryAt = m.opts.Now() // no backoff wait for this
		return
	}
	delete(m.bySub, subID)
	cs.subID = ""
	cs.retryAt = m.opts.Now()
}
