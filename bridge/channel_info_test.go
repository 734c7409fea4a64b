package bridge

import (
	"net/http"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
)

// TestAPIChannelsArchiveAndCounts is issue 12 item 11 on the running
// daemon: GET /api/channels carries the archive decision (mode, reason,
// when) the README promises, message counts that add up, and post_done
// counts the mark_read actions that ran after delivery (they run on the
// dispatcher's Notify, outside a sync round).
func TestAPIChannelsArchiveAndCounts(t *testing.T) {
	rig := newDaemonRig(t, nil)
	injectSales(t, rig, "first")
	injectSales(t, rig, "second")
	mustConnect(t, rig, "sales", "sales@contoso.com")
	waitDeliveries(t, rig, "state=delivered&channel=sales", 2)

	var sales mailsync.ChannelInfo
	deadline := time.Now().Add(30 * time.Second) // safety net; normally well under a second
	for {
		code, body := adminCall(t, rig, http.MethodGet, "/api/channels", "admin-token", nil)
		var all []mailsync.ChannelInfo
		jsonField(t, body, &all)
		if code != http.StatusOK || len(all) != 2 || all[0].Name != "support" || all[1].Name != "sales" {
			t.Fatalf("GET /api/channels = %d %s, want support and sales in bridge.yaml order", code, body)
		}
		sales = all[1]
		if sales.Messages.PostDone == 2 && sales.Sync != nil && sales.Sync.Totals.PostDone == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("post_done never reached 2: messages %+v, runner %+v", sales.Messages, sales.Sync)
		}
		time.Sleep(20 * time.Millisecond) // pacing: the admin API is what tells, and it cannot push; the deadline is the safety net
	}
	if a := sales.Archive; a.Mode != "off" || a.Reason == "" || a.DecidedAt.IsZero() {
		t.Errorf("archive = %+v, want mode off with its reason and decision time", a)
	}
	m := sales.Messages
	if m.Imported != 2 || m.New != 2 || m.Archived+m.New+m.Rejected != m.Imported {
		t.Errorf("messages = %+v, want 2 imported = 0 archived + 2 new + 0 rejected", m)
	}
	if sales.State != "active" || sales.LastSyncAt.IsZero() || sales.FirstSyncDoneAt.IsZero() || sales.SyncError != nil {
		t.Errorf("sales = %+v, want active, synced, no error", sales)
	}
	code, body := adminCall(t, rig, http.MethodGet, "/api/channels", "admin-token", nil)
	var all []mailsync.ChannelInfo
	jsonField(t, body, &all)
	if code != 200 || all[0].Archive.Mode != mailsync.ArchiveUndecided || all[0].State != "needs_consent" {
		t.Errorf("support before sign-in = %+v, want needs_consent, archive undecided", all[0])
	}
}
