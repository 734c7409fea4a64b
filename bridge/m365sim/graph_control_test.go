package m365sim

import (
	"encoding/json"
	"net/url"
	"testing"
)

func TestMailControlAPI(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mb := "/_sim/mail/support@contoso.example"

	resp, b := f.call(t, "POST", mb+"/messages?folder=Inbox/Support&received=2024-05-01T10:00:00Z", "", []byte(sampleEML), "Content-Type", "message/rfc822")
	if resp.StatusCode != 201 {
		t.Fatalf("inject raw: %d %s", resp.StatusCode, b)
	}
	var raw MessageInfo
	json.Unmarshal(b, &raw)
	if raw.Folder != "Inbox/Support" || raw.Subject != "Invoice question" || raw.InternetMessageID != "<q1@customer.example>" {
		t.Errorf("raw inject: %+v", raw)
	}
	resp, b = f.call(t, "POST", mb+"/messages", "", map[string]any{"subject": "JSON mail", "from": "Pat <pat@example.org>", "body": "hi"})
	if resp.StatusCode != 201 {
		t.Fatalf("inject json: %d %s", resp.StatusCode, b)
	}

	var list struct{ Value []MessageInfo }
	_, b = f.call(t, "GET", mb+"/messages?folder=Inbox", "", nil)
	json.Unmarshal(b, &list)
	if len(list.Value) != 1 || list.Value[0].Subject != "JSON mail" || list.Value[0].From != "pat@example.org" {
		t.Errorf("list: %s", b)
	}

	// The user moves the message out and back: rest id changes each time.
	_, b = f.call(t, "POST", mb+"/messages/"+url.PathEscape(raw.ID)+"/move", "", map[string]string{"folder": "Archive"})
	var moved MessageInfo
	json.Unmarshal(b, &moved)
	if moved.Folder != "Archive" || moved.ID == raw.ID || moved.ImmutableID != raw.ImmutableID {
		t.Errorf("moved: %+v", moved)
	}
	if resp, _ := f.call(t, "PATCH", mb+"/messages/"+url.PathEscape(raw.ImmutableID), "", map[string]bool{"isRead": true}); resp.StatusCode != 204 {
		t.Errorf("patch: %d", resp.StatusCode)
	}
	if got := f.sim.Messages("support@contoso.example", "Archive"); len(got) != 1 || !got[0].IsRead {
		t.Errorf("after patch: %+v", got)
	}

	// A folder renamed and restored keeps its id.
	id, err := f.sim.FolderID("support@contoso.example", "Inbox/Support")
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := f.call(t, "PATCH", mb+"/folders", "", map[string]string{"path": "Inbox/Support", "name": "Helpdesk"}); resp.StatusCode != 204 {
		t.Fatalf("rename: %d %s", resp.StatusCode, b)
	}
	if got, _ := f.sim.FolderID("support@contoso.example", "Inbox/Helpdesk"); got != id {
		t.Errorf("renamed folder id %q, want %q", got, id)
	}
	f.sim.RenameFolder("support@contoso.example", "Inbox/Helpdesk", "Support")
	if resp, _ := f.call(t, "POST", mb+"/folders", "", map[string]string{"path": "Inbox/Support/Tier2"}); resp.StatusCode != 201 {
		t.Errorf("create folder: %d", resp.StatusCode)
	}

	if resp, _ := f.call(t, "DELETE", mb+"/messages/"+url.PathEscape(raw.ImmutableID), "", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if got := f.sim.Messages("support@contoso.example", "Deleted Items"); len(got) != 1 {
		t.Errorf("user delete goes to Deleted Items: %+v", got)
	}

	if resp, _ := f.call(t, "PUT", mb+"/enabled", "", map[string]bool{"enabled": false}); resp.StatusCode != 204 {
		t.Fatal(resp.Status)
	}
	resp, b = f.call(t, "GET", "/v1.0/users/support@contoso.example/messages", f.aliceTok, nil)
	wantGraphError(t, resp, b, 404, "MailboxNotEnabledForRESTAPI")

	var c Counters
	_, b = f.call(t, "GET", "/_sim/counters", "", nil)
	json.Unmarshal(b, &c)
	if c.Requests != 1 || c.ByMailbox["support@contoso.example"] != 1 || c.ByStatus["404"] != 1 || c.ByKind["message.list"] != 1 {
		t.Errorf("counters %s", b)
	}
	f.call(t, "DELETE", "/_sim/counters", "", nil)
	if c := f.sim.Counters(); c.Requests != 0 {
		t.Errorf("reset: %+v", c)
	}

	for _, bad := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/_sim/mail/nobody@x/messages", map[string]string{"subject": "x"}, 404},
		{"GET", "/_sim/mail/support@contoso.example/messages?folder=Nope", nil, 404},
		{"POST", mb + "/messages/nope/move", map[string]string{"folder": "Inbox"}, 404},
		{"POST", mb + "/messages", map[string]string{"from": "not an address <"}, 400},
		{"POST", mb + "/messages", map[string]string{"unknownField": "x"}, 400},
		{"PATCH", mb + "/folders", map[string]string{"path": "Inbox", "name": ""}, 400},
	} {
		resp, b := f.call(t, bad.method, bad.path, "", bad.body)
		if resp.StatusCode != bad.status {
			t.Errorf("%s %s: %d, want %d: %s", bad.method, bad.path, resp.StatusCode, bad.status, b)
		}
	}
}
