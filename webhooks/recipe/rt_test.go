package recipe_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

const rtToken = "1-14-rt-auth-token-0123456789"

// newRT starts a fake RT set up as rt5.yaml asks: the General queue and
// the two custom fields.
func newRT() *helpdeskfake.RT {
	return helpdeskfake.NewRT(rtToken, []string{"General"}, []string{"M365 Message-ID"}, []string{"M365 Reply Message-ID"})
}

// TestRTRecipe delivers 200 mails through the shipped RT5 recipe (150
// originals, 15 customer replies, 5 auto-replies to known tickets, 30
// archived), with runs cut after every kind of write and two 503 answers
// with Retry-After on the way: exactly 180 tickets, every reply once on
// its parent's ticket (correspondence; auto-replies as comments), archived
// mail resolved with its original date, no mail to archived or
// auto-submitted senders, attachments byte-identical.
func TestRTRecipe(t *testing.T) {
	rt := newRT()
	defer rt.Close()
	ls := newLinkServer(t)
	cfg := loadShipped(t, "rt5.yaml", rt.URL, mapEnv{"RT_TOKEN": rtToken})
	ms := scenario(ls, 150, 15, 5, 30)
	cuts := map[string]int{"create": 10, "create_archived": 3, "requestor": 2, "reply": 3, "note_auto": 1}
	rt.FailNext(2, 503, "1")
	rows := deliverAll(t, cfg, ms, recipe.Options{AfterStep: cutAfter(cuts)})
	checkAllDelivered(t, rows, len(ms))
	for step, left := range cuts {
		if left != 0 {
			t.Errorf("%d cuts after %s were not reached", left, step)
		}
	}

	tickets := rt.Tickets()
	if got, want := len(tickets), 150+30; got != want {
		t.Errorf("got %d tickets, want %d", got, want)
	}
	byMsg := map[string][]helpdeskfake.RTTicket{}
	for _, tk := range tickets {
		for _, id := range tk.CFs["M365 Message-ID"] {
			byMsg[id] = append(byMsg[id], tk)
		}
	}
	txns := rt.Transactions()
	replies := map[string][]helpdeskfake.RTTransaction{}
	creates := map[int]helpdeskfake.RTTransaction{}
	for _, x := range txns {
		if x.Type == "Create" {
			creates[x.TicketID] = x
		}
		for _, id := range x.CFs["M365 Reply Message-ID"] {
			replies[id] = append(replies[id], x)
		}
	}
	ticketOf := map[int]int{}
	for _, m := range ms {
		if m.parent >= 0 {
			got := replies[m.msgID]
			want := "Correspond"
			if m.auto {
				want = "Comment"
			}
			switch {
			case len(got) != 1:
				t.Errorf("reply %d: %d transactions, want 1", m.i, len(got))
			case got[0].TicketID != ticketOf[m.parent]:
				t.Errorf("reply %d is on ticket %d, its parent %d on %d", m.i, got[0].TicketID, m.parent, ticketOf[m.parent])
			case got[0].Type != want:
				t.Errorf("reply %d (auto-submitted %t): a %s, want a %s", m.i, m.auto, got[0].Type, want)
			}
			continue
		}
		got := byMsg[m.msgID]
		if len(got) != 1 {
			t.Errorf("mail %d: %d tickets carry its Message-ID, want 1", m.i, len(got))
			continue
		}
		tk := got[0]
		ticketOf[m.i] = tk.ID
		if len(tk.Requestors) != 1 || tk.Requestors[0] != m.customer {
			t.Errorf("mail %d: requestors %v, want %s", m.i, tk.Requestors, m.customer)
		}
		if m.archive {
			want := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(m.i) * time.Minute).Format("2006-01-02 15:04:05")
			if tk.Status != "resolved" || tk.Created != want || tk.Resolved != want {
				t.Errorf("archived mail %d: status %s, created %s, resolved %s; want resolved, both %s", m.i, tk.Status, tk.Created, tk.Resolved, want)
			}
		} else if tk.Status != "new" {
			t.Errorf("new mail %d: status %s", m.i, tk.Status)
		}
		c := creates[tk.ID]
		checkFiles(t, m, c.Files, c.Content)
	}
	notified := map[string]int{}
	for _, n := range rt.Notifications() {
		notified[n.To]++
	}
	for _, m := range ms {
		switch {
		case m.archive || m.auto:
			if notified[m.customer] > 0 {
				t.Errorf("mail %d: %s (archived %t, auto-submitted %t) was mailed %d times", m.i, m.customer, m.archive, m.auto, notified[m.customer])
			}
		case m.parent < 0 && notified[m.customer] < 1:
			t.Errorf("new mail %d: %s got no autoreply", m.i, m.customer)
		}
	}
}

