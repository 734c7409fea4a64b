package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// TestDaemonResyncAfterStaleDeltaLink: another app syncs the same folder
// until Exchange's delta token cache has dropped the daemon's committed
// delta link (the sim models the cache: 16 tokens per folder). The daemon's
// next round gets 410 syncStateNotFound, runs a full resync and delivers
// only the two new mails: zero duplicate events, and few Graph requests.
func TestDaemonResyncAfterStaleDeltaLink(t *testing.T) {
	const (
		mailbox = "support@contoso.com"
		folder  = "Inbox/Support"
		initial = 30
	)
	rig := newDaemonRig(t, nil)
	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	for i := range initial {
		if _, err := rig.sim.Sim.InjectMessage(mailbox, m365sim.NewMessage{Folder: folder, Subject: fmt.Sprintf("old %d", i),
			From: "carol@example.com", Body: "Hello", Received: old.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent page: %.300s", page)
	}
	rig.waitEvents(initial)

	// Another client pages the folder's delta one message per page: each
	// page is a new token generation, 30 > the cache of 16.
	folderID, err := rig.sim.Sim.FolderID(mailbox, folder)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := rig.sim.Sim.IssueTokens("agent@contoso.com", m365sim.DefaultClientID, "Mail.ReadWrite.Shared")
	if err != nil {
		t.Fatal(err)
	}
	link := rig.sim.GraphURL() + "/users/" + mailbox + "/mailFolders/" + url.PathEscape(folderID) + "/messages/delta?$select=subject"
	for pages := 0; link != ""; pages++ {
		if pages > 100 {
			t.Fatal("the other client's delta never ended")
		}
		req, _ := http.NewRequest(http.MethodGet, link, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Prefer", "odata.maxpagesize=1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Next string `json:"@odata.nextLink"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("other client's delta: %d %v", resp.StatusCode, err)
		}
		link = page.Next
	}

	for i := range 2 {
		if _, err := rig.sim.Sim.InjectMessage(mailbox, m365sim.NewMessage{Folder: folder, Subject: fmt.Sprintf("new %d", i),
			From: "erin@example.com", Body: "Help"}); err != nil {
			t.Fatal(err)
		}
	}
	rig.sim.Sim.ResetCounters()
	req, _ := http.NewRequest(http.MethodPost, "http://"+rig.d.AdminAddr()+"/api/channels/support/sync", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The round's summary line is the runner's signal that the resync is
	// committed: every event it queued is in the outbox by then.
	deadline := time.Now().Add(30 * time.Second)
	var summary string
	for summary == "" {
		for _, l := range strings.Split(rig.logs.String(), "\n") {
			if strings.Contains(l, `msg="sync round"`) && strings.Contains(l, "channel=support") && strings.Contains(l, "resyncs=1") {
				summary = l
			}
		}
		if summary == "" && time.Now().After(deadline) {
			t.Fatalf("no resync round in the logs:\n%s", rig.logs.String())
		}
		time.Sleep(10 * time.Millisecond) // pacing: the log is what tells; the deadline is the safety net
	}
	if !strings.Contains(rig.logs.String(), "syncStateNotFound") {
		t.Errorf("the resync was not caused by a 410 syncStateNotFound:\n%s", rig.logs.String())
	}
	var pages, queued, known int
	for _, f := range strings.Fields(summary) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pages":
			pages, _ = strconv.Atoi(v)
		case "queued":
			queued, _ = strconv.Atoi(v)
		case "known":
			known, _ = strconv.Atoi(v)
		}
	}
	// Wait for every delivery the round queued, then count: duplicates
	// would be deliveries beyond the 32 distinct mails.
	deadline = time.Now().Add(30 * time.Second)
	for {
		rig.mu.Lock()
		posts := rig.posts
		rig.mu.Unlock()
		if posts >= initial+queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want %d", posts, initial+queued)
		}
		time.Sleep(10 * time.Millisecond) // pacing of a look at the receiver's count; the deadline is the safety net
	}
	events := rig.snapshot()
	counters := rig.sim.Sim.Counters()
	rig.mu.Lock()
	posts := rig.posts
	rig.mu.Unlock()
	if queued != 2 || known != initial {
		t.Errorf("resync round %q: want queued=2 known=%d", summary, initial)
	}
	if len(events) != initial+2 || posts != initial+2 {
		t.Errorf("events: %d distinct, %d deliveries; want %d and %d (no duplicates)", len(events), posts, initial+2, initial+2)
	}
	t.Logf("resync cost: %d Graph requests (%d delta in %d page(s), by status %v) for %d known + 2 new messages",
		counters.Requests, counters.ByKind["delta"], pages, counters.ByStatus, initial)
	if d := counters.ByKind["delta"]; d < 2 || d > 3 {
		t.Errorf("%d delta requests for the resync; want the 410 and one or two pages", d)
	}
}
