package m365sim

import (
	"net/url"
	"sync"
	"testing"
)

// TestOnMoveSeesEveryFolderExit: Options.OnMove hears a Graph move, a Graph
// DELETE (into Recoverable Items), a control-side move and a purge, with
// the folders as display paths, before the request is answered.
func TestOnMoveSeesEveryFolderExit(t *testing.T) {
	var mu sync.Mutex
	var got []MoveEvent
	f := newGraphFixture(t, Options{OnMove: func(ev MoveEvent) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
	}})
	seen := func() []MoveEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]MoveEvent(nil), got...)
	}
	mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("injecting a message reported %d moves", n)
	}
	msgPath := "/v1.0/me/messages/" + url.PathEscape(mi.ImmutableID)
	f.getJSON(t, "POST", msgPath+"/move", f.aliceTok, map[string]string{"destinationId": "archive"}, 201)
	// Answered after the hook ran: the event is there as soon as the 201 is.
	if s := seen(); len(s) != 1 || s[0] != (MoveEvent{Mailbox: "alice@contoso.example", ImmutableID: mi.ImmutableID, From: "Inbox", To: "Archive"}) {
		t.Fatalf("after a Graph move: %+v", s)
	}
	// Moving into the folder it is already in is no change and no event.
	f.getJSON(t, "POST", msgPath+"/move", f.aliceTok, map[string]string{"destinationId": "archive"}, 201)
	if n := len(seen()); n != 1 {
		t.Fatalf("a move to the same folder reported a move (%d events)", n)
	}
	if _, err := f.sim.MoveMessage("alice@contoso.example", mi.ImmutableID, "Deleted Items"); err != nil {
		t.Fatal(err)
	}
	resp, _ := f.call(t, "DELETE", msgPath, f.aliceTok, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	if err := f.sim.DeleteMessage("alice@contoso.example", mi.ImmutableID, true); err != nil {
		t.Fatal(err)
	}
	want := []MoveEvent{
		{From: "Inbox", To: "Archive"},
		{From: "Archive", To: "Deleted Items"},
		{From: "Deleted Items", To: "Recoverable Items/Deletions"},
		{From: "Recoverable Items/Deletions", To: ""},
	}
	s := seen()
	if len(s) != len(want) {
		t.Fatalf("events %+v, want %d", s, len(want))
	}
	for i, w := range want {
		w.Mailbox, w.ImmutableID = "alice@contoso.example", mi.ImmutableID
		if s[i] != w {
			t.Errorf("event %d = %+v, want %+v", i, s[i], w)
		}
	}
}
