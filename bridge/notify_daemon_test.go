package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/notify"
	"github.com/m365bridge/m365bridge/config"
)

// notifyRig is the daemon rig with the simulator sending change
// notifications to the daemon's public listener (http on loopback, which
// only the simulator allows) and the manager's events counted.
type notifyRig struct {
	*daemonRig
	mu      sync.Mutex
	events  map[string]int // "channel event" → count
	changed chan struct{}  // signalled (without blocking) on each event
	sent    []m365sim.NotifyAttempt
	// hold, when set before run, holds every wake-up until it is closed.
	hold chan struct{}
}

func newNotifyRig(t *testing.T, channels string) *notifyRig {
	t.Helper()
	nr := &notifyRig{events: map[string]int{}, changed: make(chan struct{}, 1)}
	simOpts := m365sim.Options{AllowHTTPLoopback: true, OnNotify: func(a m365sim.NotifyAttempt) {
		nr.mu.Lock()
		nr.sent = append(nr.sent, a)
		nr.mu.Unlock()
	}}
	nr.daemonRig = newRigBaseOpts(t, simOpts, nil)
	nr.opts = func(o *Options) {
		o.notifyEvent = func(channel, ev string) {
			nr.mu.Lock()
			nr.events[channel+" "+ev]++
			nr.mu.Unlock()
			select {
			case nr.changed <- struct{}{}:
			default:
			}
			if ev == "wake" && nr.hold != nil {
				<-nr.hold // on the manager's wake goroutine, never the handler's response
			}
		}
	}
	nr.writeConfig(channels)
	return nr
}

func (nr *notifyRig) run() {
	nr.start()
	nr.t.Cleanup(func() { nr.stop() })
}

func (nr *notifyRig) count(channel, ev string) int {
	nr.mu.Lock()
	defer nr.mu.Unlock()
	return nr.events[channel+" "+ev]
}

// waitEvent waits until the manager reported ev for channel n times; the
// 30 s deadline is a safety net.
func (nr *notifyRig) waitEvent(channel, ev string, n int) {
	nr.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for nr.count(channel, ev) < n {
		select {
		case <-nr.changed:
		case <-deadline.C:
			nr.t.Fatalf("waited 30 s for %d %q events of channel %s; got %d", n, ev, channel, nr.count(channel, ev))
		}
	}
}

func (nr *notifyRig) dropped() int {
	nr.mu.Lock()
	defer nr.mu.Unlock()
	n := 0
	for _, a := range nr.sent {
		if a.Dropped {
			n++
		}
	}
	return n
}

// waitRunner returns a channel's runner once its supervisor started it
// (10 ms pacing of a look at the daemon; the deadline is the safety net).
func waitRunner(t *testing.T, d *Daemon, channel string) *mailsync.Runner {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if r, ok := d.Runner(channel); ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s never started", channel)
		}
	}
}

const notifyUserChannel = `  - name: sales
    mailbox: {type: user}
    group: Sales
    poll_interval: 1h
    poll_fast: 1h
    archive: {mode: off}
`

// TestDaemonNotificationLatency is issue 17's latency acceptance on the
// real daemon from a config file: polls an hour apart, so every one of 20
// mails that reaches the receiver within the test was brought by a change
// notification's wake-up. Latency is wall time from the injection to the
// receiver's acknowledgement (the daemon and simulator run on the wall
// clock here).
func TestDaemonNotificationLatency(t *testing.T) {
	nr := newNotifyRig(t, notifyUserChannel)
	nr.run()
	if page := nr.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	nr.waitEvent("sales", "created", 1)
	r := waitRunner(t, nr.d, "sales")

	const mails = 20
	lat := make([]time.Duration, 0, mails)
	for i := range mails {
		start := time.Now()
		if _, err := nr.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{
			Subject: fmt.Sprintf("order %d", i), From: "dave@example.com", Body: "Hi"}); err != nil {
			t.Fatal(err)
		}
		nr.waitEvents(i + 1)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	p50, p95, worst := lat[mails/2], lat[mails*95/100-1], lat[mails-1]
	st := r.Status()
	t.Logf("new mail → webhook over %d mails: p50 %v, p95 %v, max %v; %d rounds, notifications %d, wakes %d",
		mails, p50, p95, worst, st.Rounds, nr.count("sales", "notification"), nr.count("sales", "wake"))
	if p95 > 10*time.Second {
		t.Errorf("p95 %v, want ≤ 10 s", p95)
	}
	if n := nr.count("sales", "notification"); n < mails {
		t.Errorf("%d change notifications accepted, want ≥ %d", n, mails)
	}
	// An hour's poll never fell due: every round after the first was a
	// wake-up's (at most one per mail, the subscription's catch-up, and
	// wakes that fold together).
	if st.Rounds > int64(mails)+2 {
		t.Errorf("%d rounds for %d mails: more than the wake-ups explain", st.Rounds, mails)
	}

	// The state is shown per channel: admin API, metrics, status page.
	code, body := adminCall(t, nr.daemonRig, http.MethodGet, "/api/channels", "admin-token", nil)
	var infos []mailsync.ChannelInfo
	if err := json.Unmarshal([]byte(body), &infos); code != 200 || err != nil || len(infos) != 1 || infos[0].Sync == nil || infos[0].Sync.Notifications == nil {
		t.Fatalf("GET /api/channels = %d %.400s (%v)", code, body, err)
	}
	if ns := infos[0].Sync.Notifications; ns.State != notify.StateSubscribed || ns.Notifications < mails || ns.Expires.IsZero() {
		t.Errorf("api notifications = %+v, want subscribed with ≥ %d notifications", ns, mails)
	}
	m := scrape(t, nr.daemonRig)
	if v := m[`m365bridge_change_notifications{channel="sales",state="subscribed"}`]; v != 1 {
		t.Errorf("metric subscribed = %v, want 1", v)
	}
	if v := m[`m365bridge_change_notifications_received_total{channel="sales"}`]; v < mails {
		t.Errorf("metric received = %v, want ≥ %d", v, mails)
	}
	p := newPageClient(t, nr.daemonRig)
	if page, _ := p.signIn("admin-token"); !strings.Contains(page, "Change notifications</dt><dd>on (subscription renewed") {
		t.Errorf("status page does not show the subscription: %.2000s", page[strings.Index(page, "channel-sales"):])
	}

	// Shutdown deletes the subscription.
	nr.stop()
	if subs := nr.sim.Sim.Subscriptions(); len(subs) != 0 {
		t.Errorf("%d subscriptions left after shutdown, want 0", len(subs))
	}
}

