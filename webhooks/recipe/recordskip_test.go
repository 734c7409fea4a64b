package recipe_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

// TestReplyRecordedAfterCut: a reply whose ticket came from the ticket map
// (its parent's), cut right after the helpdesk stored it, is found by the
// re-run's lookup and skipped as already stored; the skip must still
// record the reply's Message-ID against the ticket, or mail answering the
// reply loses its thread in the map. (Found by TestKillNineRecipes in
// cmd/m365bridge: RT and Freshdesk, a kill after a reply's write.)
func TestReplyRecordedAfterCut(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		newDesk    func(t *testing.T) (url string, env mapEnv)
	}{
		{"rt", "rt5.yaml", func(t *testing.T) (string, mapEnv) {
			rt := newRT()
			t.Cleanup(rt.Close)
			return rt.URL, mapEnv{"RT_TOKEN": rtToken}
		}},
		{"freshdesk", "freshdesk.yaml", func(t *testing.T) (string, mapEnv) { return newFreshdesk(t).URL, freshdeskCfgEnv() }},
		{"zammad", "zammad.yaml", func(t *testing.T) (string, mapEnv) {
			z := helpdeskfake.NewZammad(zammadToken, "Support L1")
			t.Cleanup(z.Close)
			return z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, env := tc.newDesk(t)
			cfg := loadShipped(t, tc.file, url, env)
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cut := false
			w := cfg.Webhooks[0]
			ep := deliver.Endpoint{Name: w.Name, URL: w.URL, Headers: map[string]string{}}
			for k, v := range w.Headers {
				ep.Headers[k] = v.Value()
			}
			eps := []deliver.Endpoint{ep}
			if err := recipe.Attach(eps, cfg, recipe.Options{Tickets: db.Tickets(), AfterStep: func(step string) error {
				if step == "reply" && !cut {
					cut = true
					return errors.New("cut after reply (simulated crash)")
				}
				return nil
			}}); err != nil {
				t.Fatal(err)
			}
			ep = eps[0]
			ms := scenario(newLinkServer(t), 1, 1, 0, 0) // an original and its reply
			run := func(m *mail) deliver.Result {
				e := m.event(t, ms)
				return ep.Recipe.Run(ctx, ep, deliver.Row{EventID: e.EventID, Endpoint: ep.Name, Channel: e.Channel, Type: e.Type, Body: e.Body}, 1)
			}
			if res := run(ms[0]); res.Outcome != deliver.Delivered {
				t.Fatalf("original: %v %s", res.Outcome, res.Excerpt)
			}
			if res := run(ms[1]); res.Outcome != deliver.Transient {
				t.Fatalf("reply, cut: %v %s", res.Outcome, res.Excerpt)
			}
			if res := run(ms[1]); res.Outcome != deliver.Delivered {
				t.Fatalf("reply, re-run: %v %s", res.Outcome, res.Excerpt)
			}
			parent, err := db.Tickets().FindTicket(ctx, ep.Name, "support", []string{ms[0].msgID}, "")
			if err != nil || parent == "" {
				t.Fatalf("the original's ticket is not in the map: %q %v", parent, err)
			}
			got, err := db.Tickets().FindTicket(ctx, ep.Name, "support", []string{ms[1].msgID}, "")
			if err != nil {
				t.Fatal(err)
			}
			if got != parent {
				t.Errorf("the reply's Message-ID maps to ticket %q, want its parent's %q", got, parent)
			}
		})
	}
}
