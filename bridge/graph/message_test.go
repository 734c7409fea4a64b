package graph

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const sampleMessage = `{
  "@odata.type": "#microsoft.graph.message",
  "@odata.etag": "W/\"CQAAABYAAAC\"",
  "id": "AAMkAGI2TG93AAA=",
  "changeKey": "CQAAABYAAAC",
  "internetMessageId": "<abc@contoso.com>",
  "subject": "Printer on fire",
  "from": {"emailAddress": {"name": "Adele Vance", "address": "adelev@contoso.com"}},
  "sender": {"emailAddress": {"name": "Adele Vance", "address": "adelev@contoso.com"}},
  "toRecipients": [{"emailAddress": {"name": "Support", "address": "support@contoso.com"}}],
  "ccRecipients": [],
  "replyTo": null,
  "receivedDateTime": "2018-09-09T03:15:08Z",
  "sentDateTime": "2018-09-09T03:15:07.123Z",
  "body": {"contentType": "html", "content": "<p>help</p>"},
  "bodyPreview": "help",
  "hasAttachments": true,
  "isRead": false,
  "isDeliveryReceiptRequested": null,
  "conversationId": "AAQkAGI2",
  "parentFolderId": "AAMkAGI2Inbox",
  "internetMessageHeaders": [{"name": "Message-ID", "value": "<abc@contoso.com>"}, {"name": "Auto-Submitted", "value": "auto-replied"}],
  "importance": "normal",
  "categories": ["Red"],
  "flag": {"flagStatus": "notFlagged"},
  "someFutureField": {"nested": [1, 2, 3]}
}`

func TestDecodeMessage(t *testing.T) {
	m, err := DecodeMessage([]byte(sampleMessage))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.ID, "AAMkAGI2TG93AAA="; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	if got, want := m.From.EmailAddress.Address, "adelev@contoso.com"; got != want {
		t.Errorf("From = %q, want %q", got, want)
	}
	if got, want := m.ReceivedDateTime, time.Date(2018, 9, 9, 3, 15, 8, 0, time.UTC); !got.Equal(want) {
		t.Errorf("ReceivedDateTime = %v, want %v", got, want)
	}
	if got, want := m.SentDateTime, time.Date(2018, 9, 9, 3, 15, 7, 123e6, time.UTC); !got.Equal(want) {
		t.Errorf("SentDateTime = %v, want %v", got, want)
	}
	if v, ok := m.Header("auto-submitted"); !ok || v != "auto-replied" {
		t.Errorf("Header(auto-submitted) = %q, %v", v, ok)
	}
	if m.Body == nil || m.Body.ContentType != "html" || !m.HasAttachments || m.Removed != nil {
		t.Errorf("body/hasAttachments/removed wrong: %+v", m)
	}
}

