package m365sim

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func sendMailBody(attachment int, headers int) map[string]any {
	var hs []any
	for i := range headers {
		hs = append(hs, map[string]string{"name": fmt.Sprintf("X-Custom-%d", i), "value": "v"})
	}
	msg := map[string]any{
		"subject":      "limits",
		"body":         map[string]string{"contentType": "text", "content": "hello"},
		"toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": "bob@contoso.example"}}},
	}
	if hs != nil {
		msg["internetMessageHeaders"] = hs
	}
	if attachment > 0 {
		msg["attachments"] = []any{map[string]any{
			"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin", "contentType": "application/octet-stream",
			"contentBytes": base64.StdEncoding.EncodeToString(make([]byte, attachment)),
		}}
	}
	return map[string]any{"message": msg}
}

// TestSendMailRequestSizeLimit: Graph caps a REST request at 4 MB; a 5 MB
// sendMail JSON is 413 and nothing is sent, one just under the cap goes.
func TestSendMailRequestSizeLimit(t *testing.T) {
	f := newGraphFixture(t, Options{})
	big := sendMailBody(5_000_000*3/4, 0) // about 5 MB of JSON once base64-encoded
	resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, big)
	wantGraphError(t, resp, b, 413, "RequestEntityTooLarge")
	if got := f.sim.Messages("bob@contoso.example", "Inbox"); len(got) != 0 {
		t.Errorf("a refused sendMail delivered %d messages", len(got))
	}
	resp, b = f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, sendMailBody(2_900_000, 0))
	if resp.StatusCode != 202 {
		t.Fatalf("a 3.9 MB sendMail: status %d: %s", resp.StatusCode, b)
	}
	t.Run("batch as a whole", func(t *testing.T) {
		batch := map[string]any{"requests": []any{map[string]any{
			"id": "1", "method": "POST", "url": "/me/sendMail", "headers": map[string]string{"Content-Type": "application/json"}, "body": big,
		}}}
		resp, b := f.call(t, "POST", "/v1.0/$batch", f.aliceTok, batch)
		wantGraphError(t, resp, b, 413, "RequestEntityTooLarge")
	})
}

func TestSendMailCustomHeaderLimit(t *testing.T) {
	f := newGraphFixture(t, Options{})
	resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, sendMailBody(0, 6))
	e := wantGraphError(t, resp, b, 400, "InvalidInternetMessageHeaderCollection")
	if !strings.Contains(e["message"].(string), "less than or equal to 5") {
		t.Errorf("message %v", e["message"])
	}
	resp, b = f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, sendMailBody(0, 5))
	if resp.StatusCode != 202 {
		t.Fatalf("5 custom headers: status %d: %s", resp.StatusCode, b)
	}
}

// TestSendMailMIME: sendMail takes base64 MIME with Content-Type text/plain
// (GDC user-sendmail.md example 4); bad base64 is the documented 400.
func TestSendMailMIME(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mime := "From: Alice <alice@contoso.example>\r\nTo: Bob <bob@contoso.example>\r\nBcc: carol@contoso.example\r\n" +
		"Subject: MIME send\r\nMessage-ID: <mime-1@contoso.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello by MIME\r\n"
	enc := base64.StdEncoding.EncodeToString([]byte(mime))
	// Wrapped at 76 columns, as in the documented example.
	var wrapped strings.Builder
	for len(enc) > 76 {
		wrapped.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	wrapped.WriteString(enc)
	resp, b := f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, []byte(wrapped.String()), "Content-Type", "text/plain")
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	got := f.sim.Messages("bob@contoso.example", "Inbox")
	if len(got) != 1 || got[0].Subject != "MIME send" || got[0].InternetMessageID != "<mime-1@contoso.example>" {
		t.Fatalf("bob's inbox: %+v", got)
	}
	_, raw := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(got[0].ID)+"/$value", f.bobTok, nil)
	if strings.Contains(string(raw), "carol@") {
		t.Errorf("Bcc reached a recipient:\n%s", raw)
	}
	if sent := f.sim.Messages("alice@contoso.example", "Sent Items"); len(sent) != 1 {
		t.Errorf("sent items: %v", sent)
	}
	resp, b = f.call(t, "POST", "/v1.0/me/sendMail", f.aliceTok, []byte("not base64 !!"), "Content-Type", "text/plain")
	e := wantGraphError(t, resp, b, 400, "ErrorMimeContentInvalidBase64String")
	if e["message"] != "Invalid base64 string for MIME content." {
		t.Errorf("message %v", e["message"])
	}
}
