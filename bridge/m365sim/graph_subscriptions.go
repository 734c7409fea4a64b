package m365sim

// Change-notification subscriptions on mail (POST/PATCH/DELETE
// /v1.0/subscriptions): validation of the request, the notificationUrl
// handshake, renewal, deletion and expiry on the sim clock. Delivery of the
// notifications themselves is in graph_notify.go.
//
// Sources (microsoftgraph/microsoft-graph-docs-contrib, "GDC"):
//   - api-reference/v1.0/api/subscription-post-subscriptions.md: 201 Created
//     with the subscription; a failed notificationUrl validation is 400.
//   - concepts/change-notifications-delivery-webhooks.md: clientState "is
//     required"; renewal is PATCH {expirationDateTime} answered 200 with the
//     subscription; DELETE answers 204; "If you don't renew a subscription in
//     time, Microsoft Graph deletes the subscription".
//   - concepts/includes/change-notifications-delivery-notificationurl-validation.md:
//     POST {notificationUrl}?validationToken=…, the endpoint must answer
//     200 text/plain with the URL-decoded token within 10 seconds, else no
//     subscription is created. The same for lifecycleNotificationUrl.
//   - api-reference/includes/outlook-subscription-notes.md: "Delegated
//     permission supports subscribing to items in folders in only the
//     signed-in user's mailbox"; the .Shared permissions "do not support
//     subscribing to change notifications on items in shared or delegated
//     folders".
//   - resources/subscription.md: clientState at most 128 characters;
//     notificationUrl must be HTTPS; the maximum lifetime of an Outlook
//     message subscription (10,080 minutes in current docs, 4,230 in older
//     ones: Options.SubscriptionMaxLifetime, default the current figure).

import (
	"fmt"
	"net/http"
	"sort"
	"time"
)

// DefaultSubscriptionMaxLifetime is the maximum lifetime of an Outlook
// message subscription without resource data: 10,080 minutes (GDC
// resources/subscription.md, "Subscription lifetime"; older versions of the
// page said 4,230 minutes, which Options.SubscriptionMaxLifetime can set).
const DefaultSubscriptionMaxLifetime = 10080 * time.Minute

// validationTimeout is how long the endpoint has to echo the token: "within
// 10 seconds" (GDC change-notifications-delivery-notificationurl-validation.md).
const validationTimeout = 10 * time.Second

// maxClientState is the documented cap on clientState: "The maximum length
// is 128 characters" (GDC resources/subscription.md).
const maxClientState = 128

// subscription is one active change-notification subscription.
type subscription struct {
	id           string
	resource     string // as the client sent it
	changeTypes  map[string]bool
	changeType   string // as the client sent it
	notifyURL    string
	lifecycleURL string
	clientState  string
	expires      time.Time
	mailboxID    string
	folderID     string // "" for the mailbox's messages in every folder
	tenantID     string
	appID        string
	creatorID    string
	immutable    bool // created with Prefer: IdType="ImmutableId"
	tlsVersion   string
}

// SubscriptionInfo is what tests see of a subscription.
type SubscriptionInfo struct {
	ID, Resource, ChangeType      string
	NotificationURL, LifecycleURL string
	ClientState                   string
	Expires                       time.Time
	Mailbox                       string
	FolderID                      string
	ImmutableIDs                  bool
}

func (s *Sim) registerSubscriptions(g *http.ServeMux) {
	g.HandleFunc("POST /v1.0/subscriptions", s.handleSubscriptionCreate)
	g.HandleFunc("GET /v1.0/subscriptions", s.handleSubscriptionList)
	g.HandleFunc("GET /v1.0/subscriptions/{id}", s.handleSubscriptionGet)
	g.HandleFunc("PATCH /v1.0/subscriptions/{id}", s.handleSubscriptionUpdate)
	g.HandleFunc("DELETE /v1.0/subscriptions/{id}", s.handleSubscriptionDelete)
	g.HandleFunc("POST /v1.0/subscriptions/{id}/reauthorize", s.handleSubscriptionReauthorize)
}

// subscriptionAuth authenticates a subscription request and admits it
// under the per-app limit; nil means it has already answered.
func (s *Sim) subscriptionAuth(w http.ResponseWriter, r *http.Request, kind string) *AccessGrant {
	infoOf(r).kind = kind
	g := s.authenticate(w, r)
	if g == nil || !s.appAdmit(w, r, g.ClientID) {
		return nil
	}
	// Fault rules apply here as on mail requests (match them by path,
	// e.g. "/v1.0/subscriptions/**"; there is no mailbox to match).
	if _, handled := s.applyFaults(w, r, "", parsePrefer(r)); handled {
		return nil
	}
	return g
}

// subscriptionJSON renders a subscription as GDC resources/subscription.md
// (and the 201 example of subscription-post-subscriptions.md) shows it.
func subscriptionJSON(base string, sub *subscription) jobj {
	var lifecycle any
	if sub.lifecycleURL != "" {
		lifecycle = sub.lifecycleURL
	}
	return jobj{
		{"@odata.context", base + "/v1.0/$metadata#subscriptions/$entity"},
		{"id", sub.id},
		{"resource", sub.resource},
		{"applicationId", sub.appID},
		{"changeType", sub.changeType},
		{"clientState", sub.clientState},
		{"notificationUrl", sub.notifyURL},
		{"notificationQueryOptions", nil},
		{"lifecycleNotificationUrl", lifecycle},
		{"expirationDateTime", sub.expires.UTC().Format("2006-01-02T15:04:05.0000000Z")},
		{"creatorId", sub.creatorID},
		{"includeResourceData", false},
		{"latestSupportedTlsVersion", sub.tlsVersion},
		{"encryptionCertificate", nil},
		{"encryptionCertificateId", nil},
		{"notificationUrlAppId", nil},
		{"notificationContentType", "application/json"},
	}
}

