package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// outboxFixture writes a minimal bridge.yaml whose state_dir holds an
// outbox with one pending, one dead and one rejected row.
func outboxFixture(t *testing.T) (configPath string, db *store.DB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("M365_CLIENT_SECRET", "x")
	t.Setenv("HELPDESK_WEBHOOK_SECRET", cliSecret)
	configPath = filepath.Join(dir, "bridge.yaml")
	// The admin listener is a port nobody listens on, so the commands work
	// on the store, whatever daemon runs on this machine's default port.
	yaml := `public_url: https://bridge.example.com
admin: {listen: "` + freeAddr(t) + `"}
state_dir: ./state
microsoft:
  client_id: 00000000-0000-0000-0000-000000000001
  client_secret: ${M365_CLIENT_SECRET}
  tenant: contoso.onmicrosoft.com
webhooks:
  - name: helpdesk
    url: https://helpdesk.example.com/hooks/m365
    secret: ${HELPDESK_WEBHOOK_SECRET}
channels:
  - name: support
    mailbox: {type: shared, address: support@contoso.com}
`
	if err := os.WriteFile(configPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "state", store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, id := range []string{"msg_pending", "msg_dead", "msg_rejected"} {
		if err := db.Enqueue(ctx, store.OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: "support", Type: "mail.received", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := db.Outbox().List(ctx, deliver.Filter{})
	q := db.Outbox()
	q.MarkAttempt(ctx, rows[1].Seq, 12, db.Now(), db.Now())
	q.MarkDead(ctx, rows[1].Seq, 503, "Service Unavailable\nupstream down")
	q.MarkAttempt(ctx, rows[2].Seq, 1, db.Now(), db.Now())
	q.MarkRejected(ctx, rows[2].Seq, 400, "missing field title")
	return configPath, db
}

func TestDeliveriesCommand(t *testing.T) {
	cfg, _ := outboxFixture(t)
	var out bytes.Buffer
	if err := runDeliveries(context.Background(), []string{"--config", cfg}, &out, &out); err != nil {
		t.Fatalf("deliveries: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"msg_pending", "msg_dead", "dead", "503", "Service Unavailable upstream down", "msg_rejected", "missing field title"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	if err := runDeliveries(context.Background(), []string{"--config", cfg, "--state", "dead", "--json"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var row admin.DeliveryView
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &row) != nil || row.EventID != "msg_dead" || row.Attempts != 12 || row.LastStatus != 503 {
		t.Errorf("--state dead --json = %q", out.String())
	}

	err := runDeliveries(context.Background(), []string{"--config", cfg, "--state", "lost"}, &out, &out)
	if _, ok := err.(usageError); !ok {
		t.Errorf("--state lost: %v, want a usage error", err)
	}
}

func TestReplayCommand(t *testing.T) {
	cfg, db := outboxFixture(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := runReplay(ctx, []string{"--config", cfg}, &out, &out); err == nil {
		t.Error("replay without a selector: no error")
	}
	if err := runReplay(ctx, []string{"--config", cfg, "--id", "msg_dead,msg_pending"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replayed 1 event") {
		t.Errorf("output %q, want 1 replayed (msg_pending is not dead)", out.String())
	}
	rows, _ := db.Outbox().List(ctx, deliver.Filter{IDs: []string{"msg_dead"}})
	if r := rows[0]; r.State != deliver.StatePending || r.Attempts != 0 || r.EventID != "msg_dead" {
		t.Errorf("msg_dead after replay: %+v", r)
	}
	out.Reset()
	dir := filepath.Join(filepath.Dir(cfg), "state")
	if err := runReplay(ctx, []string{"--state-dir", dir, "--channel", "support", "--since", "24h"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replayed 1 event") {
		t.Errorf("replay --channel: %q, want the rejected one", out.String())
	}
	out.Reset()
	if err := runReplay(ctx, []string{"--state-dir", dir, "--channel", "support"}, &out, &out); err != nil || !strings.Contains(out.String(), "nothing to replay") {
		t.Errorf("second replay: %v %q, want nothing to replay", err, out.String())
	}
}

func TestDeliveriesPauseResume(t *testing.T) {
	cfg, db := outboxFixture(t)
	ctx := context.Background()
	if err := db.Outbox().SetEndpoint(ctx, "helpdesk", deliver.EndpointDisabled, "receiver answered 410 Gone", db.Now()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runDeliveries(ctx, []string{"--config", cfg}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "endpoint helpdesk is disabled") || !strings.Contains(out.String(), "410 Gone") {
		t.Errorf("listing does not warn about the disabled endpoint:\n%s", out.String())
	}
	out.Reset()
	if err := runDeliveries(ctx, []string{"--config", cfg, "--resume", "helpdesk"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Outbox().Endpoint(ctx, "helpdesk"); st.State != deliver.EndpointActive {
		t.Errorf("after --resume: %s, want active", st.State)
	}
	if strings.Contains(out.String(), "is disabled") {
		t.Errorf("still warns after --resume:\n%s", out.String())
	}
	if err := runDeliveries(ctx, []string{"--config", cfg, "--pause", "helpdesk"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Outbox().Endpoint(ctx, "helpdesk"); st.State != deliver.EndpointPaused {
		t.Errorf("after --pause: %s, want paused", st.State)
	}
}
