package helpdeskfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Freshdesk fakes the Freshdesk API v2 as documented at
// developers.freshdesk.com/api/: tickets (create as JSON or multipart/
// form-data with attachments[], view, update, list with the requester_id
// filter and updated_since, order_by, order_type, per_page), notes
// (private, incoming, user_id), conversations, contacts (list by email,
// create), basic auth with the API key as user name and X as password,
// rate-limit headers (X-RateLimit-Total, -Remaining, -Used-CurrentRequest)
// and 429 with Retry-After, and error bodies {"description": "Validation
// failed", "errors": [{field, message, code}]}.
//
// The Search API (/api/v2/search/tickets) is not modelled: its index lags
// ("can take a few minutes", per the documentation), so no recipe may
// use it to find what a crashed run created. The ticket list is read from
// the database and is modelled.
type Freshdesk struct {
	*httptest.Server
	failer

	APIKey string
	// CustomFields are the ticket fields the admin created (cf_…); a
	// request naming another is refused, as Freshdesk does.
	CustomFields []string

	mu            sync.Mutex
	now           func() time.Time
	agentID       int
	contacts      []*fdContact
	tickets       []*FreshdeskTicket
	notes         []*FreshdeskNote
	notifications []Notification
	requests      int
}

type fdContact struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// FreshdeskTicket is a stored ticket.
type FreshdeskTicket struct {
	ID           int              `json:"id"`
	Subject      string           `json:"subject"`
	Description  string           `json:"description"`
	Status       int              `json:"status"`
	Priority     int              `json:"priority"`
	Source       int              `json:"source"`
	RequesterID  int              `json:"requester_id"`
	CustomFields map[string]any   `json:"custom_fields"`
	Tags         []string         `json:"tags"`
	CreatedAt    string           `json:"created_at"`
	UpdatedAt    string           `json:"updated_at"`
	Files        []Attachment     `json:"-"`
	Attachments  []map[string]any `json:"attachments"`
}

// FreshdeskNote is a stored note (a conversation).
type FreshdeskNote struct {
	ID       int          `json:"id"`
	TicketID int          `json:"ticket_id"`
	Body     string       `json:"body"`
	BodyText string       `json:"body_text"`
	Private  bool         `json:"private"`
	Incoming bool         `json:"incoming"`
	UserID   int          `json:"user_id"`
	Created  string       `json:"created_at"`
	Files    []Attachment `json:"-"`
}

// Freshdesk ticket statuses and sources ("Create a Ticket", "status" and
// "source" tables).
const (
	FreshdeskOpen     = 2
	FreshdeskPending  = 3
	FreshdeskResolved = 4
	FreshdeskClosed   = 5
	FreshdeskEmail    = 1
)

var (
	fdStatuses = []int{2, 3, 4, 5}
	fdSources  = []int{1, 2, 3, 7, 9, 10}
	fdTicket   = regexp.MustCompile(`^/api/v2/tickets/(\d+)$`)
	fdNotes    = regexp.MustCompile(`^/api/v2/tickets/(\d+)/notes$`)
	fdConvs    = regexp.MustCompile(`^/api/v2/tickets/(\d+)/conversations$`)
	fdTags     = regexp.MustCompile(`<[^>]*>`)
)

// fdMaxAttachments is the documented cap: "The total size of these
// attachments cannot exceed 20MB."
const fdMaxAttachments = 20 << 20

// NewFreshdesk starts a fake Freshdesk for apiKey with the custom ticket
// fields given (such as cf_m365_message_id).
func NewFreshdesk(apiKey string, customFields ...string) *Freshdesk {
	f := &Freshdesk{APIKey: apiKey, CustomFields: customFields, now: time.Now, agentID: 1}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// FreshdeskAuth is the Authorization header value for an API key.
func FreshdeskAuth(apiKey string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":X"))
}

// Tickets returns a copy of the stored tickets.
func (f *Freshdesk) Tickets() []FreshdeskTicket {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FreshdeskTicket, len(f.tickets))
	for i, t := range f.tickets {
		out[i] = *t
	}
	return out
}

