package mailsync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// TestMailNoWebhookTakesStaysInTheMailbox (issue 12 item 3): with
// after_import: delete and a webhook whose types leave out mail.archived,
// the archived mail is filtered at enqueue: not delivered, not deleted,
// untouched, and its ledger row says why. No mail is deleted that was
// not delivered.
func TestMailNoWebhookTakesStaysInTheMailbox(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	now := time.Now().UTC().Truncate(time.Second)
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	cutoff := days(3)
	var old, fresh []m365sim.MessageInfo
	for i := range 3 {
		old = append(old, h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "old" + string(rune('0'+i)),
			From: "a@example.com", Received: days(10 + i)}))
	}
	for i := range 2 {
		fresh = append(fresh, h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "new" + string(rune('0'+i)),
			From: "b@example.com", Received: days(1)}))
	}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.AfterImport = config.AfterImport{Action: config.ActionDelete}
	ch.Archive = config.Archive{Mode: config.ArchiveOn, Before: &cutoff, State: config.DefaultArchiveState}
	r := h.runner(ch)
	filter := []string{webhooks.TypeMailReceived, "channel.*"}
	r.cfg.Takes = func(typ string) bool { return webhooks.TypeFilterTakes(filter, typ) }

	h.syncOnce(r)
	h.deliver(context.Background())
	h.syncOnce(r)
	h.syncOnce(r)

	inFolder := map[string]m365sim.MessageInfo{}
	for _, mi := range h.sim.Sim.Messages(simSupport, "Inbox/Support") {
		inFolder[mi.ImmutableID] = mi
	}
	for _, mi := range append(append([]m365sim.MessageInfo{}, old...), fresh...) {
		if _, ok := inFolder[mi.ImmutableID]; !ok && h.rec.count(h.eventID(simSupport, mi.ImmutableID)) == 0 {
			t.Errorf("%s was deleted but never delivered", mi.Subject)
		}
	}
	for _, mi := range old {
		got, ok := inFolder[mi.ImmutableID]
		if !ok || got.IsRead {
			t.Errorf("archived %s: in the folder %v, read %v; want it there, untouched", mi.Subject, ok, got.IsRead)
		}
		if n := h.rec.count(h.eventID(simSupport, mi.ImmutableID)); n != 0 {
			t.Errorf("archived %s delivered %d times to a webhook that does not take mail.archived", mi.Subject, n)
		}
		e := h.ledger("support", mi.ImmutableID)
		if e.State != store.LedgerRejected || !strings.Contains(e.Reason, "filtered") || !strings.Contains(e.Reason, webhooks.TypeMailArchived) {
			t.Errorf("archived %s: ledger %s %q, want rejected, filtered, naming mail.archived", mi.Subject, e.State, e.Reason)
		}
	}
	for _, mi := range fresh {
		if _, ok := inFolder[mi.ImmutableID]; ok {
			t.Errorf("new %s is still in the folder; delivered mail is deleted", mi.Subject)
		}
		if e := h.ledger("support", mi.ImmutableID); e.State != store.LedgerDone {
			t.Errorf("new %s: ledger %s, want done", mi.Subject, e.State)
		}
	}
	if n := h.outboxLen(); n != len(fresh) {
		t.Errorf("outbox holds %d rows, want %d (the filtered mail is not queued)", n, len(fresh))
	}
}
