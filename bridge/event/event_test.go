package event

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

func testMessage() *graph.Message {
	return &graph.Message{
		ID:                "AAMkImmutable1",
		InternetMessageID: "<m1@example.com>",
		Subject:           "Printer on fire",
		From:              &graph.Recipient{EmailAddress: graph.EmailAddress{Name: "Ann", Address: "ann@example.com"}},
		Sender:            &graph.Recipient{EmailAddress: graph.EmailAddress{Name: "Bot", Address: "bot@example.com"}},
		ToRecipients:      []graph.Recipient{{EmailAddress: graph.EmailAddress{Address: "support@contoso.com"}}},
		CcRecipients:      []graph.Recipient{{EmailAddress: graph.EmailAddress{Name: "Cy", Address: "cy@example.com"}}},
		ReplyTo:           []graph.Recipient{{EmailAddress: graph.EmailAddress{Address: "reply@example.com"}}},
		ReceivedDateTime:  time.Date(2026, 10, 3, 14, 15, 16, 0, time.UTC),
		SentDateTime:      time.Date(2026, 10, 3, 14, 15, 0, 0, time.UTC),
		Body:              &graph.ItemBody{ContentType: "html", Content: "<p>Hello&nbsp;there &amp; <b>welcome</b></p><p>Line 2<br>Line 3</p>"},
		ConversationID:    "conv-1",
		InternetMessageHeaders: []graph.Header{
			{Name: "Received", Value: "from a by b"},
			{Name: "In-Reply-To", Value: " <m0@example.com> "},
			{Name: "References", Value: "<r1@example.com>\r\n <m0@example.com>"},
		},
		Attachments: []graph.Attachment{
			{ODataType: graph.FileAttachment, Name: "a.txt", ContentType: "text/plain", Size: 5, ContentBytes: []byte("hello")},
			{ODataType: graph.FileAttachment, Name: "logo.png", ContentType: "image/png", Size: 4, IsInline: true, ContentID: "<logo@x>", ContentBytes: []byte{1, 2, 3, 4}},
			{ODataType: graph.FileAttachment, Name: "big.bin", Size: 50, ContentBytes: make([]byte, 50)},
			{ODataType: graph.ReferenceAttachment, Name: "link"},
		},
	}
}

func testSource(policy ArchivePolicy) Source {
	return Source{
		Tenant: "tid-1", Mailbox: "support@contoso.com",
		Channel: config.Channel{Name: "support", Mailbox: config.Mailbox{Type: "shared", Address: "support@contoso.com"},
			Group: "Support L1", MaxAttachmentBytes: 10},
		Folder: "Inbox/Support", Policy: policy, Now: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
	}
}

