package m365sim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func TestGraphAccessRules(t *testing.T) {
	f := newGraphFixture(t, Options{})
	if err := f.sim.SetMailboxEnabled("bob@contoso.example", true); err != nil {
		t.Fatal(err)
	}
	disabled := f.sim.AddSharedMailbox("old@contoso.example", "Old")
	f.sim.Delegate("old@contoso.example", "alice@contoso.example", true, false)
	f.sim.SetMailboxEnabled(disabled.Address, false)
	noShared := f.token(f.alice.ID, "Mail.ReadWrite")
	readOnly := f.token(f.alice.ID, "Mail.Read")
	noMail := f.token(f.alice.ID, "User.Read")

	cases := []struct {
		name, method, path, tok string
		status                  int
		code                    string
	}{
		{"no token", "GET", "/v1.0/me/mailFolders", "", 401, "InvalidAuthenticationToken"},
		{"unknown token", "GET", "/v1.0/me/mailFolders", "a.b.c", 401, "InvalidAuthenticationToken"},
		{"own mailbox", "GET", "/v1.0/me/mailFolders", f.aliceTok, 200, ""},
		{"own mailbox by upn", "GET", "/v1.0/users/alice@contoso.example/mailFolders", f.aliceTok, 200, ""},
		{"own mailbox by id", "GET", "/v1.0/users/" + f.alice.ID + "/mailFolders", f.aliceTok, 200, ""},
		{"shared with full access", "GET", "/v1.0/users/support@contoso.example/mailFolders/inbox", f.aliceTok, 200, ""},
		{"shared without full access", "GET", "/v1.0/users/support@contoso.example/mailFolders", f.bobTok, 403, "ErrorAccessDenied"},
		{"other user's mailbox", "GET", "/v1.0/users/alice@contoso.example/messages", f.bobTok, 403, "ErrorAccessDenied"},
		{"shared without Shared scope", "GET", "/v1.0/users/support@contoso.example/mailFolders", noShared, 403, "ErrorAccessDenied"},
		{"no mail scope", "GET", "/v1.0/me/messages", noMail, 403, "ErrorAccessDenied"},
		{"read-only scope cannot write", "POST", "/v1.0/me/mailFolders", readOnly, 403, "ErrorAccessDenied"},
		{"unknown user", "GET", "/v1.0/users/nobody@contoso.example/messages", f.aliceTok, 404, "ErrorInvalidUser"},
		{"disabled mailbox", "GET", "/v1.0/users/old@contoso.example/messages", f.aliceTok, 404, "MailboxNotEnabledForRESTAPI"},
		{"OData key syntax", "GET", "/v1.0/users('support@contoso.example')/mailFolders('Inbox')/messages", f.aliceTok, 200, ""},
		{"unknown segment", "GET", "/v1.0/me/calendars", f.aliceTok, 400, "BadRequest"},
		{"unknown root segment", "GET", "/v1.0/groups", f.aliceTok, 400, "BadRequest"},
		{"unsupported method", "PUT", "/v1.0/me/messages", f.aliceTok, 405, "ErrorInvalidRequest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.method == "POST" {
				body = map[string]string{"displayName": "X"}
			}
			resp, b := f.call(t, c.method, c.path, c.tok, body)
			if c.code == "" {
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
				}
				return
			}
			e := wantGraphError(t, resp, b, c.status, c.code)
			switch c.code {
			case "InvalidAuthenticationToken":
				if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `client_id="00000003-0000-0000-c000-000000000000"`) {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
			case "ErrorInvalidUser":
				if got, want := e["message"], "The requested user 'nobody@contoso.example' is invalid."; got != want {
					t.Errorf("message %q, want %q", got, want)
				}
			case "ErrorAccessDenied":
				if got := e["message"]; got != msgAccessDenied {
					t.Errorf("message %q", got)
				}
			}
		})
	}
}

