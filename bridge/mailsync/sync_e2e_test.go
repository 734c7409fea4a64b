package mailsync

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Acceptance 1: a shared-mailbox channel (Inbox/Support) and a user-mailbox
// channel (the inbox): old mail archived, new mail new, group carried, every
// event signed, verified and delivered once.
func TestSyncEndToEnd(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	var oldShared, oldUser []m365sim.MessageInfo
	for i := range 3 {
		oldShared = append(oldShared, h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support",
			Subject: fmt.Sprintf("old support %d", i), From: "Carol <carol@example.com>", Body: "<p>old</p>", HTML: true,
			Received: old.Add(time.Duration(i) * time.Minute)}))
	}
	// Mail in the shared Inbox itself is not the channel's folder.
	h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox", Subject: "not for us", From: "x@example.com"})
	for i := range 2 {
		oldUser = append(oldUser, h.inject(simAgent, m365sim.NewMessage{Subject: fmt.Sprintf("old inbox %d", i),
			From: "dan@example.com", Body: "hi", Received: old.Add(time.Duration(i) * time.Hour)}))
	}

	support := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	support.Group = "Support L1"
	agent := testChannel("agent", config.MailboxUser, simAgent, "")
	agent.Group = "Sales"
	rs, ru := h.runner(support), h.runner(agent)

	st := h.syncOnce(rs)
	if st.Archived != 3 || st.New != 0 {
		t.Fatalf("support first sync = %+v, want 3 archived", st)
	}
	st = h.syncOnce(ru)
	if st.Archived != 2 || st.New != 0 {
		t.Fatalf("agent first sync = %+v, want 2 archived", st)
	}
	ss, _ := h.db.SyncState(context.Background(), "support")
	if ss.ArchiveMode != store.ArchiveDecidedOn || ss.ArchiveCutoff.IsZero() || ss.FolderPath != "Inbox/Support" {
		t.Errorf("support sync state = %+v, want archive on with a cut-off", ss)
	}

	newMail := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "printer broken",
		From: "Eve <eve@example.com>", Body: "help"})
	newUser := h.inject(simAgent, m365sim.NewMessage{Subject: "quote please", From: "fred@example.com", Body: "hi"})
	if st := h.syncOnce(rs); st.New != 1 || st.Archived != 0 {
		t.Errorf("support second sync = %+v, want 1 new", st)
	}
	if st := h.syncOnce(ru); st.New != 1 || st.Archived != 0 {
		t.Errorf("agent second sync = %+v, want 1 new", st)
	}
	d := h.dispatcher()
	d.Wake()
	h.waitDelivered(7)

	check := func(mailbox, group string, mi m365sim.MessageInfo, archived bool) {
		t.Helper()
		id := h.eventID(mailbox, mi.ImmutableID)
		if n := h.rec.count(id); n != 1 {
			t.Errorf("%q delivered %d times, want 1", mi.Subject, n)
			return
		}
		ev := h.rec.events[id]
		wantType, wantState := webhooks.TypeMailReceived, "new"
		if archived {
			wantType, wantState = webhooks.TypeMailArchived, "closed"
		}
		if h.rec.types[id] != wantType || ev.Archive != archived || ev.Ticket.State != wantState ||
			ev.Ticket.SuppressAutomations != archived || (len(ev.Tags) == 1) != archived {
			t.Errorf("%q: type %s archive %v state %s suppress %v tags %v; want %s, %v, %s",
				mi.Subject, h.rec.types[id], ev.Archive, ev.Ticket.State, ev.Ticket.SuppressAutomations, ev.Tags, wantType, archived, wantState)
		}
		// Graph's receivedDateTime has whole seconds.
		if !ev.Ticket.CreatedAt.Equal(mi.Received.Truncate(time.Second)) {
			t.Errorf("%q created_at = %v, want the original %v", mi.Subject, ev.Ticket.CreatedAt, mi.Received)
		}
		if ev.Group != group || ev.Mailbox.Address != mailbox || ev.Article.Subject != mi.Subject {
			t.Errorf("%q: group %q mailbox %q subject %q", mi.Subject, ev.Group, ev.Mailbox.Address, ev.Article.Subject)
		}
		if ev.Article.InternetMessageID != mi.InternetMessageID || ev.Ticket.Customer.Address != mi.From {
			t.Errorf("%q: message id %q customer %q", mi.Subject, ev.Article.InternetMessageID, ev.Ticket.Customer.Address)
		}
		if e := h.ledger(map[string]string{simSupport: "support", simAgent: "agent"}[mailbox], mi.ImmutableID); e.State != store.LedgerDelivered || e.EventID != id {
			t.Errorf("%q ledger = %+v, want delivered with id %s", mi.Subject, e, id)
		}
	}
	for _, mi := range oldShared {
		check(simSupport, "Support L1", mi, true)
	}
	for _, mi := range oldUser {
		check(simAgent, "Sales", mi, true)
	}
	check(simSupport, "Support L1", newMail, false)
	check(simAgent, "Sales", newUser, false)
	if ev := h.rec.events[h.eventID(simSupport, oldShared[0].ImmutableID)]; ev.Article.BodyText != "old" || ev.Article.BodyHTML == "" {
		t.Errorf("bodies = %q / %q, want html and derived text", ev.Article.BodyText, ev.Article.BodyHTML)
	}

	// keep: the next round marks delivered rows done and touches nothing.
	st = h.syncOnce(rs)
	if st.PostDone != 4 || st.Queued != 0 {
		t.Errorf("third support round = %+v, want 4 post-actions done and nothing queued", st)
	}
	for _, mi := range h.sim.Sim.Messages(simSupport, "Inbox/Support") {
		if mi.IsRead {
			t.Errorf("keep marked %q read", mi.Subject)
		}
	}
	if n := len(h.sim.Sim.Messages(simSupport, "Inbox/Support")); n != 4 {
		t.Errorf("Inbox/Support holds %d messages after keep, want 4", n)
	}
	if got := h.rec.distinct(); got != 7 {
		t.Errorf("distinct events = %d, want 7", got)
	}
}

