package recipe_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

const (
	freshdeskKey         = "fd-api-key-0123456789"
	freshdeskPlaceholder = "archive-placeholder@example.com"
)

// newFreshdesk starts a fake Freshdesk set up as freshdesk.yaml asks: the
// custom field and the placeholder contact.
func newFreshdesk(t *testing.T) *helpdeskfake.Freshdesk {
	f := helpdeskfake.NewFreshdesk(freshdeskKey, "cf_m365_message_id")
	t.Cleanup(f.Close)
	req, _ := newRequest(f.URL+"/api/v2/contacts", `{"name":"Archive","email":"`+freshdeskPlaceholder+`"}`)
	resp, err := f.Client().Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("placeholder contact: %v %v", err, resp)
	}
	resp.Body.Close()
	return f
}

func freshdeskCfgEnv() mapEnv {
	return mapEnv{"FRESHDESK_AUTH": helpdeskfake.FreshdeskAuth(freshdeskKey)}
}

// TestFreshdeskRecipe delivers 200 mails through the shipped Freshdesk
// recipe (150 originals, 15 customer replies, 5 auto-replies to known
// tickets, 30 archived), with runs cut after every kind of write and three
// 429 answers with Retry-After on the way: exactly 180 tickets, every reply
// once on its parent's ticket (a public incoming note by the customer;
// auto-replies private), archived mail closed and handed to its customer,
// no mail to archived or auto-submitted senders, attachments
// byte-identical.
func TestFreshdeskRecipe(t *testing.T) {
	f := newFreshdesk(t)
	ls := newLinkServer(t)
	cfg := loadShipped(t, "freshdesk.yaml", f.URL, freshdeskCfgEnv())
	ms := scenario(ls, 150, 15, 5, 30)
	cuts := map[string]int{"create": 10, "create_archived": 3, "hand_to_customer": 2, "reply": 3, "note_auto": 1}
	f.FailNext(3, 429, "1")
	rows := deliverAll(t, cfg, ms, recipe.Options{AfterStep: cutAfter(cuts)})
	checkAllDelivered(t, rows, len(ms))
	for step, left := range cuts {
		if left != 0 {
			t.Errorf("%d cuts after %s were not reached", left, step)
		}
	}

	tickets := f.Tickets()
	if got, want := len(tickets), 150+30; got != want {
		t.Errorf("got %d tickets, want %d", got, want)
	}
	byMsg := map[string][]helpdeskfake.FreshdeskTicket{}
	for _, tk := range tickets {
		id, _ := tk.CustomFields["cf_m365_message_id"].(string)
		byMsg[id] = append(byMsg[id], tk)
	}
	notes := f.Notes()
	ticketOf := map[int]int{}
	for _, m := range ms {
		if m.parent >= 0 {
			var got []helpdeskfake.FreshdeskNote
			for _, n := range notes {
				if strings.Contains(n.BodyText, markerOf(m.msgID)) {
					got = append(got, n)
				}
			}
			switch {
			case len(got) != 1:
				t.Errorf("reply %d: %d notes, want 1", m.i, len(got))
			case got[0].TicketID != ticketOf[m.parent]:
				t.Errorf("reply %d is on ticket %d, its parent %d on %d", m.i, got[0].TicketID, m.parent, ticketOf[m.parent])
			case got[0].Private != m.auto || !got[0].Incoming:
				t.Errorf("reply %d (auto-submitted %t): private %t incoming %t", m.i, m.auto, got[0].Private, got[0].Incoming)
			case !m.auto && f.ContactEmail(got[0].UserID) != m.customer:
				t.Errorf("reply %d: note by user %d, want the customer's contact", m.i, got[0].UserID)
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
		if f.ContactEmail(tk.RequesterID) != m.customer {
			t.Errorf("mail %d: requester %s, want %s", m.i, f.ContactEmail(tk.RequesterID), m.customer)
		}
		switch {
		case m.archive && tk.Status != helpdeskfake.FreshdeskClosed:
			t.Errorf("archived mail %d: status %d, want closed", m.i, tk.Status)
		case !m.archive && tk.Status != helpdeskfake.FreshdeskOpen:
			t.Errorf("new mail %d: status %d, want open", m.i, tk.Status)
		case tk.Source != helpdeskfake.FreshdeskEmail:
			t.Errorf("mail %d: source %d, want email", m.i, tk.Source)
		}
		checkFiles(t, m, tk.Files, tk.Description)
	}
	notified := map[string]int{}
	for _, n := range f.Notifications() {
		notified[n.To]++
	}
	for _, m := range ms {
		switch {
		case m.archive || m.auto:
			if notified[m.customer] > 0 {
				t.Errorf("mail %d: %s (archived %t, auto-submitted %t) was mailed %d times", m.i, m.customer, m.archive, m.auto, notified[m.customer])
			}
		case m.parent < 0 && notified[m.customer] < 1:
			t.Errorf("new mail %d: %s got no receipt", m.i, m.customer)
		}
	}
	if notified[freshdeskPlaceholder] != 30 {
		t.Errorf("the placeholder got %d mails, want one per archived mail (30)", notified[freshdeskPlaceholder])
	}
}

// TestFreshdeskFiltersAndBackfill: an auto-reply to a known ticket becomes
// a private note, one to no known ticket opens nothing; a reply the map
// does not know is threaded by its parent's Message-ID, a mail carrying
// [#id] by the number.
func TestFreshdeskFiltersAndBackfill(t *testing.T) {
	f := newFreshdesk(t)
	cfg := loadShipped(t, "freshdesk.yaml", f.URL, freshdeskCfgEnv())
	ms := scenario(newLinkServer(t), 2, 1, 2, 1)
	ms[2].parent, ms[2].byConv = 0, false
	ms[4].parent, ms[4].conversation = -1, "unrelated"
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
	if res := runOne(t, cfg, tempDB(t), ms[2], ms); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	byNumber := &mail{i: 6, id: "msg_0006", msgID: "<bynumber@customer.example>", customer: ms[1].customer, parent: -1, conversation: "other"}
	ms = append(ms, byNumber)
	e := byNumber.event(t, ms)
	body := strings.Replace(string(e.Body), `"subject":"Question 6"`, `"subject":"Re: [#2] Question 1"`, 1)
	r, _ := recipe.New(cfg.Webhooks[0], recipe.Options{Tickets: tempDB(t).Tickets()})
	ep := deliver.Endpoint{Name: "freshdesk", URL: cfg.Webhooks[0].URL, Headers: map[string]string{"Authorization": helpdeskfake.FreshdeskAuth(freshdeskKey)}, Recipe: r}
	if res := r.Run(context.Background(), ep, deliver.Row{EventID: e.EventID, Channel: "support", Type: e.Type, Body: []byte(body)}, 1); res.Outcome != deliver.Delivered {
		t.Fatal(res.Excerpt)
	}
	if n := len(f.Tickets()); n != 3 {
		t.Fatalf("got %d tickets, want 3", n)
	}
	var got []string
	for _, n := range f.Notes() {
		got = append(got, fmt.Sprintf("%d:private=%t", n.TicketID, n.Private))
	}
	if want := "[2:private=true 1:private=false 2:private=false]"; fmt.Sprint(got) != want {
		t.Errorf("notes %v, want %s", got, want)
	}
	for _, n := range f.Notifications() {
		if n.To == ms[3].customer || n.To == ms[4].customer || n.To == ms[5].customer {
			t.Errorf("%s was mailed (%s)", n.To, n.Trigger)
		}
	}
}

// TestFormBodyErrors: a multipart/form-data body that does not render a
// JSON object of fields, or names an unknown kind of file, rejects the
// event with what to fix; nothing reaches the helpdesk.
func TestFormBodyErrors(t *testing.T) {
	f := newFreshdesk(t)
	ms := scenario(newLinkServer(t), 1, 0, 0, 0)
	for _, tc := range []struct{ body, want string }{
		{`not json`, "must render a JSON object of fields"},
		{`{"email": "a@b", "@attachments[]": "everything"}`, "a file field takes attachments, files or inline"},
		{`{"custom_fields": {"cf_x": "1"}}`, "write nested fields as name[key]"},
	} {
		cfg := loadShipped(t, "freshdesk.yaml", f.URL, freshdeskCfgEnv())
		for i, s := range cfg.Webhooks[0].Recipe.Steps {
			if s.Name == "create" {
				cfg.Webhooks[0].Recipe.Steps[i].Body = tc.body
			}
		}
		res := runOne(t, cfg, tempDB(t), ms[0], ms)
		if res.Outcome != deliver.Permanent || !strings.Contains(res.Excerpt, tc.want) || !strings.Contains(res.Excerpt, "step create") {
			t.Errorf("body %s: got %s %q, want a permanent rejection naming the step and saying %q", tc.body, res.Outcome, res.Excerpt, tc.want)
		}
	}
	if n := len(f.Tickets()); n != 0 {
		t.Errorf("%d tickets created from broken forms", n)
	}
}
