package helpdeskfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

func w3c(sqlDate string) string {
	if sqlDate == "" {
		return "1970-01-01T00:00:00Z" // RT's "not set"
	}
	return strings.Replace(sqlDate, " ", "T", 1) + "Z"
}

// rtAttachment is one entry of Attachments (REST2.pm, "Add Attachments").
type rtAttachment struct {
	FileName, FileType, FileContent string
}

// files decodes Attachments; Ticket.pm and Message.pm answer 400 when a
// field is missing. MIMEObj->attach gets Type, Filename and Data only: no
// Content-ID survives.
func files(list []rtAttachment) ([]Attachment, string) {
	var out []Attachment
	for _, a := range list {
		switch {
		case a.FileName == "":
			return nil, "Field FileName is required for each attachment in Attachments"
		case a.FileType == "":
			return nil, "Field FileType is required for each attachment in Attachments"
		case a.FileContent == "":
			return nil, "Field FileContent is required for each attachment in Attachments"
		}
		b, err := base64.StdEncoding.DecodeString(a.FileContent)
		if err != nil {
			return nil, "FileContent of " + a.FileName + " is not MIME Base64"
		}
		out = append(out, Attachment{Filename: a.FileName, ContentType: a.FileType, Data: b})
	}
	return out, ""
}

// stringList takes a JSON string or list of strings (RT takes either for
// roles and squelch lists).
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		var out []string
		for _, s := range strings.Split(one, ",") {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var many []string
	json.Unmarshal(raw, &many)
	for i := range many {
		many[i] = strings.ToLower(strings.TrimSpace(many[i]))
	}
	return many
}

// cfValues keeps the values of known custom fields (a string or a list
// each, REST2.pm "Object Custom Field Values").
func cfValues(in map[string]json.RawMessage, known []string) map[string][]string {
	out := map[string][]string{}
	for name, raw := range in {
		if !contains(known, name) {
			continue // RT logs "Custom field … not found" and goes on
		}
		var one string
		if json.Unmarshal(raw, &one) == nil {
			out[name] = []string{one}
			continue
		}
		var many []string
		if json.Unmarshal(raw, &many) == nil {
			out[name] = many
		}
	}
	return out
}