// TestDaemonLostNotificationFoundByPoll: a notification Graph never sends
// (the simulator's DropNotifications) is recovered by the next safety-net
// poll, and by nothing else.
func TestDaemonLostNotificationFoundByPoll(t *testing.T) {
	nr := newNotifyRig(t, notifyUserChannel)
	// A short safety-net poll (bridge.yaml's minimum is 10 s).
	nr.adjust = func(c *config.Config) {
		c.Channels[0].PollInterval, c.Channels[0].PollFast = 300*time.Millisecond, 300*time.Millisecond
	}
	// The subscription's catch-up wake-up is held back: it would race with
	// the injection below, and only the poll may find the mail.
	nr.hold = make(chan struct{})
	nr.run()
	released := false
	release := func() {
		if !released {
			released = true
			close(nr.hold)
		}
	}
	t.Cleanup(release) // runs before the rig's stop (last in, first out)
	if page := nr.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	nr.waitEvent("sales", "created", 1)
	nr.sim.Sim.DropNotifications(1)
	before := nr.count("sales", "notification")
	if _, err := nr.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{Subject: "lost", From: "dave@example.com", Body: "Hi"}); err != nil {
		t.Fatal(err)
	}
	nr.waitEvents(1)
	if n := nr.dropped(); n != 1 {
		t.Errorf("simulator dropped %d notifications, want 1", n)
	}
	if n := nr.count("sales", "notification"); n != before {
		t.Errorf("%d notifications reached the daemon; the mail must have come by the poll", n-before)
	}
	if n := nr.count("sales", "wake"); n > 1 {
		t.Errorf("%d wake-ups, want at most the held catch-up", n)
	}
	release()
}

// TestDaemonSharedMailboxPollsAdaptively: a shared mailbox's channel (with
// the default change_notifications: auto) gets no subscription — Graph
// allows delegated ones only on the user's own mailbox — and polls fast
// after activity: with poll_interval an hour, the second mail arrives by
// the adaptive poll alone.
func TestDaemonSharedMailboxPollsAdaptively(t *testing.T) {
	nr := newNotifyRig(t, `  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    folder: Inbox/Support
    poll_interval: 1h
    archive: {mode: off}
`)
	nr.adjust = func(c *config.Config) { c.Channels[0].PollFast = 100 * time.Millisecond }
	base := nr.opts
	nr.opts = func(o *Options) { base(o); o.pollBudget = 36000 } // 100 ms allowed
	nr.run()
	if _, err := nr.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Support", Subject: "first", From: "erin@example.com", Body: "Help"}); err != nil {
		t.Fatal(err)
	}
	if page := nr.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	nr.waitEvents(1) // the first round found it: activity
	if _, err := nr.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Support", Subject: "second", From: "erin@example.com", Body: "Again"}); err != nil {
		t.Fatal(err)
	}
	nr.waitEvents(2)
	if n := nr.count("support", "unsupported"); n != 1 {
		t.Errorf("%d unsupported events, want 1", n)
	}
	if subs := nr.sim.Sim.Subscriptions(); len(subs) != 0 {
		t.Errorf("shared mailbox got %d subscriptions: %+v", len(subs), subs)
	}
	if st := waitRunner(t, nr.d, "support").Status(); st.Notifications == nil || st.Notifications.State != notify.StateUnsupported {
		t.Errorf("runner notifications = %+v, want unsupported", st.Notifications)
	}
	if v := scrape(t, nr.daemonRig)[`m365bridge_change_notifications{channel="support",state="unsupported"}`]; v != 1 {
		t.Errorf("metric unsupported = %v, want 1", v)
	}
}

// TestDaemonReloadDropsSubscription: a reload that turns a channel's
// change notifications off deletes its subscription in Graph (it would
// otherwise count against the mailbox's limit until it expired), and the
// restarted runner reports none.
func TestDaemonReloadDropsSubscription(t *testing.T) {
	nr := newNotifyRig(t, notifyUserChannel)
	nr.run()
	if page := nr.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	nr.waitEvent("sales", "created", 1)
	if n := len(nr.sim.Sim.Subscriptions()); n != 1 {
		t.Fatalf("%d subscriptions, want 1", n)
	}
	next := strings.Replace(nr.yaml, "    poll_fast: 1h\n", "    poll_fast: 1h\n    change_notifications: off\n", 1)
	if err := os.WriteFile(nr.path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := nr.d.ReloadFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if subs := nr.sim.Sim.Subscriptions(); len(subs) != 0 {
		t.Errorf("%d subscriptions after the reload, want 0", len(subs))
	}
	if st := waitRunner(t, nr.d, "sales").Status(); st.Notifications != nil {
		t.Errorf("runner notifications after the reload = %+v, want none", st.Notifications)
	}
}
