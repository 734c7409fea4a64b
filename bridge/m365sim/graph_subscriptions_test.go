package m365sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a subscriber endpoint: it echoes validation tokens (unless
// told otherwise) and hands every notification body to the test.
type receiver struct {
	srv    *httptest.Server
	bodies chan map[string]any
	mu     sync.Mutex
	status int                                        // answer to notifications; default 202
	echo   func(tok string) (status int, body string) // answer to validation
}

func newReceiver(t *testing.T, tls bool) *receiver {
	rc := &receiver{bodies: make(chan map[string]any, 64), status: http.StatusAccepted}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); r.URL.Query().Has("validationToken") {
			rc.mu.Lock()
			echo := rc.echo
			rc.mu.Unlock()
			status, body := http.StatusOK, tok
			if echo != nil {
				status, body = echo(tok)
			}
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
		var v map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("notification body: %v: %s", err, b)
		}
		rc.mu.Lock()
		status := rc.status
		rc.mu.Unlock()
		w.WriteHeader(status)
		rc.bodies <- v
	})
	if tls {
		rc.srv = httptest.NewTLSServer(h)
	} else {
		rc.srv = httptest.NewServer(h)
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setStatus(s int) { rc.mu.Lock(); rc.status = s; rc.mu.Unlock() }

// next waits for the next notification body (safety net 10 s; the sim
// sends at once).
func (rc *receiver) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case v := <-rc.bodies:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
		return nil
	}
}

func subBody(notifyURL, resource string, exp time.Time) map[string]any {
	return map[string]any{
		"changeType": "created", "notificationUrl": notifyURL, "lifecycleNotificationUrl": notifyURL,
		"resource": resource, "expirationDateTime": exp.Format(time.RFC3339Nano), "clientState": "secretClientValue",
	}
}

func TestSubscriptionCreateNotifyRenewDelete(t *testing.T) {
	attempts := make(chan NotifyAttempt, 64)
	rc := newReceiver(t, true)
	f := newGraphFixture(t, Options{NotifyHTTPClient: rc.srv.Client(), OnNotify: func(a NotifyAttempt) { attempts <- a }})
	now := f.clockBase
	// The request of subscription-post-subscriptions.md, answered with its
	// documented shape.
	resp, b := f.call(t, "POST", "/v1.0/subscriptions", f.aliceTok,
		subBody(rc.srv.URL+"/hook?x=1", "me/mailFolders('Inbox')/messages", now.Add(48*time.Hour)), "Prefer", `IdType="ImmutableId"`)
	got := wantDocJSON(t, resp, b, http.StatusCreated, "subscription-create.json")
	id := got["id"].(string)
	if a := <-attempts; a.Kind != "validation" || a.Status != 200 {
		t.Fatalf("first request to the endpoint %+v, want the validation", a)
	}
	<-attempts // the lifecycle URL is validated too

	// Mail into another folder is not notified; mail into the Inbox is, in
	// the documented shape, with the immutable id asked for.
	if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Folder: "Archive", Subject: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if n := f.sim.PendingNotifications(); n != 0 {
		t.Fatalf("%d notifications queued for mail outside the folder", n)
	}
	mi, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	v := rc.next(t)
	assertShape(t, "notification", v, graphDoc(t, "change-notification-created.json"))
	item := v["value"].([]any)[0].(map[string]any)
	if item["subscriptionId"] != id || item["clientState"] != "secretClientValue" || item["changeType"] != "created" || item["tenantId"] != f.tenantID {
		t.Errorf("notification %v", item)
	}
	if rd := item["resourceData"].(map[string]any); rd["id"] != mi.ImmutableID {
		t.Errorf("resourceData.id %v, want the immutable id %s", rd["id"], mi.ImmutableID)
	}

	// The list (subscription-list.md): this app's, for this user, without
	// the clientState.
	resp, b = f.call(t, "GET", "/v1.0/subscriptions", f.aliceTok, nil)
	list := wantDocJSON(t, resp, b, http.StatusOK, "subscription-list.json", "value[0].encryptionCertificate", "value[0].encryptionCertificateId")
	if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["id"] != id || v[0].(map[string]any)["clientState"] != nil {
		t.Errorf("list %v", list)
	}
	if v := f.getJSON(t, "GET", "/v1.0/subscriptions", f.bobTok, nil, 200)["value"].([]any); len(v) != 0 {
		t.Errorf("bob sees alice's subscriptions: %v", v)
	}

	// Renewal: documented shape; beyond the maximum lifetime: 400.
	resp, b = f.call(t, "PATCH", "/v1.0/subscriptions/"+id, f.aliceTok, map[string]any{"expirationDateTime": now.Add(72 * time.Hour).Format(time.RFC3339)})
	got = wantDocJSON(t, resp, b, http.StatusOK, "subscription-update.json")
	if got["expirationDateTime"] != "2024-06-04T12:00:00.0000000Z" {
		t.Errorf("renewed to %v", got["expirationDateTime"])
	}
	resp, b = f.call(t, "PATCH", "/v1.0/subscriptions/"+id, f.aliceTok, map[string]any{"expirationDateTime": now.Add(DefaultSubscriptionMaxLifetime + time.Minute).Format(time.RFC3339)})
	wantGraphError(t, resp, b, http.StatusBadRequest, "InvalidRequest")

	// Another app's token does not see it; DELETE is 204, then 404.
	resp, b = f.call(t, "DELETE", "/v1.0/subscriptions/"+id, f.aliceTok, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = f.call(t, "PATCH", "/v1.0/subscriptions/"+id, f.aliceTok, map[string]any{"expirationDateTime": now.Add(time.Hour).Format(time.RFC3339)})
	wantGraphError(t, resp, b, http.StatusNotFound, "ResourceNotFound")
	if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "after delete"}); err != nil {
		t.Fatal(err)
	}
	if n := f.sim.PendingNotifications(); n != 0 {
		t.Fatalf("%d notifications queued after the delete", n)
	}
}

