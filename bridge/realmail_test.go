package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Real-world mail shapes (issue 15), as raw MIME the simulator stores and
// renders through Graph the way Exchange does.
const (
	// A bounce whose From has no address at all: Exchange cannot parse it.
	rawNoAddressFrom = "Return-Path: <>\r\nFrom: MAILER-DAEMON (Mail Delivery System)\r\nTo: sales@contoso.com\r\n" +
		"Subject: Undelivered Mail\r\nMessage-ID: <nofrom1@mx.example.net>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nThe mail system could not deliver your message.\r\n"

	// No From header at all.
	rawNoFrom = "To: sales@contoso.com\r\nSubject: who am I\r\nMessage-ID: <nofrom2@example.org>\r\n" +
		"Date: Mon, 02 Nov 2026 10:01:00 +0000\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nanonymous\r\n"

	// A plain-text mail whose layout matters.
	textWritten = "Hallo,\r\n\r\n---------- Weitergeleitete Nachricht ----------\r\nVon:     x@example.com\r\n" +
		"Datum:   2. Nov. 2026\r\n    eingerueckt   mit   Leerzeichen\r\n\r\n\r\n\r\nnach drei Leerzeilen\r\n\tTab\r\n"
	rawText = "From: Text Writer <writer@example.org>\r\nTo: sales@contoso.com\r\nSubject: text as written\r\n" +
		"Message-ID: <text1@example.org>\r\nDate: Mon, 02 Nov 2026 10:02:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + textWritten

	// A forward carrying two attached messages.
	forwardText = "Two mails for you, see attached.\r\n"
	rawForward  = "From: Fred Forward <fred@example.org>\r\nTo: sales@contoso.com\r\nSubject: Fw: two mails\r\n" +
		"Message-ID: <fwd1@example.org>\r\nDate: Mon, 02 Nov 2026 10:03:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + forwardText +
		"--outer\r\nContent-Type: message/rfc822\r\n\r\n" +
		"From: Ann <ann@example.com>\r\nTo: fred@example.org\r\nSubject: First question\r\nMessage-ID: <q1@example.com>\r\n" +
		"Date: Sun, 01 Nov 2026 09:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWhere is my order?\r\n" +
		"--outer\r\nContent-Type: message/rfc822\r\n\r\n" +
		"From: Bob <bob@example.com>\r\nTo: fred@example.org\r\nSubject: Second question\r\nMessage-ID: <q2@example.com>\r\n" +
		"Date: Sun, 01 Nov 2026 09:30:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnd mine?\r\n" +
		"--outer--\r\n"

	// A delivery status notification (RFC 3464) returning the message.
	bounceText = "This is the mail system at host mx.example.net.\r\n\r\nI'm sorry to have to inform you that your message could not\r\n" +
		"be delivered to one or more recipients.\r\n\r\n    <nobody@example.net>: host mx.example.net said:\r\n" +
		"        550 5.1.1 User unknown\r\n"
	rawBounce = "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: sales@contoso.com\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce1@mx.example.net>\r\nAuto-Submitted: auto-replied\r\n" +
		"Date: Mon, 02 Nov 2026 10:04:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"rep\"\r\n\r\n" +
		"--rep\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + bounceText +
		"--rep\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"--rep\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n" +
		"From: Sales <sales@contoso.com>\r\nTo: nobody@example.net\r\nSubject: Your quote\r\nMessage-ID: <quote1@contoso.com>\r\n" +
		"Date: Mon, 02 Nov 2026 09:59:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHere is the quote.\r\n" +
		"--rep--\r\n"
)

// strictMail decodes an event's data into MailData refusing unknown
// fields: with TestSchemaMatchesGoTypes (the schema is exactly the Go
// types), an event that decodes is valid against the published schema.
func strictMail(t *testing.T, ev webhooks.Event) webhooks.MailData {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.DisallowUnknownFields()
	var md webhooks.MailData
	if err := dec.Decode(&md); err != nil {
		t.Fatalf("%s event does not match the schema's types: %v", ev.Type, err)
	}
	return md
}