// TestRTRecipeWithoutCustomFields: when the operator skipped creating the
// transaction custom field, RT ignores that search condition and returns
// every transaction of the ticket; the recipe must not take that for "the
// reply is stored" (which would drop the reply). The reply is posted.
func TestRTRecipeWithoutCustomFields(t *testing.T) {
	rt := helpdeskfake.NewRT(rtToken, []string{"General"}, []string{"M365 Message-ID"}, nil)
	defer rt.Close()
	cfg := loadShipped(t, "rt5.yaml", rt.URL, mapEnv{"RT_TOKEN": rtToken})
	db := tempDB(t)
	ms := scenario(newLinkServer(t), 1, 1, 0, 0)
	for _, m := range ms {
		if res := runOne(t, cfg, db, m, ms); res.Outcome != deliver.Delivered {
			t.Fatalf("mail %d: %s %s", m.i, res.Outcome, res.Excerpt)
		}
	}
	var types []string
	for _, x := range rt.Transactions() {
		types = append(types, x.Type)
	}
	if fmt.Sprint(types) != "[Create Correspond]" {
		t.Errorf("transactions %v, want the create and the reply", types)
	}
}

// TestRTFiltersAndBackfill: an auto-reply to a known ticket becomes a
// comment that mails nobody, one to no known ticket opens nothing, an
// archived mail is created resolved without autoreply; a reply to a mail
// the bridge's map does not know is threaded by its parent's Message-ID,
// and a mail carrying RT's subject tag by the ticket number.
func TestRTFiltersAndBackfill(t *testing.T) {
	rt := newRT()
	defer rt.Close()
	cfg := loadShipped(t, "rt5.yaml", rt.URL, mapEnv{"RT_TOKEN": rtToken})
	ms := scenario(newLinkServer(t), 2, 1, 2, 1) // originals 0 and 1, reply 2 to 0, auto-replies 3 and 4, archived 5
	ms[2].parent, ms[2].byConv = 0, false
	ms[4].parent, ms[4].conversation = -1, "unrelated" // answers nothing known
	db := tempDB(t)
	for _, m := range []*mail{ms[0], ms[1], ms[3], ms[4], ms[5]} {
		res := runOne(t, cfg, db, m, ms)
		if res.Outcome != deliver.Delivered {
			t.Fatalf("mail %d: %s %s", m.i, res.Outcome, res.Excerpt)
		}
		if m.i == 4 && !strings.Contains(res.Excerpt, "not turned into a ticket") {
			t.Errorf("auto-reply without ticket: excerpt %q does not say why nothing was created", res.Excerpt)
		}
	}
	// The reply, with an empty map (as if its original came before the map).
	if res := runOne(t, cfg, tempDB(t), ms[2], ms); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	// A new Message-ID, no In-Reply-To, another conversation, but RT's
	// subject tag of ticket 2.
	byNumber := &mail{i: 6, id: "msg_0006", msgID: "<bynumber@customer.example>", customer: ms[1].customer, parent: -1, conversation: "other"}
	ms = append(ms, byNumber)
	e := byNumber.event(t, ms)
	body := strings.Replace(string(e.Body), `"subject":"Question 6"`, `"subject":"Re: [rt.example.com #2] Question 1"`, 1)
	r, _ := recipe.New(cfg.Webhooks[0], recipe.Options{Tickets: tempDB(t).Tickets()})
	ep := deliver.Endpoint{Name: "rt", URL: cfg.Webhooks[0].URL, Headers: map[string]string{"Authorization": "token " + rtToken}, Recipe: r}
	if res := r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Channel: "support", Type: e.Type, Body: []byte(body)}, 1); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}

	tickets := rt.Tickets()
	if len(tickets) != 3 {
		t.Fatalf("got %d tickets, want 3 (two originals, the archived mail)", len(tickets))
	}
	if tk := tickets[2]; tk.Status != "resolved" {
		t.Errorf("archived mail: status %s, want resolved", tk.Status)
	}
	var got []string
	for _, x := range rt.Transactions() {
		got = append(got, fmt.Sprintf("%d:%s", x.TicketID, x.Type))
	}
	if want := "[1:Create 2:Create 2:Comment 3:Create 3:AddWatcher 1:Correspond 2:Correspond]"; fmt.Sprint(got) != want {
		t.Errorf("transactions %v, want %s", got, want)
	}
	for _, n := range rt.Notifications() {
		if n.To == ms[3].customer || n.To == ms[4].customer || n.To == ms[5].customer {
			t.Errorf("%s was mailed (%s)", n.To, n.Trigger)
		}
	}
}