func TestSubscriptionRefusals(t *testing.T) {
	rc := newReceiver(t, false)
	f := newGraphFixture(t, Options{AllowHTTPLoopback: true})
	exp := f.clockBase.Add(time.Hour)
	ok := rc.srv.URL + "/hook"
	tests := []struct {
		name   string
		tok    string
		body   map[string]any
		echo   func(string) (int, string)
		status int
		code   string
	}{
		// outlook-subscription-notes.md: delegated permission, own mailbox only.
		{"shared mailbox with a delegated token", f.aliceTok, subBody(ok, "users/support@contoso.example/mailFolders('Inbox')/messages", exp), nil, 403, "ExtensionError"},
		{"another user's mailbox", f.bobTok, subBody(ok, "users/alice@contoso.example/messages", exp), nil, 403, "ExtensionError"},
		{"no Mail scope", f.token(f.alice.ID, "User.Read"), subBody(ok, "me/messages", exp), nil, 403, "ExtensionError"},
		{"endpoint answers 500", f.aliceTok, subBody(ok, "me/messages", exp), func(string) (int, string) { return 500, "" }, 400, "ValidationError"},
		{"endpoint echoes the encoded token", f.aliceTok, subBody(ok, "me/messages", exp), func(tok string) (int, string) { return 200, url.QueryEscape(tok) }, 400, "ValidationError"},
		{"http to a non-loopback host", f.aliceTok, subBody("http://bridge.example.com/hook", "me/messages", exp), nil, 400, "InvalidRequest"},
		{"lifetime over the maximum", f.aliceTok, subBody(ok, "me/messages", f.clockBase.Add(DefaultSubscriptionMaxLifetime+time.Minute)), nil, 400, "InvalidRequest"},
		{"expiry in the past", f.aliceTok, subBody(ok, "me/messages", f.clockBase.Add(-time.Minute)), nil, 400, "InvalidRequest"},
		{"clientState over 128", f.aliceTok, func() map[string]any {
			b := subBody(ok, "me/messages", exp)
			b["clientState"] = strings.Repeat("x", 129)
			return b
		}(), nil, 400, "InvalidRequest"},
		{"unknown folder", f.aliceTok, subBody(ok, "me/mailFolders('nope')/messages", exp), nil, 404, "ErrorItemNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.echo = tc.echo
			rc.mu.Unlock()
			resp, b := f.call(t, "POST", "/v1.0/subscriptions", tc.tok, tc.body)
			wantGraphError(t, resp, b, tc.status, tc.code)
		})
	}
	if subs := f.sim.Subscriptions(); len(subs) != 0 {
		t.Errorf("refused requests left subscriptions: %+v", subs)
	}
	// Without the option, http is refused even on loopback (Graph: https only).
	strict := newGraphFixture(t, Options{})
	resp, b := strict.call(t, "POST", "/v1.0/subscriptions", strict.aliceTok, subBody(ok, "me/messages", strict.clockBase.Add(time.Hour)))
	wantGraphError(t, resp, b, 400, "InvalidRequest")
}

