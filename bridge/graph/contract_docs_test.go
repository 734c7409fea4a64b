package graph

// Contract tests, client side, for the endpoints not covered by
// contract_test.go: each serves the response Microsoft documents
// (testdata/graphdocs, README there lists repository, path and commit)
// and checks what the client makes of it. The simulator's side is
// bridge/m365sim/contract_docs_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// batchOf answers every item of a $batch with status, headers and body.
func batchOf(t *testing.T, status int, headers map[string]string, body []byte, check func(method, url string, hdr map[string]string, body json.RawMessage)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Requests []struct {
				ID, Method, URL string
				Headers         map[string]string
				Body            json.RawMessage
			}
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil || r.URL.Path != "/v1.0/$batch" {
			t.Errorf("batch request %s: %v", r.URL.Path, err)
		}
		var out []map[string]any
		for _, it := range req.Requests {
			check(it.Method, it.URL, it.Headers, it.Body)
			item := map[string]any{"id": it.ID, "status": status, "headers": headers}
			if body != nil {
				item["body"] = json.RawMessage(body)
			}
			out = append(out, item)
		}
		resp, _ := json.Marshal(map[string]any{"responses": out})
		serveDoc(w, 200, resp)
	}
}

func TestContractClientDecodesDocumentedMailResponses(t *testing.T) {
	ctx := context.Background()
	get := func(t *testing.T, suffix, fixture string) *MailboxClient {
		body := docFixture(t, fixture)
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || !strings.HasSuffix(r.URL.Path, suffix) {
				t.Errorf("request %s %s, want GET …%s", r.Method, r.URL.Path, suffix)
			}
			serveDoc(w, 200, body)
		})
		return c.Mailbox(Mailbox{}, staticToken("a.b.c"))
	}
	t.Run("mailfolder-get.md", func(t *testing.T) {
		f, err := get(t, "/mailFolders/inbox", "mailfolder-get.json").GetFolder(ctx, "inbox")
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != "id-value" || f.DisplayName != "displayName-value" || f.TotalItemCount != 99 || f.ParentFolderID != "parentFolderId-value" {
			t.Errorf("folder %+v", f)
		}
	})
	t.Run("user-list-mailfolders.md", func(t *testing.T) {
		fs, err := get(t, "/me/mailFolders", "user-list-mailfolders.json").ListChildFolders(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		// Nine folders, one a mailSearchFolder ("Weekly digests"); Inbox has 71.
		if len(fs) != 9 || fs[4].DisplayName != "Inbox" || fs[4].TotalItemCount != 71 || fs[5].DisplayName != "Weekly digests" {
			t.Errorf("folders %+v", fs)
		}
		// ResolveFolder finds a folder by display name among them (a name
		// that is not a well-known one, so only the list is asked).
		mc := get(t, "/me/mailFolders", "user-list-mailfolders.json")
		f, err := mc.ResolveFolder(ctx, "weekly DIGESTS")
		if err != nil || f.ID != "AAMkADYRAAAZg1yTAAA=" || f.Path != "Weekly digests" {
			t.Errorf("resolve %+v, %v", f, err)
		}
	})
	t.Run("mailfolder-get.md answered with a list", func(t *testing.T) {
		// A body without an id (here the documented list, for a get) is not
		// a folder: using it would sync "/mailFolders//messages".
		mc := get(t, "/mailFolders/junkemail", "user-list-mailfolders.json")
		if f, err := mc.GetFolder(ctx, "junkemail"); err == nil {
			t.Errorf("GetFolder = %+v, want an error for a folder without id", f)
		}
		mc = get(t, "/mailFolders/junkemail", "user-list-mailfolders.json")
		if f, err := mc.ResolveFolder(ctx, "Junk Email"); err == nil {
			t.Errorf("ResolveFolder = %+v, want an error", f)
		}
	})
	t.Run("mailfolder-list-messages.md", func(t *testing.T) {
		page, err := get(t, "/mailFolders/inbox/messages", "mailfolder-list-messages.json").ListMessages(ctx, "inbox", ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The sample has no id: the client keeps the entry (as
		// undecodable or as a message) rather than losing the page.
		if len(page.Messages)+len(page.Undecodable) != 1 || page.NextLink != "" {
			t.Fatalf("page %+v", page)
		}
		if len(page.Messages) == 1 && (page.Messages[0].Subject != "MyAnalytics | Your past week" || !page.Messages[0].HasAttachments) {
			t.Errorf("message %+v", page.Messages[0])
		}
	})
	t.Run("message-get.md example 1", func(t *testing.T) {
		m, err := get(t, "/messages/AAMkADhMGAAA=", "message-get.json").GetMessage(ctx, "AAMkADhMGAAA=", nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != "AAMkADhMGAAA=" || m.Subject != "9/9/2018: concert" || m.From == nil || m.From.EmailAddress.Address != "adelev@contoso.OnMicrosoft.com" ||
			len(m.ToRecipients) != 1 || m.InternetMessageID != "<MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com>" || !m.IsRead ||
			m.Body == nil || !strings.Contains(m.Body.Content, "The group represents Nevada.") {
			t.Errorf("message %+v", m)
		}
	})
	t.Run("message-get.md example 4 ($value)", func(t *testing.T) {
		mime := docFixture(t, "message-get-mime.txt")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/messages/4aade2547798441eab5188a7a2436bc1/$value") {
				t.Errorf("request %s", r.URL.Path)
			}
			w.Header().Set("Content-Type", "text/plain") // as documented
			w.Write(mime)
		})
		got, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).MIME(ctx, "4aade2547798441eab5188a7a2436bc1", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, mime) {
			t.Errorf("MIME differs from the documented body (%d vs %d bytes)", len(got), len(mime))
		}
	})
	t.Run("message-get.md example 3 inside $batch (Preference-Applied)", func(t *testing.T) {
		body := docFixture(t, "message-get-text.json")
		c, _ := fakeGraph(t, batchOf(t, 200, map[string]string{"Content-Type": "application/json", "Preference-Applied": `outlook.body-content-type="text"`}, body,
			func(method, u string, hdr map[string]string, _ json.RawMessage) {
				if method != "GET" || !strings.Contains(hdr["Prefer"], `outlook.body-content-type="text"`) {
					t.Errorf("item %s %s %v", method, u, hdr)
				}
			}))
		bodies, failed, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).TextBodiesOf(ctx, []string{"AAMkAGI1AAAoZCfHAAA="})
		if err != nil || len(failed) != 0 {
			t.Fatalf("%v %v", err, failed)
		}
		b := bodies["AAMkAGI1AAAoZCfHAAA="]
		if b == nil || b.ContentType != "text" || !strings.HasPrefix(b.Content, "Welcome to our group, Dana!") {
			t.Errorf("body %+v", b)
		}
	})
	t.Run("message-list-attachments.md", func(t *testing.T) {
		// Verbatim, the sample's "contentBytes": "contentBytes-value" is not
		// base64: the attachment is listed with that error and no content
		// (the event lists it with the reason) instead of inventing content
		// or failing the whole message.
		bad, err := get(t, "/messages/m1/attachments", "message-list-attachments.json").Attachments(ctx, "m1")
		if err != nil || len(bad) != 1 || bad[0].Content == nil || !errors.Is(bad[0].Content.Err, ErrBadContent) ||
			bad[0].Content.Base64 != "" || bad[0].Bytes() != nil {
			t.Errorf("attachments %+v, %v; want one with ErrBadContent and no content", bad, err)
		}
		// With the placeholder replaced by base64, the rest decodes.
		fixed := bytes.Replace(docFixture(t, "message-list-attachments.json"), []byte(`"contentBytes-value"`), []byte(`"UEs="`), 1)
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { serveDoc(w, 200, fixed) })
		as, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).Attachments(ctx, "m1")
		if err != nil || len(as) != 1 || as[0].Name != "name-value" || as[0].Size != 99 || as[0].ID != "id-value" || string(as[0].Bytes()) != "PK" {
			t.Errorf("attachments %+v, %v", as, err)
		}
	})
	t.Run("attachment-get.md example 5 ($value)", func(t *testing.T) {
		// Documented: 200 with the raw bytes and no Content-Type shown.
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/attachments/AAMkAGUzY5QKjAAABEgAQAMkpJI_X-LBFgvrv1PlZYd8=/$value") {
				t.Errorf("request %s", r.URL.Path)
			}
			w.Write([]byte("{Raw bytes of the file}"))
		})
		got, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).AttachmentContent(ctx, "AAMkAGUzY5QKjAAA=", "AAMkAGUzY5QKjAAABEgAQAMkpJI_X-LBFgvrv1PlZYd8=", 1<<20)
		if err != nil || string(got) != "{Raw bytes of the file}" {
			t.Errorf("content %q, %v", got, err)
		}
	})
	t.Run("message-update.md inside $batch (mark read)", func(t *testing.T) {
		c, _ := fakeGraph(t, batchOf(t, 200, map[string]string{"Content-Type": "application/json"}, docFixture(t, "message-update.json"),
			func(method, u string, _ map[string]string, body json.RawMessage) {
				if method != "PATCH" || string(body) != `{"isRead":true}` {
					t.Errorf("item %s %s %s", method, u, body)
				}
			}))
		for id, err := range c.Mailbox(Mailbox{}, staticToken("a.b.c")).MarkRead(ctx, []string{"AAMkADhMGAAA="}) {
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
	})
	t.Run("message-reply.md", func(t *testing.T) {
		// "If successful, this method returns a 202 Accepted response code.
		// It does not return anything in the response body."
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/messages/AAMkADA1MTAAAAqldOAAA=/reply") {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			var req struct {
				Message struct{ Body *ItemBody } `json:"message"`
				Comment *string                  `json:"comment"`
			}
			b, _ := io.ReadAll(r.Body)
			// Documented: a comment or message.body, both is a 400.
			if err := json.Unmarshal(b, &req); err != nil || req.Comment != nil || req.Message.Body == nil {
				t.Errorf("reply body %s: %v", b, err)
			}
			w.WriteHeader(http.StatusAccepted)
		})
		mc := c.Mailbox(Mailbox{}, staticToken("a.b.c"))
		err := mc.Reply(ctx, "AAMkADA1MTAAAAqldOAAA=", OutgoingMessage{Body: &ItemBody{ContentType: "Text", Content: "Named: Nevada"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("message-reply.md MIME error", func(t *testing.T) {
		body := docFixture(t, "message-reply-mime-error.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { serveDoc(w, 400, body) })
		err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).Reply(ctx, "m1", OutgoingMessage{Body: &ItemBody{ContentType: "Text", Content: "x"}}, nil)
		var ge *Error
		if !errors.As(err, &ge) || ge.Code != "ErrorMimeContentInvalidBase64String" || ge.Status != 400 {
			t.Errorf("err = %v (%#v)", err, ge)
		}
	})
}
