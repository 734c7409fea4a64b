package deliver

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

func sampleEvent(t *testing.T, archive bool) []byte {
	t.Helper()
	from := webhooks.Address{Name: "Alice \"A\" Customer", Address: "alice@example.org"}
	ev, err := webhooks.NewEvent(webhooks.TypeMailReceived, time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC), webhooks.MailData{
		ID: "msg_1", Version: 1, Channel: "support", Group: "Support L1", Archive: archive,
		Mailbox: webhooks.Mailbox{Type: "shared", Address: "support@contoso.com"},
		Ticket:  webhooks.Ticket{Title: "Printer </script> on \"fire\"", State: "new", Customer: from},
		Article: webhooks.Article{
			InternetMessageID: "<a@example.org>", Subject: "Printer </script> on \"fire\"", From: from,
			To: []webhooks.Address{{Address: "support@contoso.com"}}, BodyHTML: "<p>Help\n</p>", BodyText: "Help",
			Attachments: []webhooks.Attachment{
				{Filename: "a.txt", ContentType: "text/plain", Size: 2, Included: true, ContentBase64: "aGk="},
				{Filename: "big.zip", ContentType: "application/zip", Size: 1 << 30, Reason: "too_large"},
				{Filename: "b.txt", ContentType: "text/plain", Size: 2, Included: true, ContentBase64: "aG8="},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return b
}

func TestZammadTemplate(t *testing.T) {
	tmpl, err := ParseTemplate("zammad", ZammadTicketTemplate)
	if err != nil {
		t.Fatal(err)
	}
	body, err := Render(Endpoint{Template: tmpl, ContentType: "application/json"}, sampleEvent(t, false))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title      string `json:"title"`
		Group      string `json:"group"`
		CustomerID string `json:"customer_id"`
		State      string `json:"state"`
		Article    struct {
			From, Subject, ContentType, Body, MessageID string
			Attachments                                 []map[string]string
		} `json:"article"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("rendered body is not JSON: %v\n%s", err, body)
	}
	var raw map[string]map[string]any
	json.Unmarshal(body, &raw)
	art := raw["article"]
	if got.Title != `Printer </script> on "fire"` || got.Group != "Support L1" || got.CustomerID != "guess:alice@example.org" || got.State != "new" {
		t.Errorf("ticket fields = %+v", got)
	}
	if art["content_type"] != "text/html" || art["body"] != "<p>Help\n</p>" || art["from"] != `Alice "A" Customer <alice@example.org>` || art["message_id"] != "<a@example.org>" {
		t.Errorf("article = %v", art)
	}
	atts, _ := art["attachments"].([]any)
	if len(atts) != 2 || atts[0].(map[string]any)["filename"] != "a.txt" || atts[1].(map[string]any)["mime-type"] != "text/plain" {
		t.Errorf("attachments = %v, want the two included ones", atts)
	}
}

func TestFormTemplate(t *testing.T) {
	tmpl, err := ParseTemplate("form", FormTemplate)
	if err != nil {
		t.Fatal(err)
	}
	body, err := Render(Endpoint{Template: tmpl, ContentType: "application/x-www-form-urlencoded"}, sampleEvent(t, true))
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("not a form: %v: %s", err, body)
	}
	if v.Get("id") != "msg_1" || v.Get("subject") != `Printer </script> on "fire"` || v.Get("archive") != "true" || v.Get("from") != "alice@example.org" {
		t.Errorf("form = %v", v)
	}
}

func TestTemplateFuncs(t *testing.T) {
	tests := []struct {
		tmpl string
		want string
	}{
		{`{{json .Data.ticket.title}}`, `"Printer </script> on \"fire\""`},
		{`"{{js .Data.ticket.title}}"`, `"Printer </script> on \"fire\""`},
		{`{{b64 "hi"}}`, `aGk=`},
		{`{{default "none" .Data.missing}}`, `none`},
		{`{{truncate 7 .Data.ticket.title}}`, `Printer`},
		{`{{addresses .Data.article.to}}`, `support@contoso.com`},
		{`{{(first .Data.article.attachments).filename}}`, `a.txt`},
		{`{{join "," (list "a" "b")}}`, `a,b`},
		{`{{.ID}} {{.Type}} {{.Timestamp.Year}}`, `msg_1 mail.received 2026`},
		{`{{upper .Data.channel}}`, `SUPPORT`},
	}
	for _, tt := range tests {
		tmpl, err := ParseTemplate("t", tt.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Render(Endpoint{Template: tmpl, ContentType: "text/plain"}, sampleEvent(t, false))
		if err != nil {
			t.Errorf("%s: %v", tt.tmpl, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s = %s, want %s", tt.tmpl, got, tt.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tmpl, _ := ParseTemplate("bad", `{"title": {{.Data.ticket.title}}}`)
	if _, err := Render(Endpoint{Template: tmpl, ContentType: "application/json"}, sampleEvent(t, false)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("unquoted value: %v, want a not-valid-JSON error", err)
	}
	if _, err := ParseTemplate("x", `{{.Data.`); err == nil {
		t.Error("ParseTemplate of a broken template: no error")
	}
	native := sampleEvent(t, false)
	if got, err := Render(Endpoint{}, native); err != nil || string(got) != string(native) {
		t.Error("Render without a template changed the event")
	}
}
