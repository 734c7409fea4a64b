package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

func TestSimMessagesAttachmentsMIME(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	base := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	var infos []m365sim.MessageInfo
	for i := range 3 {
		nm := m365sim.NewMessage{Folder: "Inbox/Support", Subject: fmt.Sprintf("m%d", i), From: "Cust <c@example.com>",
			Body: "<p>hello</p>", HTML: true, Received: base.Add(time.Duration(i) * time.Hour)}
		if i == 1 {
			// Exchange marks an image inline only where the HTML shows it by cid:.
			nm.Body = `<p>hello <img src="cid:logo@x"></p>`
			nm.Attachments = []m365sim.NewAttachment{
				{Name: "a.txt", ContentType: "text/plain", Content: "attachment body"},
				{Name: "logo.png", ContentType: "image/png", Size: 3000, ContentID: "logo@x", Inline: true},
			}
		}
		info, err := srv.Sim.InjectMessage(support, nm)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()
	f, err := mc.ResolveFolder(ctx, "Inbox/Support")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("list oldest newest and count", func(t *testing.T) {
		oldest, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, OrderBy: "receivedDateTime asc", Select: []string{"id", "receivedDateTime"}})
		if err != nil {
			t.Fatal(err)
		}
		newest, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, OrderBy: "receivedDateTime desc", Select: []string{"id", "receivedDateTime"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(oldest.Messages) != 1 || !oldest.Messages[0].ReceivedDateTime.Equal(base) {
			t.Errorf("oldest = %+v", oldest.Messages)
		}
		if len(newest.Messages) != 1 || !newest.Messages[0].ReceivedDateTime.Equal(base.Add(2*time.Hour)) {
			t.Errorf("newest = %+v", newest.Messages)
		}
		before, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, ReceivedBefore: base.Add(90 * time.Minute), Count: true,
			OrderBy: "receivedDateTime desc", Select: []string{"id"}})
		if err != nil {
			t.Fatal(err)
		}
		if before.Count != 2 {
			t.Errorf("count before the cut-off = %d, want 2", before.Count)
		}
	})
	t.Run("attachments", func(t *testing.T) {
		id := infos[1].ImmutableID
		m, err := mc.GetMessage(ctx, id, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if !m.HasAttachments || len(m.Attachments) != 2 {
			t.Fatalf("hasAttachments %v, %d expanded", m.HasAttachments, len(m.Attachments))
		}
		atts, err := mc.Attachments(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var txt, png *Attachment
		for i := range atts {
			switch atts[i].Name {
			case "a.txt":
				txt = &atts[i]
			case "logo.png":
				png = &atts[i]
			}
		}
		if txt == nil || string(txt.Bytes()) != "attachment body" {
			t.Fatalf("text attachment = %+v", txt)
		}
		if png == nil || !png.IsInline || png.ContentID != "logo@x" || len(png.Bytes()) != 3000 {
			t.Fatalf("inline attachment = %+v", png)
		}
		meta, err := mc.AttachmentsMeta(ctx, id)
		if err != nil || len(meta) != 2 || meta[0].ContentBytes != nil || meta[0].Content != nil {
			t.Errorf("meta = %+v, %v", meta, err)
		}
		var sb strings.Builder
		if n, err := mc.WriteAttachment(ctx, id, png.ID, &sb, 1<<20); err != nil || n != 3000 {
			t.Errorf("WriteAttachment = %d, %v", n, err)
		}
		if _, err := mc.WriteAttachment(ctx, id, png.ID, &sb, 100); !errors.Is(err, ErrTooLarge) {
			t.Errorf("WriteAttachment over the cap: %v", err)
		}
	})
	t.Run("mime", func(t *testing.T) {
		raw, err := mc.MIME(ctx, infos[0].ImmutableID, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "Subject: m0") {
			t.Errorf("MIME lacks the subject header: %.200q", raw)
		}
		if _, err := mc.MIME(ctx, infos[0].ImmutableID, 10); !errors.Is(err, ErrTooLarge) {
			t.Errorf("MIME over the cap: %v", err)
		}
	})
	t.Run("message gone", func(t *testing.T) {
		if err := srv.Sim.DeleteMessage(support, infos[2].ImmutableID, true); err != nil {
			t.Fatal(err)
		}
		_, err := mc.GetMessage(ctx, infos[2].ImmutableID, nil, false)
		if !errors.Is(err, ErrItemNotFound) {
			t.Errorf("err = %v, want ErrItemNotFound", err)
		}
	})
	t.Run("expired token refreshed once", func(t *testing.T) {
		tokens := tokensFor(t, srv, agent)
		mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokens)
		if _, err := mc.GetFolder(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		srv.Sim.Advance(2 * time.Hour) // the access token expires
		if _, err := mc.GetFolder(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		if tokens.invalidated != 1 {
			t.Errorf("invalidated %d times, want 1", tokens.invalidated)
		}
	})
}

func TestSimAttachmentsOf(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 25, Size: 256,
			Attachments: []m365sim.AttachmentMix{{Percent: 100, Size: 2048}}}}
	})
	var ids []string
	for _, m := range srv.Sim.Messages(support, "Inbox") {
		ids = append(ids, m.ImmutableID)
	}
	gone := ids[3]
	if err := srv.Sim.DeleteMessage(support, gone, true); err != nil {
		t.Fatal(err)
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	srv.Sim.ResetCounters()
	atts, failed, err := mc.AttachmentsOf(context.Background(), append(ids, ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Sim.Counters(); got.Requests != 2 || got.BatchInner != 25 {
		t.Errorf("counters %+v, want 2 batch calls for 25 distinct messages", got)
	}
	if len(atts) != 24 || len(failed) != 1 || !errors.Is(failed[gone], ErrItemNotFound) {
		t.Fatalf("%d with attachments, failed %v; want 24 and %s gone", len(atts), failed, gone)
	}
	for id, list := range atts {
		if len(list) != 1 || len(list[0].Bytes()) != 2048 || list[0].Size == 0 {
			t.Errorf("%s: attachments %+v", id, list)
		}
	}
}

// TestSimTextBodiesAndItemMIME: the text rendition of several messages
// comes through one $batch with the body-type preference, as written for
// text mail; a gone message is reported as ErrItemNotFound; an attached
// message's $value is its MIME.
func TestSimTextBodiesAndItemMIME(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	const text = "Von:     x@example.com\r\n    indented\r\n\r\n\r\nend\r\n"
	plain, err := srv.Sim.InjectMail(support, "Inbox", []byte("From: a@example.com\r\nSubject: plain\r\nContent-Type: text/plain\r\n\r\n"+text))
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := srv.Sim.InjectMail(support, "Inbox", []byte("From: a@example.com\r\nSubject: fwd\r\n"+
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n"+
		"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()
	srv.Sim.ResetCounters()
	bodies, failed, err := mc.TextBodiesOf(ctx, []string{plain.ImmutableID, "AAMkGone", plain.ImmutableID})
	if err != nil {
		t.Fatal(err)
	}
	if b := bodies[plain.ImmutableID]; b == nil || b.Content != text {
		t.Errorf("text body = %+v, want %q", b, text)
	}
	if !errors.Is(failed["AAMkGone"], ErrItemNotFound) {
		t.Errorf("gone message: %v, want ErrItemNotFound", failed["AAMkGone"])
	}
	if n := srv.Sim.Counters().Requests; n != 1 {
		t.Errorf("%d requests on the wire, want one $batch", n)
	}
	atts, err := mc.Attachments(ctx, fwd.ImmutableID)
	if err != nil || len(atts) != 1 || atts[0].ODataType != ItemAttachment {
		t.Fatalf("attachments = %+v, %v", atts, err)
	}
	b, err := mc.AttachmentContent(ctx, fwd.ImmutableID, atts[0].ID, 1<<20)
	if err != nil || !strings.Contains(string(b), "Subject: inner") || !strings.Contains(string(b), "inner body") {
		t.Errorf("item $value = %q, %v; want the attached message's MIME", b, err)
	}
	if _, err := mc.AttachmentContent(ctx, fwd.ImmutableID, atts[0].ID, 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
}
