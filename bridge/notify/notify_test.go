package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// TestNotificationWakesTheChannel: the subscription is made through the
// real handshake, a new mail wakes its channel with a notification, and a
// shared-mailbox channel is left to polling without asking Graph.
func TestNotificationWakesTheChannel(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	r.mgr.Add(Channel{Name: "shared", Graph: r.mailbox(support, true), FolderID: "inbox"})
	sub := r.subscribe(t)
	r.waitEvent(t, "shared", "unsupported")
	if sub.Mailbox != agent || sub.NotificationURL != r.public.URL+Path || sub.LifecycleURL != r.public.URL+Path {
		t.Errorf("subscription %+v", sub)
	}
	if len(sub.ClientState) < 40 {
		t.Errorf("clientState of %d characters, want a random one of 43", len(sub.ClientState))
	}
	if !r.mgr.Subscribed("agent") || r.mgr.Subscribed("shared") {
		t.Error("Subscribed is wrong")
	}
	if err := r.mgr.Ensure(context.Background(), "shared"); err == nil || !strings.Contains(err.Error(), "delegated") {
		t.Errorf("Ensure(shared) = %v, want the unsupported error", err)
	}

	start := time.Now()
	r.inject(t, "new mail")
	if w := r.nextWake(t); w != (wake{"agent", ReasonNotification}) {
		t.Fatalf("wake %+v", w)
	}
	// Not a timed assertion: the figure a latency benchmark would report.
	t.Logf("mail → wake-up in %s", time.Since(start))

	// Mail in a mailbox nobody subscribed to wakes nobody.
	if _, err := r.sim.Sim.InjectMessage(support, m365sim.NewMessage{Subject: "to shared"}); err != nil {
		t.Fatal(err)
	}
	if n := r.sim.Sim.PendingNotifications(); n != 0 {
		t.Fatalf("%d notifications for the shared mailbox", n)
	}
	r.noWake(t)
}