func TestDecodeMessageTolerance(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantID  string
		wantErr string // substring; empty means success
	}{
		{"removed", `{"@odata.type":"#microsoft.graph.message","id":"X1","@removed":{"reason":"deleted"}}`, "X1", ""},
		{"zone-less date", `{"id":"X2","receivedDateTime":"2024-01-02T03:04:05"}`, "X2", ""},
		{"null everything", `{"id":"X3","subject":null,"from":null,"toRecipients":null,"body":null,"receivedDateTime":null}`, "X3", ""},
		{"subject is a number", `{"id":"X4","subject":42}`, "X4", "subject"},
		{"bad date", `{"id":"X5","receivedDateTime":"yesterday"}`, "X5", "receivedDateTime"},
		{"no id", `{"subject":"hi"}`, "", "no id"},
		{"id is a number", `{"id":7}`, "", "decode message"},
		{"not an object", `[1,2]`, "", "decode message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.in))
			if m.ID != tt.wantID {
				t.Errorf("ID = %q, want %q", m.ID, tt.wantID)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeMessagesKeepsGoodOnes(t *testing.T) {
	raw := []json.RawMessage{[]byte(`{"id":"a"}`), []byte(`{"id":"b","body":"not an itemBody"}`), []byte(`{"id":"c"}`)}
	ok, bad := decodeMessages(raw)
	if len(ok) != 2 || ok[0].ID != "a" || ok[1].ID != "c" {
		t.Errorf("ok = %+v, want a and c", ok)
	}
	if len(bad) != 1 || bad[0].ID != "b" || bad[0].Err == nil || !strings.Contains(bad[0].Err.Error(), "body") {
		t.Errorf("bad = %+v, want b with an error naming body", bad)
	}
}

// TestDecodeDocumentedDeltaSample decodes Microsoft's own delta sample, whose
// updated message has "isRead": "true" (testdata/graphdocs/README.md): the
// message must come through with everything else intact and isRead named
// in Ignored, not be rejected.
func TestDecodeDocumentedDeltaSample(t *testing.T) {
	b, err := os.ReadFile("testdata/graphdocs/delta-next-round-isread-string.json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	ok, bad := decodeMessages(page.Value)
	if len(bad) != 0 {
		t.Fatalf("undecodable: %+v", bad)
	}
	if len(ok) != 2 {
		t.Fatalf("decoded %d messages, want 2", len(ok))
	}
	if ok[0].Removed == nil || ok[0].Removed.Reason != "deleted" {
		t.Errorf("first entry Removed = %+v, want deleted", ok[0].Removed)
	}
	m := ok[1]
	if m.ID != "AAMkADNkNAAASq35xAAA=" || m.Subject != "Holiday hours update" || m.Sender == nil ||
		m.Sender.EmailAddress.Address != "danas@contoso.com" {
		t.Errorf("message = %+v, want id, subject and sender of the sample", m)
	}
	if m.IsRead || !slices.Equal(m.Ignored, []string{"isRead"}) {
		t.Errorf("IsRead = %v, Ignored = %v; want false and [isRead]", m.IsRead, m.Ignored)
	}
}

func TestDecodeMessageIgnoresOnlyUnneededProperties(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantIgnored []string
		wantErr     string
	}{
		{"bool as string", `{"id":"a","isRead":"true","isDraft":"false","subject":"s"}`, []string{"isRead", "isDraft"}, ""},
		{"categories as string", `{"id":"a","categories":"Red","importance":1,"changeKey":{}}`, []string{"changeKey", "importance", "categories"}, ""},
		{"all well-typed", `{"id":"a","isRead":true}`, nil, ""},
		{"needed: hasAttachments", `{"id":"a","hasAttachments":"true"}`, nil, "hasAttachments"},
		{"needed: from", `{"id":"a","from":"pat@example.com"}`, nil, "from"},
		{"needed: internetMessageHeaders", `{"id":"a","internetMessageHeaders":{"name":"x"}}`, nil, "internetMessageHeaders"},
		{"needed: date", `{"id":"a","isRead":"true","receivedDateTime":"datetime-value"}`, nil, "receivedDateTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Ignored, tt.wantIgnored) {
				t.Errorf("Ignored = %v, want %v", m.Ignored, tt.wantIgnored)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(sampleMessage))
	f.Add([]byte(`{"id":"X1","@removed":{"reason":"deleted"}}`))
	f.Add([]byte(`{"id":"X","receivedDateTime":"2024-01-02T03:04:05","attachments":[{"id":"a","contentBytes":"aGVsbG8="}]}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err == nil && m.ID == "" {
			t.Fatalf("success without an id for %q", b)
		}
		if err == nil {
			// What decodes must survive a round trip.
			out, merr := json.Marshal(m)
			if merr != nil {
				t.Fatalf("marshal decoded message: %v", merr)
			}
			if _, err := DecodeMessage(out); err != nil {
				t.Fatalf("re-decode %s: %v", out, err)
			}
		}
	})
}