// Notes returns a copy of the stored notes.
func (f *Freshdesk) Notes() []FreshdeskNote {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FreshdeskNote, len(f.notes))
	for i, n := range f.notes {
		out[i] = *n
	}
	return out
}

// Notifications returns the mails Freshdesk's requester notifications
// would have sent.
func (f *Freshdesk) Notifications() []Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Notification(nil), f.notifications...)
}

// ContactEmail returns the email of contact id, "" if none.
func (f *Freshdesk) ContactEmail(id int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.contact(id); c != nil {
		return c.Email
	}
	return ""
}

type fdFieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

// fdInvalid writes the documented validation error ("Error Codes": 400
// "Validation failed" with an errors list).
func fdInvalid(w http.ResponseWriter, errs ...fdFieldError) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"description": "Validation failed", "errors": errs})
}

func (f *Freshdesk) serve(w http.ResponseWriter, r *http.Request) {
	// "Authentication": basic auth with the API key as user name and any
	// password (X); 401 invalid_credentials otherwise.
	if u, _, ok := r.BasicAuth(); !ok || u != f.APIKey {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})
		return
	}
	// "Rate Limit": every answer carries X-RateLimit-Total, -Remaining and
	// -Used-CurrentRequest; past the limit, 429 with Retry-After (seconds).
	f.mu.Lock()
	f.requests++
	w.Header().Set("X-RateLimit-Total", "3000")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(0, 3000-f.requests)))
	w.Header().Set("X-RateLimit-Used-CurrentRequest", "1")
	f.mu.Unlock()
	if f.fail(w, map[string]string{"message": "You have exceeded the limit of requests per hour"}) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && p == "/api/v2/contacts":
		f.listContacts(w, r)
	case r.Method == http.MethodPost && p == "/api/v2/contacts":
		f.createContact(w, r)
	case r.Method == http.MethodGet && p == "/api/v2/tickets":
		f.listTickets(w, r)
	case r.Method == http.MethodPost && p == "/api/v2/tickets":
		f.createTicket(w, r)
	case fdTicket.MatchString(p):
		id, _ := strconv.Atoi(fdTicket.FindStringSubmatch(p)[1])
		t := f.ticket(id)
		switch {
		case t == nil:
			w.WriteHeader(http.StatusNotFound) // "404 Not Found: the resource does not exist", no body
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, t)
		case r.Method == http.MethodPut:
			f.updateTicket(w, r, t)
		default:
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method not allowed"})
		}
	case r.Method == http.MethodPost && fdNotes.MatchString(p):
		id, _ := strconv.Atoi(fdNotes.FindStringSubmatch(p)[1])
		f.createNote(w, r, id)
	case r.Method == http.MethodGet && fdConvs.MatchString(p):
		id, _ := strconv.Atoi(fdConvs.FindStringSubmatch(p)[1])
		f.conversations(w, r, id)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *Freshdesk) ticket(id int) *FreshdeskTicket {
	if id < 1 || id > len(f.tickets) {
		return nil
	}
	return f.tickets[id-1]
}

