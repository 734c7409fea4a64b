package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// connectedSample is the sample bridge.yaml pointed at a fresh simulator,
// with channel "sales" (the agent's own inbox, archive on before
// 2026-11-01, state closed) connected as if `m365bridge auth sales` had
// completed: the tokens are in the encrypted vault.
func connectedSample(t *testing.T) (path string, srv *m365sim.Server) {
	t.Helper()
	path = sampleInTempDir(t)
	srv, err := m365sim.StartServer(m365sim.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "http://127.0.0.1:8369", srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := srv.Sim.IssueTokens("agent@contoso.com", m365sim.DefaultClientID, "offline_access Mail.ReadWrite Mail.ReadWrite.Shared")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := openAuthState(ctx, path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := st.vault.SaveTokens(ctx, tx, "sales", store.Tokens{Access: ts.AccessToken, Refresh: ts.RefreshToken, Expiry: ts.Expires}); err != nil {
			return err
		}
		return st.db.BindChannel(ctx, tx, "sales", store.Binding{MailboxType: "user",
			Account: store.Account{TenantID: ts.TenantID, ObjectID: ts.UserID, UPN: "agent@contoso.com"}, TokenExpiry: ts.Expires})
	})
	if err != nil {
		t.Fatal(err)
	}
	return path, srv
}

func injectAt(t *testing.T, srv *m365sim.Server, subject, from, received string) m365sim.MessageInfo {
	t.Helper()
	at, err := time.Parse(time.RFC3339, received)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := srv.Sim.InjectMessage("agent@contoso.com", m365sim.NewMessage{Subject: subject, From: from, Body: "hello", Received: at})
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

func TestChannelsInspectAndSyncDryRun(t *testing.T) {
	path, srv := connectedSample(t)
	msgs := []m365sim.MessageInfo{
		injectAt(t, srv, "Invoice 1", "ada@customer.example", "2026-10-01T08:00:00Z"),
		injectAt(t, srv, "Invoice 2", "bob@buyer.example", "2026-10-15T12:30:00Z"),
		injectAt(t, srv, "New order", "chen@client.example", "2026-11-10T09:15:00Z"),
	}
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := runChannelsInspect(ctx, []string{"--config", path, "sales"}, &out, &errOut); err != nil {
		t.Fatalf("inspect: %v\n%s", err, errOut.String())
	}
	want := `Channel:   sales (agent@contoso.com)
Folder:    Inbox
Messages:  3
Oldest:    2026-10-01T08:00:00Z
Newest:    2026-11-10T09:15:00Z
Archive:   on, cut-off 2026-11-01T00:00:00Z (archive.mode on; what the first sync would decide)
           archive.mode is on with cut-off 2026-11-01T00:00:00Z
Would import: 2 archived (state closed, created at their original time, no automations), 1 new (state new)
Already in the ledger: 0
`
	if got := out.String(); got != want {
		t.Errorf("inspect output:\n%s\nwant:\n%s", got, want)
	}

	out.Reset()
	if err := runSync(ctx, []string{"--config", path, "--dry-run", "sales"}, &out, &errOut); err != nil {
		t.Fatalf("sync --dry-run: %v\n%s", err, errOut.String())
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	tenant := cfg.MS.Tenant // the daemon keys event ids the same way
	line := func(typ, state string, mi m365sim.MessageInfo, received string) string {
		return fmt.Sprintf("%-13s  %-6s  %s  %-30s  %-60s  %s\n", typ, state, received, mi.From, mi.Subject,
			webhooks.EventID(tenant, "agent@contoso.com", mi.ImmutableID))
	}
	wantLines := []string{
		line("mail.archived", "closed", msgs[0], "2026-10-01T08:00:00Z"),
		line("mail.archived", "closed", msgs[1], "2026-10-15T12:30:00Z"),
		line("mail.received", "new", msgs[2], "2026-11-10T09:15:00Z"),
	}
	got := out.String()
	for _, l := range wantLines {
		if !strings.Contains(got, l) {
			t.Errorf("dry-run output lacks\n%q\nin\n%s", l, got)
		}
	}
	if !strings.HasSuffix(got, "dry run: 3 events would be sent (2 archived, 1 new), 0 rejected, 0 already imported; nothing was changed\n") {
		t.Errorf("dry-run summary:\n%s", got)
	}

	// Nothing changed: the mailbox is as it was and the state holds no
	// cursor, decision, ledger row or outbox row.
	for _, mi := range srv.Sim.Messages("agent@contoso.com", "Inbox") {
		if mi.IsRead {
			t.Errorf("dry run marked %q read", mi.Subject)
		}
	}
	db, err := store.Open(ctx, filepath.Join(filepath.Dir(path), "data", store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ss, _ := db.SyncState(ctx, "sales")
	counts, _ := db.LedgerCounts(ctx, "sales")
	rows, _ := db.Outbox().List(ctx, deliverFilter())
	if ss.DeltaLink != "" || ss.ArchiveMode != "" || len(counts) != 0 || len(rows) != 0 {
		t.Errorf("dry run wrote state: sync %+v, ledger %v, outbox %d rows", ss, counts, len(rows))
	}

	// A real round queues the same events.
	out.Reset()
	if err := runSync(ctx, []string{"--config", path, "sales"}, &out, &errOut); err != nil {
		t.Fatalf("sync: %v\n%s", err, errOut.String())
	}
	if want := "sales: queued 3 events (2 archived, 1 new), 0 rejected, 0 already known, 0 post-import actions done\n"; out.String() != want {
		t.Errorf("sync output = %q, want %q", out.String(), want)
	}

	// `channels` shows the recorded archive decision and the counts.
	out.Reset()
	if err := run(ctx, []string{"channels", "--config", path}, &out, &errOut); err != nil {
		t.Fatalf("channels: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"ARCHIVE", "on before 2026-11-01T00:00:00Z", "3 = 2 archived + 1 new + 0 rejected",
		"sales: archive on: received before 2026-11-01T00:00:00Z is archived\n  decided ", ": archive.mode is on with cut-off 2026-11-01T00:00:00Z"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("channels output lacks %q:\n%s", want, out.String())
		}
	}

	// JSON lines are the events themselves.
	out.Reset()
	injectAt(t, srv, "Later", "dana@logistics.example", "2026-11-20T10:00:00Z")
	if err := runSync(ctx, []string{"--config", path, "--dry-run", "--json", "sales"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), `"type":"mail.received"`) || !strings.Contains(out.String(), `"subject":"Later"`) {
		t.Errorf("dry-run --json = %s", out.String())
	}
}

func TestInspectNeedsAConnectedChannel(t *testing.T) {
	path := sampleInTempDir(t)
	var out, errOut bytes.Buffer
	// Through the command line as an operator types it.
	err := run(context.Background(), []string{"channels", "inspect", "--config", path, "support"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "m365bridge auth support") {
		t.Errorf("inspect of an unconnected channel: err = %v, want a hint to run auth", err)
	}
	err = runSync(context.Background(), []string{"--config", path, "nope"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `no channel "nope"`) {
		t.Errorf("sync of an unknown channel: err = %v", err)
	}
	if err := runSync(context.Background(), []string{"--config", path}, &out, &errOut); err == nil {
		t.Error("sync without a channel: want a usage error")
	}
}

func deliverFilter() deliver.Filter { return deliver.Filter{} }