func TestGraphResponseHeaders(t *testing.T) {
	f := newGraphFixture(t, Options{})
	t.Run("success", func(t *testing.T) {
		resp, _ := f.call(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, "client-request-id", "c0ffee00-1111-2222-3333-444455556666")
		if got := resp.Header.Get("Content-Type"); got != graphContentType {
			t.Errorf("Content-Type %q", got)
		}
		if got := resp.Header.Get("OData-Version"); got != "4.0" {
			t.Errorf("OData-Version %q", got)
		}
		if resp.Header.Get("request-id") == "" {
			t.Error("no request-id")
		}
		if got := resp.Header.Get("client-request-id"); got != "c0ffee00-1111-2222-3333-444455556666" {
			t.Errorf("client-request-id %q not echoed", got)
		}
	})
	t.Run("error echoes client-request-id in innerError", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/nope", f.aliceTok, nil, "client-request-id", "abc-123")
		e := wantGraphError(t, resp, b, 404, "ErrorFolderNotFound")
		inner := e["innerError"].(map[string]any)
		if inner["client-request-id"] != "abc-123" {
			t.Errorf("innerError client-request-id %v", inner["client-request-id"])
		}
		if _, err := time.Parse("2006-01-02T15:04:05", inner["date"].(string)); err != nil {
			t.Errorf("innerError date: %v", err)
		}
		if e["message"] != msgFolderNF {
			t.Errorf("message %v", e["message"])
		}
	})
}

func TestGraphFolders(t *testing.T) {
	f := newGraphFixture(t, Options{})
	root := f.getJSON(t, "GET", "/v1.0/me/mailFolders/msgfolderroot", f.aliceTok, nil, 200)

	t.Run("root children with paging", func(t *testing.T) {
		page := f.getJSON(t, "GET", "/v1.0/me/mailFolders?$top=3", f.aliceTok, nil, 200)
		var names []string
		for {
			for _, v := range page["value"].([]any) {
				fo := v.(map[string]any)
				names = append(names, fo["displayName"].(string))
				if fo["parentFolderId"] != root["id"] {
					t.Errorf("%s parentFolderId %v, want root %v", fo["displayName"], fo["parentFolderId"], root["id"])
				}
			}
			next, _ := page["@odata.nextLink"].(string)
			if next == "" {
				break
			}
			page = f.getJSON(t, "GET", next, f.aliceTok, nil, 200)
		}
		want := "Archive,Conversation History,Deleted Items,Drafts,Inbox,Junk Email,Outbox,Sent Items"
		if got := strings.Join(names, ","); got != want {
			t.Errorf("folders %s, want %s", got, want)
		}
		def := f.getJSON(t, "GET", "/v1.0/me/mailFolders", f.aliceTok, nil, 200)
		if n := len(def["value"].([]any)); n != 8 || def["@odata.nextLink"] != nil {
			t.Errorf("default page: %d folders, nextLink %v", n, def["@odata.nextLink"])
		}
	})

	t.Run("well-known names and ids are interchangeable", func(t *testing.T) {
		byName := f.getJSON(t, "GET", "/v1.0/me/mailFolders/INBOX", f.aliceTok, nil, 200)
		assertShape(t, "mailFolder", byName, loadSample(t, "mailFolder.json"))
		byID := f.getJSON(t, "GET", "/v1.0/me/mailFolders/"+url.PathEscape(byName["id"].(string)), f.aliceTok, nil, 200)
		odata := f.getJSON(t, "GET", "/v1.0/me/mailFolders('Inbox')", f.aliceTok, nil, 200)
		if byID["id"] != byName["id"] || odata["id"] != byName["id"] {
			t.Errorf("ids differ: %v %v %v", byName["id"], byID["id"], odata["id"])
		}
	})

	t.Run("create, filter, rename, delete", func(t *testing.T) {
		created := f.getJSON(t, "POST", "/v1.0/me/mailFolders/inbox/childFolders", f.aliceTok, map[string]string{"displayName": "Support"}, 201)
		id := created["id"].(string)
		resp, b := f.call(t, "POST", "/v1.0/me/mailFolders/inbox/childFolders", f.aliceTok, map[string]string{"displayName": "support"})
		wantGraphError(t, resp, b, 409, "ErrorFolderExists")

		list := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/childFolders?$filter="+url.QueryEscape("displayName eq 'Support'"), f.aliceTok, nil, 200)
		if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["id"] != id {
			t.Fatalf("filter: %v", list)
		}
		inbox := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
		if inbox["childFolderCount"] != 1.0 {
			t.Errorf("childFolderCount %v", inbox["childFolderCount"])
		}

		renamed := f.getJSON(t, "PATCH", "/v1.0/me/mailFolders/"+url.PathEscape(id), f.aliceTok, map[string]string{"displayName": "Helpdesk"}, 200)
		if renamed["id"] != id || renamed["displayName"] != "Helpdesk" {
			t.Errorf("rename: %v", renamed)
		}
		resp, _ = f.call(t, "DELETE", "/v1.0/me/mailFolders/"+url.PathEscape(id), f.aliceTok, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("delete status %d", resp.StatusCode)
		}
		got := f.getJSON(t, "GET", "/v1.0/me/mailFolders/"+url.PathEscape(id), f.aliceTok, nil, 200)
		deleted := f.getJSON(t, "GET", "/v1.0/me/mailFolders/deleteditems", f.aliceTok, nil, 200)
		if got["parentFolderId"] != deleted["id"] {
			t.Errorf("deleted folder parent %v, want Deleted Items %v", got["parentFolderId"], deleted["id"])
		}
		resp, b = f.call(t, "DELETE", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil)
		wantGraphError(t, resp, b, 400, "ErrorDeleteDistinguishedFolder")
	})

	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/v1.0/me/mailFolders/AAMkNOPE", "/v1.0/me/mailFolders/nope/childFolders", "/v1.0/me/mailFolders/nope/messages"} {
			resp, b := f.call(t, "GET", p, f.aliceTok, nil)
			wantGraphError(t, resp, b, 404, "ErrorFolderNotFound")
		}
	})
}

