package deliver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

const (
	crashEnvDB   = "M365BRIDGE_CRASH_CHILD_DB"
	crashEnvURL  = "M365BRIDGE_CRASH_CHILD_URL"
	crashEvents  = 2000
	crashKillAt  = 600
	crashChannel = 4
)

func crashEventID(i int) string { return fmt.Sprintf("msg_crash%04d", i) }

// TestCrashRecovery enqueues 2,000 events in a child process that delivers
// them to a receiver here, SIGKILLs it while a POST is in flight, and
// restarts it: every event arrives, duplicates only under the same
// webhook-id with the same body, none lost.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashEnvDB) != "" {
		t.Skip("running as the crash child")
	}
	dbPath := filepath.Join(t.TempDir(), store.FileName)

	var mu sync.Mutex
	bodies := map[string][][]byte{} // webhook-id → bodies received
	var mismatched []string
	reachedKill := make(chan struct{})
	killed := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhooks.Verify(r.Header, body, []string{testSecret}); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev webhooks.Event
		json.Unmarshal(body, &ev)
		id := r.Header.Get(webhooks.HeaderID)
		mu.Lock()
		if ev.ID() != id {
			mismatched = append(mismatched, fmt.Sprintf("webhook-id %s carried data.id %s", id, ev.ID()))
		}
		bodies[id] = append(bodies[id], body)
		n := len(bodies)
		mu.Unlock()
		if n >= crashKillAt {
			once.Do(func() { close(reachedKill) })
			<-killed // hold this POST open: the child dies mid-delivery
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	child := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+dbPath, crashEnvURL+"="+srv.URL)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}

	first, out1 := child()
	select {
	case <-reachedKill:
	case <-time.After(60 * time.Second):
		first.Process.Kill()
		t.Fatalf("first child never reached %d deliveries:\n%s", crashKillAt, out1)
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	first.Wait()
	close(killed)
	mu.Lock()
	atKill := len(bodies)
	mu.Unlock()
	if atKill >= crashEvents {
		t.Fatalf("all %d events were delivered before the kill: the test proves nothing", atKill)
	}

	second, out2 := child()
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second child: %v\n%s", err, out2)
		}
	case <-time.After(90 * time.Second):
		second.Process.Kill()
		t.Fatalf("second child did not finish:\n%s", out2)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, m := range mismatched {
		t.Error(m)
	}
	var missing []string
	for i := 0; i < crashEvents; i++ {
		if _, ok := bodies[crashEventID(i)]; !ok {
			missing = append(missing, crashEventID(i))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d events lost, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(bodies) != crashEvents {
		t.Errorf("received %d distinct ids, want %d", len(bodies), crashEvents)
	}
	dups := 0
	for id, bs := range bodies {
		for _, b := range bs[1:] {
			dups++
			if !bytes.Equal(b, bs[0]) {
				t.Errorf("%s redelivered with a different body", id)
			}
		}
	}
	if dups == 0 {
		t.Error("no duplicate after killing the sender mid-POST: the in-flight event was marked delivered without an answer?")
	}
	db, err := store.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Outbox().List(context.Background(), deliver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.State != deliver.StateDelivered {
			t.Errorf("row %s is %s", r.EventID, r.State)
		}
	}
	if len(rows) != crashEvents {
		t.Errorf("outbox holds %d rows, want %d (re-enqueue after restart must be a no-op)", len(rows), crashEvents)
	}
	t.Logf("killed after %d distinct deliveries; %d duplicate deliveries, all with the same webhook-id and body", atKill, dups)
}

// TestCrashChild is the child process of TestCrashRecovery: it enqueues
// every event (a no-op for those already there) and delivers until the
// outbox has no pending row.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var batch []store.OutboxEvent
	for i := 0; i < crashEvents; i++ {
		id := crashEventID(i)
		ev, _ := webhooks.NewEvent(webhooks.TypeWebhookTest, time.Now(), webhooks.TestData{ID: id, Version: 1, Message: strings.Repeat("x", 200)})
		body, _ := json.Marshal(ev)
		batch = append(batch, store.OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: fmt.Sprintf("c%d", i%crashChannel), Type: ev.Type, Body: body})
		if len(batch) == 250 {
			if err := db.Enqueue(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	d, err := deliver.New(db.Outbox(), []deliver.Endpoint{{
		Name: "helpdesk", URL: os.Getenv(crashEnvURL), Secrets: []string{testSecret},
		Concurrency: 8, Schedule: []time.Duration{200 * time.Millisecond}, MaxAttempts: 1000, Timeout: 5 * time.Second,
	}}, deliver.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	for deadline := time.Now().Add(80 * time.Second); ; {
		n, err := db.Outbox().List(ctx, deliver.Filter{States: []deliver.State{deliver.StatePending}, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(n) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("outbox still has pending rows")
		}
		time.Sleep(50 * time.Millisecond) // pacing: polling the outbox of a live dispatcher, with a deadline as the safety net
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}
