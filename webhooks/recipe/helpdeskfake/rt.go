package helpdeskfake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// RT fakes Request Tracker 5's REST2 API (/REST/2.0) as documented in the
// POD of bestpractical/rt lib/RT/REST2.pm and implemented in
// lib/RT/REST2/Resource/{Ticket,Message,Record/Writable,Collection,
// Collection/QueryByJSON}.pm and lib/RT/Ticket.pm (Create): ticket create
// (JSON, base64 Attachments, CustomFields by name, the Create arguments
// Status, Created, Resolved, SquelchMailTo), show, update of the
// Requestor role, TicketSQL search,
// correspond and comment with TxnCustomFields, JSON search of
// transactions, "Authorization: token …", error bodies {"message": …},
// and the mails of RT's default scrips to requestors.
//
// RT itself has no rate limit (a proxy in front of it may answer 429 or
// 503 with Retry-After); FailNext models that proxy.
type RT struct {
	*httptest.Server
	failer

	Token  string
	Queues []string
	// TicketCFs and TxnCFs are the custom fields the operator created
	// (ticket and transaction lookup types); values for others are
	// dropped, as RT does ("RT appears to treat … non-existance of a CF as
	// a non-fatal error", Record/Writable.pm).
	TicketCFs, TxnCFs []string

	mu            sync.Mutex
	now           func() time.Time
	tickets       []*RTTicket
	txns          []*RTTransaction
	notifications []Notification
}

// RTTicket is a stored ticket.
type RTTicket struct {
	ID         int
	Queue      string
	Subject    string
	Status     string
	Requestors []string
	Created    string // "YYYY-MM-DD HH:MM:SS", UTC, as RT stores it
	Resolved   string
	CFs        map[string][]string
	Squelch    []string // the ticket's SquelchMailTo attribute
}

// RTTransaction is a stored transaction (Create, Correspond, Comment).
type RTTransaction struct {
	ID          int
	TicketID    int
	Type        string
	Subject     string
	ContentType string
	Content     string
	CFs         map[string][]string
	Files       []Attachment
}

// NewRT starts a fake RT accepting token, with the queues and custom fields
// given.
func NewRT(token string, queues, ticketCFs, txnCFs []string) *RT {
	r := &RT{Token: token, Queues: queues, TicketCFs: ticketCFs, TxnCFs: txnCFs, now: time.Now}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// Tickets returns a copy of the stored tickets.
func (rt *RT) Tickets() []RTTicket {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]RTTicket, len(rt.tickets))
	for i, t := range rt.tickets {
		out[i] = *t
	}
	return out
}

// Transactions returns a copy of the stored transactions.
func (rt *RT) Transactions() []RTTransaction {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]RTTransaction, len(rt.txns))
	for i, x := range rt.txns {
		out[i] = *x
	}
	return out
}

// Notifications returns the mails RT's default scrips would have sent to
// requestors.
func (rt *RT) Notifications() []Notification {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]Notification(nil), rt.notifications...)
}

// rtErr writes the body of RT::REST2::Middleware::ErrorAsJSON.
func rtErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

var (
	rtTicketPath = regexp.MustCompile(`^/REST/2\.0/ticket/(\d+)/?$`)
	rtMsgPath    = regexp.MustCompile(`^/REST/2\.0/ticket/(\d+)/(correspond|comment)$`)
	// The one TicketSQL form recipes use: 'CF.{Name}' = 'value' (quotes
	// escaped with a backslash), or id = N.
	rtCFQuery = regexp.MustCompile(`^'?CF\.\{([^}]+)\}'?\s*=\s*'((?:[^'\\]|\\.)*)'$`)
	rtIDQuery = regexp.MustCompile(`^id\s*=\s*'?(\d+)'?$`)
	rtSQLDate = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)
)

// The statuses of RT's "default" lifecycle (etc/RT_Config.pm) and those a
// new ticket may have (transitions ” => [new open resolved]).
var (
	rtStatuses     = []string{"new", "open", "stalled", "resolved", "rejected", "deleted"}
	rtCreateStatus = []string{"new", "open", "resolved"}
)

func (rt *RT) serve(w http.ResponseWriter, r *http.Request) {
	// REST2.pm, "Token Auth": "Authorization: token …"; otherwise
	// {"message":"Unauthorized"} with 401.
	if r.Header.Get("Authorization") != "token "+rt.Token {
		rtErr(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if rt.fail(w, map[string]string{"message": "Service Unavailable"}) {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (p == "/REST/2.0/ticket" || p == "/REST/2.0/ticket/"):
		rt.create(w, r)
	case r.Method == http.MethodGet && p == "/REST/2.0/tickets":
		rt.searchTickets(w, r)
	case r.Method == http.MethodGet && p == "/REST/2.0/transactions":
		rt.searchTxns(w, r)
	case (r.Method == http.MethodGet || r.Method == http.MethodPut) && rtTicketPath.MatchString(p):
		id, _ := strconv.Atoi(rtTicketPath.FindStringSubmatch(p)[1])
		t := rt.ticket(id)
		switch {
		case t == nil && r.Method == http.MethodPut:
			rtErr(w, http.StatusNotFound, "Resource does not exist; use POST to create")
		case t == nil:
			rtErr(w, http.StatusNotFound, "Not Found")
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, rt.show(t))
		default:
			rt.update(w, r, t)
		}
	case r.Method == http.MethodPost && rtMsgPath.MatchString(p):
		m := rtMsgPath.FindStringSubmatch(p)
		id, _ := strconv.Atoi(m[1])
		rt.message(w, r, id, m[2])
	default:
		rtErr(w, http.StatusNotFound, "Not Found")
	}
}

func (rt *RT) ticket(id int) *RTTicket {
	if id < 1 || id > len(rt.tickets) {
		return nil
	}
	return rt.tickets[id-1]
}

func (rt *RT) url(kind string, id int) string {
	return fmt.Sprintf("%s/REST/2.0/%s/%d", rt.URL, kind, id)
}

// show is GET /ticket/:id (Record/Readable.pm serialize_record): the
// columns, roles as user objects, CustomFields as [{id, name, values}].
func (rt *RT) show(t *RTTicket) map[string]any {
	var reqs []map[string]string
	for _, e := range t.Requestors {
		reqs = append(reqs, map[string]string{"type": "user", "id": e, "_url": rt.URL + "/REST/2.0/user/" + e})
	}
	return map[string]any{
		"id": t.ID, "Subject": t.Subject, "Status": t.Status, "Created": w3c(t.Created), "Resolved": w3c(t.Resolved),
		"Queue":     map[string]string{"type": "queue", "id": t.Queue, "_url": rt.URL + "/REST/2.0/queue/" + t.Queue},
		"Requestor": reqs, "CustomFields": rt.cfList(t.CFs),
		"_hyperlinks": []map[string]string{
			{"ref": "self", "type": "ticket", "id": strconv.Itoa(t.ID), "_url": rt.url("ticket", t.ID)},
			{"ref": "correspond", "_url": rt.url("ticket", t.ID) + "/correspond"},
			{"ref": "comment", "_url": rt.url("ticket", t.ID) + "/comment"},
		},
	}
}

func (rt *RT) cfList(cfs map[string][]string) []map[string]any {
	out := []map[string]any{}
	for _, name := range sortedNames(cfs) {
		out = append(out, map[string]any{"type": "customfield", "name": name, "values": cfs[name]})
	}
	return out
}