func jsonBody(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

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
	var in struct {
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
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		rtErr(w, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	switch {
	case in.Queue == "":
		rtErr(w, http.StatusBadRequest, "Could not create ticket. Queue not set")
		return
	case !contains(rt.Queues, in.Queue):
		rtErr(w, http.StatusBadRequest, "Unable to find queue")
		return
	}
	// RT::Ticket::Create: an empty status is the lifecycle's on_create
	// (new); it must be valid and a transition from ''.
	status := strings.ToLower(cmpOr(in.Status, "new"))
	if !contains(rtStatuses, status) {
		rtErr(w, http.StatusBadRequest, fmt.Sprintf("Status '%s' isn't a valid status for tickets in this queue.", status))
		return
	}
	if !contains(rtCreateStatus, status) {
		rtErr(w, http.StatusBadRequest, fmt.Sprintf("New tickets can not have status '%s' in this queue.", status))
		return
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
		rtErr(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var squelch string
	json.Unmarshal(in.SquelchMailTo, &squelch)
	// Created is passed through as an import parameter ("Parameters passed
	// in during an import", Ticket.pm) and kept by RT::Record::Create;
	// the database takes "YYYY-MM-DD HH:MM:SS" (RT::Date ISO, UTC).
	for _, d := range []string{in.Created, in.Resolved} {
		if d != "" && !rtSQLDate.MatchString(d) {
			rtErr(w, http.StatusBadRequest, "Ticket could not be created due to an internal error")
			return
		}
	}
	fs, msg := files(in.Attachments)
	if msg != "" {
		rtErr(w, http.StatusBadRequest, msg)
		return
	}
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
	w.Header().Set("Location", rt.url("ticket", t.ID))
	writeJSON(w, http.StatusCreated, map[string]string{"id": strconv.Itoa(t.ID), "type": "ticket", "_url": rt.url("ticket", t.ID)})
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

// page is REST2's collection format (Collection.pm serialize).
func page(items []map[string]any, r *http.Request) map[string]any {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, 100)
	total := len(items)
	items = items[:min(total, per)]
	return map[string]any{"count": len(items), "total": total, "per_page": per, "page": 1, "pages": (total + per - 1) / per, "items": items}
}

// searchTickets is GET /tickets?query=<TicketSQL>. TicketSQL runs against
// the database: a ticket is found as soon as its create committed. A
// condition on a custom field that does not exist finds nothing. Queries
// the fake does not model answer 400, so a recipe cannot come to rely on
// them.
func (rt *RT) searchTickets(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("query"))
	var found []*RTTicket
	switch {
	case rtCFQuery.MatchString(q):
		m := rtCFQuery.FindStringSubmatch(q)
		want := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
		for _, t := range rt.tickets {
			if contains(t.CFs[m[1]], want) {
				found = append(found, t)
			}
		}
	case rtIDQuery.MatchString(q):
		id, _ := strconv.Atoi(rtIDQuery.FindStringSubmatch(q)[1])
		if t := rt.ticket(id); t != nil {
			found = append(found, t)
		}
	default:
		rtErr(w, http.StatusBadRequest, "fake RT: TicketSQL not modelled: "+q)
		return
	}
	fields := strings.Split(r.URL.Query().Get("fields"), ",")
	items := []map[string]any{}
	for _, t := range found {
		it := map[string]any{"type": "ticket", "id": strconv.Itoa(t.ID), "_url": rt.url("ticket", t.ID)}
		if contains(fields, "CustomFields") {
			it["CustomFields"] = rt.cfList(t.CFs)
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, page(items, r))
}

// searchTxns is GET /transactions?query=<JSON> (Collection/
// QueryByJSON.pm): conditions on readable columns (ObjectType, ObjectId,
// Type) and "CustomField.{Name}". A condition whose custom field cannot be
// loaded is skipped — the search then returns more, not less — exactly as
// limit_collection does; recipes must check what they find (fields=
// CustomFields expands each item's custom fields, Collection.pm).
func (rt *RT) searchTxns(w http.ResponseWriter, r *http.Request) {
	var conds []struct {
		Field    string `json:"field"`
		Operator string `json:"operator"`
		Value    any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.URL.Query().Get("query")), &conds); err != nil {
		rtErr(w, http.StatusBadRequest, "malformed JSON query: "+err.Error())
		return
	}
	cfName := regexp.MustCompile(`CustomField\.\{(.*)\}`)
	items := []map[string]any{}
	fields := strings.Split(r.URL.Query().Get("fields"), ",")
	for _, x := range rt.txns {
		ok := true
		for _, c := range conds {
			if c.Field == "" || c.Value == nil {
				continue
			}
			want := fmt.Sprint(c.Value)
			if c.Operator != "" && c.Operator != "=" {
				rtErr(w, http.StatusBadRequest, "fake RT: operator not modelled: "+c.Operator)
				return
			}
			switch m := cfName.FindStringSubmatch(c.Field); {
			case m != nil:
				if !contains(rt.TxnCFs, m[1]) {
					continue // "Could not load custom field": no limit
				}
				ok = ok && contains(x.CFs[m[1]], want)
			case c.Field == "ObjectId":
				ok = ok && strconv.Itoa(x.TicketID) == want
			case c.Field == "ObjectType":
				ok = ok && want == "RT::Ticket"
			case c.Field == "Type":
				ok = ok && x.Type == want
			default:
				rtErr(w, http.StatusBadRequest, "fake RT: field not modelled: "+c.Field)
				return
			}
		}
		if !ok {
			continue
		}
		it := map[string]any{"type": "transaction", "id": strconv.Itoa(x.ID), "_url": rt.url("transaction", x.ID)}
		if contains(fields, "CustomFields") {
			it["CustomFields"] = rt.cfList(x.CFs)
		}
		if contains(fields, "ObjectId") {
			it["ObjectId"] = strconv.Itoa(x.TicketID)
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, page(items, r))
}

func sortedNames(m map[string][]string) []string { return slices.Sorted(maps.Keys(m)) }
