package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
)

// TestDaemonHoldsImportBackWithinStateBudget is issue 17's bounded state
// directory through the real wiring: bridge.yaml sets state_budget_bytes
// below one delta page and the helpdesk endpoint is paused (the receiver
// down). The daemon imports one page (a channel with nothing pending never
// waits), then holds the import back instead of reading the folder into
// its state directory: a log line, the admin API shows "held back", the
// rest of the mail stays in the mailbox. Resumed, every message arrives
// exactly once.
func TestDaemonHoldsImportBackWithinStateBudget(t *testing.T) {
	const n, page, budget = 230, 100, 100_000 // a page of 100 small events weighs ~300 KB
	rig := newRigBase(t, nil)
	rig.writeConfig(`  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    folder: Inbox/Hold
    poll_interval: 24h
    archive: {mode: off}
`)
	yaml := fmt.Sprintf("state_budget_bytes: %d\n", budget) + rig.yaml
	if err := os.WriteFile(rig.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	rig.start()
	t.Cleanup(rig.stop)
	for i := range n {
		if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Hold",
			Subject: fmt.Sprintf("held %d", i), From: "carol@example.com", Body: strings.Repeat("hello ", 150)}); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+rig.d.AdminAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := admin(http.MethodPost, "/api/endpoints/helpdesk/pause"); res.StatusCode/100 != 2 {
		t.Fatalf("pause endpoint: %d", res.StatusCode)
	}
	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent page: %.300s", page)
	}

	var held *mailsync.HeldBack
	waitUntil(t, "the import held back", 30*time.Second, func() bool {
		r, ok := rig.d.Runner("support")
		held = nil
		if ok {
			held = r.Status().HeldBack
		}
		return held != nil
	})
	if held.BudgetBytes != budget || held.PendingBytes <= budget {
		t.Errorf("held back at %+v, want pending over the budget %d", held, budget)
	}
	counts, err := rig.d.db.LedgerCounts(context.Background(), "support")
	if err != nil {
		t.Fatal(err)
	}
	var queued int
	for _, c := range counts {
		queued += c
	}
	if queued != page {
		t.Errorf("imported %d messages while held back, want one page (%d): the rest stays in the mailbox", queued, page)
	}
	res := admin(http.MethodGet, "/api/channels")
	var chans []struct {
		Name string
		Sync *mailsync.Status
	}
	err = json.NewDecoder(res.Body).Decode(&chans)
	res.Body.Close()
	if err != nil || len(chans) != 1 || chans[0].Sync == nil || chans[0].Sync.HeldBack == nil {
		t.Fatalf("GET /api/channels while held back: %+v, %v; want sync.held_back", chans, err)
	}

	if res := admin(http.MethodPost, "/api/endpoints/helpdesk/resume"); res.StatusCode/100 != 2 {
		t.Fatalf("resume endpoint: %d", res.StatusCode)
	}
	events := rig.waitEvents(n)
	rig.mu.Lock()
	posts := rig.posts
	rig.mu.Unlock()
	if len(events) != n || posts != n {
		t.Errorf("receiver got %d posts of %d distinct events, want %d each once", posts, len(events), n)
	}
	// One line when a wait starts and one when it ends, not one per check
	// (each delivery wakes the runner to check again): at most one wait
	// per page after the first.
	holds := strings.Count(rig.logs.String(), "import held back")
	if holds < 1 || holds > (n-1)/page {
		t.Errorf("logged %d times that the import is held back, want 1 to %d (one per wait)", holds, (n-1)/page)
	}
	waitUntil(t, "each wait's end logged", 30*time.Second, func() bool {
		return strings.Count(rig.logs.String(), "import resumed") == holds
	})
}
