package graph

// Change-notification subscriptions on a mail folder (GDC
// api-reference/v1.0/api/subscription-post-subscriptions.md,
// subscription-update.md, subscription-delete.md, resources/subscription.md).
// The subscription is made with the mailbox's delegated token, which
// Microsoft allows only for the signed-in user's own mailbox
// (api-reference/includes/outlook-subscription-notes.md): for a shared
// mailbox CreateSubscription refuses before asking, with ErrSubscriptionsUnsupported.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const kindSubscription = "subscription"

var (
	// ErrSubscriptionsUnsupported: Graph does not offer change
	// notifications for this mailbox with delegated permissions (a shared
	// or delegated mailbox); poll it.
	ErrSubscriptionsUnsupported = errors.New("graph: change notifications need the signed-in user's own mailbox with delegated permissions")
	// ErrSubscriptionNotFound: the subscription is gone (expired, removed
	// by Graph, deleted): create a new one.
	ErrSubscriptionNotFound = errors.New("graph: subscription not found")
)

// SubscriptionRequest is what CreateSubscription asks for. Resource is set
// by the client from FolderID.
type SubscriptionRequest struct {
	// FolderID is the mail folder whose new messages are notified.
	FolderID string
	// NotificationURL and LifecycleNotificationURL must be https and answer
	// Graph's validation request (see bridge/notify).
	NotificationURL          string
	LifecycleNotificationURL string
	// ClientState is echoed in every notification; at most 128 characters.
	ClientState string
	// Expiration is when the subscription ends unless renewed.
	Expiration time.Time
}

// Subscription is Graph's answer (GDC resources/subscription.md). Fields
// the bridge does not need are not decoded; an unexpected type in one of
// the others is an error naming it.
type Subscription struct {
	ID                       string    `json:"id"`
	Resource                 string    `json:"resource"`
	ChangeType               string    `json:"changeType"`
	ClientState              string    `json:"clientState"`
	NotificationURL          string    `json:"notificationUrl"`
	LifecycleNotificationURL string    `json:"lifecycleNotificationUrl"`
	ExpirationDateTime       time.Time `json:"-"`
	ApplicationID            string    `json:"applicationId"`
	CreatorID                string    `json:"creatorId"`
}

// decodeSubscription is tolerant of nulls and extra properties, strict on
// the two the bridge cannot do without: id and expirationDateTime.
func decodeSubscription(b []byte) (Subscription, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Subscription{}, fmt.Errorf("decode subscription: %w", err)
	}
	var s Subscription
	str := func(k string, dst *string) {
		if v, ok := raw[k]; ok {
			*dst = jsonString(v)
		}
	}
	str("id", &s.ID)
	str("resource", &s.Resource)
	str("changeType", &s.ChangeType)
	str("clientState", &s.ClientState)
	str("notificationUrl", &s.NotificationURL)
	str("lifecycleNotificationUrl", &s.LifecycleNotificationURL)
	str("applicationId", &s.ApplicationID)
	str("creatorId", &s.CreatorID)
	if strings.TrimSpace(s.ID) == "" {
		return Subscription{}, fmt.Errorf("decode subscription: Graph's answer has no id")
	}
	var exp string
	str("expirationDateTime", &exp)
	t, err := time.Parse(time.RFC3339Nano, exp)
	if err != nil {
		return Subscription{}, fmt.Errorf("decode subscription %s: expirationDateTime %q: %w", s.ID, exp, err)
	}
	s.ExpirationDateTime = t
	return s, nil
}

// expirationText is the ISO 8601 form the docs' samples use.
func expirationText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// SubscriptionsSupported reports whether Graph allows change notifications
// on this mailbox with a delegated token: only the user's own mailbox.
func (m *MailboxClient) SubscriptionsSupported() bool { return !m.mb.Shared }

// CreateSubscription subscribes to messages created in a folder (POST
// /subscriptions, 201). Graph validates the notification URLs before it
// answers, so the caller's handler must already be serving. It is not
// retried after a transport error or a 5xx (a subscription may exist; it
// expires by itself). A shared mailbox gives ErrSubscriptionsUnsupported
// without a request.
func (m *MailboxClient) CreateSubscription(ctx context.Context, req SubscriptionRequest) (Subscription, error) {
	if !m.SubscriptionsSupported() {
		return Subscription{}, fmt.Errorf("create subscription on %s: %w", m.mb.Address, ErrSubscriptionsUnsupported)
	}
	if strings.TrimSpace(req.FolderID) == "" {
		return Subscription{}, fmt.Errorf("create subscription: empty folder id")
	}
	if len(req.ClientState) > 128 {
		return Subscription{}, fmt.Errorf("create subscription: clientState is %d characters, Graph allows 128", len(req.ClientState))
	}
	body := map[string]any{
		"changeType":                "created",
		"notificationUrl":           req.NotificationURL,
		"resource":                  m.SubscriptionResource(req.FolderID),
		"expirationDateTime":        expirationText(req.Expiration),
		"clientState":               req.ClientState,
		"latestSupportedTlsVersion": "v1_2",
	}
	if req.LifecycleNotificationURL != "" {
		body["lifecycleNotificationUrl"] = req.LifecycleNotificationURL
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Subscription{}, fmt.Errorf("encode subscription: %w", err)
	}
	res, err := m.do(ctx, call{method: http.MethodPost, url: m.c.BaseURL + "/v1.0/subscriptions", kind: kindSubscription, body: b, notIdempotent: true})
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	return decodeSubscription(res.body)
}