// TestDaemonRealWorldMail (issue 15, acceptance): mail without a usable
// sender, a forward carrying two attached messages, a bounce and a
// plain-text mail go through the daemon (configured from its file) against
// the simulator and reach the receiver complete: none rejected, the
// attached messages as .eml files, the text as written.
func TestDaemonRealWorldMail(t *testing.T) {
	rig := newRigBase(t, nil)
	rig.writeConfig(`  - name: sales
    mailbox: {type: user}
    group: Sales
    archive: {mode: off}
`)
	rig.start()
	t.Cleanup(func() { rig.stop() })
	ids := map[string]string{} // subject → event id
	for _, raw := range []string{rawNoAddressFrom, rawNoFrom, rawText, rawForward, rawBounce} {
		mi, err := rig.sim.Sim.InjectMail("sales@contoso.com", "Inbox", []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		ids[mi.Subject] = webhooks.EventID(event.Tenant(rig.cfg), "sales@contoso.com", mi.ImmutableID)
	}
	if page := rig.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.300s", page)
	}
	events := rig.waitEvents(len(ids))
	got := map[string]webhooks.MailData{}
	for subject, id := range ids {
		ev, ok := events[id]
		if !ok {
			t.Errorf("%q never reached the receiver (events: %d)", subject, len(events))
			continue
		}
		if ev.Type != webhooks.TypeMailReceived {
			t.Errorf("%q arrived as %s", subject, ev.Type)
		}
		got[subject] = strictMail(t, ev)
	}
	if t.Failed() {
		for _, e := range rejectedRows(t, rig.d.DB(), "sales") {
			t.Logf("rejected: %s %q", e.MessageID, e.Reason)
		}
		t.FailNow()
	}

	// No usable sender: delivered, flagged, with the raw header.
	d := got["Undelivered Mail"]
	if tk := d.Ticket; tk.Customer.Address != "" || !tk.CustomerUnresolved || tk.CustomerSource != "none" ||
		tk.CustomerRaw != "MAILER-DAEMON (Mail Delivery System)" {
		t.Errorf("no-address From: customer %+v source %q unresolved %v raw %q", tk.Customer, tk.CustomerSource, tk.CustomerUnresolved, tk.CustomerRaw)
	}
	d = got["who am I"]
	if tk := d.Ticket; tk.Customer.Address != "" || !tk.CustomerUnresolved || tk.CustomerRaw != "" {
		t.Errorf("no From header: customer %+v unresolved %v raw %q", tk.Customer, tk.CustomerUnresolved, tk.CustomerRaw)
	}

	// Text as written, byte for byte.
	d = got["text as written"]
	if d.Article.BodyType != "text" || d.Article.BodyText != textWritten {
		t.Errorf("text mail: body_type %q body_text\n%q\nwant\n%q", d.Article.BodyType, d.Article.BodyText, textWritten)
	}
	if d.Ticket.Customer.Address != "writer@example.org" || d.Ticket.CustomerUnresolved {
		t.Errorf("text mail customer = %+v", d.Ticket)
	}

	// The forward: its text, and both attached messages as .eml files.
	// In a multipart body the CRLF before a boundary belongs to the
	// boundary (RFC 2046 5.1.1), not to the text.
	d = got["Fw: two mails"]
	if want := strings.TrimSuffix(forwardText, "\r\n"); d.Article.BodyText != want {
		t.Errorf("forward body_text = %q, want %q", d.Article.BodyText, want)
	}
	wantItems := map[string]string{"First question.eml": "Where is my order?", "Second question.eml": "And mine?"}
	for _, a := range d.Article.Attachments {
		want, ok := wantItems[a.Filename]
		if !ok {
			t.Errorf("forward: unexpected attachment %q (%s)", a.Filename, a.ContentType)
			continue
		}
		delete(wantItems, a.Filename)
		checkEML(t, a, want)
	}
	for name := range wantItems {
		t.Errorf("forward: attached message %q missing (attachments: %+v)", name, names(d.Article.Attachments))
	}

	// The bounce: its indented text as written, the report, the returned
	// message.
	d = got["Undelivered Mail Returned to Sender"]
	if want := strings.TrimSuffix(bounceText, "\r\n"); d.Article.BodyText != want || !d.Article.AutoSubmitted {
		t.Errorf("bounce body_text\n%q\nwant\n%q (auto_submitted %v)", d.Article.BodyText, want, d.Article.AutoSubmitted)
	}
	if d.Ticket.Customer.Address != "MAILER-DAEMON@mx.example.net" {
		t.Errorf("bounce customer = %+v", d.Ticket.Customer)
	}
	var report, returned bool
	for _, a := range d.Article.Attachments {
		switch {
		case a.ContentType == "message/delivery-status":
			report = a.Filename == "Delivery report.txt" && a.Included
			if !report {
				t.Errorf("delivery report attachment = %+v", a)
			}
		case a.ContentType == "message/rfc822":
			returned = a.Filename == "Your quote.eml"
			if !returned {
				t.Errorf("returned message named %q, want %q", a.Filename, "Your quote.eml")
			}
			checkEML(t, a, "Here is the quote.")
		}
	}
	if !report || !returned {
		t.Errorf("bounce attachments %v: want the delivery report and the returned message", names(d.Article.Attachments))
	}
	if rows := rejectedRows(t, rig.d.DB(), "sales"); len(rows) != 0 {
		t.Errorf("%d messages rejected, want none", len(rows))
	}
}

