package m365sim

// Contract tests, simulator side: for the requests Microsoft documents (the
// same fixtures the Graph client decodes in bridge/graph/contract_test.go,
// copied from microsoftgraph/microsoft-graph-docs-contrib and
// MicrosoftDocs/entra-docs; sources in the READMEs next to them), the sim
// answers with the documented status and a body of the documented shape:
// every documented property, with the same JSON kind.

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func graphDoc(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "graph", "testdata", "graphdocs", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestContractSimMatchesDocumentedResponses(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mb := "alice@contoso.example"
	if _, err := f.sim.CreateFolder(mb, "Inbox/Internal Screens"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.InjectMessage(mb, NewMessage{Subject: "Meet for lunch?", From: "Pat <pat@example.org>", Body: "hi",
		HTML: true, Attachments: []NewAttachment{{Name: "q1.docx", ContentType: "application/octet-stream", Content: "PK"}}}); err != nil {
		t.Fatal(err)
	}
	id := f.sim.Messages(mb, "Inbox")[0].ID
	wantJSON := func(t *testing.T, ct string) {
		t.Helper()
		// GDC: Graph answers application/json with odata.metadata=minimal
		// (reference B.5 response headers).
		if !strings.HasPrefix(ct, "application/json") || !strings.Contains(ct, "odata.metadata=minimal") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	t.Run("message-delta.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages/delta", f.aliceTok, nil, "Prefer", "odata.maxpagesize=2")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		wantJSON(t, resp.Header.Get("Content-Type"))
		var got any
		json.Unmarshal(b, &got)
		want := graphDoc(t, "message-delta.json").(map[string]any)
		// The sample's page has a nextLink; a one-message folder ends the
		// round with a deltaLink instead (concepts/delta-query-messages.md).
		if _, ok := got.(map[string]any)["@odata.deltaLink"]; ok {
			delete(want, "@odata.nextLink")
		}
		assertShape(t, "delta", got, want)
	})
	t.Run("mailfolder-list-childfolders.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/childFolders?includeHiddenFolders=true", f.aliceTok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		wantJSON(t, resp.Header.Get("Content-Type"))
		var got any
		json.Unmarshal(b, &got)
		assertShape(t, "childFolders", got, graphDoc(t, "mailfolder-list-childfolders.json"))
	})
	t.Run("attachment-get.md", func(t *testing.T) {
		var list struct {
			Value []struct{ ID string }
		}
		_, b := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id)+"/attachments", f.aliceTok, nil)
		if err := json.Unmarshal(b, &list); err != nil || len(list.Value) != 1 {
			t.Fatalf("attachments: %v %s", err, b)
		}
		resp, b := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id)+"/attachments/"+url.PathEscape(list.Value[0].ID), f.aliceTok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		wantJSON(t, resp.Header.Get("Content-Type"))
		var got any
		json.Unmarshal(b, &got)
		assertShape(t, "fileAttachment", got, graphDoc(t, "attachment-get-file.json"))
	})
	t.Run("message-move.md", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(id)+"/move", f.aliceTok, map[string]any{"destinationId": "deleteditems"})
		if resp.StatusCode != 201 {
			t.Fatalf("status %d, documented 201: %s", resp.StatusCode, b)
		}
		wantJSON(t, resp.Header.Get("Content-Type"))
		var got any
		json.Unmarshal(b, &got)
		assertShape(t, "moved message", got, graphDoc(t, "message-move.json"))
	})
	t.Run("user-sendmail.md", func(t *testing.T) {
		msg := map[string]any{"message": map[string]any{"subject": "s", "body": map[string]any{"contentType": "Text", "content": "b"},
			"toRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "bob@contoso.example"}}}}, "saveToSentItems": true}
		resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, msg)
		if resp.StatusCode != 202 || len(b) != 0 {
			t.Errorf("sendMail: %d %q, documented 202 with no body", resp.StatusCode, b)
		}
	})
}
