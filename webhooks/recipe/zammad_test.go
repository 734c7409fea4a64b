package recipe_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

const zammadToken = "zammad-test-token-0123456789"

// cutAfter makes a recipe run end, as a crash would, right after a named
// step succeeded and before anything is recorded (the helpdesk has the
// ticket or article, the bridge does not know it): after every 7th
// success of a step, until the step's count of cuts is used up.
func cutAfter(steps map[string]int) func(string) error {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(step string) error {
		mu.Lock()
		defer mu.Unlock()
		seen[step]++
		if steps[step] > 0 && seen[step]%7 == 1 {
			steps[step]--
			return errors.New("cut after " + step + " (simulated crash)")
		}
		return nil
	}
}

// TestZammadRecipe delivers 200 mails through the shipped Zammad recipe:
// 150 originals, 15 customer replies (by In-Reply-To, or only by the Graph
// conversation), 5 out-of-office replies to known tickets and 30 archived
// mails, with runs cut after create, reply and note steps. Exactly 180 tickets; every reply on its parent's
// ticket; no notification to archived or auto-submitted senders;
// attachments (inline images, link-only files) byte-identical.
func TestZammadRecipe(t *testing.T) {
	z := helpdeskfake.NewZammad(zammadToken, "Support L1")
	defer z.Close()
	ls := newLinkServer(t)
	cfg := loadShipped(t, "zammad.yaml", z.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
	ms := scenario(ls, 150, 15, 5, 30)
	if len(ms) != 200 {
		t.Fatalf("scenario has %d mails", len(ms))
	}
	// Nothing recorded after these steps' first successes: the re-run must
	// find what they created.
	cuts := map[string]int{"create": 12, "reply": 3, "note": 1}
	rows := deliverAll(t, cfg, ms, recipe.Options{AfterStep: cutAfter(cuts)})
	checkAllDelivered(t, rows, len(ms))
	for step, left := range cuts {
		if left != 0 {
			t.Errorf("%d cuts after %s were not reached", left, step)
		}
	}

	tickets := z.Tickets()
	if got, want := len(tickets), 150+30; got != want {
		t.Errorf("got %d tickets, want %d", got, want)
	}
	articles := z.Articles()
	byMsg := map[string][]helpdeskfake.ZammadArticle{}
	for _, a := range articles {
		byMsg[a.MessageID] = append(byMsg[a.MessageID], a)
	}
	ticketOf := map[int]int{} // mail index → ticket id
	for _, m := range ms {
		arts := byMsg[m.msgID]
		if len(arts) != 1 {
			t.Errorf("mail %d (%s): %d articles, want 1", m.i, m.msgID, len(arts))
			continue
		}
		a := arts[0]
		ticketOf[m.i] = a.TicketID
		tk := tickets[a.TicketID-1]
		switch {
		case m.parent >= 0 && a.TicketID != ticketOf[m.parent]:
			t.Errorf("reply %d is on ticket %d, its parent %d on %d", m.i, a.TicketID, m.parent, ticketOf[m.parent])
		case m.auto && (a.Type != "note" || !a.Internal):
			t.Errorf("auto-reply %d: article type %s internal %t, want an internal note", m.i, a.Type, a.Internal)
		case m.archive && tk.State != "closed":
			t.Errorf("archived mail %d: ticket state %s, want closed", m.i, tk.State)
		case !m.archive && m.parent < 0 && tk.State != "new":
			t.Errorf("new mail %d: ticket state %s", m.i, tk.State)
		}
		checkFiles(t, m, a.Files, a.Body)
	}
	notified := map[string]int{}
	for _, n := range z.Notifications() {
		notified[n.To]++
	}
	for _, m := range ms {
		switch {
		case m.archive || m.auto:
			if notified[m.customer] > 0 {
				t.Errorf("mail %d: %s (archived %t, auto-submitted %t) was notified", m.i, m.customer, m.archive, m.auto)
			}
		case m.parent < 0 && notified[m.customer] != 1:
			t.Errorf("new mail %d: %s notified %d times, want the one auto reply", m.i, m.customer, notified[m.customer])
		}
	}
}

// checkFiles compares what the helpdesk stored with what the customer sent:
// every file byte-identical, inline images inline and referenced from the
// body.
func checkFiles(t *testing.T, m *mail, got []helpdeskfake.Attachment, body string) {
	t.Helper()
	if len(got) != len(m.files) {
		t.Errorf("mail %d: %d attachments stored, want %d", m.i, len(got), len(m.files))
		return
	}
	for _, f := range m.files {
		want := m.raw[f.Filename]
		found := false
		for _, g := range got {
			if bytes.Equal(g.Data, want) {
				found = true
				if f.Inline && g.ContentID != "" && !strings.Contains(body, "cid:"+g.ContentID) && !strings.Contains(body, g.ContentID) {
					t.Errorf("mail %d: inline image %s is not referenced from the body", m.i, g.ContentID)
				}
			}
		}
		if !found {
			t.Errorf("mail %d: attachment %s not stored byte-identical", m.i, f.Filename)
		}
	}
}
