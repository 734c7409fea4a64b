package m365sim

import (
	"fmt"
	"net/url"
	"sort"
	"testing"
	"time"
)

// deltaRound follows nextLinks from start until a deltaLink; it returns
// the entries, the deltaLink and the number of pages.
func deltaRound(t *testing.T, f *graphFixture, start, tok string, hdr ...string) (entries []map[string]any, deltaLink string, pages int) {
	t.Helper()
	link := start
	for {
		pages++
		page := f.getJSON(t, "GET", link, tok, nil, 200, hdr...)
		if pages == 1 {
			assertShape(t, "delta", page, map[string]any{"@odata.context": "", "value": []any{}})
		}
		for _, v := range page["value"].([]any) {
			entries = append(entries, v.(map[string]any))
		}
		if next, ok := page["@odata.nextLink"].(string); ok {
			assertShape(t, "delta page", page, loadSample(t, "delta-page.json"))
			link = next
			continue
		}
		assertShape(t, "delta last page", page, loadSample(t, "delta-last.json"))
		return entries, page["@odata.deltaLink"].(string), pages
	}
}

func seedGenerated(t *testing.T, f *graphFixture, mailbox string, spec GenerateSpec) {
	t.Helper()
	f.sim.mu.Lock()
	defer f.sim.mu.Unlock()
	if err := f.sim.seedMailLocked(f.sim.mailboxes[mailbox], MailSeed{Generate: &spec}); err != nil {
		t.Fatal(err)
	}
}

func ids(entries []map[string]any) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e["id"].(string))
	}
	sort.Strings(out)
	return out
}

// TestDeltaThousandThenTen is acceptance 3.3: 1,000 seeded messages paged
// 50 at a time, 10 injected, the next round returns exactly those 10.
func TestDeltaThousandThenTen(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seedGenerated(t, f, "alice@contoso.example", GenerateSpec{Count: 1000, Size: 200})
	pref := []string{"Prefer", "odata.maxpagesize=50"}
	start := "/v1.0/me/mailFolders/inbox/messages/delta?$select=subject,receivedDateTime,isRead"

	first, deltaLink, pages := deltaRound(t, f, start, f.aliceTok, pref...)
	if pages != 20 || len(first) != 1000 {
		t.Fatalf("initial round: %d pages, %d entries; want 20, 1000", pages, len(first))
	}
	seen := map[string]bool{}
	for _, e := range first {
		if seen[e["id"].(string)] {
			t.Fatalf("duplicate %v", e["id"])
		}
		seen[e["id"].(string)] = true
		if _, ok := e["body"]; ok {
			t.Fatal("$select from the first request not kept in the token")
		}
	}

	var want []string
	for i := 0; i < 10; i++ {
		mi, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: fmt.Sprintf("new %d", i), Body: "x"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, mi.ID)
	}
	sort.Strings(want)
	second, deltaLink2, _ := deltaRound(t, f, deltaLink, f.aliceTok, pref...)
	if got := ids(second); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second round ids %v, want %v", got, want)
	}
	third, _, _ := deltaRound(t, f, deltaLink2, f.aliceTok, pref...)
	if len(third) != 0 {
		t.Errorf("quiet round returned %d entries", len(third))
	}
}

