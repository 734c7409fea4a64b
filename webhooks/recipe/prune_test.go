package recipe_test

import (
	"context"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
)

// TestTicketMapRetention: a recipe drops ticket map entries older than its
// ticket_map_retention, by its own clock, and a reply to a forgotten mail
// is still threaded by the recipe's lookup.
func TestTicketMapRetention(t *testing.T) {
	rt := newRT()
	defer rt.Close()
	cfg := loadShipped(t, "rt5.yaml", rt.URL, mapEnv{"RT_TOKEN": rtToken})
	cfg.Webhooks[0].Recipe.TicketMapRetention = 30 * 24 * time.Hour
	db := tempDB(t)
	ms := scenario(newLinkServer(t), 2, 1, 0, 0) // originals 0 and 1, reply 2 to 0
	ms[2].parent, ms[2].byConv = 0, false
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	w := cfg.Webhooks[0]
	r, err := recipe.New(w, recipe.Options{Tickets: db.Tickets(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	run := func(m *mail) {
		t.Helper()
		e := m.event(t, ms)
		ep := deliver.Endpoint{Name: w.Name, URL: w.URL, Headers: map[string]string{"Authorization": "token " + rtToken}, Recipe: r}
		if res := r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Channel: "support", Type: e.Type, Body: e.Body}, 1); res.Outcome != deliver.Delivered {
			t.Fatalf("mail %d: %s %s", m.i, res.Outcome, res.Excerpt)
		}
	}
	known := func(m *mail) bool {
		got, err := db.Tickets().FindTicket(context.Background(), w.Name, "support", []string{m.msgID}, "")
		if err != nil {
			t.Fatal(err)
		}
		return got != ""
	}
	run(ms[0]) // recorded now; the first run also pruned (nothing)
	now = now.Add(31 * 24 * time.Hour)
	run(ms[1]) // prunes mail 0's entry (older than 30 days), records mail 1
	if known(ms[0]) || !known(ms[1]) {
		t.Fatalf("after 31 days: mail 0 known %t (want false), mail 1 known %t (want true)", known(ms[0]), known(ms[1]))
	}
	now = now.Add(31 * 24 * time.Hour).Add(-30 * time.Minute) // mail 1 is now 30.98 days old…
	run(ms[2])                                                // …and was pruned; the reply is threaded by find_parent
	if known(ms[1]) {
		t.Error("mail 1's entry outlived the retention")
	}
	var tickets []int
	for _, x := range rt.Transactions() {
		tickets = append(tickets, x.TicketID)
	}
	if len(rt.Tickets()) != 2 || len(tickets) != 3 || tickets[2] != 1 {
		t.Errorf("tickets %d, transactions on %v: want the reply on ticket 1", len(rt.Tickets()), tickets)
	}
}
