// Freshdesk tickets: list, create and update.

package helpdeskfake

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ticket returns ticket id, nil if none. Caller holds f.mu.
func (f *Freshdesk) ticket(id int) *FreshdeskTicket {
	if id < 1 || id > len(f.tickets) {
		return nil
	}
	return f.tickets[id-1]
}

// listTickets: GET /api/v2/tickets ("List All Tickets"): filters
// requester_id or email, updated_since; "By default, only tickets that
// have been created within the past 30 days will be returned"; order_by
// created_at|due_by|updated_at|status, order_type asc|desc (default
// desc); per_page at most 100. The list has no description.
func (f *Freshdesk) listTickets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	per := 30
	if s := q.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			fdInvalid(w, fdFieldError{"per_page", "It should be a Positive Number less than or equal to 100", "invalid_value"})
			return
		}
		per = n
	}
	since := f.now().Add(-30 * 24 * time.Hour)
	if s := q.Get("updated_since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			fdInvalid(w, fdFieldError{"updated_since", "It should be in the 'valid date-time' format", "invalid_value"})
			return
		}
		since = t
	}
	if ob := q.Get("order_by"); ob != "" && ob != "created_at" {
		fdInvalid(w, fdFieldError{"order_by", "fake Freshdesk: only created_at is modelled", "invalid_value"})
		return
	}
	rid := 0
	if s := q.Get("requester_id"); s != "" {
		rid, _ = strconv.Atoi(s)
		if f.contact(rid) == nil {
			fdInvalid(w, fdFieldError{"requester_id", "There is no contact matching the given requester_id", "invalid_value"})
			return
		}
	}
	var list []FreshdeskTicket
	for _, t := range f.tickets {
		created, _ := time.Parse(time.RFC3339, t.CreatedAt)
		if (rid == 0 || t.RequesterID == rid) && !created.Before(since) {
			c := *t
			c.Description = ""
			list = append(list, c)
		}
	}
	if q.Get("order_type") != "asc" { // tickets are stored in creation order
		for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
			list[i], list[j] = list[j], list[i]
		}
	}
	list = list[:min(len(list), per)]
	if list == nil {
		list = []FreshdeskTicket{}
	}
	writeJSON(w, http.StatusOK, list)
}

// createTicket: POST /api/v2/tickets ("Create a Ticket"): one of
// requester_id or email is mandatory ("If no contact exists with this
// email address in Freshdesk, it will be added as a new contact"),
// description and subject too; status (default 2), priority (default 1),
// source (default 2); 201 with the ticket.
//
// The API has no parameter to suppress notifications: the requester
// notification "New Ticket Created" (Admin > Email Notifications,
// on by default) is mailed to the requester whatever the status — the fake
// takes the conservative reading. Recipes create archived mail with a
// placeholder requester and move the customer in afterwards (an update of
// requester_id is not among the requester notifications).
func (f *Freshdesk) createTicket(w http.ResponseWriter, r *http.Request) {
	in, ok := f.input(w, r)
	if !ok {
		return
	}
	var req *fdContact
	switch {
	case in.has("requester_id"):
		id, _ := strconv.Atoi(in.str("requester_id"))
		if req = f.contact(id); req == nil {
			fdInvalid(w, fdFieldError{"requester_id", "There is no contact matching the given requester_id", "invalid_value"})
			return
		}
	case strings.Contains(in.str("email"), "@"):
		req = f.contactByEmail(in.str("email"), true)
	default:
		fdInvalid(w, fdFieldError{"requester_id", "Please fill at least 1 of requester_id, phone, email, twitter_id, facebook_id, unique_external_id fields", "missing_field"})
		return
	}
	if in.str("description") == "" {
		fdInvalid(w, fdFieldError{"description", "It should not be blank as this is a mandatory field", "missing_field"})
		return
	}
	if in.str("subject") == "" {
		fdInvalid(w, fdFieldError{"subject", "It should not be blank as this is a mandatory field", "missing_field"})
		return
	}
	status, ok := f.intField(w, in, "status", FreshdeskOpen, fdStatuses)
	if !ok {
		return
	}
	priority, ok := f.intField(w, in, "priority", 1, []int{1, 2, 3, 4})
	if !ok {
		return
	}
	source, ok := f.intField(w, in, "source", 2, fdSources)
	if !ok {
		return
	}
	now := f.now().UTC().Format(time.RFC3339)
	t := &FreshdeskTicket{ID: len(f.tickets) + 1, Subject: in.str("subject"), Description: in.str("description"), Status: status, Priority: priority,
		Source: source, RequesterID: req.ID, CustomFields: map[string]any{}, Tags: in.list("tags"), CreatedAt: now, UpdatedAt: now, Files: in.files}
	for _, k := range f.CustomFields {
		t.CustomFields[k] = nil
	}
	for k, v := range in.custom {
		t.CustomFields[k] = fmt.Sprint(v)
	}
	if t.Tags == nil {
		t.Tags = []string{}
	}
	t.Attachments = f.attachmentsOut(in.files)
	f.tickets = append(f.tickets, t)
	f.notifications = append(f.notifications, Notification{TicketID: t.ID, To: req.Email, Trigger: "New Ticket Created"})
	writeJSON(w, http.StatusCreated, t)
}

// updateTicket: PUT /api/v2/tickets/{id} ("Update a Ticket"): requester
// by requester_id or email (created when new), status; a change to
// Resolved or Closed mails "Agent Solves/Closes the Ticket" to the
// requester.
func (f *Freshdesk) updateTicket(w http.ResponseWriter, r *http.Request, t *FreshdeskTicket) {
	in, ok := f.input(w, r)
	if !ok {
		return
	}
	switch {
	case in.has("requester_id"):
		id, _ := strconv.Atoi(in.str("requester_id"))
		if f.contact(id) == nil {
			fdInvalid(w, fdFieldError{"requester_id", "There is no contact matching the given requester_id", "invalid_value"})
			return
		}
		t.RequesterID = id
	case in.has("email"):
		t.RequesterID = f.contactByEmail(in.str("email"), true).ID
	}
	status, ok := f.intField(w, in, "status", t.Status, fdStatuses)
	if !ok {
		return
	}
	if status != t.Status && (status == FreshdeskResolved || status == FreshdeskClosed) {
		trigger := map[int]string{FreshdeskResolved: "Agent Solves the Ticket", FreshdeskClosed: "Agent Closes the Ticket"}[status]
		f.notifications = append(f.notifications, Notification{TicketID: t.ID, To: f.contact(t.RequesterID).Email, Trigger: trigger})
	}
	t.Status = status
	for k, v := range in.custom {
		t.CustomFields[k] = fmt.Sprint(v)
	}
	t.UpdatedAt = f.now().UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusOK, t)
}
