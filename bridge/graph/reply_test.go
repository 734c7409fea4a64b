package graph

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

func header(hs []m365sim.MessageHeader, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func TestSimReplyThreads(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	ctx := context.Background()
	orig, err := srv.Sim.InjectMessage(support, m365sim.NewMessage{Folder: "Inbox", Subject: "printer broken",
		From: "Carol <carol@example.com>", Body: "help", MessageID: "<q1@example.com>", Headers: []m365sim.MessageHeader{{Name: "References", Value: "<q0@example.com>"}}})
	if err != nil {
		t.Fatal(err)
	}
	shared := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	from := &Recipient{EmailAddress: EmailAddress{Address: support}}
	msg := OutgoingMessage{Body: &ItemBody{ContentType: "text", Content: "fixed"}, ToRecipients: to("carol@example.com"),
		InternetMessageHeaders: []Header{{Name: "X-M365Bridge-Send-Id", Value: "snd_1"}}}
	if err := shared.Reply(ctx, orig.ImmutableID, msg, from); err != nil {
		t.Fatal(err)
	}
	sent := srv.Sim.Messages(support, "Sent Items")
	if len(sent) != 1 {
		t.Fatalf("Sent Items holds %d, want 1", len(sent))
	}
	for _, tt := range []struct{ name, got, want string }{
		{"from", strings.ToLower(sent[0].From), support},
		{"In-Reply-To", header(sent[0].Headers, "In-Reply-To"), "<q1@example.com>"},
		{"References", header(sent[0].Headers, "References"), "<q0@example.com> <q1@example.com>"},
		{"subject", sent[0].Subject, "RE: printer broken"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	t.Run("deleted original", func(t *testing.T) {
		err := shared.Reply(ctx, "AAMkAGone", msg, from)
		if !errors.Is(err, ErrItemNotFound) {
			t.Errorf("err = %v, want ErrItemNotFound", err)
		}
	})
	t.Run("no Send As", func(t *testing.T) {
		denied := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, "sales@contoso.com"))
		if err := denied.Reply(ctx, orig.ImmutableID, msg, from); !errors.Is(err, ErrSendAsDenied) {
			t.Errorf("err = %v, want ErrSendAsDenied", err)
		}
	})
}

func TestSendMailFromSetsSender(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	shared := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	msg := OutgoingMessage{Subject: "hello", Body: &ItemBody{ContentType: "text", Content: "x"}, ToRecipients: to("sales@contoso.com")}
	if err := shared.SendMailFrom(context.Background(), msg, &Recipient{EmailAddress: EmailAddress{Address: support}}, true); err != nil {
		t.Fatal(err)
	}
	sent := srv.Sim.Messages(support, "Sent Items")
	if len(sent) != 1 || !strings.EqualFold(sent[0].From, support) {
		t.Errorf("Sent Items = %+v, want one message from %s", sent, support)
	}
	big := msg
	big.Attachments = []Attachment{{Name: "big.bin", ContentBytes: make([]byte, MaxAttachmentBytes+1)}}
	if err := shared.SendMailFrom(context.Background(), big, nil, true); err == nil || !strings.Contains(err.Error(), "big.bin") {
		t.Errorf("oversized attachment: err = %v", err)
	}
}
