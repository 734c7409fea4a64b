package bridge

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

func testSource(policy ArchivePolicy) EventSource {
	return EventSource{
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
	src.Tenant, src.Mailbox = eventTenant(cfg), "Support@Contoso.com"
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
	if len(d.Tags) != 1 || d.Tags[0] != ArchiveTag {
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
	msg.Sender = nil
	if _, _, err := BuildMailEvent(testSource(ArchivePolicy{}), msg, nil); !errors.Is(err, ErrUnconvertible) {
		t.Errorf("no sender: err = %v, want ErrUnconvertible", err)
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
			got, reason := AutoSubmitted(tt.headers)
			if got != tt.want {
				t.Errorf("AutoSubmitted = %v (%q), want %v", got, reason, tt.want)
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTMLToText(tt.in); got != tt.want {
				t.Errorf("HTMLToText(%q) = %q, want %q", tt.in, got, tt.want)
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
		out := HTMLToText(in)
		if strings.Contains(out, "\n\n\n") {
			t.Errorf("HTMLToText(%q) = %q: more than one blank line in a row", in, out)
		}
		if strings.HasPrefix(out, "\n") || strings.HasSuffix(out, "\n") {
			t.Errorf("HTMLToText(%q) = %q: leading or trailing blank line", in, out)
		}
	})
}
