package recipe_test

import (
	"context"
	"errors"
	"testing"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

// TestCrashBetweenSteps cuts a run right after the helpdesk answered the
// create step 2xx, before the bridge recorded anything (no ticket map
// entry, the outbox row still pending), then runs the event again: the
// lookup finds the ticket, no second one is created, and the map learns
// the ticket. For every shipped recipe.
func TestCrashBetweenSteps(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	zd := helpdeskfake.NewZendesk(zendeskAgent, zendeskToken)
	defer zd.Close()
	rt := newRT()
	defer rt.Close()
	fd := newFreshdesk(t)
	for _, h := range []struct {
		name, file, url string
		env             mapEnv
		tickets         func() int
	}{
		{"zammad", "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken}, func() int { return len(z.Tickets()) }},
		{"zendesk", "zendesk.yaml", zd.URL, mapEnv{"ZENDESK_AUTH": helpdeskfake.BasicAuth(zendeskAgent, zendeskToken)}, func() int { return len(zd.Tickets()) }},
		{"rt", "rt5.yaml", rt.URL, mapEnv{"RT_TOKEN": rtToken}, func() int { return len(rt.Tickets()) }},
		{"freshdesk", "freshdesk.yaml", fd.URL, freshdeskCfgEnv(), func() int { return len(fd.Tickets()) }},
	} {
		name := h.name
		t.Run(name, func(t *testing.T) {
			cfg := loadShipped(t, h.file, h.url, h.env)
			db := tempDB(t)
			ms := scenario(newLinkServer(t), 1, 0, 0, 0)
			ms[0].msgID = "<crash-" + name + "@customer.example>"
			before := h.tickets()
			crash := errors.New("killed after create")
			run := func(after func(string) error) deliver.Result {
				w := cfg.Webhooks[0]
				r, err := recipe.New(w, recipe.Options{Tickets: db.Tickets(), AfterStep: after})
				if err != nil {
					t.Fatal(err)
				}
				return runRecipe(t, r, w, ms[0], ms)
			}
			res := run(func(step string) error {
				if step == "create" {
					return crash
				}
				return nil
			})
			if res.Outcome != deliver.Transient {
				t.Fatalf("cut run: %s %q, want a transient failure (retried)", res.Outcome, res.Excerpt)
			}
			if got, _ := db.Tickets().FindTicket(context.Background(), w(cfg), "support", []string{ms[0].msgID}, ""); got != "" {
				t.Fatalf("the cut run recorded ticket %s", got)
			}
			if n := h.tickets() - before; n != 1 {
				t.Fatalf("after the cut run the helpdesk has %d new tickets, want 1", n)
			}
			if res := run(nil); res.Outcome != deliver.Delivered {
				t.Fatalf("re-run: %s %q", res.Outcome, res.Excerpt)
			}
			if n := h.tickets() - before; n != 1 {
				t.Errorf("after the re-run the helpdesk has %d new tickets, want 1", n)
			}
			if got, _ := db.Tickets().FindTicket(context.Background(), w(cfg), "support", []string{ms[0].msgID}, ""); got == "" {
				t.Error("the re-run did not record the ticket")
			}
		})
	}
}

func w(cfg *config.Config) string { return cfg.Webhooks[0].Name }

func runRecipe(t *testing.T, r *recipe.Recipe, wh config.Webhook, m *mail, ms []*mail) deliver.Result {
	t.Helper()
	ep := deliver.Endpoint{Name: wh.Name, URL: wh.URL, Headers: map[string]string{}, Recipe: r}
	for k, v := range wh.Headers {
		ep.Headers[k] = v.Value()
	}
	e := m.event(t, ms)
	return r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Endpoint: wh.Name, Channel: e.Channel, Type: e.Type, Body: e.Body}, 1)
}
