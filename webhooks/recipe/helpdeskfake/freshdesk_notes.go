// Freshdesk conversations: notes on a ticket.

package helpdeskfake

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// createNote: POST /api/v2/tickets/{id}/notes ("Create a Note"): body
// (HTML, mandatory), private (default true), incoming ("Set to true if a
// particular note should appear as being created from outside", default
// false), user_id (default: the API key's agent), attachments[]; 201 with
// the note. A public note by an agent mails the requester ("Agent Adds
// Comment to Ticket"); a private note, or one by the requester, mails
// nobody outside.
func (f *Freshdesk) createNote(w http.ResponseWriter, r *http.Request, id int) {
	t := f.ticket(id)
	if t == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	in, ok := f.input(w, r)
	if !ok {
		return
	}
	if in.str("body") == "" {
		fdInvalid(w, fdFieldError{"body", "It should not be blank as this is a mandatory field", "missing_field"})
		return
	}
	boolField := func(k string, def bool) (bool, bool) {
		if !in.has(k) {
			return def, true
		}
		b, err := strconv.ParseBool(in.str(k))
		if err != nil {
			fdInvalid(w, fdFieldError{k, "It should be a/an Boolean", "datatype_mismatch"})
			return false, false
		}
		return b, true
	}
	private, ok := boolField("private", true)
	if !ok {
		return
	}
	incoming, ok := boolField("incoming", false)
	if !ok {
		return
	}
	user := f.agentID
	if in.has("user_id") {
		user, _ = strconv.Atoi(in.str("user_id"))
		if user != f.agentID && f.contact(user) == nil {
			fdInvalid(w, fdFieldError{"user_id", "There is no contact or agent matching the given user_id", "invalid_value"})
			return
		}
	}
	n := &FreshdeskNote{ID: len(f.notes) + 1, TicketID: t.ID, Body: in.str("body"), Private: private, Incoming: incoming, UserID: user,
		Created: f.now().UTC().Format(time.RFC3339), Files: in.files}
	n.BodyText = strings.TrimSpace(fdTags.ReplaceAllString(n.Body, " "))
	f.notes = append(f.notes, n)
	if !private && user == f.agentID {
		f.notifications = append(f.notifications, Notification{TicketID: t.ID, To: f.contact(t.RequesterID).Email, Trigger: "Agent Adds Comment to Ticket"})
	}
	out := map[string]any{"id": n.ID, "ticket_id": n.TicketID, "body": n.Body, "body_text": n.BodyText, "private": n.Private,
		"incoming": n.Incoming, "user_id": n.UserID, "created_at": n.Created, "attachments": f.attachmentsOut(n.Files)}
	writeJSON(w, http.StatusCreated, out)
}

// conversations: GET /api/v2/tickets/{id}/conversations ("List All
// Conversations of a Ticket"), oldest first, per_page at most 100.
func (f *Freshdesk) conversations(w http.ResponseWriter, r *http.Request, id int) {
	if f.ticket(id) == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	per := 30
	if s := r.URL.Query().Get("per_page"); s != "" {
		per, _ = strconv.Atoi(s)
		if per < 1 || per > 100 {
			fdInvalid(w, fdFieldError{"per_page", "It should be a Positive Number less than or equal to 100", "invalid_value"})
			return
		}
	}
	out := []*FreshdeskNote{}
	for _, n := range f.notes {
		if n.TicketID == id && len(out) < per {
			out = append(out, n)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
