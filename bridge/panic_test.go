package bridge

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// panicFor panics on every delivery of one event id: a bug that one event
// hits in the dispatcher.
type panicFor struct{ id func() string }

func (p panicFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if id := p.id(); id != "" && r.Header.Get(webhooks.HeaderID) == id {
		panic("test: a bug while delivering " + id)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Issue 12 item 9: a panic while building one message's event and a panic
// while delivering another fail those items alone. The daemon (configured
// from its file) keeps running, the other mail is delivered, the message
// whose build panicked is a rejected ledger row naming the panic (left in
// the mailbox, replayable), the delivery that panicked is a failed attempt
// naming the panic, and both stacks are in the log. Before the fix either
// panic ended the test binary.
func TestDaemonPanicsFailOneItem(t *testing.T) {
	rig := newRigBase(t, nil)
	rig.writeConfig(`  - name: sales
    mailbox: {type: user}
    group: Sales
    archive: {mode: off}
`)
	var boom atomic.Value // the event id whose delivery panics
	boom.Store("")
	boomID := func() string { return boom.Load().(string) }
	rig.opts = func(o *Options) {
		o.beforeBuild = func(m *graph.Message) {
			if m.Subject == "build boom" {
				panic("test: a bug while building " + m.ID)
			}
		}
		o.Dispatcher.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: panicFor{id: boomID}}
	}
	// Unordered lanes: with concurrency 1 every failing row holds back the
	// rows behind it (by design, panic or not).
	rig.adjust = func(cfg *config.Config) { cfg.Webhooks[0].Concurrency = 4 }
	rig.start()
	t.Cleanup(func() { rig.stop() })

	inject := func(subject string) m365sim.MessageInfo {
		t.Helper()
		mi, err := rig.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{Subject: subject, From: "dave@example.com", Body: "Hi"})
		if err != nil {
			t.Fatal(err)
		}
		return mi
	}
	idOf := func(mi m365sim.MessageInfo) string {
		return webhooks.EventID(event.Tenant(rig.cfg), "sales@contoso.com", mi.ImmutableID)
	}
	ok1 := inject("fine one")
	built := inject("build boom")
	delivered := inject("deliver boom")
	deliverBoom := idOf(delivered)
	boom.Store(deliverBoom)
	ok2 := inject("fine two")

	if page := rig.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	ctx := context.Background()
	waitUntil(t, "the other mail delivered", 30*time.Second, func() bool {
		got := rig.snapshot()
		_, a := got[idOf(ok1)]
		_, b := got[idOf(ok2)]
		return a && b
	})
	// The message whose build panicked: rejected, naming the panic.
	e, err := rig.d.DB().LedgerEntryByID(ctx, "sales", built.ImmutableID)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != store.LedgerRejected || !strings.Contains(e.Reason, "panic") {
		t.Errorf("ledger row of the message whose build panicked: %s %q, want rejected naming the panic", e.State, e.Reason)
	}
	// Issue 15: the helpdesk hears of it (mail.rejected, its own id), and
	// the status page lists it with the reason.
	notice := webhooks.RejectedEventID(event.Tenant(rig.cfg), "sales@contoso.com", built.ImmutableID)
	waitUntil(t, "mail.rejected delivered", 30*time.Second, func() bool {
		ev, ok := rig.snapshot()[notice]
		return ok && ev.Type == webhooks.TypeMailRejected
	})
	if page, _ := newPageClient(t, rig).signIn("admin-token"); !strings.Contains(page, `id="rejected-`+idOf(built)+`"`) ||
		!strings.Contains(page, "while building the event") {
		t.Errorf("status page does not list the rejected mail with its reason")
	}
	// The delivery that panicked: a failed attempt, retried, naming the panic.
	var row deliver.Row
	waitUntil(t, "the panicking delivery recorded", 30*time.Second, func() bool {
		rows, err := rig.d.DB().Outbox().List(ctx, deliver.Filter{Channel: "sales"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.EventID == deliverBoom {
				row = r
			}
		}
		return row.Attempts >= 1 && row.LastError != ""
	})
	if row.State != deliver.StatePending || !strings.Contains(row.LastError, "panic") {
		t.Errorf("outbox row whose delivery panicked: %s %q, want pending (retried) naming the panic", row.State, row.LastError)
	}
	if _, got := rig.snapshot()[deliverBoom]; got {
		t.Error("the event whose delivery panicked reached the helpdesk")
	}
	// The daemon still runs: a later mail is picked up and delivered.
	ok3 := inject("fine three")
	if r, ok := rig.d.Runner("sales"); ok {
		r.SyncNow()
	}
	waitUntil(t, "a mail after the panics delivered", 30*time.Second, func() bool { _, ok := rig.snapshot()[idOf(ok3)]; return ok })
	logs := rig.logs.String()
	for _, want := range []string{"building a message's event panicked", "delivery attempt panicked"} {
		i := strings.Index(logs, want)
		if i < 0 {
			t.Errorf("log lacks %q", want)
			continue
		}
		line, _, _ := strings.Cut(logs[i:], "\n")
		if !strings.Contains(line, "runtime/debug.Stack") {
			t.Errorf("log line %q has no stack", want)
		}
	}
}
