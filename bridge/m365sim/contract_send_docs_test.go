package m365sim

// Contract tests, simulator side, for the send path by draft: the sim
// takes the request Microsoft documents and answers with the documented
// status, headers and every documented property with the same JSON kind.
// Fixtures and sources (repository, path, commit):
// bridge/graph/testdata/graphdocs/README.md. The client's side is
// bridge/graph/contract_send_docs_test.go.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// completedReplyMIME is the documented createReply MIME sample
// (message-createreply.md example 2) decoded, with its cut-off Date line
// ended and the body of the documented answer added: the sample itself
// stops in the middle of a header.
func completedReplyMIME(t *testing.T) string {
	t.Helper()
	doc := strings.Join(strings.Fields(graphDocText(t, "message-createreply-mime-request.txt")), "")
	head, err := base64.StdEncoding.DecodeString(doc + "=")
	if err != nil || !strings.HasSuffix(string(head), "Date: Sun, 28 Feb 2021 07:15:00 ") {
		t.Fatalf("the documented sample decodes to %q, %v", head, err)
	}
	return string(head) + "+0000\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n" +
		"Hi, Megan.I have an interest in the Sales Associate position. Please consider my resume, which you can access here... Regards,Alex\n"
}

func b64(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }

// wantMIMEError checks the documented answer to malformed MIME.
func wantMIMEError(t *testing.T, resp *http.Response, b []byte) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	if resp.StatusCode != 400 || e.Error.Code != "ErrorMimeContentInvalidBase64String" || e.Error.Message != "Invalid base64 string for MIME content." {
		t.Errorf("%d %s, documented 400 ErrorMimeContentInvalidBase64String", resp.StatusCode, b)
	}
}