func (f *Freshdesk) contact(id int) *fdContact {
	for _, c := range f.contacts {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (f *Freshdesk) contactByEmail(email string, create bool) *fdContact {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, c := range f.contacts {
		if c.Email == email {
			return c
		}
	}
	if !create {
		return nil
	}
	c := &fdContact{ID: 1000 + len(f.contacts), Name: email, Email: email}
	f.contacts = append(f.contacts, c)
	return c
}

// listContacts: GET /api/v2/contacts?email=… ("List All Contacts",
// filter by email): a JSON list, empty when nobody has that address.
func (f *Freshdesk) listContacts(w http.ResponseWriter, r *http.Request) {
	out := []*fdContact{}
	if c := f.contactByEmail(r.URL.Query().Get("email"), false); c != nil {
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, out)
}

// createContact: POST /api/v2/contacts; 409 when the email is taken
// ("duplicate_value": "It should be a unique value").
func (f *Freshdesk) createContact(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name, Email string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.Contains(in.Email, "@") {
		fdInvalid(w, fdFieldError{"email", "It should be in the 'valid email address' format", "invalid_value"})
		return
	}
	if f.contactByEmail(in.Email, false) != nil {
		writeJSON(w, http.StatusConflict, map[string]any{"description": "Validation failed", "errors": []fdFieldError{{"email", "It should be a unique value", "duplicate_value"}}})
		return
	}
	c := f.contactByEmail(in.Email, true)
	if in.Name != "" {
		c.Name = in.Name
	}
	writeJSON(w, http.StatusCreated, c)
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

// fdInput is a create, update or note request, from JSON or from
// multipart/form-data (fields by name; custom_fields[cf_x], tags[],
// attachments[] as in the documented curl examples).
type fdInput struct {
	fields map[string][]string
	custom map[string]any
	files  []Attachment
	json   map[string]any
}

func (in fdInput) str(k string) string {
	if v, ok := in.json[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	if v := in.fields[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (in fdInput) has(k string) bool {
	_, ok := in.json[k]
	return ok || len(in.fields[k]) > 0
}

func (in fdInput) list(k string) []string {
	if v, ok := in.json[k].([]any); ok {
		var out []string
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return in.fields[k+"[]"]
}

func (f *Freshdesk) input(w http.ResponseWriter, r *http.Request) (fdInput, bool) {
	in := fdInput{fields: map[string][]string{}, custom: map[string]any{}}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&in.json); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid json format"})
			return in, false
		}
		if _, ok := in.json["attachments"]; ok {
			fdInvalid(w, fdFieldError{"attachments", "It should be a/an Array of file uploads (multipart/form-data)", "datatype_mismatch"})
			return in, false
		}
		if cf, ok := in.json["custom_fields"].(map[string]any); ok {
			in.custom = cf
		}
	case "multipart/form-data":
		mr := multipart.NewReader(r.Body, params["boundary"])
		total := 0
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_multipart", "message": err.Error()})
				return in, false
			}
			b, _ := io.ReadAll(part)
			name := part.FormName()
			switch {
			case name == "attachments[]" && part.FileName() != "":
				total += len(b)
				in.files = append(in.files, Attachment{Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Data: b})
			case strings.HasPrefix(name, "custom_fields[") && strings.HasSuffix(name, "]"):
				in.custom[name[len("custom_fields["):len(name)-1]] = string(b)
			default:
				in.fields[name] = append(in.fields[name], string(b))
			}
		}
		if total > fdMaxAttachments {
			fdInvalid(w, fdFieldError{"attachments", "The cumulative size of all attachments must not exceed 20 MB", "invalid_size"})
			return in, false
		}
	default:
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"code": "invalid_content_type", "message": "Content-Type header should have application/json or multipart/form-data"})
		return in, false
	}
	for k := range in.custom {
		if !contains(f.CustomFields, k) {
			fdInvalid(w, fdFieldError{k, "Unexpected/invalid field in request", "invalid_field"})
			return in, false
		}
	}
	return in, true
}

func (f *Freshdesk) attachmentsOut(files []Attachment) []map[string]any {
	out := []map[string]any{}
	for i, a := range files {
		out = append(out, map[string]any{"id": i + 1, "name": a.Filename, "content_type": a.ContentType, "size": len(a.Data)})
	}
	return out
}

func (f *Freshdesk) intField(w http.ResponseWriter, in fdInput, k string, def int, valid []int) (int, bool) {
	if !in.has(k) {
		return def, true
	}
	n, err := strconv.Atoi(in.str(k))
	if err != nil || !slices.Contains(valid, n) {
		fdInvalid(w, fdFieldError{k, fmt.Sprintf("It should be one of these values: '%v'", valid), "invalid_value"})
		return 0, false
	}
	return n, true
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
