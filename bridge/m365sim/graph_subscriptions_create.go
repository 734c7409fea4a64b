package m365sim

// Creating a change-notification subscription (POST /v1.0/subscriptions):
// the checks of the request and the notificationUrl handshake. The rest of
// the subscription lifecycle is in graph_subscriptions.go.
//
// Sources (microsoftgraph/microsoft-graph-docs-contrib, "GDC"):
//   - api-reference/v1.0/api/subscription-post-subscriptions.md: 201 Created
//     with the subscription; a failed notificationUrl validation is 400.
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
//     notificationUrl must be HTTPS.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// subscriptionRequest is the body of POST /subscriptions.
type subscriptionRequest struct {
	ChangeType                string `json:"changeType"`
	NotificationURL           string `json:"notificationUrl"`
	LifecycleNotificationURL  string `json:"lifecycleNotificationUrl"`
	Resource                  string `json:"resource"`
	ExpirationDateTime        string `json:"expirationDateTime"`
	ClientState               string `json:"clientState"`
	LatestSupportedTLSVersion string `json:"latestSupportedTlsVersion"`
	IncludeResourceData       bool   `json:"includeResourceData"`
}

func (s *Sim) handleSubscriptionCreate(w http.ResponseWriter, r *http.Request) {
	g := s.subscriptionAuth(w, r, "subscription.create")
	if g == nil {
		return
	}
	var req subscriptionRequest
	if !readJSONBody(w, r, &req) {
		return
	}
	bad := func(msg string) { writeGraphError(w, r, http.StatusBadRequest, "InvalidRequest", msg) }
	types, msg := parseChangeTypes(req.ChangeType)
	if msg != "" {
		bad(msg)
		return
	}
	if req.IncludeResourceData {
		// Rich notifications need an encryption certificate (GDC
		// change-notifications-with-resource-data.md); the sim has none.
		bad("includeResourceData is not supported by the simulator.")
		return
	}
	if len(req.ClientState) > maxClientState {
		bad(fmt.Sprintf("clientState must be at most %d characters.", maxClientState))
		return
	}
	for _, u := range []struct{ name, v string }{{"notificationUrl", req.NotificationURL}, {"lifecycleNotificationUrl", req.LifecycleNotificationURL}} {
		if u.v == "" && u.name == "lifecycleNotificationUrl" {
			continue
		}
		if msg := s.checkNotificationURL(u.name, u.v); msg != "" {
			bad(msg)
			return
		}
	}
	now := s.now()
	exp, msg := s.checkExpiration(req.ExpirationDateTime, now)
	if msg != "" {
		bad(msg)
		return
	}
	sub, gerr := s.subscriptionTarget(g, req.Resource)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	infoOf(r).mailbox = s.mailboxAddress(sub.mailboxID)
	// The handshake runs before the subscription exists and without the
	// lock: the endpoint may take up to 10 s.
	for _, u := range []string{req.NotificationURL, req.LifecycleNotificationURL} {
		if u == "" {
			continue
		}
		if err := s.validateEndpoint(r.Context(), u); err != nil {
			// The message Graph gives (as reported in GDC issues and Q&A);
			// the 400 is documented in subscription-post-subscriptions.md.
			writeGraphError(w, r, http.StatusBadRequest, "ValidationError",
				"Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. ("+err.Error()+")")
			return
		}
	}
	sub.id = newGUID()
	sub.resource = req.Resource
	sub.changeTypes, sub.changeType = types, req.ChangeType
	sub.notifyURL, sub.lifecycleURL = req.NotificationURL, req.LifecycleNotificationURL
	sub.clientState = req.ClientState
	sub.expires = exp
	sub.tlsVersion = req.LatestSupportedTLSVersion
	if sub.tlsVersion == "" {
		sub.tlsVersion = "v1_2"
	}
	sub.immutable = strings.Contains(strings.ToLower(r.Header.Get("Prefer")), `idtype="immutableid"`)
	s.mu.Lock()
	s.graph.subs[sub.id] = sub
	body := subscriptionJSON(baseURL(r), sub)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// parseChangeTypes accepts a comma-separated subset of created, updated,
// deleted: the change types of Outlook message resources (GDC
// resources/subscription.md, changeType).
func parseChangeTypes(v string) (map[string]bool, string) {
	out := map[string]bool{}
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		switch t {
		case "created", "updated", "deleted":
			out[t] = true
		default:
			return nil, fmt.Sprintf("changeType %q is not valid: use a comma-separated list of created, updated, deleted.", t)
		}
	}
	return out, ""
}