// SubscriptionResource is the resource CreateSubscription subscribes to
// for a folder, e.g. me/mailFolders('AAMk…')/messages.
func (m *MailboxClient) SubscriptionResource(folderID string) string {
	return strings.TrimPrefix(m.root, "/") + "/mailFolders('" + strings.ReplaceAll(folderID, "'", "''") + "')/messages"
}

// maxSubscriptionPages bounds ListSubscriptions against endless nextLinks.
const maxSubscriptionPages = 100

// ListSubscriptions lists the subscriptions this app made for the
// signed-in user (GET /subscriptions, GDC api/subscription-list.md; their
// clientState is not returned). The bridge uses it to delete the ones a
// previous run left behind.
func (m *MailboxClient) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var out []Subscription
	next := m.c.BaseURL + "/v1.0/subscriptions"
	for page := 0; next != ""; page++ {
		if page == maxSubscriptionPages {
			return out, fmt.Errorf("list subscriptions: more than %d pages", maxSubscriptionPages)
		}
		if page > 0 {
			if err := m.c.checkLink(next); err != nil {
				return out, fmt.Errorf("list subscriptions: %w", err)
			}
		}
		res, err := m.do(ctx, call{method: http.MethodGet, url: next, kind: kindSubscription})
		if err != nil {
			return out, fmt.Errorf("list subscriptions: %w", err)
		}
		var body struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			return out, fmt.Errorf("decode subscriptions: %w", err)
		}
		for _, raw := range body.Value {
			sub, err := decodeSubscription(raw)
			if err != nil {
				// One odd item does not hide the others.
				m.log.Warn("subscription in the list not understood", slog.String("err", err.Error()))
				continue
			}
			out = append(out, sub)
		}
		next = body.NextLink
	}
	return out, nil
}

// RenewSubscription moves a subscription's expiry (PATCH, 200). A
// subscription Graph no longer has gives ErrSubscriptionNotFound.
func (m *MailboxClient) RenewSubscription(ctx context.Context, id string, expiration time.Time) (Subscription, error) {
	b, _ := json.Marshal(map[string]string{"expirationDateTime": expirationText(expiration)})
	res, err := m.do(ctx, call{method: http.MethodPatch, url: m.subscriptionURL(id), kind: kindSubscription, body: b})
	if err != nil {
		return Subscription{}, fmt.Errorf("renew subscription: %w", notFound(err))
	}
	return decodeSubscription(res.body)
}

// DeleteSubscription ends a subscription (DELETE, 204); one that is already
// gone is not an error.
func (m *MailboxClient) DeleteSubscription(ctx context.Context, id string) error {
	_, err := m.do(ctx, call{method: http.MethodDelete, url: m.subscriptionURL(id), kind: kindSubscription})
	if err != nil && !errors.Is(notFound(err), ErrSubscriptionNotFound) {
		return fmt.Errorf("delete subscription: %w", err)
	}
	return nil
}

// ReauthorizeSubscription answers a reauthorizationRequired lifecycle
// notification without moving the expiry (POST …/reauthorize, GDC
// concepts/change-notifications-lifecycle-events.md).
func (m *MailboxClient) ReauthorizeSubscription(ctx context.Context, id string) error {
	_, err := m.do(ctx, call{method: http.MethodPost, url: m.subscriptionURL(id) + "/reauthorize", kind: kindSubscription})
	if err != nil {
		return fmt.Errorf("reauthorize subscription: %w", notFound(err))
	}
	return nil
}

func (m *MailboxClient) subscriptionURL(id string) string {
	return m.c.BaseURL + "/v1.0/subscriptions/" + url.PathEscape(id)
}

// notFound adds ErrSubscriptionNotFound to a 404.
func notFound(err error) error {
	var ge *Error
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrSubscriptionNotFound, err)
	}
	return err
}