// Acceptance 2: each after_import mode acts only after delivery; with the
// receiver down the whole time, the mailbox is untouched.
func TestAfterImportModes(t *testing.T) {
	modes := []config.AfterImport{
		{Action: config.ActionKeep},
		{Action: config.ActionMarkRead},
		{Action: config.ActionDelete},
		{Action: config.ActionMove, Folder: "Inbox/Done"},
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			for _, receiverDown := range []bool{true, false} {
				t.Run(fmt.Sprintf("receiver_down=%v", receiverDown), func(t *testing.T) {
					h := newHarness(t, m365sim.Options{})
					if _, err := h.sim.Sim.CreateFolder(simSupport, "Inbox/Done"); err != nil {
						t.Fatal(err)
					}
					var msgs []m365sim.MessageInfo
					for i := range 25 { // more than one $batch
						msgs = append(msgs, h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support",
							Subject: fmt.Sprintf("m%d", i), From: "a@example.com"}))
					}
					ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
					ch.AfterImport = mode
					ch.Archive.Mode = config.ArchiveOff
					r := h.runner(ch)
					h.syncOnce(r)
					h.rec.down.Store(receiverDown)
					h.deliver(context.Background())
					h.syncOnce(r)
					h.syncOnce(r)

					inFolder := h.sim.Sim.Messages(simSupport, "Inbox/Support")
					if receiverDown {
						if len(inFolder) != 25 {
							t.Fatalf("receiver down: folder holds %d, want all 25", len(inFolder))
						}
						for _, mi := range inFolder {
							if mi.IsRead {
								t.Fatalf("receiver down: %q was marked read", mi.Subject)
							}
						}
						for _, mi := range msgs {
							if e := h.ledger("support", mi.ImmutableID); e.State != store.LedgerQueued {
								t.Fatalf("receiver down: ledger %s = %s, want queued", mi.Subject, e.State)
							}
						}
						return
					}
					for _, mi := range msgs {
						if e := h.ledger("support", mi.ImmutableID); e.State != store.LedgerDone {
							t.Errorf("ledger %s = %s, want done", mi.Subject, e.State)
						}
					}
					switch mode.Action {
					case config.ActionKeep, config.ActionMarkRead:
						if len(inFolder) != 25 {
							t.Errorf("folder holds %d, want 25", len(inFolder))
						}
						for _, mi := range inFolder {
							if mi.IsRead != (mode.Action == config.ActionMarkRead) {
								t.Errorf("%q read = %v", mi.Subject, mi.IsRead)
							}
						}
					case config.ActionDelete:
						if len(inFolder) != 0 {
							t.Errorf("folder holds %d after delete, want 0", len(inFolder))
						}
						if n := len(h.sim.Sim.Messages(simSupport, "Deleted Items")); n != 25 {
							t.Errorf("Deleted Items holds %d, want 25 (recoverable, not purged)", n)
						}
					case config.ActionMove:
						if len(inFolder) != 0 {
							t.Errorf("folder holds %d after move, want 0", len(inFolder))
						}
						if n := len(h.sim.Sim.Messages(simSupport, "Inbox/Done")); n != 25 {
							t.Errorf("Inbox/Done holds %d, want 25", n)
						}
					}
				})
			}
		})
	}
}