// TestHandlerRefusesWhatIsNotGraph: a wrong clientState and an unknown
// subscription are answered 202 (a sender learns nothing) and wake nobody;
// bad requests get their own status.
func TestHandlerRefusesWhatIsNotGraph(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	sub := r.subscribe(t)
	post := func(body string) int {
		t.Helper()
		resp, err := http.Post(r.public.URL+Path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	item := func(subID, state string) string {
		return fmt.Sprintf(`{"value":[{"subscriptionId":%q,"clientState":%q,"changeType":"created","resource":"Users/x/Messages/y"}]}`, subID, state)
	}
	if s := post(item(sub.ID, "forged")); s != http.StatusAccepted {
		t.Errorf("wrong clientState: %d", s)
	}
	r.waitEvent(t, "agent", "ignored")
	if s := post(item("00000000-0000-0000-0000-000000000000", sub.ClientState)); s != http.StatusAccepted {
		t.Errorf("unknown subscription: %d", s)
	}
	r.waitEvent(t, "", "ignored")
	r.noWake(t)
	// The genuine one, same shape, wakes.
	if s := post(item(sub.ID, sub.ClientState)); s != http.StatusAccepted {
		t.Errorf("genuine: %d", s)
	}
	if w := r.nextWake(t); w != (wake{"agent", ReasonNotification}) {
		t.Fatalf("wake %+v", w)
	}

	for _, tc := range []struct {
		name   string
		method string
		body   string
		want   int
	}{
		{"not JSON", "POST", "hello", http.StatusBadRequest},
		{"wrong type", "POST", `{"value":[{"subscriptionId":5}]}`, http.StatusBadRequest},
		{"too large", "POST", `{"value":[],"pad":"` + strings.Repeat("x", DefaultMaxBody) + `"}`, http.StatusRequestEntityTooLarge},
		{"GET", "GET", "", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, r.public.URL+Path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	r.noWake(t)
}

// TestValidationEchoesTheDecodedToken: Graph's token has spaces and
// colons; the answer is the decoded text, as text/plain, with 200.
func TestValidationEchoesTheDecodedToken(t *testing.T) {
	r := newRig(t, nil)
	tok := "Validation: Testing client application reachability for subscription Request-Id: 1 2+3"
	resp, err := http.Post(r.public.URL+Path+"?validationToken="+url.QueryEscape(tok), "text/plain; charset=utf-8", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != tok || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	r.noWake(t)
}

// TestRenewedBeforeExpiry: on the shared clock, the subscription is renewed
// once RenewBefore is left, not earlier, and so outlives its first expiry
// (the sim deletes a subscription that was not renewed in time).
func TestRenewedBeforeExpiry(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	first := r.subscribe(t)
	ctx := context.Background()
	next := r.mgr.Tick(ctx) // nothing due yet
	if want := first.Expires.Add(-DefaultLifetime / 2); !next.Equal(want) {
		t.Fatalf("next tick at %s, want %s (expiry minus half the lifetime)", next, want)
	}
	r.clk.Advance(next.Sub(r.clk.Now()) - time.Second)
	r.mgr.Tick(ctx)
	if got := r.sim.Sim.Subscriptions()[0].Expires; !got.Equal(first.Expires) {
		t.Fatalf("renewed early: %s", got)
	}
	r.clk.Advance(time.Second)
	r.mgr.Tick(ctx)
	r.waitEvent(t, "agent", "renewed")
	renewed := r.sim.Sim.Subscriptions()[0]
	if renewed.ID != first.ID || !renewed.Expires.After(first.Expires) {
		t.Fatalf("after renewal %+v (first %+v)", renewed, first)
	}
	r.clk.Advance(first.Expires.Sub(r.clk.Now()) + time.Minute) // past the first expiry
	if subs := r.sim.Sim.Subscriptions(); len(subs) != 1 {
		t.Fatalf("subscription expired despite the renewal: %+v", subs)
	}
	r.inject(t, "after the first expiry")
	if w := r.nextWake(t); w.why != ReasonNotification {
		t.Fatalf("wake %+v", w)
	}
}

// TestRecreatedAfterRemovalOrExpiry: a subscriptionRemoved lifecycle
// notification, a subscription Graph dropped silently (the renewal gets a
// 404) and one that expired while the daemon could not renew it all end
// with a new subscription and a catch-up wake-up; notifications flow again.
func TestRecreatedAfterRemovalOrExpiry(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	first := r.subscribe(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.mgr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := r.sim.Sim.SendLifecycleEvent(first.ID, m365sim.LifecycleSubscriptionRemoved); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(t, "agent", "lifecycle:subscriptionRemoved")
	r.waitEvent(t, "agent", "created")
	if w := r.nextWake(t); w != (wake{"agent", ReasonSubscribed}) {
		t.Fatalf("wake %+v, want the catch-up round", w)
	}
	subs := r.sim.Sim.Subscriptions()
	if len(subs) != 1 || subs[0].ID == first.ID {
		t.Fatalf("subscriptions %+v", subs)
	}
	r.inject(t, "after recreation")
	if w := r.nextWake(t); w.why != ReasonNotification {
		t.Fatalf("wake %+v", w)
	}

	// Gone behind the manager's back (no lifecycle notification): the
	// renewal's 404 leads to a new one.
	second := subs[0]
	if err := r.mailbox(agent, false).DeleteSubscription(context.Background(), second.ID); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(second.Expires.Add(-DefaultLifetime / 2).Sub(r.clk.Now()))
	r.mgr.Tick(context.Background())
	r.waitEvent(t, "agent", "recreate")
	r.waitEvent(t, "agent", "created")
	if w := r.nextWake(t); w.why != ReasonSubscribed {
		t.Fatalf("wake %+v", w)
	}
	third := r.sim.Sim.Subscriptions()
	if len(third) != 1 || third[0].ID == second.ID {
		t.Fatalf("subscriptions %+v", third)
	}

	// Expired while the daemon could not renew it: created anew.
	r.clk.Advance(third[0].Expires.Sub(r.clk.Now()) + time.Second)
	r.mgr.Tick(context.Background())
	r.waitEvent(t, "agent", "created")
	if w := r.nextWake(t); w.why != ReasonSubscribed {
		t.Fatalf("wake %+v", w)
	}
	if subs := r.sim.Sim.Subscriptions(); len(subs) != 1 || subs[0].ID == third[0].ID {
		t.Fatalf("subscriptions %+v", subs)
	}
}

// TestLifecycleMissedAndReauthorization: missed wakes for a catch-up
// round; reauthorizationRequired renews (which reauthorizes too).
func TestLifecycleMissedAndReauthorization(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	sub := r.subscribe(t)
	if err := r.sim.Sim.SendLifecycleEvent(sub.ID, m365sim.LifecycleMissed); err != nil {
		t.Fatal(err)
	}
	if w := r.nextWake(t); w != (wake{"agent", ReasonMissed}) {
		t.Fatalf("wake %+v", w)
	}
	if err := r.sim.Sim.SendLifecycleEvent(sub.ID, m365sim.LifecycleReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(t, "agent", "lifecycle:reauthorizationRequired")
	r.clk.Advance(time.Minute)
	r.mgr.Tick(context.Background())
	r.waitEvent(t, "agent", "renewed")
	if got := r.sim.Sim.Subscriptions()[0].Expires; !got.After(sub.Expires) {
		t.Errorf("expiry %s, want later than %s", got, sub.Expires)
	}
}

// TestLostNotificationIsFoundByThePoll: a notification Graph never sends
// is detected by nothing here — no wake-up comes — and the next delta
// round (the runner's poll, the fallback) still finds the mail.
func TestLostNotificationIsFoundByThePoll(t *testing.T) {
	r := newRig(t, nil)
	mc := r.addAgentInbox(t)
	r.subscribe(t)
	ctx := context.Background()
	f, err := mc.ResolveFolder(ctx, "Inbox")
	if err != nil {
		t.Fatal(err)
	}
	// The poll's cursor, taken before the mail arrives.
	var cursor string
	for link := ""; ; {
		page, err := mc.Delta(ctx, f.ID, link, graph.DeltaOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if page.DeltaLink != "" {
			cursor = page.DeltaLink
			break
		}
		link = page.NextLink
	}

	r.sim.Sim.DropNotifications(1)
	lost := r.inject(t, "lost notification")
	if a := r.waitAttempt(t, "change"); !a.Dropped {
		t.Fatalf("sim attempt %+v, want the dropped one", a)
	}
	r.noWake(t)

	page, err := mc.Delta(ctx, f.ID, cursor, graph.DeltaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range page.Messages {
		found = found || m.ID == lost.ImmutableID
	}
	if !found {
		t.Fatalf("the next delta round does not list the mail: %+v", page.Messages)
	}
	// Notifications keep working for the next mail.
	r.inject(t, "next")
	if w := r.nextWake(t); w.why != ReasonNotification {
		t.Fatalf("wake %+v", w)
	}
}

// TestCreateFailuresBackOff: while Graph fails the creation (a 500, which
// the client does not retry for a POST), retries are
// spaced 1, 2, 4 … minutes on the manager's clock; then it succeeds.
func TestCreateFailuresBackOff(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	if _, err := r.sim.Sim.AddFault(m365sim.FaultRule{Method: "POST", Path: "re:^/v1.0/subscriptions$", Status: 500, Count: 3}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		next := r.mgr.Tick(ctx)
		r.waitEvent(t, "agent", "failed")
		if got := next.Sub(r.clk.Now()); got != want {
			t.Fatalf("failure %d: retry in %s, want %s", i+1, got, want)
		}
		if again := r.mgr.Tick(ctx); !again.Equal(next) {
			t.Fatalf("a tick before the retry time did something: %s", again)
		}
		r.clk.Advance(want)
	}
	r.subscribe(t)
}

// TestRestartDeletesStaleSubscriptions: a daemon that died without Close
// left its subscription (and lost its clientState); the next run deletes
// it before subscribing again, so only one stays and it is the one whose
// notifications are accepted.
func TestRestartDeletesStaleSubscriptions(t *testing.T) {
	r := newRig(t, nil)
	mc := r.addAgentInbox(t)
	old := r.subscribe(t)
	// An unrelated subscription of the same app and user stays.
	other, err := mc.CreateSubscription(context.Background(), graph.SubscriptionRequest{FolderID: "archive",
		NotificationURL: r.public.URL + Path, ClientState: "x", Expiration: r.clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r.mgr = r.newManager(t, nil) // the restarted daemon; the old manager is gone without Close
	r.addAgentInbox(t)
	r.mgr.Tick(context.Background())
	r.waitEvent(t, "agent", "stale-deleted")
	r.waitEvent(t, "agent", "created")
	r.nextWake(t)
	ids := map[string]bool{}
	for _, s := range r.sim.Sim.Subscriptions() {
		ids[s.ID] = true
	}
	if len(ids) != 2 || ids[old.ID] || !ids[other.ID] {
		t.Fatalf("subscriptions after the restart %v (old %s, other %s)", ids, old.ID, other.ID)
	}
	r.inject(t, "after restart")
	if w := r.nextWake(t); w.why != ReasonNotification {
		t.Fatalf("wake %+v", w)
	}
}

// TestCloseDeletesSubscriptions: Close removes what the manager made.
func TestCloseDeletesSubscriptions(t *testing.T) {
	r := newRig(t, nil)
	r.addAgentInbox(t)
	r.subscribe(t)
	if err := r.mgr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if subs := r.sim.Sim.Subscriptions(); len(subs) != 0 {
		t.Fatalf("left behind: %+v", subs)
	}
	if err := r.mgr.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewManagerRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{PublicURL: "", Wake: func(string, Reason) {}},
		{PublicURL: "bridge.example.com", Wake: func(string, Reason) {}},
		{PublicURL: "https://bridge.example.com"},
	} {
		if _, err := NewManager(o); err == nil {
			t.Errorf("%+v accepted", o.PublicURL)
		}
	}
	m, err := NewManager(Options{PublicURL: "https://bridge.example.com/", Wake: func(string, Reason) {}})
	if err != nil || m.NotificationURL() != "https://bridge.example.com"+Path {
		t.Fatalf("%v %q", err, m.NotificationURL())
	}
}

// BenchmarkNotificationLatency reports how long a mail takes from arriving
// in the simulated mailbox to waking its channel through a change
// notification over loopback HTTP (p50 and p95 over b.N mails). The
// runner's delta round and the webhook delivery come on top; the
// end-to-end figure belongs to the daemon benchmark.
func BenchmarkNotificationLatency(b *testing.B) {
	r := newRig(b, nil)
	r.addAgentInbox(b)
	r.subscribe(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r.inject(b, fmt.Sprintf("mail %d", i))
		if w := r.nextWake(b); w.why != ReasonNotification {
			b.Fatalf("wake %+v", w)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}