func TestDeltaChangesAndRemovals(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seeded := seedList(t, f, "alice@contoso.example", "Inbox", 5)
	imm := []string{"Prefer", `IdType="ImmutableId"`}
	_, link, _ := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta", f.aliceTok, imm...)

	// The user reads one, moves one out, deletes one; mail arrives.
	if err := f.sim.SetRead("alice@contoso.example", seeded[0].ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.MoveMessage("alice@contoso.example", seeded[1].ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	resp, _ := f.call(t, "DELETE", "/v1.0/me/messages/"+url.PathEscape(seeded[2].ID), f.aliceTok, nil)
	if resp.StatusCode != 204 {
		t.Fatal(resp.Status)
	}
	arrived, _ := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "arrived"})

	entries, link2, _ := deltaRound(t, f, link, f.aliceTok, imm...)
	got := map[string]map[string]any{}
	for _, e := range entries {
		got[e["id"].(string)] = e
	}
	if len(got) != 4 {
		t.Fatalf("entries %v", entries)
	}
	if e := got[seeded[0].ImmutableID]; e == nil || e["isRead"] != true {
		t.Errorf("updated: %v", e)
	}
	for id, reason := range map[string]string{seeded[1].ImmutableID: "changed", seeded[2].ImmutableID: "deleted"} {
		e := got[id]
		if e == nil {
			t.Errorf("no @removed for %s", id)
			continue
		}
		assertShape(t, "removed", e, loadSample(t, "delta-removed.json"))
		if r := e["@removed"].(map[string]any)["reason"]; r != reason {
			t.Errorf("reason %v, want %s", r, reason)
		}
	}
	if got[arrived.ImmutableID] == nil {
		t.Error("new message missing")
	}

	// Moved back in: it returns to the folder's delta.
	if _, err := f.sim.MoveMessage("alice@contoso.example", seeded[1].ImmutableID, "Inbox"); err != nil {
		t.Fatal(err)
	}
	back, _, _ := deltaRound(t, f, link2, f.aliceTok, imm...)
	if len(back) != 1 || back[0]["id"] != seeded[1].ImmutableID || back[0]["@removed"] != nil {
		t.Errorf("moved back: %v", back)
	}
}

func TestDeltaOptions(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seedList(t, f, "alice@contoso.example", "Inbox", 12)
	t.Run("filter receivedDateTime ge", func(t *testing.T) {
		since := graphTime(f.clockBase.Add(-3 * time.Hour))
		entries, _, _ := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta?$filter="+url.QueryEscape("receivedDateTime ge "+since), f.aliceTok)
		if len(entries) != 3 {
			t.Errorf("%d entries, want 3", len(entries))
		}
	})
	t.Run("$top sets the page size", func(t *testing.T) {
		entries, _, pages := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta?$top=5", f.aliceTok)
		if len(entries) != 12 || pages != 3 {
			t.Errorf("%d entries in %d pages", len(entries), pages)
		}
	})
	t.Run("changeType=created skips updates", func(t *testing.T) {
		_, link, _ := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta?changeType=created", f.aliceTok)
		list := f.sim.Messages("alice@contoso.example", "Inbox")
		f.sim.SetRead("alice@contoso.example", list[0].ID, !list[0].IsRead)
		mi, _ := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "created"})
		entries, _, _ := deltaRound(t, f, link, f.aliceTok)
		if len(entries) != 1 || entries[0]["id"] != mi.ID {
			t.Errorf("entries %v", entries)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, q := range []string{"changeType=bogus", "$filter=" + url.QueryEscape("isRead eq true"), "$orderby=subject"} {
			resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages/delta?"+q, f.aliceTok, nil)
			wantGraphError(t, resp, b, 400, "ErrorInvalidRequest")
		}
	})
}

