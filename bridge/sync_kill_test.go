package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// killChildEnv carries the child's setup (JSON) when the test binary is
// re-executed as the bridge process that the parent kills.
const killChildEnv = "M365BRIDGE_SYNC_KILL_CHILD"

type killChildSetup struct {
	SimURL, Token, DBPath, ReceiverURL, Secret, Tenant string
}

// Acceptance 3: kill -9 the bridge at random points during a 5,000-message
// import, 10 times in a row, restarting each time: every message delivered,
// duplicates only under the same event id, no message deleted (after_import
// delete) before its delivery.
func TestKillNineDuringImport(t *testing.T) {
	n, kills := 5000, 10
	if testing.Short() || raceEnabled {
		n = 1000 // the same 10 kills, a smaller mailbox: see raceEnabled
	}
	h := newHarness(t, m365sim.Options{})
	msgs := injectMany(h, simSupport, "Inbox/Support", n)
	setup, _ := json.Marshal(killChildSetup{SimURL: h.sim.URL, Token: h.token, DBPath: h.dbPath,
		ReceiverURL: h.recv.URL, Secret: h.secret, Tenant: h.tenant})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	t.Logf("kill seed run: %d messages, %d kills", n, kills)

	start := func() (*exec.Cmd, *bytes.Buffer) {
		var out bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+string(setup))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	// deletedUndelivered lists messages moved to Deleted Items whose event
	// the receiver has not acknowledged: invariant 1 broken.
	deletedUndelivered := func() []string {
		var bad []string
		for _, mi := range h.sim.Sim.Messages(simSupport, "Deleted Items") {
			if h.rec.count(h.eventID(simSupport, mi.ImmutableID)) == 0 {
				bad = append(bad, mi.Subject)
			}
		}
		return bad
	}
	posts := func() int { h.rec.mu.Lock(); defer h.rec.mu.Unlock(); return h.rec.posts }
	deadline := time.Now().Add(50 * time.Second)
	for k := range kills {
		cmd, out := start()
		// Kill at a random point: after a random number of further
		// deliveries (so kills land while paging, delivering and running
		// post-actions), polling with a deadline.
		target := posts() + 1 + rng.IntN(max(n/(kills+2), 1))
		for posts() < target && time.Now().Before(deadline) && cmd.ProcessState == nil {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill() // SIGKILL: no shutdown, no flush
		cmd.Wait()
		if bad := deletedUndelivered(); len(bad) > 0 {
			t.Fatalf("after kill %d: %d messages deleted before delivery, e.g. %q\nchild output:\n%s", k+1, len(bad), bad[0], out)
		}
		t.Logf("kill %d at %d posts", k+1, posts())
	}
	// The last run finishes the import: everything delivered and deleted.
	cmd, out := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for {
		left := len(h.sim.Sim.Messages(simSupport, "Inbox/Support"))
		if left == 0 && h.rec.distinct() == n {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("import did not finish: %d left in the folder, %d of %d delivered\nchild output:\n%s",
				left, h.rec.distinct(), n, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()

	if bad := deletedUndelivered(); len(bad) > 0 {
		t.Fatalf("%d messages deleted before delivery", len(bad))
	}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	idOf := map[string]string{}
	for id, ev := range h.rec.events {
		if prev, ok := idOf[ev.Article.GraphID]; ok && prev != id {
			t.Errorf("message %s delivered under two ids: %s and %s", ev.Article.GraphID, prev, id)
		}
		idOf[ev.Article.GraphID] = id
	}
	dups := 0
	for _, mi := range msgs {
		id := h.eventID(simSupport, mi.ImmutableID)
		if idOf[mi.ImmutableID] != id {
			t.Errorf("%s: delivered as %q, want %q", mi.Subject, idOf[mi.ImmutableID], id)
		}
		dups += h.rec.byID[id] - 1
	}
	if got := len(h.sim.Sim.Messages(simSupport, "Deleted Items")); got != n {
		t.Errorf("Deleted Items holds %d, want %d", got, n)
	}
	t.Logf("%d messages, %d posts, %d re-deliveries under the same id", n, h.rec.posts, dups)
}

// TestKillChild is the bridge process of TestKillNineDuringImport; it only
// runs when re-executed with killChildEnv set, and runs until killed.
func TestKillChild(t *testing.T) {
	raw := os.Getenv(killChildEnv)
	if raw == "" {
		t.Skip("runs only as the child of TestKillNineDuringImport")
	}
	var s killChildSetup
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, s.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := deliver.New(db.Outbox(), []deliver.Endpoint{{Name: "helpdesk", URL: s.ReceiverURL, Secrets: []string{s.Secret},
		Concurrency: 4, Schedule: []time.Duration{0, 10 * time.Millisecond}}}, deliver.Options{PollInterval: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.AfterImport = config.AfterImport{Action: config.ActionDelete}
	ch.PollInterval = 20 * time.Millisecond
	client := &graph.Client{BaseURL: s.SimURL, Logger: log}
	r := NewRunner(RunnerConfig{
		Channel: ch, Tenant: s.Tenant, DB: db, Logger: log, PageSize: 200, Wake: d.Wake,
		Graph: client.Mailbox(graph.Mailbox{Shared: true, Address: simSupport},
			graph.TokenFunc(func(context.Context) (string, error) { return s.Token, nil })),
		Auth: func(context.Context) (bool, error) { return true, nil },
	})
	RegisterLedgerHooks(db, func(string) { r.Notify() })
	go d.Run(ctx)
	r.Run(ctx) // until SIGKILL
}