func TestSubscriptionResendsExpiryLifecycleAndDrop(t *testing.T) {
	attempts := make(chan NotifyAttempt, 256)
	rc, life := newReceiver(t, false), newReceiver(t, false)
	f := newGraphFixture(t, Options{AllowHTTPLoopback: true, OnNotify: func(a NotifyAttempt) { attempts <- a }})
	wait := func(kind string) NotifyAttempt {
		t.Helper()
		for {
			select {
			case a := <-attempts:
				if a.Kind == kind {
					return a
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s attempt", kind)
			}
		}
	}
	inject := func(subject string) {
		t.Helper()
		if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	body := subBody(rc.srv.URL, "me/mailFolders('Inbox')/messages", f.clockBase.Add(24*time.Hour))
	body["lifecycleNotificationUrl"] = life.srv.URL
	id := f.getJSON(t, "POST", "/v1.0/subscriptions", f.aliceTok, body, 201)["id"].(string)

	t.Run("resent after a failure", func(t *testing.T) {
		rc.setStatus(http.StatusServiceUnavailable)
		inject("retry me")
		if a := wait("change"); a.Status != 503 {
			t.Fatalf("first attempt %+v", a)
		}
		rc.next(t)
		rc.setStatus(http.StatusAccepted)
		f.sim.Advance(time.Minute) // the first resend falls due
		if a := wait("change"); a.Status != 202 {
			t.Fatalf("resend %+v", a)
		}
		rc.next(t)
	})
	t.Run("discarded after 4 hours with a missed lifecycle notification", func(t *testing.T) {
		rc.setStatus(http.StatusInternalServerError)
		inject("lost")
		wait("change")
		rc.next(t)
		for i := 0; i < 4; i++ { // resends at +1h … +4h; the last one ends the 4 hours
			f.sim.Advance(time.Hour)
			wait("change")
			rc.next(t)
		}
		a := wait("lifecycle")
		v := life.next(t)
		assertShape(t, "lifecycle", v, graphDoc(t, "lifecycle-notification.json"))
		if a.Lifecycle != LifecycleMissed || v["value"].([]any)[0].(map[string]any)["lifecycleEvent"] != "missed" {
			t.Fatalf("lifecycle %+v %v", a, v)
		}
		if n := f.sim.PendingNotifications(); n != 0 {
			t.Errorf("%d notifications still pending", n)
		}
		rc.setStatus(http.StatusAccepted)
	})
	t.Run("a dropped notification is never sent", func(t *testing.T) {
		f.sim.DropNotifications(1)
		inject("dropped")
		if a := wait("change"); !a.Dropped {
			t.Fatalf("attempt %+v, want the dropped one", a)
		}
		select {
		case v := <-rc.bodies:
			t.Fatalf("dropped notification arrived: %v", v)
		default:
		}
		inject("after the drop")
		if a := wait("change"); a.Dropped || a.Status != 202 {
			t.Fatalf("attempt %+v", a)
		}
		rc.next(t)
	})
	t.Run("subscriptionRemoved deletes it", func(t *testing.T) {
		if err := f.sim.SendLifecycleEvent(id, LifecycleSubscriptionRemoved); err != nil {
			t.Fatal(err)
		}
		wait("lifecycle")
		if ev := life.next(t)["value"].([]any)[0].(map[string]any); ev["lifecycleEvent"] != "subscriptionRemoved" || ev["subscriptionId"] != id {
			t.Fatalf("lifecycle %v", ev)
		}
		if subs := f.sim.Subscriptions(); len(subs) != 0 {
			t.Fatalf("subscriptions after removal: %+v", subs)
		}
	})
	t.Run("expires on the sim clock", func(t *testing.T) {
		tok := f.token(f.alice.ID, allMailScopes...)
		f.getJSON(t, "POST", "/v1.0/subscriptions", tok, subBody(rc.srv.URL, "me/messages", f.sim.now().Add(time.Hour)), 201)
		wait("validation")
		wait("validation")
		if len(f.sim.Subscriptions()) != 1 {
			t.Fatal("subscription not listed")
		}
		f.sim.Advance(time.Hour)
		if subs := f.sim.Subscriptions(); len(subs) != 0 {
			t.Fatalf("expired subscription still listed: %+v", subs)
		}
		inject("after expiry")
		if n := f.sim.PendingNotifications(); n != 0 {
			t.Fatalf("%d notifications for an expired subscription", n)
		}
	})
}
