package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

func TestChannelViewProblem(t *testing.T) {
	tests := []struct {
		name     string
		v        channelView
		wantWhat string
		wantFix  string
	}{
		{"not connected", channelView{Auth: store.ChannelStatus{State: store.ChannelNeedsConsent}},
			"Not connected yet.", "Click Connect and sign in with the account that owns the mailbox (or, for a shared mailbox, one that has full access to it)."},
		{"refused grant", channelView{Name: "sales", Auth: store.ChannelStatus{State: store.ChannelReauthRequired, Code: "AADSTS700082", Reason: "the refresh token expired",
			Fix: "Re-authenticate the channel: run `m365bridge auth CHANNEL --reauth` and open the URL it prints."}},
			"AADSTS700082: the refresh token expired", "Re-authenticate the channel: run `m365bridge auth sales --reauth` and open the URL it prints. Or click Re-authenticate below."},
		{"refresh trouble", channelView{Auth: store.ChannelStatus{State: store.ChannelError, Reason: "token refresh failed: dial tcp: timeout", Fix: "Check the network."}},
			"token refresh failed: dial tcp: timeout", "Check the network."},
		{"runner error", channelView{Auth: store.ChannelStatus{State: store.ChannelActive}, Runner: &mailsync.Status{State: mailsync.RunnerError, Reason: "folder Inbox/Support not found", Fix: "Fix folder:"}},
			"folder Inbox/Support not found", "Fix folder:"},
		{"stored sync error, no runner", channelView{Auth: store.ChannelStatus{State: store.ChannelActive}, Sync: store.SyncState{Status: store.SyncError, ErrorReason: "403", ErrorFix: "Grant access."}},
			"403", "Grant access."},
		{"healthy", channelView{Auth: store.ChannelStatus{State: store.ChannelActive}, Runner: &mailsync.Status{State: mailsync.RunnerIdle}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.v.Problem()
			if got.What != tt.wantWhat || got.Fix != tt.wantFix {
				t.Errorf("Problem() = %+v, want %q / %q", got, tt.wantWhat, tt.wantFix)
			}
		})
	}
}

func TestChannelViewSyncSummary(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cutoff := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		v           channelView
		wantArchive string
		wantLag     string
		wantActive  bool
		wantPercent int
		wantUp      bool
	}{
		{"never synced", channelView{}, "not decided yet (at the first sync)", "never", false, 0, false},
		{"first sync under way", channelView{Sync: store.SyncState{ArchiveMode: "on", ArchiveCutoff: cutoff, Seen: 2500, ProgressTotal: 10000}},
			"on: received before 2026-11-20T08:00:00Z is archived", "never", true, 25, false},
		{"first sync done, runner idle", channelView{
			Sync:   store.SyncState{ArchiveMode: "off", Seen: 10, ProgressTotal: 10, InitialDoneAt: now.Add(-time.Hour), Status: store.SyncOK, LastSyncAt: now.Add(-time.Hour)},
			Runner: &mailsync.Status{State: mailsync.RunnerIdle, LastSuccessAt: now.Add(-90 * time.Second)}},
			"off: every message is new", "1m30s", false, 0, true},
		{"restarted, no runner yet: the store's last good sync", channelView{
			Sync: store.SyncState{ArchiveMode: "on", InitialDoneAt: now, Status: store.SyncOK, LastSyncAt: now.Add(-5 * time.Minute)}},
			"on", "5m0s", false, 0, true},
		{"last round failed", channelView{Sync: store.SyncState{ArchiveMode: "on", InitialDoneAt: now, Status: store.SyncError, LastSyncAt: now}},
			"on", "never", false, 0, false},
		{"runner paused", channelView{Runner: &mailsync.Status{State: mailsync.RunnerPaused}}, "not decided yet (at the first sync)", "never", false, 0, false},
		{"more seen than the estimate", channelView{Sync: store.SyncState{ArchiveMode: "on", Seen: 120, ProgressTotal: 100}}, "on", "never", true, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.ArchiveText(); got != tt.wantArchive {
				t.Errorf("ArchiveText() = %q, want %q", got, tt.wantArchive)
			}
			if got := tt.v.Lag(now); got != tt.wantLag {
				t.Errorf("Lag() = %q, want %q", got, tt.wantLag)
			}
			if _, _, got := tt.v.FirstSync(); got != tt.wantActive {
				t.Errorf("FirstSync() active = %v, want %v", got, tt.wantActive)
			}
			if got := tt.v.Percent(); got != tt.wantPercent {
				t.Errorf("Percent() = %d, want %d", got, tt.wantPercent)
			}
			if got := tt.v.Up(); got != tt.wantUp {
				t.Errorf("Up() = %v, want %v", got, tt.wantUp)
			}
		})
	}
}

