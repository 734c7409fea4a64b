package mailsync

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

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
