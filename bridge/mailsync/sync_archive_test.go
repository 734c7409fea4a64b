package mailsync

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// queuedTypes returns the outbox's event types by subject.
func queuedTypes(t *testing.T, h *harness) map[string]string {
	t.Helper()
	rows, err := h.db.Outbox().List(context.Background(), deliverFilterAll())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		var d webhooks.MailData
		ev := decodeEvent(t, r.Body, &d)
		out[d.Article.Subject] = ev.Type + "/" + d.Ticket.State
	}
	return out
}

func summary(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// Acceptance 5: archive mode auto on a non-empty and an empty folder, off,
// and on with a cut-off; inspect and dry-run agree with what sync does.
func TestArchiveModes(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	cutoff := days(3)
	tests := []struct {
		name      string
		archive   config.Archive
		old       []time.Time // in the folder before the first sync
		wantMode  string
		wantFirst string // outbox after the first sync, by subject
		wantInsp  [2]int // inspect: would archive, would new
	}{
		{"auto, folder holds mail", config.Archive{Mode: "auto"}, []time.Time{days(10), days(1)},
			store.ArchiveDecidedOn, "old0=mail.archived/closed old1=mail.archived/closed", [2]int{2, 0}},
		{"auto, empty folder", config.Archive{Mode: "auto"}, nil,
			store.ArchiveDecidedOff, "", [2]int{0, 0}},
		{"off", config.Archive{Mode: "off"}, []time.Time{days(10), days(1)},
			store.ArchiveDecidedOff, "old0=mail.received/new old1=mail.received/new", [2]int{0, 2}},
		{"on with cut-off", config.Archive{Mode: "on", Before: &cutoff, State: "open"}, []time.Time{days(10), days(5), days(1)},
			store.ArchiveDecidedOn, "old0=mail.archived/open old1=mail.archived/open old2=mail.received/new", [2]int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, m365sim.Options{})
			h.sim.Sim.CreateFolder(simSupport, "Inbox/Support")
			for i, at := range tt.old {
				h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: fmt.Sprintf("old%d", i),
					From: "a@example.com", Received: at})
			}
			ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
			ch.Archive = tt.archive
			if ch.Archive.State == "" {
				ch.Archive.State = config.DefaultArchiveState
			}
			r := h.runner(ch)

			in, err := Inspect(context.Background(), r.cfg.Graph, r.cfg.Graph.(Lister), h.db, ch, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if in.Messages != len(tt.old) || in.WouldArchive != tt.wantInsp[0] || in.WouldNew != tt.wantInsp[1] ||
				in.Recorded || in.Decision.Mode != tt.wantMode {
				t.Errorf("inspect = %d messages, %d archive, %d new, recorded %v, mode %q; want %d, %v, not recorded, %q",
					in.Messages, in.WouldArchive, in.WouldNew, in.Recorded, in.Decision.Mode, len(tt.old), tt.wantInsp, tt.wantMode)
			}
			if len(tt.old) > 0 && (!in.Oldest.Equal(tt.old[0]) || !in.Newest.Equal(tt.old[len(tt.old)-1])) {
				t.Errorf("inspect oldest/newest = %v / %v", in.Oldest, in.Newest)
			}

			var dry []string
			if _, err := r.DryRun(context.Background(), func(ev *QueuedEvent, e store.LedgerEntry) error {
				dry = append(dry, ev.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n := h.outboxLen(); n != 0 {
				t.Fatalf("dry run queued %d events", n)
			}
			if ss, _ := h.db.SyncState(context.Background(), "support"); ss.ArchiveMode != "" || ss.DeltaLink != "" {
				t.Fatalf("dry run wrote sync state: %+v", ss)
			}

			h.syncOnce(r)
			ss, _ := h.db.SyncState(context.Background(), "support")
			if ss.ArchiveMode != tt.wantMode || ss.ArchiveReason == "" {
				t.Errorf("decision = %q (%q), want %q", ss.ArchiveMode, ss.ArchiveReason, tt.wantMode)
			}
			if got := summary(queuedTypes(t, h)); got != tt.wantFirst {
				t.Errorf("queued %q, want %q", got, tt.wantFirst)
			}
			rows, _ := h.db.Outbox().List(context.Background(), deliverFilterAll())
			if len(rows) != len(dry) {
				t.Errorf("dry run showed %d events, sync queued %d", len(dry), len(rows))
			}
			for i := range min(len(rows), len(dry)) {
				if !containsString(dry, rows[i].EventID) {
					t.Errorf("sync queued %s, which the dry run did not show", rows[i].EventID)
				}
			}
			if in2, _ := Inspect(context.Background(), r.cfg.Graph, r.cfg.Graph.(Lister), h.db, ch, time.Now()); !in2.Recorded || in2.Imported != len(tt.old) {
				t.Errorf("inspect after sync: recorded %v, imported %d", in2.Recorded, in2.Imported)
			}

			// Mail arriving after the first sync is always new.
			h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "later", From: "b@example.com"})
			h.syncOnce(r)
			if got := queuedTypes(t, h)["later"]; got != "mail.received/new" {
				t.Errorf("later mail = %q, want mail.received/new", got)
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
