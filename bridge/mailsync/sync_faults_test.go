package mailsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// afterDelta wraps the real Graph client and runs hook after the n-th Delta
// call: a seam to change the world between two pages of one round.
type afterDelta struct {
	MailboxAPI
	calls atomic.Int32
	n     int32
	hook  func()
}

func (a *afterDelta) Delta(ctx context.Context, folderID, cursor string, opts graph.DeltaOptions) (*graph.DeltaPage, error) {
	p, err := a.MailboxAPI.Delta(ctx, folderID, cursor, opts)
	if a.calls.Add(1) == a.n {
		a.hook()
	}
	return p, err
}

func injectMany(h *harness, mailbox, folder string, n int) []m365sim.MessageInfo {
	out := make([]m365sim.MessageInfo, 0, n)
	for i := range n {
		out = append(out, h.inject(mailbox, m365sim.NewMessage{Folder: folder, Subject: fmt.Sprintf("msg %d", i),
			From: fmt.Sprintf("c%d@example.com", i%7), Body: "body"}))
	}
	return out
}

// assertExactlyOnce checks every message was queued (outbox) and, when
// delivered, received once, under the one id derived from its immutable id.
func assertExactlyOnce(t *testing.T, h *harness, mailbox string, msgs []m365sim.MessageInfo, delivered bool) {
	t.Helper()
	rows, err := h.db.Outbox().List(context.Background(), deliverFilterAll())
	if err != nil {
		t.Fatal(err)
	}
	byGraphID := map[string]string{}
	for _, r := range rows {
		var ev webhooks.Event
		var d webhooks.MailData
		if json.Unmarshal(r.Body, &ev) != nil || json.Unmarshal(ev.Data, &d) != nil {
			t.Fatalf("outbox row %s does not decode", r.EventID)
		}
		if prev, ok := byGraphID[d.Article.GraphID]; ok {
			t.Errorf("message %s queued twice: %s and %s", d.Article.GraphID, prev, r.EventID)
		}
		byGraphID[d.Article.GraphID] = r.EventID
	}
	if len(rows) != len(msgs) {
		t.Errorf("outbox holds %d events, want %d", len(rows), len(msgs))
	}
	for _, mi := range msgs {
		id := h.eventID(mailbox, mi.ImmutableID)
		if byGraphID[mi.ImmutableID] != id {
			t.Errorf("%s: queued as %q, want %q", mi.Subject, byGraphID[mi.ImmutableID], id)
		}
		if delivered && h.rec.count(id) != 1 {
			t.Errorf("%s delivered %d times, want 1", mi.Subject, h.rec.count(id))
		}
	}
}