// seedList injects n messages received one hour apart, newest last.
func seedList(t *testing.T, f *graphFixture, mailbox, folder string, n int) []MessageInfo {
	t.Helper()
	var out []MessageInfo
	for i := 0; i < n; i++ {
		mi, err := f.sim.InjectMessage(mailbox, NewMessage{
			Folder: folder, Subject: fmt.Sprintf("Message %02d", i), From: "Ada <ada@customer.example>",
			Body: fmt.Sprintf("Body of message %d", i), Received: f.clockBase.Add(time.Duration(i-n) * time.Hour), IsRead: i%3 == 0,
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mi)
	}
	return out
}

func TestGraphMessageList(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seeded := seedList(t, f, "alice@contoso.example", "Inbox", 25)
	seedList(t, f, "alice@contoso.example", "Archive", 2)

	t.Run("paging with nextLink and $skip, newest first", func(t *testing.T) {
		page := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/messages?$select=subject,receivedDateTime", f.aliceTok, nil, 200)
		var subjects []string
		pages := 0
		for {
			pages++
			for _, v := range page["value"].([]any) {
				m := v.(map[string]any)
				subjects = append(subjects, m["subject"].(string))
				if _, ok := m["body"]; ok {
					t.Error("$select did not drop body")
				}
			}
			next, _ := page["@odata.nextLink"].(string)
			if next == "" {
				break
			}
			if !strings.Contains(next, "skip") {
				t.Errorf("nextLink without $skip: %s", next)
			}
			page = f.getJSON(t, "GET", next, f.aliceTok, nil, 200)
		}
		if pages != 3 || len(subjects) != 25 {
			t.Fatalf("%d pages, %d messages", pages, len(subjects))
		}
		if subjects[0] != "Message 24" || subjects[24] != "Message 00" {
			t.Errorf("order: first %s, last %s", subjects[0], subjects[24])
		}
	})

	t.Run("all messages spans folders", func(t *testing.T) {
		all := f.getJSON(t, "GET", "/v1.0/me/messages?$top=100&$count=true", f.aliceTok, nil, 200)
		if all["@odata.count"] != 27.0 || len(all["value"].([]any)) != 27 {
			t.Errorf("count %v, len %d", all["@odata.count"], len(all["value"].([]any)))
		}
	})

	t.Run("filters", func(t *testing.T) {
		since := graphTime(f.clockBase.Add(-5 * time.Hour))
		got := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/messages?$filter="+url.QueryEscape("receivedDateTime ge "+since)+"&$orderby="+url.QueryEscape("receivedDateTime desc"), f.aliceTok, nil, 200)
		if n := len(got["value"].([]any)); n != 5 {
			t.Errorf("receivedDateTime ge: %d messages, want 5", n)
		}
		unread := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/messages?$top=50&$filter="+url.QueryEscape("isRead eq false"), f.aliceTok, nil, 200)
		want := 0
		for _, mi := range seeded {
			if !mi.IsRead {
				want++
			}
		}
		if n := len(unread["value"].([]any)); n != want {
			t.Errorf("isRead eq false: %d, want %d", n, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct{ query, code string }{
			{"$top=0", "ErrorInvalidRequest"},
			{"$top=1001", "ErrorInvalidRequest"},
			{"$filter=" + url.QueryEscape("isRead eq false") + "&$orderby=" + url.QueryEscape("receivedDateTime desc"), "InefficientFilter"},
			{"$filter=" + url.QueryEscape("isRead eq false and receivedDateTime ge 2024-01-01T00:00:00Z") + "&$orderby=receivedDateTime", "InefficientFilter"},
			{"$filter=" + url.QueryEscape("bogus eq 1"), "BadRequest"},
			{"$select=nope", "RequestBroker--ParseUri"},
		}
		for _, c := range cases {
			resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages?"+c.query, f.aliceTok, nil)
			e := wantGraphError(t, resp, b, 400, c.code)
			if c.code == "InefficientFilter" && e["message"] != "The restriction or sort order is too complex for this operation." {
				t.Errorf("message %v", e["message"])
			}
		}
		ok := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/messages?$top=1000&$filter="+url.QueryEscape("receivedDateTime ge 2024-01-01T00:00:00Z and isRead eq false")+"&$orderby="+url.QueryEscape("receivedDateTime desc"), f.aliceTok, nil, 200)
		if len(ok["value"].([]any)) == 0 {
			t.Error("orderby leading the filter should work")
		}
	})
}

const sampleEML = "From: \"Ada Customer\" <ada@customer.example>\r\nTo: alice@contoso.example\r\nSubject: Invoice question\r\nDate: Fri, 31 May 2024 10:00:00 +0000\r\nMessage-ID: <q1@customer.example>\r\nX-Ticket: 42\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Where is my <b>invoice</b>?</p></body></html>\r\n--b1\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"

func TestGraphMessageGet(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1.0/me/messages/" + url.PathEscape(mi.ID)

	t.Run("default shape", func(t *testing.T) {
		m := f.getJSON(t, "GET", path, f.aliceTok, nil, 200)
		assertShape(t, "message", m, loadSample(t, "message.json"))
		if _, ok := m["internetMessageHeaders"]; ok {
			t.Error("internetMessageHeaders without $select")
		}
		if m["subject"] != "Invoice question" || m["hasAttachments"] != true || m["internetMessageId"] != "<q1@customer.example>" {
			t.Errorf("message: %v", m)
		}
		if m["body"].(map[string]any)["contentType"] != "html" {
			t.Errorf("default body %v", m["body"])
		}
	})

	t.Run("select internetMessageHeaders", func(t *testing.T) {
		m := f.getJSON(t, "GET", path+"?$select=internetMessageHeaders,subject", f.aliceTok, nil, 200)
		hs, _ := m["internetMessageHeaders"].([]any)
		found := false
		for _, h := range hs {
			if hm := h.(map[string]any); hm["name"] == "X-Ticket" && hm["value"] == "42" {
				found = true
			}
		}
		if !found || len(hs) != 8 {
			t.Errorf("headers %v", hs)
		}
		if _, ok := m["body"]; ok {
			t.Error("body returned despite $select")
		}
	})

	t.Run("prefer text body", func(t *testing.T) {
		resp, b := f.call(t, "GET", path+"?$select=body", f.aliceTok, nil, "Prefer", `outlook.body-content-type="text"`)
		var m map[string]any
		json.Unmarshal(b, &m)
		body := m["body"].(map[string]any)
		if body["contentType"] != "text" || body["content"] != "Where is my invoice?" {
			t.Errorf("body %v", body)
		}
		if got := resp.Header.Get("Preference-Applied"); got != `outlook.body-content-type="text"` {
			t.Errorf("Preference-Applied %q", got)
		}
	})

	t.Run("$value is the original bytes as text/plain", func(t *testing.T) {
		resp, b := f.call(t, "GET", path+"/$value", f.aliceTok, nil)
		if resp.StatusCode != 200 || string(b) != sampleEML {
			t.Fatalf("status %d body %q", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("Content-Type %q", ct)
		}
	})

	t.Run("expand attachments with select", func(t *testing.T) {
		m := f.getJSON(t, "GET", path+"?$select=subject&$expand="+url.QueryEscape("attachments($select=id,name,size)"), f.aliceTok, nil, 200)
		atts := m["attachments"].([]any)
		a := atts[0].(map[string]any)
		if len(atts) != 1 || a["name"] != "a.pdf" || a["size"] != 9.0 {
			t.Errorf("attachments %v", atts)
		}
		if _, ok := a["contentBytes"]; ok {
			t.Error("contentBytes despite $select")
		}
	})

	t.Run("stale id", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/messages/AAMkAGnope", f.aliceTok, nil)
		e := wantGraphError(t, resp, b, 404, "ErrorItemNotFound")
		if e["message"] != msgItemNotFound {
			t.Errorf("message %v", e["message"])
		}
	})
}

func TestGraphMessageUpdateMoveDelete(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
	if err != nil {
		t.Fatal(err)
	}
	msgPath := func(id string) string { return "/v1.0/me/messages/" + url.PathEscape(id) }

	m := f.getJSON(t, "PATCH", msgPath(mi.ID), f.aliceTok, map[string]any{"isRead": true, "categories": []string{"Ticket"}, "flag": map[string]string{"flagStatus": "flagged"}}, 200)
	if m["isRead"] != true || m["categories"].([]any)[0] != "Ticket" || m["flag"].(map[string]any)["flagStatus"] != "flagged" {
		t.Errorf("patch: %v", m)
	}
	resp, b := f.call(t, "PATCH", msgPath(mi.ID), f.aliceTok, map[string]any{"subject": "changed"})
	wantGraphError(t, resp, b, 400, "ErrorInvalidPropertyUpdateSentMessage")

	moved := f.getJSON(t, "POST", msgPath(mi.ID)+"/move", f.aliceTok, map[string]string{"destinationId": "archive"}, 201)
	newID := moved["id"].(string)
	if newID == mi.ID {
		t.Fatal("move kept the rest id")
	}
	resp, b = f.call(t, "GET", msgPath(mi.ID), f.aliceTok, nil)
	wantGraphError(t, resp, b, 404, "ErrorItemNotFound")

	imm := f.getJSON(t, "POST", msgPath(newID)+"/move", f.aliceTok, map[string]string{"destinationId": "inbox"}, 201, "Prefer", `IdType="ImmutableId"`)
	if imm["id"] != mi.ImmutableID {
		t.Errorf("immutable id %v, want %s", imm["id"], mi.ImmutableID)
	}
	again := f.getJSON(t, "GET", msgPath(mi.ImmutableID), f.aliceTok, nil, 200, "Prefer", `IdType="ImmutableId"`)
	if again["id"] != mi.ImmutableID {
		t.Errorf("get by immutable id: %v", again["id"])
	}

	cp := f.getJSON(t, "POST", msgPath(mi.ImmutableID)+"/copy", f.aliceTok, map[string]string{"destinationId": "drafts"}, 201)
	if got := f.sim.Messages("alice@contoso.example", "Drafts"); len(got) != 1 || got[0].ID != cp["id"] {
		t.Errorf("copy: %v", got)
	}
	resp, b = f.call(t, "POST", msgPath(mi.ImmutableID)+"/move", f.aliceTok, map[string]string{"destinationId": "nowhere"})
	wantGraphError(t, resp, b, 404, "ErrorFolderNotFound")

	resp, _ = f.call(t, "DELETE", msgPath(mi.ImmutableID), f.aliceTok, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	if n := len(f.sim.Messages("alice@contoso.example", "Deleted Items")); n != 0 {
		t.Errorf("DELETE put %d items in Deleted Items", n)
	}
	dels := f.getJSON(t, "GET", "/v1.0/me/mailFolders/recoverableitemsdeletions/messages", f.aliceTok, nil, 200)
	if len(dels["value"].([]any)) != 1 {
		t.Errorf("recoverable items: %v", dels["value"])
	}
	resp, b = f.call(t, "DELETE", msgPath(mi.ImmutableID), f.aliceTok, nil)
	wantGraphError(t, resp, b, 400, "ErrorCannotDeleteObject")

	resp, _ = f.call(t, "POST", msgPath(mi.ImmutableID)+"/permanentDelete", f.aliceTok, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("permanentDelete %d", resp.StatusCode)
	}
	resp, b = f.call(t, "GET", msgPath(mi.ImmutableID), f.aliceTok, nil)
	wantGraphError(t, resp, b, 404, "ErrorItemNotFound")
}

func TestGraphAttachments(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mi, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{
		Subject: "with attachments", HTML: true, Body: "<p>see <img src=\"cid:logo@x\"></p>",
		Attachments: []NewAttachment{
			{Name: "logo.png", ContentType: "image/png", Content: "PNGDATA", ContentID: "logo@x", Inline: true},
			{Name: "report.csv", ContentType: "text/csv", Content: "a,b\n1,2\n"},
			{Name: "Spec", Kind: "reference", URL: "https://contoso.sharepoint.com/spec.docx"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := f.sim.InjectMail("alice@contoso.example", "Inbox", mustRead(t, "testdata/eml/05-forwarded.eml"))
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1.0/me/messages/" + url.PathEscape(mi.ID) + "/attachments"
	list := f.getJSON(t, "GET", base, f.aliceTok, nil, 200)["value"].([]any)
	if len(list) != 3 {
		t.Fatalf("%d attachments", len(list))
	}
	byName := map[string]map[string]any{}
	for _, a := range list {
		byName[a.(map[string]any)["name"].(string)] = a.(map[string]any)
	}
	if l := byName["logo.png"]; l["isInline"] != true || l["contentId"] != "logo@x" {
		t.Errorf("inline: %v", l)
	}
	csv := f.getJSON(t, "GET", base+"/"+url.PathEscape(byName["report.csv"]["id"].(string)), f.aliceTok, nil, 200)
	assertShape(t, "fileAttachment", csv, loadSample(t, "fileAttachment.json"))

	resp, b := f.call(t, "GET", base+"/"+url.PathEscape(byName["report.csv"]["id"].(string))+"/$value", f.aliceTok, nil)
	if string(b) != "a,b\n1,2\n" || resp.Header.Get("Content-Type") != "text/csv" {
		t.Errorf("file $value: %q %q", b, resp.Header.Get("Content-Type"))
	}
	resp, b = f.call(t, "GET", base+"/"+url.PathEscape(byName["Spec"]["id"].(string))+"/$value", f.aliceTok, nil)
	wantGraphError(t, resp, b, 405, "ErrorInvalidRequest")
	if byName["Spec"]["@odata.type"] != "#microsoft.graph.referenceAttachment" {
		t.Errorf("reference: %v", byName["Spec"])
	}

	fbase := "/v1.0/me/messages/" + url.PathEscape(fwd.ID) + "/attachments"
	for _, a := range f.getJSON(t, "GET", fbase, f.aliceTok, nil, 200)["value"].([]any) {
		am := a.(map[string]any)
		if am["@odata.type"] != "#microsoft.graph.itemAttachment" {
			continue
		}
		resp, b := f.call(t, "GET", fbase+"/"+url.PathEscape(am["id"].(string))+"/$value", f.aliceTok, nil)
		if resp.Header.Get("Content-Type") != "message/rfc822" || !strings.Contains(string(b), "Subject: Invoice 2024-17") {
			t.Errorf("item $value: %q %s", resp.Header.Get("Content-Type"), b)
		}
		return
	}
	t.Error("no item attachment on the forwarded message")
}

func TestGraphSendMail(t *testing.T) {
	f := newGraphFixture(t, Options{})
	msg := map[string]any{
		"message": map[string]any{
			"subject":      "Re: Printer",
			"body":         map[string]string{"contentType": "html", "content": "<p>Fixed.</p>"},
			"toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "bob@contoso.example"}}},
			"internetMessageHeaders": []any{
				map[string]string{"name": "In-Reply-To", "value": "<orig@customer.example>"},
				map[string]string{"name": "References", "value": "<orig@customer.example>"},
			},
		},
		"saveToSentItems": true,
	}
	t.Run("own mailbox", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, msg)
		if resp.StatusCode != 202 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		sent := f.sim.Messages("alice@contoso.example", "Sent Items")
		if len(sent) != 1 || sent[0].From != "alice@contoso.example" {
			t.Fatalf("sent items: %v", sent)
		}
		_, raw := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(sent[0].ID)+"/$value", f.aliceTok, nil)
		if !strings.Contains(string(raw), "In-Reply-To: <orig@customer.example>") {
			t.Errorf("threading header lost:\n%s", raw)
		}
		if got := f.sim.Messages("bob@contoso.example", "Inbox"); len(got) != 1 || got[0].Subject != "Re: Printer" {
			t.Errorf("delivery to bob: %v", got)
		}
	})
	t.Run("shared mailbox with Send As", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/v1.0/users/support@contoso.example/sendMail", f.aliceTok, msg)
		if resp.StatusCode != 202 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if sent := f.sim.Messages("support@contoso.example", "Sent Items"); len(sent) != 1 || sent[0].From != "support@contoso.example" {
			t.Errorf("sent items: %v", sent)
		}
	})
	t.Run("shared mailbox without Send As", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/v1.0/users/support@contoso.example/sendMail", f.bobTok, msg)
		e := wantGraphError(t, resp, b, 403, "ErrorSendAsDenied")
		if !strings.Contains(e["message"].(string), "does not have the right to send mail on behalf of the specified sending account") {
			t.Errorf("message %v", e["message"])
		}
	})
	t.Run("too many recipients", func(t *testing.T) {
		var to []any
		for i := 0; i < 501; i++ {
			to = append(to, map[string]any{"emailAddress": map[string]string{"address": fmt.Sprintf("r%d@example.org", i)}})
		}
		big := map[string]any{"message": map[string]any{"subject": "x", "toRecipients": to}}
		resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, big)
		wantGraphError(t, resp, b, 400, "ErrorInvalidRecipients")
	})
	t.Run("createReply makes a draft", func(t *testing.T) {
		mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
		if err != nil {
			t.Fatal(err)
		}
		d := f.getJSON(t, "POST", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/createReply", f.aliceTok, nil, 201)
		to := d["toRecipients"].([]any)
		if d["isDraft"] != true || d["subject"] != "RE: Invoice question" || len(to) != 1 || to[0].(map[string]any)["emailAddress"].(map[string]any)["address"] != "ada@customer.example" {
			t.Errorf("draft %v", d)
		}
		if n := len(f.sim.Messages("alice@contoso.example", "Drafts")); n != 1 {
			t.Errorf("%d drafts", n)
		}
	})
	t.Run("reply keeps the thread", func(t *testing.T) {
		mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
		if err != nil {
			t.Fatal(err)
		}
		resp, b := f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/reply", f.aliceTok, map[string]string{"comment": "On it."})
		if resp.StatusCode != 202 {
			t.Fatalf("reply %d: %s", resp.StatusCode, b)
		}
		for _, s := range f.sim.Messages("alice@contoso.example", "Sent Items") {
			if s.Subject == "RE: Invoice question" {
				for _, h := range s.Headers {
					if h.Name == "In-Reply-To" && h.Value == "<q1@customer.example>" {
						return
					}
				}
				t.Fatalf("reply headers %v", s.Headers)
			}
		}
		t.Error("no reply in Sent Items")
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGraphDraftsAndTranslateIDs(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", []byte(sampleEML))
	if err != nil {
		t.Fatal(err)
	}
	d := f.getJSON(t, "POST", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/createReply", f.aliceTok, nil, 201)
	draft := "/v1.0/me/messages/" + url.PathEscape(d["id"].(string))
	p := f.getJSON(t, "PATCH", draft, f.aliceTok, map[string]any{
		"subject":      "RE: Invoice question [#42]",
		"body":         map[string]string{"contentType": "html", "content": "<p>Your invoice is attached.</p>"},
		"ccRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "bob@contoso.example"}}},
	}, 200, "Prefer", `outlook.body-content-type="text"`)
	if p["subject"] != "RE: Invoice question [#42]" || p["body"].(map[string]any)["content"] != "Your invoice is attached." || len(p["ccRecipients"].([]any)) != 1 {
		t.Fatalf("patched draft %v", p)
	}
	resp, b := f.call(t, "POST", draft+"/send", f.aliceTok, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("send: %d %s", resp.StatusCode, b)
	}
	if n := len(f.sim.Messages("alice@contoso.example", "Drafts")); n != 0 {
		t.Errorf("%d drafts left", n)
	}
	got := f.sim.Messages("bob@contoso.example", "Inbox")
	if len(got) != 1 || got[0].Subject != "RE: Invoice question [#42]" {
		t.Fatalf("bob's inbox %v", got)
	}
	found := false
	for _, h := range got[0].Headers {
		found = found || (h.Name == "In-Reply-To" && h.Value == "<q1@customer.example>")
	}
	if !found {
		t.Errorf("threading lost: %v", got[0].Headers)
	}
	resp, b = f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/send", f.aliceTok, nil)
	wantGraphError(t, resp, b, 400, "ErrorInvalidRequest")

	tr := f.getJSON(t, "POST", "/v1.0/me/translateExchangeIds", f.aliceTok, map[string]any{
		"inputIds": []string{mi.ID, "AAMkAGnope"}, "sourceIdType": "restId", "targetIdType": "restImmutableEntryId"}, 200)
	v := tr["value"].([]any)
	if v[0].(map[string]any)["targetId"] != mi.ImmutableID || v[1].(map[string]any)["errorDetails"] == nil {
		t.Errorf("translate %v", v)
	}
}

func TestGraphUserProfile(t *testing.T) {
	f := newGraphFixture(t, Options{})
	me := f.getJSON(t, "GET", "/v1.0/me", f.aliceTok, nil, 200)
	if me["id"] != f.alice.ID || me["userPrincipalName"] != "alice@contoso.example" || me["mail"] != "alice@contoso.example" || me["displayName"] != "Alice Agent" {
		t.Errorf("/me %v", me)
	}
	if !strings.HasSuffix(me["@odata.context"].(string), "/v1.0/$metadata#users/$entity") {
		t.Errorf("context %v", me["@odata.context"])
	}
	noUserRead := f.token(f.alice.ID, "Mail.ReadWrite")
	resp, b := f.call(t, "GET", "/v1.0/me", noUserRead, nil)
	e := wantGraphError(t, resp, b, 403, "Authorization_RequestDenied")
	if e["message"] != "Insufficient privileges to complete the operation." {
		t.Errorf("message %v", e["message"])
	}
	resp, b = f.call(t, "GET", "/v1.0/users/bob@contoso.example", f.aliceTok, nil)
	wantGraphError(t, resp, b, 403, "Authorization_RequestDenied")
	all := f.token(f.alice.ID, "User.ReadBasic.All")
	if bob := f.getJSON(t, "GET", "/v1.0/users/bob@contoso.example", all, nil, 200); bob["id"] != f.bob.ID {
		t.Errorf("bob %v", bob)
	}
	resp, b = f.call(t, "GET", "/v1.0/users/ghost@contoso.example", all, nil)
	wantGraphError(t, resp, b, 404, "Request_ResourceNotFound")
}

func TestGraphHiddenFoldersAndSelect(t *testing.T) {
	f := newGraphFixture(t, Options{})
	f.getJSON(t, "POST", "/v1.0/me/mailFolders", f.aliceTok, map[string]any{"displayName": "Secret", "isHidden": true}, 201)
	count := func(q string) int {
		return len(f.getJSON(t, "GET", "/v1.0/me/mailFolders?$top=50"+q, f.aliceTok, nil, 200)["value"].([]any))
	}
	if a, b := count(""), count("&includeHiddenFolders=true"); a != 8 || b != 9 {
		t.Errorf("visible %d, with hidden %d; want 8, 9", a, b)
	}
	fo := f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox?$select=displayName", f.aliceTok, nil, 200)
	if _, ok := fo["totalItemCount"]; ok || fo["id"] == nil || fo["displayName"] != "Inbox" {
		t.Errorf("$select on a folder: %v", fo)
	}
	resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox?$select=bogus", f.aliceTok, nil)
	wantGraphError(t, resp, b, 400, "RequestBroker--ParseUri")
}

// TestMessageFieldOrderCoversDefaults: a default property missing from the
// render order would silently never be returned.
func TestMessageFieldOrderCoversDefaults(t *testing.T) {
	order := map[string]bool{}
	for _, f := range messageFieldOrder {
		order[f] = true
	}
	for _, f := range defaultMessageFields {
		if !order[f] {
			t.Errorf("%s is a default field but not in messageFieldOrder", f)
		}
	}
}