func TestBuildMailEventNew(t *testing.T) {
	msg := testMessage()
	ev, d, err := BuildMailEvent(testSource(ArchivePolicy{}), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != webhooks.TypeMailReceived {
		t.Errorf("type = %q", ev.Type)
	}
	// A literal: the id of this mail must never change across upgrades.
	if got, want := d.ID, "msg_mydiouhkknjiouwd3elrubrvme"; got != want || ev.ID() != want {
		t.Errorf("id = %q (envelope %q), want %q", got, ev.ID(), want)
	}
	if d.Archive || d.Ticket.State != "new" || d.Ticket.SuppressAutomations || len(d.Tags) != 0 {
		t.Errorf("new mail marked as archive: %+v", d.Ticket)
	}
	if d.Group != "Support L1" || d.Channel != "support" || d.Folder != "Inbox/Support" || d.Mailbox.Type != "shared" {
		t.Errorf("routing = %q %q %q %+v", d.Group, d.Channel, d.Folder, d.Mailbox)
	}
	if d.Ticket.Customer.Address != "ann@example.com" || d.Ticket.Title != "Printer on fire" {
		t.Errorf("ticket = %+v", d.Ticket)
	}
	if !d.Ticket.CreatedAt.Equal(msg.ReceivedDateTime) {
		t.Errorf("created_at = %v, want the received time", d.Ticket.CreatedAt)
	}
	a := d.Article
	if a.InReplyTo != "<m0@example.com>" || strings.Join(a.References, " ") != "<r1@example.com> <m0@example.com>" ||
		a.ConversationID != "conv-1" || a.InternetMessageID != "<m1@example.com>" || a.GraphID != msg.ID {
		t.Errorf("threading = %q %q %q %q", a.InReplyTo, a.References, a.ConversationID, a.InternetMessageID)
	}
	if a.Sender == nil || a.Sender.Address != "bot@example.com" || len(a.To) != 1 || len(a.Cc) != 1 || len(a.ReplyTo) != 1 {
		t.Errorf("recipients = %+v %+v %+v %+v", a.Sender, a.To, a.Cc, a.ReplyTo)
	}
	if got, want := a.BodyText, "Hello there & welcome\n\nLine 2\nLine 3"; got != want {
		t.Errorf("text = %q, want %q", got, want) // paragraphs are separated by a blank line
	}
	if len(a.Headers) != 2 {
		t.Errorf("headers = %v, want In-Reply-To and References only", a.Headers)
	}
	if len(a.Attachments) != 4 {
		t.Fatalf("attachments = %d, want 4", len(a.Attachments))
	}
	small, inline, big, ref := a.Attachments[0], a.Attachments[1], a.Attachments[2], a.Attachments[3]
	if !small.Included || small.ContentBase64 != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Errorf("small attachment = %+v", small)
	}
	if !inline.Inline || inline.ContentID != "logo@x" || !inline.Included {
		t.Errorf("inline image = %+v", inline)
	}
	if big.Included || big.ContentBase64 != "" || !strings.Contains(big.Reason, "max_attachment_bytes") || big.Size != 50 {
		t.Errorf("big attachment = %+v", big)
	}
	if ref.Included || ref.Reason == "" {
		t.Errorf("reference attachment = %+v", ref)
	}
	var round webhooks.MailData
	if err := json.Unmarshal(ev.Data, &round); err != nil || round.ID != d.ID {
		t.Errorf("event data does not decode: %v", err)
	}
}

