package store

import (
	"context"
	"testing"
	"time"
)

func TestTicketMap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) { testTicketMap(t, b.open(t)) })
}

func testTicketMap(t *testing.T, db *DB) {
	ctx := context.Background()
	tm := db.Tickets()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	rec := func(channel, mid, conv, tid string, at time.Time) {
		t.Helper()
		if err := tm.RecordTicket(ctx, TicketLink{Webhook: "zammad", Channel: channel, MessageID: mid, ConversationID: conv, TicketID: tid, EventID: "msg_" + mid, RecordedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	rec("support", "<a@x>", "conv1", "101", at)
	rec("support", "<b@x>", "conv1", "102", at.Add(time.Minute))
	rec("sales", "<c@x>", "conv2", "201", at)
	rec("support", "<a@x>", "conv1", "103", at.Add(2*time.Minute)) // the latest answer wins

	for _, tc := range []struct {
		name, channel string
		ids           []string
		conv, want    string
	}{
		{"in-reply-to first", "support", []string{"<b@x>", "<a@x>"}, "", "102"},
		{"unknown ids then a known one", "support", []string{"<zz@x>", "<a@x>"}, "", "103"},
		{"conversation: the latest", "support", []string{"<zz@x>"}, "conv1", "103"},
		{"per channel", "support", []string{"<c@x>"}, "conv2", ""},
		{"other channel", "sales", []string{"<c@x>"}, "", "201"},
		{"nothing", "support", nil, "", ""},
		{"empty ids ignored", "support", []string{"", "<b@x>"}, "", "102"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tm.FindTicket(ctx, "zammad", tc.channel, tc.ids, tc.conv)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got, _ := tm.FindTicket(ctx, "zendesk", "support", []string{"<a@x>"}, "conv1"); got != "" {
		t.Errorf("another webhook's map: got %q, want none", got)
	}
	if err := tm.RecordTicket(ctx, TicketLink{Webhook: "zammad", Channel: "support", MessageID: "<d@x>"}); err == nil {
		t.Error("a link without a ticket id was recorded")
	}
}

// TestForgetTickets: rows older than the cut-off go, per webhook; a thread
// that went on is still found by its newer mail.
func TestForgetTickets(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) { testForgetTickets(t, b.open(t)) })
}

func testForgetTickets(t *testing.T, db *DB) {
	ctx := context.Background()
	tm := db.Tickets()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, l := range []TicketLink{
		{Webhook: "rt", Channel: "support", MessageID: "<old@x>", ConversationID: "c1", TicketID: "1", EventID: "e1", RecordedAt: at},
		{Webhook: "rt", Channel: "support", MessageID: "<new@x>", ConversationID: "c1", TicketID: "1", EventID: "e2", RecordedAt: at.Add(48 * time.Hour)},
		{Webhook: "zendesk", Channel: "support", MessageID: "<old@x>", TicketID: "9", EventID: "e3", RecordedAt: at},
	} {
		if err := tm.RecordTicket(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	n, err := tm.ForgetTickets(ctx, "rt", at.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("forgot %d (%v), want 1", n, err)
	}
	for _, c := range []struct {
		webhook, id, conv, want string
	}{{"rt", "<old@x>", "", ""}, {"rt", "<old@x>", "c1", "1"}, {"rt", "<new@x>", "", "1"}, {"zendesk", "<old@x>", "", "9"}} {
		if got, _ := tm.FindTicket(ctx, c.webhook, "support", []string{c.id}, c.conv); got != c.want {
			t.Errorf("%s %s %s: got %q, want %q", c.webhook, c.id, c.conv, got, c.want)
		}
	}
}
