package m365sim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestEMLSeedToGraphJSON seeds tricky .eml files and checks the Graph JSON
// Exchange would produce: explicit expectations per message, plus golden
// files of the whole (id-scrubbed) JSON in testdata/graph/eml.
func TestEMLSeedToGraphJSON(t *testing.T) {
	f := newGraphFixture(t, Options{})
	f.sim.mu.Lock()
	err := f.sim.seedMailLocked(f.sim.mailboxes["alice@contoso.example"], MailSeed{EMLDir: "testdata/eml", EMLFolder: "Inbox/Seeded"})
	f.sim.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	byMsgID := map[string]MessageInfo{}
	for _, mi := range f.sim.Messages("alice@contoso.example", "Inbox/Seeded") {
		byMsgID[mi.InternetMessageID] = mi
	}
	const sel = "subject,from,sender,toRecipients,ccRecipients,replyTo,sentDateTime,receivedDateTime,hasAttachments,importance,internetMessageId,bodyPreview,body,conversationId,isRead,internetMessageHeaders"
	get := func(t *testing.T, mi MessageInfo, text bool) map[string]any {
		var hdr []string
		if text {
			hdr = []string{"Prefer", `outlook.body-content-type="text"`}
		}
		return f.getJSON(t, "GET", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"?$select="+sel+"&$expand="+url.QueryEscape("attachments($select=name,contentType,size,isInline,contentId)"), f.aliceTok, nil, 200, hdr...)
	}
	cases := []struct {
		file, msgID, subject, fromName, sent, received string
		hasAttachments                                 bool
		textContains                                   string
		check                                          func(t *testing.T, m map[string]any)
	}{
		{"01-encoded-words", "<enc-words-1@example.net>", "Grüße aus München – Bestellung #4711 Café crème", "Zoë “Support” Müller",
			"2024-05-06T09:14:55Z", "2024-05-06T09:15:02Z", false, "die Bestellung über 3 Drucker", func(t *testing.T, m map[string]any) {
				to := m["toRecipients"].([]any)
				if len(to) != 2 || to[1].(map[string]any)["emailAddress"].(map[string]any)["name"] != "Jürgen Groß" {
					t.Errorf("to %v", to)
				}
				if cc := m["ccRecipients"].([]any); len(cc) != 1 || cc[0].(map[string]any)["emailAddress"].(map[string]any)["address"] != "audit@contoso.example" {
					t.Errorf("cc %v", cc)
				}
			}},
		{"02-iso-2022-jp", "<jp-1@example.jp>", "お問い合わせ：請求書について", "山田太郎",
			"2024-05-07T01:00:00Z", "2024-05-07T01:00:00Z", false, "お問い合わせありがとうございます。\r\n明日ご連絡します。", nil},
		{"03-alternative", "<thread-root@customer.example>", "Printer on floor 3 is jammed", "Ada Customer",
			"2024-05-08T08:30:00Z", "2024-05-08T08:30:10Z", false, "The printer is jammed again. Café area too.", func(t *testing.T, m map[string]any) {
				if m["importance"] != "high" {
					t.Errorf("importance %v", m["importance"])
				}
				if rt := m["replyTo"].([]any); len(rt) != 1 || rt[0].(map[string]any)["emailAddress"].(map[string]any)["address"] != "tickets@customer.example" {
					t.Errorf("replyTo %v", rt)
				}
			}},
		{"04-inline-image", "<inline-1@buyer.example>", "Screenshot of the error", "Bob Buyer",
			"2024-05-09T12:00:00Z", "2024-05-09T12:00:00Z", false, "See the screenshot:", func(t *testing.T, m map[string]any) {
				atts := m["attachments"].([]any)
				a := atts[0].(map[string]any)
				if len(atts) != 1 || a["isInline"] != true || a["contentId"] != "shot1@buyer.example" || a["contentType"] != "image/png" || a["size"] != 29.0 {
					t.Errorf("inline attachment %v", atts)
				}
			}},
		{"05-forwarded", "<fwd-1@client.example>", "Fwd: Invoice 2024-17", "Chen Client",
			"2024-05-10T07:45:00Z", "2024-05-10T07:45:00Z", true, "Please see the forwarded invoice below.", func(t *testing.T, m map[string]any) {
				atts := m["attachments"].([]any)
				if len(atts) != 2 {
					t.Fatalf("attachments %v", atts)
				}
				item, pdf := atts[0].(map[string]any), atts[1].(map[string]any)
				if item["@odata.type"] != "#microsoft.graph.itemAttachment" || item["name"] != "Invoice 2024-17" {
					t.Errorf("item attachment %v", item)
				}
				if pdf["name"] != "invoice.pdf" || pdf["size"] != 20.0 || pdf["isInline"] != false {
					t.Errorf("pdf %v", pdf)
				}
			}},
		{"06-no-date-reply", "<thread-reply@customer.example>", "Re: Printer on floor 3 is jammed", "ada@customer.example",
			"2024-05-11T09:00:00Z", "2024-05-11T09:00:00Z", false, "Still jammed.", nil},
	}
	convs := map[string]any{}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			mi, ok := byMsgID[c.msgID]
			if !ok {
				t.Fatalf("%s not seeded; have %v", c.msgID, byMsgID)
			}
			m := get(t, mi, false)
			if m["subject"] != c.subject {
				t.Errorf("subject %q, want %q", m["subject"], c.subject)
			}
			if got := m["from"].(map[string]any)["emailAddress"].(map[string]any)["name"]; got != c.fromName {
				t.Errorf("from name %q, want %q", got, c.fromName)
			}
			if m["sentDateTime"] != c.sent || m["receivedDateTime"] != c.received {
				t.Errorf("sent %v received %v, want %s %s", m["sentDateTime"], m["receivedDateTime"], c.sent, c.received)
			}
			if m["hasAttachments"] != c.hasAttachments || m["isRead"] != false {
				t.Errorf("hasAttachments %v isRead %v", m["hasAttachments"], m["isRead"])
			}
			if m["body"].(map[string]any)["contentType"] != "html" {
				t.Errorf("default body type %v", m["body"])
			}
			text := get(t, mi, true)["body"].(map[string]any)
			if text["contentType"] != "text" || !strings.Contains(text["content"].(string), c.textContains) {
				t.Errorf("text body %q lacks %q", text["content"], c.textContains)
			}
			if hs := m["internetMessageHeaders"].([]any); len(hs) < 5 {
				t.Errorf("headers %v", hs)
			}
			if c.check != nil {
				c.check(t, m)
			}
			convs[c.file] = m["conversationId"]
			m["textBody"] = text["content"]
			for _, k := range []string{"@odata.context", "@odata.etag", "id", "conversationId", "attachments@odata.context"} {
				delete(m, k)
			}
			if atts, ok := m["attachments"].([]any); ok {
				for _, a := range atts {
					delete(a.(map[string]any), "id")
				}
			}
			b, _ := json.Marshal(m)
			golden(t, "eml/"+c.file+".json", b)
		})
	}
	if convs["03-alternative"] != convs["06-no-date-reply"] || convs["03-alternative"] == convs["05-forwarded"] {
		t.Errorf("conversationId: root %v, reply %v, other %v", convs["03-alternative"], convs["06-no-date-reply"], convs["05-forwarded"])
	}
}