func TestDeltaTokenExpiry(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seedList(t, f, "alice@contoso.example", "Inbox", 3)
	start := "/v1.0/me/mailFolders/inbox/messages/delta?$select=subject"

	t.Run("older than the TTL", func(t *testing.T) {
		_, link, _ := deltaRound(t, f, start, f.aliceTok)
		f.sim.SetDeltaTokenTTL(time.Hour)
		defer f.sim.SetDeltaTokenTTL(0)
		f.sim.Advance(61 * time.Minute)
		resp, b := f.call(t, "GET", link, f.aliceTok, nil)
		wantGraphError(t, resp, b, 410, "syncStateNotFound")
		loc := resp.Header.Get("Location")
		if loc == "" {
			t.Fatal("no Location header")
		}
		entries, _, _ := deltaRound(t, f, loc, f.aliceTok)
		if len(entries) != 3 {
			t.Errorf("restart from Location: %d entries", len(entries))
		}
		if _, ok := entries[0]["body"]; ok {
			t.Error("Location lost the $select of the expired round")
		}
	})
	t.Run("expired through the control API", func(t *testing.T) {
		_, link, _ := deltaRound(t, f, start, f.aliceTok)
		resp, _ := f.call(t, "POST", "/_sim/delta/expire?mailbox=alice@contoso.example", "", nil)
		if resp.StatusCode != 204 {
			t.Fatal(resp.Status)
		}
		resp, b := f.call(t, "GET", link, f.aliceTok, nil)
		wantGraphError(t, resp, b, 410, "syncStateNotFound")
	})
	t.Run("skiptoken mid-round", func(t *testing.T) {
		page := f.getJSON(t, "GET", start, f.aliceTok, nil, 200, "Prefer", "odata.maxpagesize=1")
		f.sim.ExpireDeltaTokens("")
		resp, b := f.call(t, "GET", page["@odata.nextLink"].(string), f.aliceTok, nil)
		wantGraphError(t, resp, b, 410, "syncStateNotFound")
	})
	t.Run("garbage token", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=not-a-token", f.aliceTok, nil)
		wantGraphError(t, resp, b, 410, "syncStateNotFound")
	})
}

func TestDeltaFilterCap(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seedGenerated(t, f, "alice@contoso.example", GenerateSpec{Count: maxFilteredDelta + 20, Size: 64,
		ReceivedFrom: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ReceivedUntil: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)})
	q := "$select=subject,receivedDateTime,isRead&$filter=" + url.QueryEscape("receivedDateTime ge 2023-01-01T00:00:00Z")
	entries, _, _ := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta?"+q, f.aliceTok, "Prefer", "odata.maxpagesize=1000")
	if len(entries) != maxFilteredDelta {
		t.Fatalf("%d entries, want %d", len(entries), maxFilteredDelta)
	}
	oldest := "2024-01-01T00:00:00Z"
	for _, e := range entries {
		if e["receivedDateTime"] == oldest {
			t.Fatal("the cap kept the oldest message, not the newest")
		}
	}
}

// TestDeltaTokenGenerations: the folder's delta token cache keeps the newest
// tokens only (GDC delta-query-overview.md, "Token duration"). A delta link
// that the folder's sync has moved past by the cache size answers 410 with a
// Location, while the newest one keeps working; skip tokens age the same way.
func TestDeltaTokenGenerations(t *testing.T) {
	f := newGraphFixture(t, Options{})
	f.sim.SetDeltaTokenCache(4)
	for i := range 5 {
		if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: fmt.Sprintf("m%d", i), From: "pat@example.org"}); err != nil {
			t.Fatal(err)
		}
	}
	start := "/v1.0/me/mailFolders/inbox/messages/delta"
	pref := []string{"Prefer", "odata.maxpagesize=1"}
	firstPage := f.getJSON(t, "GET", start, f.aliceTok, nil, 200, pref...)
	staleSkip := firstPage["@odata.nextLink"].(string)
	_, oldLink, _ := deltaRound(t, f, start, f.aliceTok, pref...)
	// Another client (or this one, later) syncs the folder: 4 more tokens.
	_, newLink, pages := deltaRound(t, f, start, f.aliceTok, pref...)
	if pages < 4 {
		t.Fatalf("only %d pages; the test needs the generation to move by the cache size", pages)
	}
	for name, link := range map[string]string{"delta link": oldLink, "skip token": staleSkip} {
		resp, b := f.call(t, "GET", link, f.aliceTok, nil, pref...)
		wantGraphError(t, resp, b, 410, "syncStateNotFound")
		if loc := resp.Header.Get("Location"); loc == "" {
			t.Errorf("%s: 410 without a Location", name)
		}
	}
	if entries, _, _ := deltaRound(t, f, newLink, f.aliceTok, pref...); len(entries) != 0 {
		t.Errorf("newest delta link: %d entries, want 0 (nothing changed)", len(entries))
	}
}