func names(as []webhooks.Attachment) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Filename+" ("+a.ContentType+")")
	}
	return out
}

// checkEML checks an attached message arrived as readable MIME.
func checkEML(t *testing.T, a webhooks.Attachment, body string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(a.ContentBase64)
	if err != nil || !a.Included || !a.Item || a.ContentType != "message/rfc822" {
		t.Errorf("attached message %q: included %v item %v type %q err %v", a.Filename, a.Included, a.Item, a.ContentType, err)
		return
	}
	if !bytes.Contains(raw, []byte("Subject: ")) || !bytes.Contains(raw, []byte(body)) {
		t.Errorf("attached message %q is not the message: %.200q", a.Filename, raw)
	}
}

func rejectedRows(t *testing.T, db *store.DB, channel string) []store.LedgerEntry {
	t.Helper()
	rows, err := db.LedgerList(context.Background(), channel, store.LedgerRejected, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTextBodyRequestCost measures the Graph requests per message for a
// first import of plain-text and HTML mail: the text renditions of a page
// cost one $batch per 20 text messages and HTML mail costs nothing extra.
func TestTextBodyRequestCost(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	const n = 40
	for i := range n {
		nm := m365sim.NewMessage{Folder: "Inbox/Support", Subject: "m", From: "a@example.com", Body: "line\n    indented  twice\n"}
		if i%2 == 1 {
			nm.HTML, nm.Body = true, "<p>hello <b>there</b></p>"
		}
		h.inject(simSupport, nm)
	}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.Archive.Mode = config.ArchiveOff
	r := h.runner(ch)
	h.sim.Sim.ResetCounters()
	h.syncOnce(r)
	c := h.sim.Sim.Counters()
	h.deliver(context.Background())
	var text, html int
	for _, d := range h.rec.events {
		switch d.Article.BodyType {
		case "text":
			text++
			if d.Article.BodyText != "line\n    indented  twice\n" && d.Article.BodyText != "line\r\n    indented  twice\r\n" {
				t.Errorf("text body = %q", d.Article.BodyText)
			}
		case "html":
			html++
		}
	}
	if text != n/2 || html != n/2 {
		t.Errorf("%d text and %d html events, want %d each", text, html, n/2)
	}
	// Text renditions: ceil(20/20) = 1 $batch of 20 inner requests.
	if got := c.ByKind["batch"]; got != 1 {
		t.Errorf("%d $batch requests for %d text messages, want 1 (by kind %v)", got, n/2, c.ByKind)
	}
	t.Logf("first import of %d messages (%d text): %d Graph requests on the wire, %.3f per message; by kind %v",
		n, n/2, c.Requests, float64(c.Requests)/n, c.ByKind)
}

// corruptOne rewrites delta answers so that the message with the given
// subject has a receivedDateTime Graph would never send: the bridge cannot
// read that message at all.
type corruptOne struct {
	subject string
	base    http.RoundTripper
}

func (c corruptOne) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(r)
	if err != nil || !strings.Contains(r.URL.Path, "/delta") {
		return res, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`"receivedDateTime":"[^"]*"(,[^{}]*"subject":"` + regexp.QuoteMeta(c.subject) + `")`)
	b = re.ReplaceAll(b, []byte(`"receivedDateTime":"not a date"$1`))
	res.Body = io.NopCloser(bytes.NewReader(b))
	res.ContentLength = int64(len(b))
	res.Header.Del("Content-Length")
	return res, nil
}

// TestUnreadableMailTellsHelpdesk: a message Graph returns unreadable is
// the one kind that is rejected; it stays in the mailbox, its ledger row
// names the reason, and the helpdesk hears a mail.rejected event (stable
// id, valid data) whose acknowledgement leaves the row rejected.
func TestUnreadableMailTellsHelpdesk(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	h.client.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: corruptOne{subject: "broken", base: http.DefaultTransport}}
	bad := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "broken", From: "a@example.com", Body: "x"})
	good := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "fine", From: "b@example.com", Body: "y"})
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.Archive.Mode = config.ArchiveOff
	h.syncOnce(h.runner(ch))
	h.deliver(context.Background())

	if e := h.ledger("support", bad.ImmutableID); e.State != store.LedgerRejected || !strings.Contains(e.Reason, "undecodable") {
		t.Fatalf("unreadable message: ledger %s %q, want rejected naming why", e.State, e.Reason)
	}
	if e := h.ledger("support", good.ImmutableID); e.State != store.LedgerDelivered {
		t.Errorf("readable message: ledger %s, want delivered", e.State)
	}
	noticeID := webhooks.RejectedEventID(h.tenant, simSupport, bad.ImmutableID)
	body, ok := h.rec.bodies[noticeID]
	if !ok || h.rec.types[noticeID] != webhooks.TypeMailRejected {
		t.Fatalf("no mail.rejected event %s reached the receiver (types %v)", noticeID, h.rec.types)
	}
	var ev webhooks.Event
	json.Unmarshal(body, &ev)
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.DisallowUnknownFields()
	var rd webhooks.RejectedData
	if err := dec.Decode(&rd); err != nil {
		t.Fatalf("mail.rejected data: %v", err)
	}
	if rd.GraphID != bad.ImmutableID || rd.MailEventID != h.eventID(simSupport, bad.ImmutableID) || !strings.Contains(rd.Reason, "undecodable") ||
		rd.Channel != "support" || rd.Mailbox.Address != simSupport {
		t.Errorf("mail.rejected data = %+v", rd)
	}
	// Acknowledged, the notice does not make the mail delivered: it stays
	// rejected (and so untouched in the mailbox).
	if e := h.ledger("support", bad.ImmutableID); e.State != store.LedgerRejected {
		t.Errorf("after the notice was acknowledged the ledger row is %s, want rejected", e.State)
	}
}