// TestEMLValueIsOriginalBytes: $value returns each seeded file unchanged.
func TestEMLValueIsOriginalBytes(t *testing.T) {
	f := newGraphFixture(t, Options{})
	for _, name := range []string{"02-iso-2022-jp.eml", "05-forwarded.eml"} {
		raw := mustRead(t, "testdata/eml/"+name)
		mi, err := f.sim.InjectMail("alice@contoso.example", "Inbox", raw)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := f.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/$value", f.aliceTok, nil)
		if resp.StatusCode != 200 || string(b) != string(raw) {
			t.Errorf("%s: $value differs from the original", name)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"<html><head><title>x</title></head><body><p>Hello&nbsp;<b>world</b></p><p>Bye</p></body></html>", "Hello\u00a0world\nBye"},
		{"line1<br>line2<br/>line3", "line1\nline2\nline3"},
		{"<style>p{}</style><div>a &amp; b</div>", "a & b"},
	}
	for _, c := range cases {
		if got := htmlToText(c.in); got != c.want {
			t.Errorf("htmlToText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBuildMIMERoundTrip(t *testing.T) {
	o := &outgoingMail{
		From: mailAddress{"Zoë Agent", "zoe@contoso.example"}, To: []mailAddress{{"", "a@example.org"}},
		Subject: "Grüße – ✓", MessageID: "<rt@contoso.example>", HTML: true, Body: "<p>Hallo <b>Welt</b></p>",
		Attachments: []outAttachment{{Name: "n.txt", ContentType: "text/plain", Data: func() []byte { return []byte("note") }}},
	}
	m, err := parseMIME(buildMIME(o))
	if err != nil {
		t.Fatal(err)
	}
	h, txt := m.bodies()
	if m.Subject != o.Subject || m.From.Name != "Zoë Agent" || !strings.Contains(h, "<b>Welt</b>") || txt != "Hallo Welt" {
		t.Errorf("round trip: subject %q from %v html %q text %q", m.Subject, m.From, h, txt)
	}
	if len(m.Attachments) != 1 || string(m.Attachments[0].bytes()) != "note" || m.Attachments[0].Name != "n.txt" {
		t.Errorf("attachments %+v", m.Attachments)
	}
}

// maxFuzzInput bounds what the fuzz targets take (see FuzzParseMIME).
const maxFuzzInput = 4 << 10

func FuzzParseMIME(f *testing.F) {
	f.Add([]byte(sampleEML))
	f.Add([]byte("Subject: =?utf-8?B?w7w=?=\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--x--\r\n"))
	// The lenient paths: unclosed and boundary-less multiparts, broken
	// folds, RFC 2231 continuations, padded encoded words, charsets.
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain;\r\nname*0*=iso-8859-1''a%E9;\r\n name*1=b\r\n\r\nx\r\n--b\r\n"))
	f.Add([]byte("From x\r\n  \r\nSubject  : =?utf-8?B?w7w===?= =?sjis?Q?=82=B1?=\r\nno colon\r\nContent-Type: multipart/alternative\r\n\r\n--q\r\n\r\n\x1b$B$3\x1b(B\r\n--q"))
	f.Add([]byte("Content-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: base64\r\n\r\ngqyC8Q=\r\n=A"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Inputs over 4 KB are skipped: they reach nothing a small one does
		// not, and each new interesting one costs the fuzzer up to a minute
		// of minimising (go test's -fuzzminimizetime default) in which it
		// executes nothing else.
		if len(raw) > maxFuzzInput {
			t.Skip()
		}
		m, err := parseMIME(raw)
		if err != nil {
			return
		}
		m.bodies()
		m.preview()
		m.hasAttachments()
	})
}

// TestParseMIMEDeepNesting: forwarded-of-forwarded chains stop being parsed
// at maxMIMEDepth instead of recursing without bound.
func TestParseMIMEDeepNesting(t *testing.T) {
	msg := "Subject: leaf\r\n\r\nhi\r\n"
	for i := 0; i < 3*maxMIMEDepth; i++ {
		msg = "Subject: level\r\nContent-Type: message/rfc822\r\n\r\n" + msg
	}
	m, err := parseMIME([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for len(m.Attachments) == 1 && m.Attachments[0].Item != nil {
		m = m.Attachments[0].Item
		depth++
	}
	if depth == 0 || depth > maxMIMEDepth+1 {
		t.Errorf("parsed %d levels, want 1..%d", depth, maxMIMEDepth+1)
	}
}
