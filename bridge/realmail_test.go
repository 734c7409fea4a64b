package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/store"
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