// checkNotificationURL applies "notificationUrl … must use the HTTPS
// protocol" (GDC resources/subscription.md). Options.AllowHTTPLoopback lets
// plain http through to a loopback host, for tests and the demo only.
func (s *Sim) checkNotificationURL(name, v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%s %q is not an absolute URL.", name, v)
	}
	switch {
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && s.opts.AllowHTTPLoopback && isLoopbackHost(u.Hostname()):
		return ""
	}
	return fmt.Sprintf("%s must be an https URL (got %s).", name, u.Scheme)
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkExpiration parses expirationDateTime and keeps it in (now, now+max].
// The message for too long a lifetime is the one Graph gives.
func (s *Sim) checkExpiration(v string, now time.Time) (time.Time, string) {
	if v == "" {
		return time.Time{}, "expirationDateTime is required."
	}
	exp, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Sprintf("expirationDateTime %q is not an ISO 8601 date and time.", v)
	}
	max := s.opts.SubscriptionMaxLifetime
	switch {
	case !exp.After(now):
		return time.Time{}, "Subscription expiration must be in the future."
	case exp.Sub(now) > max:
		return time.Time{}, fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(max/time.Minute))
	}
	return exp.UTC(), ""
}

// subscriptionTarget resolves a mail resource and applies the delegated
// permission rules (outlook-subscription-notes.md): only the signed-in
// user's own mailbox, with Mail.ReadBasic, Mail.Read or Mail.ReadWrite.
// Accepted shapes (GDC resources/subscription.md, Outlook message):
// me/messages, users/{id}/messages, me/mailFolders('{id}')/messages,
// users/{id}/mailFolders('{id}')/messages.
func (s *Sim) subscriptionTarget(g *AccessGrant, resource string) (*subscription, *graphError) {
	p := reKeySegment.ReplaceAllString("/"+strings.TrimPrefix(resource, "/"), "/$1/$2")
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	invalid := &graphError{http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("Resource %q is not supported: use me/mailFolders('{id}')/messages or users/{id}/mailFolders('{id}')/messages.", resource)}
	s.mu.Lock()
	defer s.mu.Unlock()
	var mb *Mailbox
	switch {
	case len(segs) >= 1 && strings.EqualFold(segs[0], "me"):
		mb = s.mailboxByID[g.UserID]
		segs = segs[1:]
	case len(segs) >= 2 && strings.EqualFold(segs[0], "users"):
		user, _ := url.PathUnescape(segs[1])
		mb = s.mailboxes[strings.ToLower(user)]
		if mb == nil {
			mb = s.mailboxByID[user]
		}
		if mb == nil {
			if u := s.userByUPNLocked(user); u != nil {
				mb = s.mailboxByID[u.ID]
			}
		}
		if mb == nil {
			return nil, &graphError{http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", user)}
		}
		segs = segs[2:]
	default:
		return nil, invalid
	}
	if mb == nil || !mb.Enabled {
		return nil, &graphError{http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNotEnabled}
	}
	sub := &subscription{mailboxID: mb.ID, tenantID: g.TenantID, appID: g.ClientID, creatorID: g.UserID}
	switch {
	case len(segs) == 1 && strings.EqualFold(segs[0], "messages"):
	case len(segs) == 3 && strings.EqualFold(segs[0], "mailFolders") && strings.EqualFold(segs[2], "messages"):
		ref, _ := url.PathUnescape(segs[1])
		f := mb.data.folderByRef(ref)
		if f == nil {
			return nil, &graphError{http.StatusNotFound, "ErrorItemNotFound", msgFolderNF}
		}
		sub.folderID = f.id
	default:
		return nil, invalid
	}
	// Delegated tokens reach only the signed-in user's own mailbox; Full
	// Access and Mail.Read.Shared do not help (outlook-subscription-notes.md).
	// Graph's answer is a 403 ExtensionError wrapping "Access is denied"
	// (the shape users report; the rule itself is the documented one).
	if mb.ID != g.UserID {
		return nil, &graphError{http.StatusForbidden, "ExtensionError",
			"Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.] " +
				"Delegated permissions can subscribe only to the signed-in user's own mailbox; shared and delegated mailboxes need application permissions."}
	}
	if !g.HasScope("Mail.ReadBasic") && !g.HasScope("Mail.Read") && !g.HasScope("Mail.ReadWrite") {
		return nil, &graphError{http.StatusForbidden, "ExtensionError",
			"Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]"}
	}
	return sub, nil
}

func (s *Sim) mailboxAddress(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb := s.mailboxByID[id]; mb != nil {
		return mb.Address
	}
	return ""
}

// validateEndpoint performs the handshake: POST url?validationToken=… with
// a text/plain body-less request; the answer must be 200, text/plain, and
// the token itself (URL-decoded), within validationTimeout.
func (s *Sim) validateEndpoint(ctx context.Context, endpoint string) error {
	// Real tokens are opaque text with spaces and colons, so an endpoint
	// that echoes the still-encoded query fails as it would against Graph.
	token := "Validation: Testing client application reachability for subscription Request-Id: " + newGUID()
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("validationToken", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.notifyClient().Do(req)
	if err != nil {
		s.observeNotify(NotifyAttempt{Kind: "validation", URL: endpoint, Err: err})
		return fmt.Errorf("validation request: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	s.observeNotify(NotifyAttempt{Kind: "validation", URL: endpoint, Status: resp.StatusCode})
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("endpoint answered %d", resp.StatusCode)
	case !strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/plain"):
		return fmt.Errorf("endpoint answered Content-Type %q, want text/plain", resp.Header.Get("Content-Type"))
	case string(b) != token:
		return fmt.Errorf("endpoint did not echo the validation token")
	}
	return nil
}
