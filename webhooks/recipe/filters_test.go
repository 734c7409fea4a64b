package recipe_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

// runOne runs the recipe of cfg's first webhook on one mail, as the
// dispatcher would, with the ticket map of db.
func runOne(t *testing.T, cfg *config.Config, db *store.DB, m *mail, ms []*mail) deliver.Result {
	t.Helper()
	w := cfg.Webhooks[0]
	r, err := recipe.New(w, recipe.Options{Tickets: db.Tickets()})
	if err != nil {
		t.Fatal(err)
	}
	ep := deliver.Endpoint{Name: w.Name, URL: w.URL, Headers: map[string]string{}, Recipe: r}
	for k, v := range w.Headers {
		ep.Headers[k] = v.Value()
	}
	e := m.event(t, ms)
	return r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Endpoint: w.Name, Channel: e.Channel, Type: e.Type, Body: e.Body}, 1)
}

func tempDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestZammadFilters: an auto-reply to a known ticket becomes an internal
// note that notifies nobody; one to no known ticket opens no ticket and is
// acknowledged with the reason; archived mail is created closed, quietly.
func TestZammadFilters(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	cfg := loadShipped(t, "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
	db := tempDB(t)
	ms := scenario(newLinkServer(t), 1, 0, 2, 1) // original, two auto-replies to it, one archived
	ms[2].parent = -1                            // the second auto-reply answers nothing known
	ms[2].conversation = "unrelated"

	for _, m := range []*mail{ms[0], ms[1], ms[2], ms[3]} {
		if res := runOne(t, cfg, db, m, ms); res.Outcome != deliver.Delivered {
			t.Fatalf("mail %d: %s %s", m.i, res.Outcome, res.Excerpt)
		} else if m.i == 2 && !strings.Contains(res.Excerpt, "not turned into a ticket") {
			t.Errorf("auto-reply without ticket: excerpt %q does not say why nothing was created", res.Excerpt)
		}
	}
	tickets, arts := z.Tickets(), z.Articles()
	if len(tickets) != 2 {
		t.Fatalf("got %d tickets, want 2 (the original and the archived mail)", len(tickets))
	}
	if tickets[1].State != "closed" {
		t.Errorf("archived mail: state %s, want closed", tickets[1].State)
	}
	if len(arts) != 3 || arts[1].Type != "note" || !arts[1].Internal || arts[1].TicketID != 1 {
		t.Errorf("auto-reply: articles %+v, want an internal note on ticket 1", arts)
	}
	if n := z.Notifications(); len(n) != 1 || n[0].To != ms[0].customer {
		t.Errorf("notifications %+v, want only the original's auto reply", n)
	}
}

// TestZammadBackfill: a reply to a mail imported before the bridge kept a
// ticket map is threaded by the lookup of its parent's Message-ID, and a
// mail carrying [Ticket#number] by the number; both are then remembered.
func TestZammadBackfill(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	cfg := loadShipped(t, "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
	ms := scenario(newLinkServer(t), 2, 1, 0, 0) // two originals, a reply to the first
	ms[2].parent = 0
	if res := runOne(t, cfg, tempDB(t), ms[0], ms); res.Outcome != deliver.Delivered { // another bridge's map
		t.Fatal(res.Excerpt)
	}
	if res := runOne(t, cfg, tempDB(t), ms[1], ms); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	db := tempDB(t) // an empty map
	if res := runOne(t, cfg, db, ms[2], ms); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	// A mail answering ticket 2 by its number only (a new Message-ID, no
	// In-Reply-To, another conversation).
	byNumber := &mail{i: 3, id: "msg_0003", msgID: "<bynumber@customer.example>", customer: ms[1].customer, parent: -1, conversation: "other"}
	ms = append(ms, byNumber)
	e := byNumber.event(t, ms)
	var env map[string]any
	json.Unmarshal(e.Body, &env)
	r, _ := recipe.New(cfg.Webhooks[0], recipe.Options{Tickets: db.Tickets()})
	body := strings.Replace(string(e.Body), `"subject":"Question 3"`, `"subject":"Re: [Ticket#`+z.Tickets()[1].Number+`] Question 1"`, 1)
	ep := deliver.Endpoint{Name: "zammad", URL: z.URL, Headers: map[string]string{"Authorization": "Token token=" + zammadToken}, Recipe: r}
	if res := r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Channel: "support", Type: e.Type, Body: []byte(body)}, 1); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	arts := z.Articles()
	if len(z.Tickets()) != 2 || len(arts) != 4 || arts[2].TicketID != 1 || arts[3].TicketID != 2 {
		t.Fatalf("tickets %d, articles %+v: want the reply on ticket 1 and the numbered mail on ticket 2", len(z.Tickets()), arts)
	}
	for _, c := range []struct{ msgID, want string }{{ms[2].msgID, "1"}, {byNumber.msgID, "2"}} {
		if got, _ := db.Tickets().FindTicket(context.Background(), "zammad", "support", []string{c.msgID}, ""); got != c.want {
			t.Errorf("ticket map for %s: %q, want %q", c.msgID, got, c.want)
		}
	}
}

