package helpdeskfake

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
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