// Acceptance 4: delta token expiry mid-import, a folder renamed then
// restored, a message moved out and back, 429 storms and 503s: no loss, no
// duplicate ids.
func TestSyncSurvivesGraphTrouble(t *testing.T) {
	t.Run("delta token expires mid-import", func(t *testing.T) {
		h := newHarness(t, m365sim.Options{})
		msgs := injectMany(h, simSupport, "Inbox/Support", 230)
		r := h.runner(testChannel("support", config.MailboxShared, simSupport, "Inbox/Support"))
		r.cfg.PageSize = 50
		r.cfg.Graph = &afterDelta{MailboxAPI: r.cfg.Graph, n: 2, hook: func() {
			if err := h.sim.Sim.ExpireDeltaTokens(simSupport); err != nil {
				t.Error(err)
			}
		}}
		st := h.syncOnce(r)
		if st.Resyncs != 1 || st.Known != 100 || st.Queued != 230 {
			t.Errorf("stats = %+v, want 1 resync, the first 100 known again, 230 queued", st)
		}
		h.deliver(context.Background())
		assertExactlyOnce(t, h, simSupport, msgs, true)
		ss, _ := h.db.SyncState(context.Background(), "support")
		if ss.Resyncs != 1 || ss.DeltaLink == "" {
			t.Errorf("sync state = resyncs %d, cursor set %v", ss.Resyncs, ss.DeltaLink != "")
		}
		// The next round starts from the new deltaLink and finds nothing.
		if st := h.syncOnce(r); st.Queued != 0 || st.Known != 0 {
			t.Errorf("round after resync = %+v, want nothing new", st)
		}
	})

	t.Run("folder renamed then restored", func(t *testing.T) {
		h := newHarness(t, m365sim.Options{})
		msgs := injectMany(h, simSupport, "Inbox/Support", 5)
		ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
		r := h.runner(ch)
		h.syncOnce(r)
		if err := h.sim.Sim.RenameFolder(simSupport, "Inbox/Support", "Support (old)"); err != nil {
			t.Fatal(err)
		}
		// The cached folder id survives a rename: mail filed there still syncs.
		msgs = append(msgs, h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support (old)", Subject: "after rename", From: "a@example.com"}))
		if st := h.syncOnce(r); st.Queued != 1 {
			t.Errorf("round after rename = %+v, want the new message", st)
		}
		// A runner that must resolve the path (restart with a new state)
		// finds no folder: a clear channel error, nothing lost.
		fresh := testChannel("support-b", config.MailboxShared, simSupport, "Inbox/Support")
		rb := h.runner(fresh)
		_, err := rb.SyncOnce(context.Background())
		if !errors.Is(err, graph.ErrFolderNotFound) {
			t.Fatalf("sync of a renamed-away folder: err = %v, want ErrFolderNotFound", err)
		}
		ss, _ := h.db.SyncState(context.Background(), "support-b")
		if ss.Status != store.SyncError || ss.ErrorCode != "folder_not_found" || ss.ErrorFix == "" {
			t.Errorf("channel error = %q %q %q, want folder_not_found with a fix", ss.Status, ss.ErrorCode, ss.ErrorFix)
		}
		if s := rb.Status(); s.State != RunnerError || s.Reason == "" {
			t.Errorf("runner status = %+v", s)
		}
		if err := h.sim.Sim.RenameFolder(simSupport, "Inbox/Support (old)", "Support"); err != nil {
			t.Fatal(err)
		}
		if st := h.syncOnce(rb); st.Seen != 6 {
			t.Errorf("after restore = %+v, want all 6 seen", st)
		}
		if ss, _ := h.db.SyncState(context.Background(), "support-b"); ss.Status != store.SyncOK {
			t.Errorf("status after restore = %q, want ok", ss.Status)
		}
		if st := h.syncOnce(r); st.Queued != 0 {
			t.Errorf("original channel after restore = %+v, want nothing new", st)
		}
		h.deliver(context.Background())
		// Both channels read the same mailbox: one event per message.
		assertExactlyOnce(t, h, simSupport, msgs, true)
	})

	t.Run("message moved out and back", func(t *testing.T) {
		h := newHarness(t, m365sim.Options{})
		msgs := injectMany(h, simSupport, "Inbox/Support", 3)
		r := h.runner(testChannel("support", config.MailboxShared, simSupport, "Inbox/Support"))
		h.syncOnce(r)
		h.deliver(context.Background())
		if _, err := h.sim.Sim.MoveMessage(simSupport, msgs[1].ImmutableID, "Inbox"); err != nil {
			t.Fatal(err)
		}
		if st := h.syncOnce(r); st.Removed != 1 || st.Queued != 0 {
			t.Errorf("after move out = %+v, want one removal, nothing queued", st)
		}
		if _, err := h.sim.Sim.MoveMessage(simSupport, msgs[1].ImmutableID, "Inbox/Support"); err != nil {
			t.Fatal(err)
		}
		if st := h.syncOnce(r); st.Known != 1 || st.Queued != 0 {
			t.Errorf("after move back = %+v, want it known, nothing queued", st)
		}
		h.deliver(context.Background())
		assertExactlyOnce(t, h, simSupport, msgs, true)
	})

	t.Run("message deleted while its attachments are read", func(t *testing.T) {
		h := newHarness(t, m365sim.Options{})
		keep := injectMany(h, simSupport, "Inbox/Support", 2)
		doomed := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "doomed", From: "a@example.com",
			Attachments: []m365sim.NewAttachment{{Name: "a.pdf", Size: 100}}})
		r := h.runner(testChannel("support", config.MailboxShared, simSupport, "Inbox/Support"))
		r.cfg.Graph = &afterDelta{MailboxAPI: r.cfg.Graph, n: 1, hook: func() {
			if err := h.sim.Sim.DeleteMessage(simSupport, doomed.ImmutableID, true); err != nil {
				t.Error(err)
			}
		}}
		if st := h.syncOnce(r); st.Queued != 2 || st.Rejected != 0 {
			t.Errorf("stats = %+v, want the 2 others queued, nothing rejected", st)
		}
		if _, err := h.db.LedgerEntryByID(context.Background(), "support", doomed.ImmutableID); !errors.Is(err, store.ErrNoLedgerEntry) {
			t.Errorf("vanished message has a ledger row (err %v): it could never be imported if it came back", err)
		}
		assertExactlyOnce(t, h, simSupport, keep, false)
	})

	t.Run("429 storms and 503s", func(t *testing.T) {
		h := newHarness(t, m365sim.Options{MailboxConcurrency: 2})
		msgs := injectMany(h, simSupport, "Inbox/Support", 300)
		for _, f := range []m365sim.FaultRule{
			{Path: "**", Rate: 0.25, Status: 429, RetryAfter: 1},
			{Path: "**", Rate: 0.15, Status: 503},
		} {
			if _, err := h.sim.Sim.AddFault(f); err != nil {
				t.Fatal(err)
			}
		}
		ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
		ch.AfterImport = config.AfterImport{Action: config.ActionMarkRead}
		r := h.runner(ch)
		r.cfg.PageSize = 40
		// Failed post-actions wait before their retry: let time pass.
		var skew atomic.Int64
		r.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Add(int64(time.Hour)))) }
		// A round may give up after the client's bounded retries; the next
		// round resumes from the committed cursor.
		var rounds int
		for rounds = 1; rounds <= 30; rounds++ {
			if _, err := r.SyncOnce(context.Background()); err == nil {
				break
			}
		}
		h.deliver(context.Background())
		for range 30 {
			if _, err := r.SyncOnce(context.Background()); err == nil {
				if c, _ := h.db.LedgerCounts(context.Background(), "support"); c[store.LedgerDone] == len(msgs) {
					break
				}
			}
		}
		if c := h.sim.Sim.Counters(); c.Throttled+c.Faults == 0 {
			t.Error("no 429 or 503 was injected; the test proves nothing")
		}
		h.sim.Sim.ClearFaults()
		assertExactlyOnce(t, h, simSupport, msgs, true)
		c, _ := h.db.LedgerCounts(context.Background(), "support")
		if c[store.LedgerDone] != len(msgs) {
			t.Errorf("ledger = %v, want all %d done", c, len(msgs))
		}
		for _, mi := range h.sim.Sim.Messages(simSupport, "Inbox/Support") {
			if !mi.IsRead {
				t.Errorf("%s not marked read", mi.Subject)
			}
		}
	})
}
