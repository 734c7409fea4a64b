// RT transactions: comments and correspondence on a ticket.

package helpdeskfake

import (
	"encoding/json"
	"net/http"
	"strings"
)

// message is POST /ticket/:id/correspond or /comment (Resource/
// Message.pm): JSON with Content and ContentType (required together),
// Subject, Attachments, TxnCustomFields; 201 with a JSON list of messages
// and Location /transaction/:id.
func (rt *RT) message(w http.ResponseWriter, r *http.Request, id int, kind string) {
	t := rt.ticket(id)
	if t == nil {
		rtErr(w, http.StatusNotFound, "Not Found")
		return
	}
	if !jsonBody(r) {
		rtErr(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	var in struct {
		Subject         string                     `json:"Subject"`
		Content         string                     `json:"Content"`
		ContentType     string                     `json:"ContentType"`
		Attachments     []rtAttachment             `json:"Attachments"`
		TxnCustomFields map[string]json.RawMessage `json:"TxnCustomFields"`
		Status          string                     `json:"Status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		rtErr(w, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	fs, msg := files(in.Attachments)
	switch {
	case msg != "":
		rtErr(w, http.StatusBadRequest, strings.Replace(msg, "Field ", "", 1))
		return
	case in.Content != "" && in.ContentType == "":
		rtErr(w, http.StatusBadRequest, "ContentType is a required field for application/json")
		return
	case in.Content == "" && len(fs) == 0:
		rtErr(w, http.StatusBadRequest, "No message attached")
		return
	}
	typ := map[string]string{"correspond": "Correspond", "comment": "Comment"}[kind]
	x := &RTTransaction{ID: len(rt.txns) + 1, TicketID: t.ID, Type: typ, Subject: in.Subject, ContentType: in.ContentType,
		Content: in.Content, Files: fs, CFs: cfValues(in.TxnCustomFields, rt.TxnCFs)}
	rt.txns = append(rt.txns, x)
	msgs := []string{map[string]string{"Correspond": "Correspondence added", "Comment": "Comments added"}[typ]}
	if typ == "Correspond" {
		// Default scrips "On Correspond Open Inactive Tickets" and "On
		// Correspond Notify Requestors and Ccs": the actor (here the
		// API's user, never the customer) is left out unless NotifyActor;
		// the requestors are mailed. "On Comment Notify AdminCcs as
		// Comment" mails no requestor.
		if contains([]string{"resolved", "rejected"}, t.Status) {
			t.Status = "open"
		}
		for _, to := range t.Requestors {
			if !contains(t.Squelch, to) {
				rt.notifications = append(rt.notifications, Notification{TicketID: t.ID, To: to, Trigger: "On Correspond Notify Requestors and Ccs"})
			}
		}
	}
	if in.Status != "" {
		t.Status = strings.ToLower(in.Status)
	}
	w.Header().Set("Location", rt.url("transaction", x.ID))
	writeJSON(w, http.StatusCreated, msgs)
}