func TestContractSimMatchesDocumentedSendPath(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mb := "alice@contoso.example"
	if _, err := f.sim.InjectMessage(mb, NewMessage{Subject: "Talk about emergency prep", From: "Christine Irwin <christine@contoso.com>", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	orig := "/v1.0/me/messages/" + url.PathEscape(f.sim.Messages(mb, "Inbox")[0].ID)
	const text, plain = "Content-Type", "text/plain"
	create := func(t *testing.T) string {
		t.Helper()
		resp, b := f.call(t, "POST", "/v1.0/me/messages", f.aliceTok, []byte(graphDocText(t, "user-post-messages-request.json")))
		got := wantDocJSON(t, resp, b, 201, "user-post-messages.json")
		id, _ := got["id"].(string)
		return id
	}

	t.Run("user-post-messages.md example 1", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/v1.0/me/messages", f.aliceTok, []byte(graphDocText(t, "user-post-messages-request.json")))
		got := wantDocJSON(t, resp, b, 201, "user-post-messages.json")
		if got["isDraft"] != true || got["subject"] != "Did you see last night's game?" || got["importance"] != "low" {
			t.Errorf("draft isDraft %v subject %v importance %v", got["isDraft"], got["subject"], got["importance"])
		}
		if body, _ := got["body"].(map[string]any); body["contentType"] != "html" || !strings.Contains(body["content"].(string), "They were <b>awesome</b>!") {
			t.Errorf("body %v", got["body"])
		}
	})
	t.Run("user-post-messages.md example 3 (MIME)", func(t *testing.T) {
		// Verbatim the sample ends in "...": not base64, the documented 400.
		resp, b := f.call(t, "POST", "/v1.0/me/messages", f.aliceTok, []byte(graphDocText(t, "user-post-messages-mime-request.txt")), text, plain)
		wantMIMEError(t, resp, b)
		// Completed, a draft of the documented shape (example 3's answer is
		// the same message as message-createreply.md example 2's).
		resp, b = f.call(t, "POST", "/v1.0/me/messages", f.aliceTok, b64(completedReplyMIME(t)), text, plain)
		got := wantDocJSON(t, resp, b, 201, "message-createreply-mime.json", "isDeliveryReceiptRequested")
		if got["subject"] != "Internal Resume Submission: Sales Associate" || got["isDraft"] != true {
			t.Errorf("draft %v", got)
		}
	})
	t.Run("message-createreply.md example 1", func(t *testing.T) {
		// The page: "returns 201 Created"; its example shows "200 OK". The
		// sim answers 201, with the example's properties.
		resp, b := f.call(t, "POST", orig+"/createReply", f.aliceTok, nil)
		got := wantDocJSON(t, resp, b, 201, "message-createreply.json")
		if got["subject"] != "RE: Talk about emergency prep" || got["isDraft"] != true {
			t.Errorf("reply draft subject %v isDraft %v", got["subject"], got["isDraft"])
		}
	})
	t.Run("message-createreply.md and message-reply.md: comment and body", func(t *testing.T) {
		// "Specifying both will return an HTTP 400 Bad Request error."
		both := map[string]any{"comment": "Named: Nevada", "message": map[string]any{"body": map[string]any{"contentType": "Text", "content": "Named: Nevada"}}}
		for _, action := range []string{"/createReply", "/reply"} {
			if resp, b := f.call(t, "POST", orig+action, f.aliceTok, both); resp.StatusCode != 400 {
				t.Errorf("%s with comment and body: %d %s, documented 400", action, resp.StatusCode, b)
			}
		}
	})
	t.Run("message-createreply.md example 2 (MIME)", func(t *testing.T) {
		// Verbatim the sample is cut in the middle of a base64 quantum.
		resp, b := f.call(t, "POST", orig+"/createReply", f.aliceTok, []byte(graphDocText(t, "message-createreply-mime-request.txt")), text, plain)
		wantMIMEError(t, resp, b)
		resp, b = f.call(t, "POST", orig+"/createReply", f.aliceTok, b64(completedReplyMIME(t)), text, plain)
		got := wantDocJSON(t, resp, b, 201, "message-createreply-mime.json", "isDeliveryReceiptRequested")
		if got["subject"] != "Internal Resume Submission: Sales Associate" || got["isDraft"] != true {
			t.Fatalf("draft %v", got)
		}
		// message-send.md: the MIME draft is sent by id, 202, and leaves Drafts.
		id := got["id"].(string)
		resp, b = f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(id)+"/send", f.aliceTok, nil)
		if resp.StatusCode != 202 || len(b) != 0 {
			t.Fatalf("send: %d %s", resp.StatusCode, b)
		}
		found, left := false, false
		for _, m := range f.sim.Messages(mb, "Sent Items") {
			found = found || m.Subject == "Internal Resume Submission: Sales Associate"
		}
		if r, _ := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id), f.aliceTok, nil); r.StatusCode != 404 {
			left = true
		}
		if !found || left {
			t.Errorf("after send: in Sent Items %v, draft still there %v", found, left)
		}
	})
	t.Run("message-reply.md example 2 (MIME)", func(t *testing.T) {
		// Verbatim the sample decodes to S/MIME headers cut at
		// "Content-Disposi", with no recipient: the sim refuses it (400
		// ErrorInvalidRecipients) rather than guess where it goes.
		resp, b := f.call(t, "POST", orig+"/reply", f.aliceTok, []byte(graphDocText(t, "message-reply-mime-request.txt")), text, plain)
		if resp.StatusCode != 400 || !bytes.Contains(b, []byte("ErrorInvalidRecipients")) {
			t.Errorf("verbatim sample: %d %s", resp.StatusCode, b)
		}
		resp, b = f.call(t, "POST", orig+"/reply", f.aliceTok, b64(completedReplyMIME(t)), text, plain)
		if resp.StatusCode != 202 || len(b) != 0 {
			t.Errorf("reply: %d %q, documented 202 with no body", resp.StatusCode, b)
		}
		resp, b = f.call(t, "POST", orig+"/reply", f.aliceTok, []byte("not base64!"), text, plain)
		wantMIMEError(t, resp, b)
	})
	t.Run("message-update.md", func(t *testing.T) {
		id := create(t)
		resp, b := f.call(t, "PATCH", "/v1.0/me/messages/"+url.PathEscape(id), f.aliceTok, []byte(graphDocText(t, "message-update-request.json")))
		got := wantDocJSON(t, resp, b, 200, "message-update.json")
		body, _ := got["body"].(map[string]any)
		if got["subject"] != "subject-value" || got["inferenceClassification"] != "other" || body == nil || !strings.Contains(body["content"].(string), "content-value") {
			t.Errorf("after PATCH: subject %v inferenceClassification %v body %v", got["subject"], got["inferenceClassification"], got["body"])
		}
	})
	t.Run("message-send.md", func(t *testing.T) {
		id := create(t)
		resp, b := f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(id)+"/send", f.aliceTok, nil)
		if resp.StatusCode != 202 || len(b) != 0 {
			t.Errorf("send: %d %q, documented 202 with no body", resp.StatusCode, b)
		}
	})
	t.Run("message-delete.md", func(t *testing.T) {
		id := create(t)
		resp, b := f.call(t, "DELETE", "/v1.0/me/messages/"+url.PathEscape(id), f.aliceTok, nil)
		if resp.StatusCode != 204 || len(b) != 0 {
			t.Errorf("delete: %d %q, documented 204 with no body", resp.StatusCode, b)
		}
	})
	t.Run("message-post-attachments.md", func(t *testing.T) {
		id := create(t)
		path := "/v1.0/me/messages/" + url.PathEscape(id) + "/attachments"
		// Verbatim, "R0lGODdhEAYEAA7" is 15 characters: not base64. The sim
		// refuses it (the page shows no error for it; the code is the sim's).
		resp, b := f.call(t, "POST", path, f.aliceTok, []byte(graphDocText(t, "message-post-attachments-request.json")))
		if resp.StatusCode != 400 || !bytes.Contains(b, []byte("not base64")) {
			t.Errorf("verbatim sample: %d %s", resp.StatusCode, b)
		}
		// Padded to base64, the documented 201 with the attachment.
		fixed := strings.Replace(graphDocText(t, "message-post-attachments-request.json"), `"R0lGODdhEAYEAA7"`, `"R0lGODdhEAYEAA7="`, 1)
		resp, b = f.call(t, "POST", path, f.aliceTok, []byte(fixed))
		got := wantDocJSON(t, resp, b, 201, "message-post-attachments.json", "contentId", "contentLocation")
		if got["name"] != "smile" || got["contentBytes"] != "R0lGODdhEAYEAA4=" && got["contentBytes"] != "R0lGODdhEAYEAA7=" {
			t.Errorf("attachment %v", got)
		}
	})
	t.Run("attachment-createuploadsession.md and outlook-large-attachments.md", func(t *testing.T) {
		id := create(t)
		resp, b := f.call(t, "POST", "/v1.0/me/messages/"+url.PathEscape(id)+"/attachments/createUploadSession", f.aliceTok,
			[]byte(graphDocText(t, "attachment-createuploadsession-request.json")))
		got := wantDocJSON(t, resp, b, 201, "attachment-createuploadsession.json")
		if r, _ := got["nextExpectedRanges"].([]any); len(r) != 1 || r[0] != "0-" {
			t.Errorf("nextExpectedRanges %v, documented [\"0-\"]", got["nextExpectedRanges"])
		}
		uploadURL, _ := got["uploadUrl"].(string)
		if !strings.Contains(uploadURL, "/AttachmentSessions('") || !strings.Contains(uploadURL, "authtoken=") {
			t.Fatalf("uploadUrl %q lacks the documented AttachmentSessions('…')?authtoken=…", uploadURL)
		}
		// The documented PUTs: bytes 0-2097151, then 2097152-3483321 of 3483322.
		file := bytes.Repeat([]byte("flower!"), 3483322/7+1)[:3483322]
		put := func(start, end int) (*http.Response, []byte) {
			return f.call(t, "PUT", uploadURL, "", file[start:end+1], "Content-Type", "application/octet-stream",
				"Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(end)+"/3483322")
		}
		resp, b = put(0, 2097151)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("first PUT: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		var first map[string]any
		json.Unmarshal(b, &first)
		assertShape(t, "upload-put-first", first, graphDoc(t, "upload-put-first.json"))
		if r, _ := first["nextExpectedRanges"].([]any); len(r) != 1 || r[0] != "2097152" {
			t.Errorf("nextExpectedRanges %v, documented [\"2097152\"]", first["nextExpectedRanges"])
		}
		resp, b = put(2097152, 3483321)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != 201 || len(b) != 0 || resp.Header.Get("Content-Length") != "0" || !strings.Contains(loc, "/Messages('") || !strings.Contains(loc, "/Attachments('") {
			t.Fatalf("final PUT: %d Location %q length %q body %q, documented 201 with Location and no body", resp.StatusCode, loc, resp.Header.Get("Content-Length"), b)
		}
		// The attachment is on the draft, bytes intact.
		attID := loc[strings.LastIndex(loc, "('")+2 : len(loc)-2]
		resp, b = f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id)+"/attachments/"+url.PathEscape(attID)+"/$value", f.aliceTok, nil)
		if resp.StatusCode != 200 || !bytes.Equal(b, file) {
			t.Errorf("attachment: %d, %d bytes", resp.StatusCode, len(b))
		}
	})
	t.Run("singlevaluelegacyextendedproperty-get.md", func(t *testing.T) {
		id := create(t)
		prop := map[string]any{"singleValueExtendedProperties": []any{map[string]any{
			"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color", "value": "Green"}}}
		if resp, b := f.call(t, "PATCH", "/v1.0/me/messages/"+url.PathEscape(id), f.aliceTok, prop); resp.StatusCode != 200 {
			t.Fatalf("PATCH: %d %s", resp.StatusCode, b)
		}
		lines := strings.Split(strings.TrimSpace(graphDocText(t, "singlevaluelegacyextendedproperty-get-requests.txt")), "\n")
		_, q1, _ := strings.Cut(lines[0], "?")
		_, q2, _ := strings.Cut(lines[1], "?")
		// Request 1, the documented query on this message: the message
		// expanded with the matching property.
		resp, b := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id)+"?"+q1, f.aliceTok, nil)
		// "from": null in the sample.
		got := wantDocJSON(t, resp, b, 200, "singlevaluelegacyextendedproperty-get-expand.json", "from")
		props, _ := got["singleValueExtendedProperties"].([]any)
		if len(props) != 1 || props[0].(map[string]any)["value"] != "Green" {
			t.Errorf("singleValueExtendedProperties %v", got["singleValueExtendedProperties"])
		}
		// Request 2, verbatim: the messages with the property, "The
		// response does not include the matching extended property".
		resp, b = f.call(t, "GET", "/v1.0/me/messages?"+q2, f.aliceTok, nil)
		var list struct {
			Value []map[string]any
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list.Value) != 1 || list.Value[0]["id"] != id {
			t.Fatalf("filter: %d %s", resp.StatusCode, b)
		}
		if _, ok := list.Value[0]["singleValueExtendedProperties"]; ok {
			t.Error("the filtered list includes the extended property; documented: it does not")
		}
		// An $expand without the documented $filter on id is refused.
		resp, b = f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(id)+"?$expand=singleValueExtendedProperties", f.aliceTok, nil)
		if resp.StatusCode != 400 {
			t.Errorf("bare $expand: %d %s", resp.StatusCode, b)
		}
	})
}
