// RT tickets: create and update.

package helpdeskfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// create is POST /ticket (Resource/Ticket.pm create_record, Record/
// Writable.pm create_resource, RT::Ticket::Create): 201 with a Location
// header and {"id", "type", "_url"}; 400 {"message"} for a missing or
// unknown queue, an invalid status, a bad attachment.
func (rt *RT) create(w http.ResponseWriter, r *http.Request) {
	if !jsonBody(r) {
		// content_types_accepted: application/json or multipart/form-data.
		rtErr(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	var in rtCreateInput
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		rtErr(w, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	status, code, msg := rt.checkCreate(&in)
	if msg != "" {
		rtErr(w, code, msg)
		return
	}
	fs, msg := files(in.Attachments)
	if msg != "" {
		rtErr(w, http.StatusBadRequest, msg)
		return
	}
	t := rt.storeTicket(&in, status, fs)
	w.Header().Set("Location", rt.url("ticket", t.ID))
	writeJSON(w, http.StatusCreated, map[string]string{"id": strconv.Itoa(t.ID), "type": "ticket", "_url": rt.url("ticket", t.ID)})
}

// rtCreateInput is the JSON body of POST /ticket.
type rtCreateInput struct {
	Queue              string                     `json:"Queue"`
	Subject            string                     `json:"Subject"`
	Requestor          json.RawMessage            `json:"Requestor"`
	Status             string                     `json:"Status"`
	Content            *string                    `json:"Content"`
	ContentType        string                     `json:"ContentType"`
	Created            string                     `json:"Created"`
	Resolved           string                     `json:"Resolved"`
	Attachments        []rtAttachment             `json:"Attachments"`
	CustomFields       map[string]json.RawMessage `json:"CustomFields"`
	SquelchMailTo      json.RawMessage            `json:"SquelchMailTo"`
	TransSquelchMailTo json.RawMessage            `json:"TransSquelchMailTo"`
}

// checkCreate checks a ticket to create as RT does before storing it and
// returns its status, or the HTTP status and message RT answers with.
func (rt *RT) checkCreate(in *rtCreateInput) (status string, code int, msg string) {
	switch {
	case in.Queue == "":
		return "", http.StatusBadRequest, "Could not create ticket. Queue not set"
	case !contains(rt.Queues, in.Queue):
		return "", http.StatusBadRequest, "Unable to find queue"
	}
	// RT::Ticket::Create: an empty status is the lifecycle's on_create
	// (new); it must be valid and a transition from ''.
	status = strings.ToLower(cmpOr(in.Status, "new"))
	if !contains(rtStatuses, status) {
		return "", http.StatusBadRequest, fmt.Sprintf("Status '%s' isn't a valid status for tickets in this queue.", status)
	}
	if !contains(rtCreateStatus, status) {
		return "", http.StatusBadRequest, fmt.Sprintf("New tickets can not have status '%s' in this queue.", status)
	}
	// Util.pm deserialize_record deletes every non-role field whose JSON
	// value is a list or object ("Received unknown value via JSON"), so
	// SquelchMailTo and TransSquelchMailTo arrive only as strings.
	// RT::Ticket::Create takes a string SquelchMailTo (a persistent
	// attribute of the ticket), but hands TransSquelchMailTo to
	// RT::Transaction::Create, which dereferences it as a list
	// (@{$args{'SquelchMailTo'} || []}) and dies under strict refs on a
	// string: a 500, the ticket rolled back (CleanupRequest).
	var transSquelch string
	if json.Unmarshal(in.TransSquelchMailTo, &transSquelch) == nil && transSquelch != "" {
		return "", http.StatusInternalServerError, "Internal Server Error"
	}
	// Created is passed through as an import parameter ("Parameters passed
	// in during an import", Ticket.pm) and kept by RT::Record::Create;
	// the database takes "YYYY-MM-DD HH:MM:SS" (RT::Date ISO, UTC).
	for _, d := range []string{in.Created, in.Resolved} {
		if d != "" && !rtSQLDate.MatchString(d) {
			return "", http.StatusBadRequest, "Ticket could not be created due to an internal error"
		}
	}
	return status, 0, ""
}

// storeTicket stores a checked ticket with its Create transaction (files
// fs) and the autoreply notifications RT's default scrips would mail.
func (rt *RT) storeTicket(in *rtCreateInput, status string, fs []Attachment) *RTTicket {
	var squelch string
	json.Unmarshal(in.SquelchMailTo, &squelch)
	now := rt.now().UTC().Format("2006-01-02 15:04:05")
	t := &RTTicket{ID: len(rt.tickets) + 1, Queue: in.Queue, Subject: strings.ReplaceAll(in.Subject, "\n", ""), Status: status,
		Requestors: stringList(in.Requestor), Created: cmpOr(in.Created, now), Resolved: in.Resolved,
		CFs: cfValues(in.CustomFields, rt.TicketCFs), Squelch: stringList(json.RawMessage(strconv.Quote(squelch)))}
	if t.Resolved == "" && contains([]string{"resolved", "rejected", "deleted"}, status) {
		t.Resolved = now // "If the status is an inactive status, set the resolved date"
	}
	rt.tickets = append(rt.tickets, t)
	x := &RTTransaction{ID: len(rt.txns) + 1, TicketID: t.ID, Type: "Create", Subject: t.Subject, ContentType: cmpOr(in.ContentType, "text/plain"), Files: fs}
	if in.Content != nil {
		x.Content = *in.Content
	}
	rt.txns = append(rt.txns, x)
	// Default scrip "On Create Autoreply To Requestors" (etc/initialdata):
	// condition On Create, whatever the interface or status; the ticket's
	// SquelchMailTo attribute removes recipients (RT::Action::SendEmail).
	// A ticket created without requestors mails nobody.
	for _, to := range t.Requestors {
		if !contains(t.Squelch, to) {
			rt.notifications = append(rt.notifications, Notification{TicketID: t.ID, To: to, Trigger: "On Create Autoreply To Requestors"})
		}
	}
	return t
}

// update is PUT /ticket/:id (Record/Writable.pm update_record): role
// members given (Requestor: a string or a list) replace the role's
// members through update_role_members, recorded as AddWatcher
// transactions, which no default scrip mails; 200 with a list of
// messages.
func (rt *RT) update(w http.ResponseWriter, r *http.Request, t *RTTicket) {
	if !jsonBody(r) {
		rtErr(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	var in struct {
		Requestor json.RawMessage `json:"Requestor"`
		Status    string          `json:"Status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		rtErr(w, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	msgs := []string{}
	if in.Requestor != nil {
		want := stringList(in.Requestor)
		for _, a := range want {
			if !contains(t.Requestors, a) {
				rt.txns = append(rt.txns, &RTTransaction{ID: len(rt.txns) + 1, TicketID: t.ID, Type: "AddWatcher"})
				msgs = append(msgs, "Added "+a+" as Requestor for this ticket")
			}
		}
		t.Requestors = want
	}
	if in.Status != "" {
		t.Status = strings.ToLower(in.Status)
	}
	writeJSON(w, http.StatusOK, msgs)
}