// Run polls only while the channel's sign-in is active, and a Notify runs
// post-import actions without waiting for the next poll.
func TestRunPausesWithoutAuth(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	injectMany(h, simSupport, "Inbox/Support", 3)
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.PollInterval = 10 * time.Millisecond
	ch.AfterImport = config.AfterImport{Action: config.ActionMarkRead}
	var active atomic.Bool
	r := h.runner(ch)
	r.cfg.Auth = func(context.Context) (bool, error) { return active.Load(), nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (status %+v)", what, r.Status())
			}
			time.Sleep(2 * time.Millisecond) // pacing of a look at the runner's Status, which cannot push; the deadline is the safety net
		}
	}
	waitFor("paused", func() bool { return r.Status().State == RunnerPaused })
	if n := h.outboxLen(); n != 0 {
		t.Fatalf("a paused runner queued %d events", n)
	}
	active.Store(true)
	waitFor("the import", func() bool { return h.outboxLen() == 3 })
	h.deliver(context.Background())
	r.Notify()
	waitFor("post-import actions", func() bool {
		c, _ := h.db.LedgerCounts(context.Background(), "support")
		return c[store.LedgerDone] == 3
	})
	for _, mi := range h.sim.Sim.Messages(simSupport, "Inbox/Support") {
		if !mi.IsRead {
			t.Errorf("%s not marked read", mi.Subject)
		}
	}
	if s := r.Status(); s.Totals.Queued != 3 || s.Rounds == 0 || s.LastSuccessAt.IsZero() || s.Graph.Requests == 0 {
		t.Errorf("status = %+v", s)
	}
}

// What Graph shows of real MIME reaches the event: inline images with their
// Content-ID (hasAttachments is false for inline-only mail), attachments
// over the channel's limit listed but not included, auto-reply headers,
// threading headers and, with raw_mime, the original message.
func TestEventDetailsFromGraph(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	inline := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "logo", From: "a@example.com",
		HTML: true, Body: `<p>see <img src="cid:logo@x"></p>`,
		Attachments: []m365sim.NewAttachment{{Name: "logo.png", ContentType: "image/png", Content: "PNGDATA", ContentID: "logo@x", Inline: true}}})
	big := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "big", From: "b@example.com", Body: "x",
		Attachments: []m365sim.NewAttachment{{Name: "small.txt", ContentType: "text/plain", Content: "tiny"}, {Name: "big.bin", Size: 4096}}})
	auto := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "Out of office", From: "c@example.com", Body: "away",
		Headers: []m365sim.MessageHeader{{Name: "Auto-Submitted", Value: "auto-replied"}, {Name: "In-Reply-To", Value: "<orig@example.com>"},
			{Name: "References", Value: "<root@example.com> <orig@example.com>"}}})
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.MaxAttachmentBytes = 1024
	ch.RawMIME = true
	ch.Archive.Mode = config.ArchiveOff
	h.syncOnce(h.runner(ch))
	h.deliver(context.Background())

	ev := func(mi m365sim.MessageInfo) webhooks.MailData {
		t.Helper()
		d, ok := h.rec.events[h.eventID(simSupport, mi.ImmutableID)]
		if !ok {
			t.Fatalf("%q was not delivered", mi.Subject)
		}
		return d
	}
	d := ev(inline)
	if len(d.Article.Attachments) != 1 || !d.Article.Attachments[0].Inline || d.Article.Attachments[0].ContentID != "logo@x" ||
		!d.Article.Attachments[0].Included {
		t.Errorf("inline image = %+v", d.Article.Attachments)
	}
	d = ev(big)
	byName := map[string]webhooks.Attachment{}
	for _, a := range d.Article.Attachments {
		byName[a.Filename] = a
	}
	if a := byName["small.txt"]; !a.Included || a.ContentBase64 == "" {
		t.Errorf("small attachment = %+v", a)
	}
	if a := byName["big.bin"]; a.Included || a.ContentBase64 != "" || a.Reason == "" {
		t.Errorf("attachment over the limit = %+v", a)
	}
	if d.Article.RawMIME == nil || d.Article.RawMIME.Included {
		t.Errorf("raw MIME of a message over the limit = %+v, want listed, not included", d.Article.RawMIME)
	}
	d = ev(auto)
	if !d.Article.AutoSubmitted || !strings.Contains(d.Article.AutoSubmittedReason, "Auto-Submitted") {
		t.Errorf("auto-reply = %v %q", d.Article.AutoSubmitted, d.Article.AutoSubmittedReason)
	}
	if d.Article.InReplyTo != "<orig@example.com>" || strings.Join(d.Article.References, " ") != "<root@example.com> <orig@example.com>" {
		t.Errorf("threading = %q %q", d.Article.InReplyTo, d.Article.References)
	}
	if d.Article.RawMIME == nil || !d.Article.RawMIME.Included || d.Article.RawMIME.ContentBase64 == "" {
		t.Errorf("raw MIME = %+v, want included", d.Article.RawMIME)
	}
}