// TestRedactURL pins what the status page and the webhook probe show of a
// webhook URL: no credential, no query, nothing of an unparsable URL.
func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://helpdesk.example.com/api/v1/hooks", "https://helpdesk.example.com/api/v1/hooks"},
		{"https://helpdesk.example.com/hooks?token=s3cret", "https://helpdesk.example.com/hooks?redacted"},
		{"https://user:pass@helpdesk.example.com/hooks", "https://helpdesk.example.com/hooks"},
		{"http://[::1", "[unparsable url]"},
	}
	for _, tt := range tests {
		if got := deliver.RedactURL(tt.in); got != tt.want {
			t.Errorf("deliver.RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeliveryViewExcerpt(t *testing.T) {
	long := make([]byte, 0, 300)
	for len(long) < 200 {
		long = append(long, "é"...) // 2 bytes each: the cut must not split one
	}
	tests := []struct {
		in      string
		wantLen int
		suffix  bool
	}{
		{"short answer", len("short answer"), false},
		{string(long), 160 + len("…"), true},
	}
	for _, tt := range tests {
		got := DeliveryView{LastError: tt.in}.Excerpt()
		if len(got) != tt.wantLen {
			t.Errorf("Excerpt(%d bytes) has %d bytes, want %d", len(tt.in), len(got), tt.wantLen)
		}
		if tt.suffix && got[len(got)-len("…"):] != "…" {
			t.Errorf("cut excerpt does not end with …: %q", got)
		}
	}
}

func TestStatusTemplateFirstSyncProgress(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	page := statusPage{Version: "1.2.3", Now: now, CSRF: "c", Channels: []channelView{{
		Name: "support", MailboxType: "shared", MailboxAddress: "support@contoso.com", Folder: "Inbox/Support",
		Auth:   store.ChannelStatus{State: store.ChannelActive},
		Sync:   store.SyncState{ArchiveMode: "on", Seen: 2500, ProgressTotal: 10000, Archived: 2400, New: 100},
		Runner: &mailsync.Status{State: mailsync.RunnerSyncing},
	}}}
	var b strings.Builder
	if err := pageTemplates.ExecuteTemplate(&b, "status.html", page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"First sync: 2500 of about 10000 messages read (25%)", `<progress max="100" value="25">`,
		"2500 imported</span>: 2400 archived · 100 new · 0 rejected", "2500 read</span>", ">syncing</span>"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	page.Channels[0].Sync.InitialDoneAt = now
	b.Reset()
	if err := pageTemplates.ExecuteTemplate(&b, "status.html", page); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "First sync") {
		t.Error("progress shown after the first sync completed")
	}
}

// TestStatusTemplateCountsAddUp is issue 12 item 11: the demo's sales
// channel (6 mails, mark_read) showed "12 seen · 4 archived · 2 new". The
// message line must add up; delta entries are shown apart, for what they
// are.
func TestStatusTemplateCountsAddUp(t *testing.T) {
	page := statusPage{Now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Channels: []channelView{{
		Name: "sales", MailboxType: "user", Folder: "Inbox", AfterImport: "mark_read", PostDone: 6,
		Auth: store.ChannelStatus{State: store.ChannelActive},
		Sync: store.SyncState{ArchiveMode: "on", Seen: 12, Archived: 4, New: 2, InitialDoneAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)},
	}}}
	var b strings.Builder
	if err := pageTemplates.ExecuteTemplate(&b, "status.html", page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"6 imported</span>: 4 archived · 2 new · 0 rejected", "mark_read: 6 done", "12 read</span>"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(b.String(), "12 seen") {
		t.Error(`page still says "12 seen" for 6 messages`)
	}
}