// TestOversizedEventLeavesContentOut: an event over the size limit is not
// a reason to reject the mail while leaving attachments out makes it fit:
// the largest goes first, listed with the reason; the rest stays inline.
// Only a message over the limit without any attachment content is
// rejected (and announced).
func TestOversizedEventLeavesContentOut(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	fits := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "with files", From: "a@example.com", Body: "see files",
		Attachments: []m365sim.NewAttachment{{Name: "big.bin", Size: 30 << 10}, {Name: "small.txt", ContentType: "text/plain", Content: "small"}}})
	huge := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "huge body", From: "b@example.com",
		Body: strings.Repeat("long line of text\n", 2000)})
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.Archive.Mode = config.ArchiveOff
	r := h.runner(ch)
	r.cfg.MaxEventBytes = 20 << 10
	h.syncOnce(r)
	h.deliver(context.Background())

	d, ok := h.rec.events[h.eventID(simSupport, fits.ImmutableID)]
	if !ok {
		t.Fatalf("the mail with attachments was not delivered: ledger %+v", h.ledger("support", fits.ImmutableID))
	}
	for _, a := range d.Article.Attachments {
		switch a.Filename {
		case "big.bin":
			if a.Included || a.ContentBase64 != "" || !strings.Contains(a.Reason, "byte limit") {
				t.Errorf("big attachment = included %v reason %q, want left out with the reason", a.Included, a.Reason)
			}
		case "small.txt":
			if !a.Included || a.ContentBase64 == "" {
				t.Errorf("small attachment left out too: %+v", a)
			}
		}
	}
	if n := len(h.rec.bodies[h.eventID(simSupport, fits.ImmutableID)]); n > 20<<10 {
		t.Errorf("delivered event is %d bytes, over the limit", n)
	}
	if e := h.ledger("support", huge.ImmutableID); e.State != store.LedgerRejected || !strings.Contains(e.Reason, "byte limit") {
		t.Errorf("body over the limit: ledger %s %q, want rejected naming the limit", e.State, e.Reason)
	}
	if h.rec.types[webhooks.RejectedEventID(h.tenant, simSupport, huge.ImmutableID)] != webhooks.TypeMailRejected {
		t.Error("no mail.rejected for the message over the limit")
	}
}

// TestTextBodyRefusedFallsBackToHTML: when Graph refuses a message's text
// rendition for good (a 400 on that request), the message still goes out,
// with the HTML body and the text derived from it, and the channel is not
// held up.
func TestTextBodyRefusedFallsBackToHTML(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	mi := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "plain", From: "a@example.com", Body: "hello\n  world\n"})
	if _, err := h.sim.Sim.AddFault(m365sim.FaultRule{Method: http.MethodGet, Path: "re:/messages/" + regexp.QuoteMeta(mi.ImmutableID) + "$",
		Status: http.StatusBadRequest, Code: "ErrorInvalidRequest", Message: "refused"}); err != nil {
		t.Fatal(err)
	}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.Archive.Mode = config.ArchiveOff
	h.syncOnce(h.runner(ch))
	h.deliver(context.Background())
	d, ok := h.rec.events[h.eventID(simSupport, mi.ImmutableID)]
	if !ok {
		t.Fatalf("not delivered: ledger %+v", h.ledger("support", mi.ImmutableID))
	}
	if d.Article.BodyType != "html" || !strings.Contains(d.Article.BodyText, "hello") || d.Article.BodyHTML == "" {
		t.Errorf("fallback bodies: type %q text %q", d.Article.BodyType, d.Article.BodyText)
	}
	if h.sim.Sim.Counters().Faults == 0 {
		t.Error("the fault never fired: the test did not exercise the refusal")
	}
}
