package graph

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// TestContractClientSubscriptions: the client sends the request of the
// docs' example and decodes the documented answers
// (testdata/graphdocs/subscription-*.json).
func TestContractClientSubscriptions(t *testing.T) {
	ctx := context.Background()
	exp := time.Date(2016, 11, 20, 18, 23, 45, 935691300, time.UTC)
	t.Run("subscription-post-subscriptions.md", func(t *testing.T) {
		body := docFixture(t, "subscription-create.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			var got map[string]any
			b, _ := io.ReadAll(r.Body)
			json.Unmarshal(b, &got)
			want := map[string]any{
				"changeType": "created", "notificationUrl": "https://webhook.azurewebsites.net/api/send/myNotifyClient",
				"lifecycleNotificationUrl": "https://webhook.azurewebsites.net/api/send/myNotifyClient",
				"resource":                 "me/mailFolders('Inbox')/messages", "expirationDateTime": "2016-11-20T18:23:45.9356913Z",
				"clientState": "secretClientValue", "latestSupportedTlsVersion": "v1_2",
			}
			if r.Method != "POST" || r.URL.Path != "/v1.0/subscriptions" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			serveDoc(w, 201, body)
		})
		mc := c.Mailbox(Mailbox{Address: "a@b"}, staticToken("a.b.c"))
		sub, err := mc.CreateSubscription(ctx, SubscriptionRequest{
			FolderID: "Inbox", NotificationURL: "https://webhook.azurewebsites.net/api/send/myNotifyClient",
			LifecycleNotificationURL: "https://webhook.azurewebsites.net/api/send/myNotifyClient",
			ClientState:              "secretClientValue", Expiration: exp,
		})
		if err != nil {
			t.Fatal(err)
		}
		if sub.ID != "7f105c7d-2dc5-4530-97cd-4e7ae6534c07" || !sub.ExpirationDateTime.Equal(exp) || sub.ClientState != "secretClientValue" {
			t.Errorf("decoded %+v", sub)
		}
	})
	t.Run("subscription-update.md", func(t *testing.T) {
		body := docFixture(t, "subscription-update.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Method != "PATCH" || r.URL.Path != "/v1.0/subscriptions/7f105c7d" || string(b) != `{"expirationDateTime":"2016-11-22T18:23:45.9356913Z"}` {
				t.Errorf("request %s %s %s", r.Method, r.URL.Path, b)
			}
			serveDoc(w, 200, body)
		})
		mc := c.Mailbox(Mailbox{Address: "a@b"}, staticToken("a.b.c"))
		sub, err := mc.RenewSubscription(ctx, "7f105c7d", exp.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !sub.ExpirationDateTime.Equal(exp.Add(48 * time.Hour)) {
			t.Errorf("expiry %v", sub.ExpirationDateTime)
		}
	})
	t.Run("subscription-list.md", func(t *testing.T) {
		body := docFixture(t, "subscription-list.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || r.URL.Path != "/v1.0/subscriptions" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			serveDoc(w, 200, body)
		})
		subs, err := c.Mailbox(Mailbox{Address: "a@b"}, staticToken("a.b.c")).ListSubscriptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(subs) != 1 || subs[0].ID != "0fc0d6db-0073-42e5-a186-853da75fb308" || subs[0].ClientState != "" ||
			subs[0].NotificationURL != "https://webhookappexample.azurewebsites.net/api/notifications" {
			t.Errorf("decoded %+v", subs)
		}
	})
	t.Run("tolerant and strict decoding", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			ok   bool
		}{
			{`{"id":"x","expirationDateTime":"2016-11-22T18:23:45Z","clientState":null,"lifecycleNotificationUrl":null,"extra":{"a":1}}`, true},
			{`{"id":"","expirationDateTime":"2016-11-22T18:23:45Z"}`, false},
			{`{"id":"x","expirationDateTime":"soon"}`, false},
			{`[1]`, false},
		} {
			_, err := decodeSubscription([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Errorf("%s: err %v", tc.body, err)
			}
		}
	})
	t.Run("404 means gone", func(t *testing.T) {
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 404, "ResourceNotFound") })
		mc := c.Mailbox(Mailbox{Address: "a@b"}, staticToken("a.b.c"))
		if _, err := mc.RenewSubscription(ctx, "x", exp); !errors.Is(err, ErrSubscriptionNotFound) {
			t.Errorf("renew: %v", err)
		}
		if err := mc.DeleteSubscription(ctx, "x"); err != nil {
			t.Errorf("delete of a gone subscription: %v", err)
		}
	})
	t.Run("shared mailbox refused without a request", func(t *testing.T) {
		var calls atomic.Int32
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
		mc := c.Mailbox(Mailbox{Shared: true, Address: "support@b"}, staticToken("a.b.c"))
		if _, err := mc.CreateSubscription(ctx, SubscriptionRequest{FolderID: "inbox", Expiration: exp}); !errors.Is(err, ErrSubscriptionsUnsupported) {
			t.Errorf("err %v", err)
		}
		if calls.Load() != 0 {
			t.Errorf("%d requests sent", calls.Load())
		}
	})
}

// TestSimSubscriptions runs the client against the simulator: create
// (with the validation handshake), renew, delete, and the sim's own
// refusal of a shared mailbox under a delegated token.
func TestSimSubscriptions(t *testing.T) {
	ctx := context.Background()
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	t.Cleanup(hook.Close)
	clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	srv, c, _ := startSim(t, m365sim.Options{Now: func() time.Time { return clock }, NotifyHTTPClient: hook.Client()}, nil)
	mc := c.Mailbox(Mailbox{Address: agent}, tokensFor(t, srv, agent))
	sub, err := mc.CreateSubscription(ctx, SubscriptionRequest{FolderID: "inbox", NotificationURL: hook.URL, LifecycleNotificationURL: hook.URL,
		ClientState: "s", Expiration: clock.Add(70 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.ExpirationDateTime.Equal(clock.Add(70 * time.Hour)) {
		t.Errorf("expiry %v", sub.ExpirationDateTime)
	}
	if _, err := mc.RenewSubscription(ctx, sub.ID, clock.Add(71*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.RenewSubscription(ctx, sub.ID, clock.Add(200*time.Hour)); err == nil {
		t.Error("a renewal past the maximum lifetime was accepted")
	}
	if err := mc.DeleteSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.RenewSubscription(ctx, sub.ID, clock.Add(time.Hour)); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Errorf("renew after delete: %v", err)
	}
	// The client refuses a shared mailbox itself; the sim refuses it too
	// (a client built as a user mailbox but addressed at support@).
	shared := c.Mailbox(Mailbox{Address: support}, tokensFor(t, srv, agent))
	shared.root = "/users/" + support
	_, err = shared.CreateSubscription(ctx, SubscriptionRequest{FolderID: "inbox", NotificationURL: hook.URL, Expiration: clock.Add(time.Hour)})
	if !errors.Is(err, ErrAccessDenied) {
		t.Errorf("shared mailbox subscription: %v, want access denied", err)
	}
}