// TestNoStepApplies: an event no step takes is rejected with what to do,
// not acknowledged silently.
func TestNoStepApplies(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	cfg := loadShipped(t, "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
	// Keep only the lookup: nothing creates.
	cfg.Webhooks[0].Recipe.Steps = cfg.Webhooks[0].Recipe.Steps[:1]
	ms := scenario(newLinkServer(t), 1, 0, 0, 0)
	res := runOne(t, cfg, tempDB(t), ms[0], ms)
	if res.Outcome != deliver.Permanent || !strings.Contains(res.Excerpt, "no step of the recipe applies") {
		t.Errorf("got %s %q, want a permanent rejection saying no step applies", res.Outcome, res.Excerpt)
	}
}

// TestStepAnswersClassified: a step's 429 is a transient failure carrying
// the capped Retry-After and the step's name; a 401 (a wrong token) is
// permanent; the token never appears in what is recorded.
func TestStepAnswersClassified(t *testing.T) {
	z := helpdeskfake.NewZendesk(zendeskAgent, zendeskToken)
	defer z.Close()
	cfg := loadShipped(t, "zendesk.yaml", z.URL, mapEnv{"ZENDESK_AUTH": helpdeskfake.BasicAuth(zendeskAgent, zendeskToken)})
	ms := scenario(newLinkServer(t), 1, 0, 0, 0)
	db := tempDB(t)
	z.FailNext(1, 429, "30")
	res := runOne(t, cfg, db, ms[0], ms)
	if res.Outcome != deliver.Transient || res.RetryAfter != 30*time.Second || !strings.Contains(res.Excerpt, "step find_self") {
		t.Errorf("429: got %s, retry after %s, %q; want transient, 30s, naming the step", res.Outcome, res.RetryAfter, res.Excerpt)
	}
	bad := loadShipped(t, "zendesk.yaml", z.URL, mapEnv{"ZENDESK_AUTH": helpdeskfake.BasicAuth(zendeskAgent, "wrong-token")})
	res = runOne(t, bad, db, ms[0], ms)
	if res.Outcome != deliver.Permanent || res.Status != 401 {
		t.Errorf("wrong token: got %s %d %q, want permanent 401", res.Outcome, res.Status, res.Excerpt)
	}
	if strings.Contains(res.Excerpt, "wrong-token") || strings.Contains(res.Excerpt, zendeskToken) {
		t.Errorf("the excerpt carries a token: %q", res.Excerpt)
	}
	if len(z.Tickets()) != 0 {
		t.Errorf("%d tickets created by failed runs", len(z.Tickets()))
	}
}

// TestRecipeWhen: an event the recipe's own filter does not take is
// acknowledged without any request, the reason in its excerpt.
func TestRecipeWhen(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	cfg := loadShipped(t, "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
	cfg.Webhooks[0].Recipe.When = config.RecipeWhen{SenderDomain: []string{"partner.example"}}
	ms := scenario(newLinkServer(t), 1, 0, 0, 0)
	res := runOne(t, cfg, tempDB(t), ms[0], ms)
	if res.Outcome != deliver.Delivered || !strings.Contains(res.Excerpt, "recipe.when") {
		t.Errorf("got %s %q, want delivered with the reason", res.Outcome, res.Excerpt)
	}
	if len(z.Tickets()) != 0 {
		t.Error("a filtered event reached the helpdesk")
	}
}