// TestEventIDInputsPinned: the daemon derives event ids from the configured
// tenant (case-folded), the mailbox address and the immutable Graph id. The
// ids below are literals: a change to what the daemon feeds in (say the
// tenant GUID instead of the configured name) would re-deliver every mail
// as a new ticket after a re-sync, and must fail here.
func TestEventIDInputsPinned(t *testing.T) {
	cfg := &config.Config{}
	cfg.MS.Tenant = "Contoso.OnMicrosoft.com"
	src := testSource(ArchivePolicy{})
	src.Tenant, src.Mailbox = Tenant(cfg), "Support@Contoso.com"
	msg := testMessage()
	msg.ID = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"
	_, d, err := BuildMailEvent(src, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.ID, "msg_tczmgr25e3ndtgirrubst7iu6y"; got != want {
		t.Errorf("event id = %q, want %q (the id of this mail since version 1)", got, want)
	}
}

func TestBuildMailEventArchived(t *testing.T) {
	msg := testMessage()
	msg.ReceivedDateTime = time.Date(2026, 10, 3, 14, 15, 16, 987654321, time.UTC)
	pol := ArchivePolicy{On: true, Cutoff: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), State: "closed"}
	ev, d, err := BuildMailEvent(testSource(pol), msg, &webhooks.RawMIME{Included: true, Size: 3, ContentBase64: "YWJj"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != webhooks.TypeMailArchived || !d.Archive || d.Ticket.State != "closed" || !d.Ticket.SuppressAutomations {
		t.Errorf("archived = %s %+v", ev.Type, d.Ticket)
	}
	if len(d.Tags) != 1 || d.Tags[0] != archiveTag {
		t.Errorf("tags = %v", d.Tags)
	}
	if !d.Ticket.CreatedAt.Equal(msg.ReceivedDateTime) || d.Ticket.CreatedAt.Nanosecond() != 987654321 {
		t.Errorf("created_at = %v, want full precision %v", d.Ticket.CreatedAt, msg.ReceivedDateTime)
	}
	if d.Article.RawMIME == nil || !d.Article.RawMIME.Included {
		t.Errorf("raw mime = %+v", d.Article.RawMIME)
	}
	// Same message, later mail after the cut-off: new.
	msg.ReceivedDateTime = pol.Cutoff.Add(time.Second)
	ev, d, _ = BuildMailEvent(testSource(pol), msg, nil)
	if ev.Type != webhooks.TypeMailReceived || d.Archive || d.Ticket.State != "new" {
		t.Errorf("after cut-off = %s %+v", ev.Type, d.Ticket)
	}
}

func TestBuildMailEventFallbacks(t *testing.T) {
	msg := testMessage()
	msg.Subject = "  "
	msg.From = nil
	msg.Body = &graph.ItemBody{ContentType: "text", Content: "plain only"}
	_, d, err := BuildMailEvent(testSource(ArchivePolicy{}), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Ticket.Customer.Address != "bot@example.com" || d.Article.From.Address != "bot@example.com" {
		t.Errorf("customer from sender = %+v", d.Ticket.Customer)
	}
	if got, want := d.Ticket.Title, "(no subject) from Bot <bot@example.com>"; got != want {
		t.Errorf("title = %q, want %q", got, want)
	}
	if d.Article.BodyText != "plain only" || d.Article.BodyHTML != "" {
		t.Errorf("bodies = %q %q", d.Article.BodyText, d.Article.BodyHTML)
	}
	msg.ID = ""
	if _, _, err := BuildMailEvent(testSource(ArchivePolicy{}), msg, nil); !errors.Is(err, ErrUnconvertible) {
		t.Errorf("no id: err = %v, want ErrUnconvertible", err)
	}
}

// TestCustomerFallback: odd or missing sender headers never reject a
// message; the customer comes from the next header that has an address,
// and when none has one the event goes out flagged with the raw header.
func TestCustomerFallback(t *testing.T) {
	rcpt := func(name, addr string) *graph.Recipient {
		return &graph.Recipient{EmailAddress: graph.EmailAddress{Name: name, Address: addr}}
	}
	hdr := func(kv ...string) []graph.Header {
		var out []graph.Header
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, graph.Header{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name       string
		msg        graph.Message
		addr, from string
		raw        string
	}{
		{"graph from", graph.Message{From: rcpt("Ann", "ann@example.com"), Sender: rcpt("", "bot@example.com")}, "ann@example.com", "from", ""},
		{"from with a name only", graph.Message{From: rcpt("Ann", ""), Sender: rcpt("", "bot@example.com")}, "bot@example.com", "sender", ""},
		{"reply-to", graph.Message{ReplyTo: []graph.Recipient{*rcpt("", ""), *rcpt("R", "r@example.com")}}, "r@example.com", "reply_to", ""},
		{"return-path", graph.Message{InternetMessageHeaders: hdr("Return-Path", "<bounce@example.net>")}, "bounce@example.net", "return_path", ""},
		{"8-bit display name", graph.Message{InternetMessageHeaders: hdr("Return-Path", "<>", "From", "J\xfcrgen M\xfcller <jm@example.de>")}, "jm@example.de", "header:From", ""},
		{"another header", graph.Message{InternetMessageHeaders: hdr("Message-ID", "<id@host.example>", "To", "support@contoso.com",
			"Delivered-To", "support@contoso.com", "X-Original-Sender", "orig@example.org")}, "orig@example.org", "header:X-Original-Sender", ""},
		{"mailer-daemon", graph.Message{InternetMessageHeaders: hdr("Return-Path", "<>", "From", "MAILER-DAEMON (Mail Delivery System)")},
			"", "none", "MAILER-DAEMON (Mail Delivery System)"},
		{"no headers at all", graph.Message{}, "", "none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.msg
			msg.ID, msg.Subject = "AAMk-"+tt.name, "s"
			_, d, err := BuildMailEvent(testSource(ArchivePolicy{}), &msg, nil)
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			tk := d.Ticket
			if tk.Customer.Address != tt.addr || tk.CustomerSource != tt.from || tk.CustomerRaw != tt.raw || tk.CustomerUnresolved != (tt.from == "none") {
				t.Errorf("customer %+v source %q raw %q unresolved %v; want %q from %q raw %q", tk.Customer, tk.CustomerSource, tk.CustomerRaw,
					tk.CustomerUnresolved, tt.addr, tt.from, tt.raw)
			}
		})
	}
}

// TestAttachmentNames: unnamed parts are named from their content type,
// named ones keep their name, attached messages become .eml files named
// after their subject.
func TestAttachmentNames(t *testing.T) {
	msg := testMessage()
	mimeMsg := []byte("From: a@example.com\r\nSubject: Your order\r\n\r\nhi\r\n")
	msg.Attachments = []graph.Attachment{
		{ODataType: graph.FileAttachment, ContentType: "image/jpeg", ContentBytes: []byte{1}},
		{ODataType: graph.FileAttachment, Name: "attachment", ContentType: "image/jpeg", ContentBytes: []byte{2}},
		{ODataType: graph.FileAttachment, ContentType: "message/delivery-status", ContentBytes: []byte("x")},
		{ODataType: graph.FileAttachment, Name: "report.final.PDF", ContentType: "application/octet-stream", ContentBytes: []byte("x")},
		{ODataType: graph.FileAttachment, ContentType: "application/x-unknown", ContentBytes: []byte("x")},
		{ODataType: graph.ItemAttachment, Name: "Your order", ContentBytes: mimeMsg},
		{ODataType: graph.ItemAttachment, Name: "Re: a/b", ContentBytes: mimeMsg},
		{ODataType: graph.ItemAttachment, Name: "Meeting", ContentBytes: []byte("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")},
	}
	src := testSource(ArchivePolicy{})
	src.Channel.MaxAttachmentBytes = 1 << 20
	_, d, err := BuildMailEvent(src, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, ct string }{
		{"image.jpg", "image/jpeg"}, {"image-2.jpg", "image/jpeg"}, {"Delivery report.txt", "message/delivery-status"},
		{"report.final.PDF", "application/octet-stream"}, {"attachment", "application/x-unknown"},
		{"Your order.eml", "message/rfc822"}, {"Re: a_b.eml", "message/rfc822"}, {"Meeting.ics", "text/calendar"},
	}
	for i, w := range want {
		a := d.Article.Attachments[i]
		if a.Filename != w.name || a.ContentType != w.ct || !a.Included {
			t.Errorf("attachment %d = %q %q included %v, want %q %q", i, a.Filename, a.ContentType, a.Included, w.name, w.ct)
		}
	}
	if a := d.Article.Attachments[5]; !a.Item || a.ContentBase64 != base64.StdEncoding.EncodeToString(mimeMsg) {
		t.Errorf("attached message = %+v, want its MIME, item true", a)
	}
}

func TestAutoSubmitted(t *testing.T) {
	tests := []struct {
		name    string
		headers []graph.Header
		want    bool
	}{
		{"plain mail", []graph.Header{{Name: "Subject", Value: "hi"}}, false},
		{"Auto-Submitted no", []graph.Header{{Name: "Auto-Submitted", Value: "no"}}, false},
		{"Auto-Submitted auto-replied", []graph.Header{{Name: "auto-submitted", Value: "auto-replied"}}, true},
		{"X-Auto-Response-Suppress", []graph.Header{{Name: "X-Auto-Response-Suppress", Value: "All"}}, true},
		{"Precedence bulk", []graph.Header{{Name: "Precedence", Value: "Bulk"}}, true},
		{"Precedence auto_reply", []graph.Header{{Name: "Precedence", Value: "auto_reply"}}, true},
		{"Precedence first-class", []graph.Header{{Name: "Precedence", Value: "first-class"}}, false},
		{"List-Id", []graph.Header{{Name: "List-Id", Value: "<dev.lists.example.com>"}}, true},
		{"X-Autoreply", []graph.Header{{Name: "X-Autoreply", Value: "yes"}}, true},
		{"bounce", []graph.Header{{Name: "Return-Path", Value: "<>"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := autoSubmitted(tt.headers)
			if got != tt.want {
				t.Errorf("autoSubmitted = %v (%q), want %v", got, reason, tt.want)
			}
			if got && reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"entities and breaks", "Hi&nbsp;you<br/>next &lt;line&gt;", "Hi you\nnext <line>"},
		{"paragraphs collapse blank lines", "<p>one</p>\n\n<p></p><p>two</p>", "one\n\ntwo"},
		{"script and style dropped", "<style>p{}</style><script>x()</script>text", "text"},
		{"inline tags keep words apart", "<span>a</span> <b>b</b>", "a b"},
		{"inline tags join", "<b>bold</b>face", "boldface"},
		{"lists", "<ul><li>one</li><li>two</li></ul>", "- one\n- two"},
		{"pre keeps spaces", "<pre>a  b\n c</pre>", "a  b\n c"},
		{"broken html", "<div><p>open <b>never closed", "open never closed"},
		{"image alt", `see <img src="cid:x" alt="logo">`, "see [logo]"},
		{"outlook lines are lines", `<p class=MsoNormal>Hello,<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>second</p>`, "Hello,\n\nsecond"},
		{"divs are lines", "<div>a</div><div>b</div><div><br></div><div>c</div>", "a\nb\n\nc"},
		{"paragraphs apart", "<p>one</p><p>two</p>text", "one\n\ntwo\n\ntext"},
		{"numbered list", `<ol start="3"><li>three</li><li>four<ul><li>sub</li></ul></li></ol>after`, "3. three\n4. four\n  - sub\n\nafter"},
		{"link target kept", `see <a href="https://example.com/x">the page</a>.`, "see the page <https://example.com/x>."},
		{"link equal to text", `<a href="https://example.com/">example.com</a> <a href="mailto:a@b.c">a@b.c</a>`, "example.com a@b.c"},
		{"heading", "<h1>Title</h1>body", "Title\n\nbody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := htmlToText(tt.in); got != tt.want {
				t.Errorf("htmlToText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEncodeEnvelopeMatchesJSONMarshal(t *testing.T) {
	ev, _, err := BuildMailEvent(testSource(ArchivePolicy{}), testMessage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EncodeEnvelope(ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("EncodeEnvelope =\n%s\nwant\n%s", got, want)
	}
}

// FuzzHTMLToText: any input gives valid text without a panic, and never
// keeps a tag's angle brackets from markup it understood.
func FuzzHTMLToText(f *testing.F) {
	for _, s := range []string{"<p>a</p>", "<pre>x  y</pre>", "<<>>", "<script>x</script>", "&amp;&nbsp;", "<b>unclosed", "<img alt=x>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		// Inputs over 4 KB are skipped: they reach nothing a small one does
		// not, and each new interesting one costs the fuzzer up to a minute
		// of minimising (go test's -fuzzminimizetime default) in which it
		// executes nothing else.
		if len(in) > 4<<10 {
			t.Skip()
		}
		out := htmlToText(in)
		if strings.Contains(out, "\n\n\n") {
			t.Errorf("htmlToText(%q) = %q: more than one blank line in a row", in, out)
		}
		if strings.HasPrefix(out, "\n") || strings.HasSuffix(out, "\n") {
			t.Errorf("htmlToText(%q) = %q: leading or trailing blank line", in, out)
		}
	})
}