// subscriptionFor finds an active subscription of the caller's app: an
// expired one is gone (deleted by Graph), another app's is not visible.
func (s *Sim) subscriptionForLocked(g *AccessGrant, id string) *subscription {
	s.expireSubscriptionsLocked()
	sub := s.graph.subs[id]
	if sub == nil || sub.appID != g.ClientID {
		return nil
	}
	return sub
}

func writeSubscriptionNotFound(w http.ResponseWriter, r *http.Request, id string) {
	writeGraphError(w, r, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The object '%s' was not found.", id))
}

// handleSubscriptionList answers GET /subscriptions with a delegated token:
// the subscriptions "created by this app for the signed-in user only",
// clientState null ("not returned for security purposes"), GDC
// api/subscription-list.md.
func (s *Sim) handleSubscriptionList(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.list")
	if g == nil {
		return
	}
	s.mu.Lock()
	s.expireSubscriptionsLocked()
	ids := make([]string, 0, len(s.graph.subs))
	for id, sub := range s.graph.subs {
		if sub.appID == g.ClientID && sub.creatorID == g.UserID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	items := make([]any, 0, len(ids))
	for _, id := range ids {
		item := subscriptionJSON(baseURL(r), s.graph.subs[id])[1:] // no @odata.context per item
		for i := range item {
			if item[i].k == "clientState" {
				item[i].v = nil
			}
		}
		items = append(items, item)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, jobj{{"@odata.context", baseURL(r) + "/v1.0/$metadata#subscriptions"}, {"value", items}})
}

func (s *Sim) handleSubscriptionGet(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.get")
	if g == nil {
		return
	}
	s.mu.Lock()
	sub := s.subscriptionForLocked(g, r.PathValue("id"))
	var body jobj
	if sub != nil {
		body = subscriptionJSON(baseURL(r), sub)
	}
	s.mu.Unlock()
	if sub == nil {
		writeSubscriptionNotFound(w, r, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleSubscriptionUpdate renews: PATCH {expirationDateTime}, 200 with the
// subscription (GDC api/subscription-update.md).
func (s *Sim) handleSubscriptionUpdate(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.update")
	if g == nil {
		return
	}
	var req struct {
		ExpirationDateTime string `json:"expirationDateTime"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	exp, msg := s.checkExpiration(req.ExpirationDateTime, s.now())
	if msg != "" {
		writeGraphError(w, r, http.StatusBadRequest, "InvalidRequest", msg)
		return
	}
	s.mu.Lock()
	sub := s.subscriptionForLocked(g, r.PathValue("id"))
	var body jobj
	if sub != nil {
		sub.expires = exp
		body = subscriptionJSON(baseURL(r), sub)
	}
	s.mu.Unlock()
	if sub == nil {
		writeSubscriptionNotFound(w, r, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleSubscriptionDelete answers 204 (GDC api/subscription-delete.md).
func (s *Sim) handleSubscriptionDelete(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.delete")
	if g == nil {
		return
	}
	s.mu.Lock()
	sub := s.subscriptionForLocked(g, r.PathValue("id"))
	if sub != nil {
		delete(s.graph.subs, sub.id)
	}
	s.mu.Unlock()
	if sub == nil {
		writeSubscriptionNotFound(w, r, r.PathValue("id"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleSubscriptionReauthorize answers 204 and extends nothing (GDC
// api/subscription-reauthorize.md).
func (s *Sim) handleSubscriptionReauthorize(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.reauthorize")
	if g == nil {
		return
	}
	s.mu.Lock()
	sub := s.subscriptionForLocked(g, r.PathValue("id"))
	s.mu.Unlock()
	if sub == nil {
		writeSubscriptionNotFound(w, r, r.PathValue("id"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// expireSubscriptionsLocked deletes every subscription past its expiry:
// "If you don't renew a subscription in time, Microsoft Graph deletes the
// subscription" (GDC change-notifications-delivery-webhooks.md).
func (s *Sim) expireSubscriptionsLocked() {
	now := s.now()
	for id, sub := range s.graph.subs {
		if !now.Before(sub.expires) {
			delete(s.graph.subs, id)
		}
	}
}

// Subscriptions lists the active subscriptions (expired ones are removed
// first), for tests.
func (s *Sim) Subscriptions() []SubscriptionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireSubscriptionsLocked()
	var out []SubscriptionInfo
	for _, sub := range s.graph.subs {
		out = append(out, SubscriptionInfo{
			ID: sub.id, Resource: sub.resource, ChangeType: sub.changeType,
			NotificationURL: sub.notifyURL, LifecycleURL: sub.lifecycleURL, ClientState: sub.clientState,
			Expires: sub.expires, Mailbox: s.mailboxByID[sub.mailboxID].Address, FolderID: sub.folderID,
			ImmutableIDs: sub.immutable,
		})
	}
	return out
}
