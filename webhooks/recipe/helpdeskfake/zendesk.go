package helpdeskfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Zendesk fakes the Zendesk Support API (api/v2) as documented at
// developer.zendesk.com/api-reference/ticketing/: tickets (create, show,
// update, list by external_id), ticket import, ticket comments, attachment
// uploads, users create_or_update, API-token basic auth
// ("{email}/token:{api_token}"), 429 with Retry-After, error bodies
// {"error": …, "description": …, "details": …}, and the notifications of
// the standard triggers.
type Zendesk struct {
	*httptest.Server
	failer

	Email, APIToken string

	mu            sync.Mutex
	now           func() time.Time
	tickets       []*ZendeskTicket
	users         map[string]*zdUser // email → user
	uploads       map[string][]Attachment
	notifications []Notification
	agentID       int
}

type zdUser struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// ZendeskTicket is a stored ticket.
type ZendeskTicket struct {
	ID          int              `json:"id"`
	Subject     string           `json:"subject"`
	Status      string           `json:"status"`
	RequesterID int              `json:"requester_id"`
	ExternalID  string           `json:"external_id"`
	Tags        []string         `json:"tags"`
	CreatedAt   string           `json:"created_at"`
	Imported    bool             `json:"-"`
	Comments    []ZendeskComment `json:"-"`
}

// ZendeskComment is a stored comment.
type ZendeskComment struct {
	ID          int          `json:"id"`
	AuthorID    int          `json:"author_id"`
	Body        string       `json:"body"`
	HTMLBody    string       `json:"html_body"`
	Public      bool         `json:"public"`
	CreatedAt   string       `json:"created_at"`
	Attachments []Attachment `json:"-"`
}

// NewZendesk starts a fake Zendesk for the agent email and API token.
func NewZendesk(email, apiToken string) *Zendesk {
	z := &Zendesk{Email: email, APIToken: apiToken, now: time.Now, users: map[string]*zdUser{}, uploads: map[string][]Attachment{}}
	z.agentID = z.user(email, "API agent", "agent").ID
	z.Server = httptest.NewServer(http.HandlerFunc(z.serve))
	return z
}

// Tickets returns a copy of the stored tickets with their comments.
func (z *Zendesk) Tickets() []ZendeskTicket {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]ZendeskTicket, len(z.tickets))
	for i, t := range z.tickets {
		out[i] = *t
		out[i].Tags = append([]string(nil), t.Tags...)
		out[i].Comments = append([]ZendeskComment(nil), t.Comments...)
	}
	return out
}

// Notifications returns the mails Zendesk's standard triggers would have
// sent to requesters.
func (z *Zendesk) Notifications() []Notification {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]Notification(nil), z.notifications...)
}

// UserEmail returns the email of user id, "" if none.
func (z *Zendesk) UserEmail(id int) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, u := range z.users {
		if u.ID == id {
			return u.Email
		}
	}
	return ""
}

// zdErr writes Zendesk's error shape; see "Response format" > errors in
// developer.zendesk.com/api-reference/introduction/requests.
func zdErr(w http.ResponseWriter, status int, code, desc string, details map[string]any) {
	body := map[string]any{"error": code, "description": desc}
	if details != nil {
		body["details"] = details
	}
	writeJSON(w, status, body)
}

func invalid(w http.ResponseWriter, field, desc string) {
	// A 422 RecordInvalid with per-field details, as the Tickets API
	// answers a failed validation.
	zdErr(w, http.StatusUnprocessableEntity, "RecordInvalid", "Record validation errors",
		map[string]any{field: []map[string]string{{"description": desc}}})
}

var (
	zdTicket   = regexp.MustCompile(`^/api/v2/tickets/(\d+)(?:\.json)?$`)
	zdComments = regexp.MustCompile(`^/api/v2/tickets/(\d+)/comments(?:\.json)?$`)
)

func (z *Zendesk) serve(w http.ResponseWriter, r *http.Request) {
	// "API token" authentication: basic auth with {email_address}/token as
	// the user name and the token as the password
	// (api-reference/introduction/security-and-auth); 401 otherwise.
	if u, p, ok := r.BasicAuth(); !ok || u != z.Email+"/token" || p != z.APIToken {
		zdErr(w, http.StatusUnauthorized, "Couldn't authenticate you", "", nil)
		return
	}
	// Rate limits (api-reference/introduction/rate-limits): past the limit
	// the API answers 429 Too Many Requests with a Retry-After header in
	// seconds.
	if z.fail(w, map[string]string{"error": "TooManyRequests", "description": "You have exceeded the rate limit"}) {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	switch p := r.URL.Path; {
	case r.Method == http.MethodPost && p == "/api/v2/users/create_or_update":
		z.createOrUpdateUser(w, r)
	case r.Method == http.MethodPost && p == "/api/v2/uploads":
		z.upload(w, r)
	case r.Method == http.MethodGet && (p == "/api/v2/tickets" || p == "/api/v2/tickets.json"):
		z.listByExternalID(w, r)
	case r.Method == http.MethodPost && (p == "/api/v2/tickets" || p == "/api/v2/tickets.json"):
		z.createTicket(w, r, false)
	case r.Method == http.MethodPost && p == "/api/v2/imports/tickets":
		z.createTicket(w, r, true)
	case zdTicket.MatchString(p):
		id, _ := strconv.Atoi(zdTicket.FindStringSubmatch(p)[1])
		t := z.ticket(id)
		if t == nil {
			zdErr(w, http.StatusNotFound, "RecordNotFound", "Not found", nil)
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"ticket": t})
		case http.MethodPut:
			z.updateTicket(w, r, t)
		default:
			zdErr(w, http.StatusMethodNotAllowed, "InvalidEndpoint", "Not found", nil)
		}
	case r.Method == http.MethodGet && zdComments.MatchString(p):
		id, _ := strconv.Atoi(zdComments.FindStringSubmatch(p)[1])
		t := z.ticket(id)
		if t == nil {
			zdErr(w, http.StatusNotFound, "RecordNotFound", "Not found", nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"comments": t.Comments, "count": len(t.Comments)})
	default:
		zdErr(w, http.StatusNotFound, "InvalidEndpoint", "Not found", nil)
	}
}

func (z *Zendesk) ticket(id int) *ZendeskTicket {
	if id < 1 || id > len(z.tickets) {
		return nil
	}
	return z.tickets[id-1]
}

func (z *Zendesk) user(email, name, role string) *zdUser {
	email = strings.ToLower(email)
	if u, ok := z.users[email]; ok {
		return u
	}
	u := &zdUser{ID: 1000 + len(z.users), Name: name, Email: email, Role: role}
	z.users[email] = u
	return u
}

// createOrUpdateUser: POST /api/v2/users/create_or_update
// (api-reference/ticketing/users/users): 201 when created, 200 when a user
// with that email existed; {"user": {...}}.
func (z *Zendesk) createOrUpdateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		} `json:"user"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.Contains(in.User.Email, "@") {
		invalid(w, "email", "Email: is invalid")
		return
	}
	_, existed := z.users[strings.ToLower(in.User.Email)]
	name := in.User.Name
	if name == "" {
		name = in.User.Email
	}
	u := z.user(in.User.Email, name, "end-user")
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"user": u})
}

// upload: POST /api/v2/uploads?filename=… with the file's bytes as the body
// (api-reference/ticketing/tickets/ticket-attachments, "Upload Files"):
// 201 {"upload": {"token": …, "attachment": {…content_url…}, "attachments": […]}};
// the token is then given in a comment's uploads.
func (z *Zendesk) upload(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("filename")
	if name == "" {
		zdErr(w, http.StatusBadRequest, "InvalidValue", "filename is required", nil)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		zdErr(w, http.StatusBadRequest, "InvalidValue", err.Error(), nil)
		return
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		token = fmt.Sprintf("tok%06d", len(z.uploads)+1)
	}
	a := Attachment{Filename: name, ContentType: r.Header.Get("Content-Type"), Data: b}
	z.uploads[token] = append(z.uploads[token], a)
	att := map[string]any{
		"id": len(z.uploads), "file_name": name, "content_type": a.ContentType, "size": len(b),
		"content_url": fmt.Sprintf("%s/attachments/token/%s/?name=%s", z.URL, token, name), "inline": false,
	}
	writeJSON(w, http.StatusCreated, map[string]any{"upload": map[string]any{"token": token, "attachment": att, "attachments": []any{att}}})
}

// listByExternalID: GET /api/v2/tickets?external_id=… ("List Tickets":
// external_id lists tickets by external id; ids need not be unique).
func (z *Zendesk) listByExternalID(w http.ResponseWriter, r *http.Request) {
	ext := r.URL.Query().Get("external_id")
	list := []*ZendeskTicket{}
	for _, t := range z.tickets {
		if ext == "" || t.ExternalID == ext {
			list = append(list, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tickets": list, "count": len(list), "next_page": nil, "previous_page": nil})
}

type zdCommentIn struct {
	Body      string   `json:"body"`
	HTMLBody  string   `json:"html_body"`
	Value     string   `json:"value"`
	Public    *bool    `json:"public"`
	AuthorID  int      `json:"author_id"`
	Uploads   []string `json:"uploads"`
	CreatedAt string   `json:"created_at"`
}

type zdTicketIn struct {
	Subject        string        `json:"subject"`
	Status         string        `json:"status"`
	RequesterID    int           `json:"requester_id"`
	ExternalID     string        `json:"external_id"`
	Tags           []string      `json:"tags"`
	AdditionalTags []string      `json:"additional_tags"`
	CreatedAt      string        `json:"created_at"`
	Comment        *zdCommentIn  `json:"comment"`
	Comments       []zdCommentIn `json:"comments"` // ticket import
}

// comment builds a stored comment; a comment is public unless public is
// false ("Ticket Comments": public defaults to true); its uploads must be
// known tokens.
func (z *Zendesk) comment(in zdCommentIn, defaultAuthor int) (ZendeskComment, string) {
	c := ZendeskComment{AuthorID: in.AuthorID, Body: cmpOr(in.Body, in.Value), HTMLBody: in.HTMLBody, Public: in.Public == nil || *in.Public,
		CreatedAt: cmpOr(in.CreatedAt, z.now().UTC().Format(time.RFC3339))}
	if c.AuthorID == 0 {
		c.AuthorID = defaultAuthor
	}
	if c.Body == "" && c.HTMLBody == "" {
		return c, "Description: cannot be blank"
	}
	for _, tok := range in.Uploads {
		files, ok := z.uploads[tok]
		if !ok {
			return c, "Uploads: token " + tok + " is invalid"
		}
		c.Attachments = append(c.Attachments, files...)
	}
	return c, ""
}

// createTicket: POST /api/v2/tickets (201 {"ticket", "audit"}) or, with
// imported, POST /api/v2/imports/tickets ("Ticket Import": comments with
// their own created_at, the ticket's created_at kept, and "triggers won't
// run on the imported ticket", so nobody is notified).
func (z *Zendesk) createTicket(w http.ResponseWriter, r *http.Request, imported bool) {
	var in struct {
		Ticket zdTicketIn `json:"ticket"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		zdErr(w, http.StatusBadRequest, "InvalidJSON", err.Error(), nil)
		return
	}
	tin := in.Ticket
	if tin.RequesterID == 0 || z.userByID(tin.RequesterID) == nil {
		invalid(w, "requester", "Requester: is invalid")
		return
	}
	status := cmpOr(tin.Status, "new")
	if !contains([]string{"new", "open", "pending", "hold", "solved", "closed"}, status) || (status == "closed" && !imported) {
		invalid(w, "status", "Status: "+status+" is not valid here")
		return
	}
	t := &ZendeskTicket{ID: len(z.tickets) + 1, Subject: tin.Subject, Status: status, RequesterID: tin.RequesterID,
		ExternalID: tin.ExternalID, Tags: append(tin.Tags, tin.AdditionalTags...), Imported: imported,
		CreatedAt: z.now().UTC().Format(time.RFC3339)}
	comments := tin.Comments
	if tin.Comment != nil {
		comments = append([]zdCommentIn{*tin.Comment}, comments...)
	}
	if len(comments) == 0 {
		invalid(w, "description", "Description: cannot be blank")
		return
	}
	for _, cin := range comments {
		c, msg := z.comment(cin, tin.RequesterID)
		if msg != "" {
			invalid(w, "base", msg)
			return
		}
		c.ID = len(t.Comments) + 1
		t.Comments = append(t.Comments, c)
	}
	if imported && tin.CreatedAt != "" {
		if _, err := time.Parse(time.RFC3339, tin.CreatedAt); err != nil {
			invalid(w, "created_at", "Created at: is invalid")
			return
		}
		t.CreatedAt = tin.CreatedAt
	}
	for _, tok := range uploadsOf(comments) {
		delete(z.uploads, tok) // an upload token is used once
	}
	z.tickets = append(z.tickets, t)
	// Standard triggers ("About the standard ticket triggers", Zendesk
	// help): a ticket created with a public comment notifies its requester
	// ("Notify requester of new proactive ticket" when an agent creates it,
	// "Notify requester and CCs of received request" otherwise), unless
	// its status is solved or closed. Imported tickets run no trigger.
	if !imported && t.Comments[0].Public && status != "solved" && status != "closed" {
		z.notifications = append(z.notifications, Notification{TicketID: t.ID, To: z.userByID(t.RequesterID).Email, Trigger: "notify requester of new ticket"})
	}
	writeJSON(w, http.StatusCreated, map[string]any{"ticket": t, "audit": map[string]any{"ticket_id": t.ID}})
}

// updateTicket: PUT /api/v2/tickets/{id} with a comment and/or
// additional_tags; a closed ticket cannot be updated ("Closed means that
// the ticket has been locked and cannot be reopened or updated").
func (z *Zendesk) updateTicket(w http.ResponseWriter, r *http.Request, t *ZendeskTicket) {
	var in struct {
		Ticket zdTicketIn `json:"ticket"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		zdErr(w, http.StatusBadRequest, "InvalidJSON", err.Error(), nil)
		return
	}
	if t.Status == "closed" {
		invalid(w, "status", "Status: closed prevents ticket update")
		return
	}
	if c := in.Ticket.Comment; c != nil {
		cm, msg := z.comment(*c, z.agentID)
		if msg != "" {
			invalid(w, "base", msg)
			return
		}
		cm.ID = len(t.Comments) + 1
		t.Comments = append(t.Comments, cm)
		for _, tok := range c.Uploads {
			delete(z.uploads, tok)
		}
		// "Notify requester and CCs of comment update": an update with a
		// public comment made through the API (the current user is the
		// API's agent) mails the requester. The fake does not trust
		// author_id to silence it.
		if cm.Public {
			z.notifications = append(z.notifications, Notification{TicketID: t.ID, To: z.userByID(t.RequesterID).Email, Trigger: "notify requester of comment update"})
		}
	}
	t.Tags = append(t.Tags, in.Ticket.AdditionalTags...)
	if in.Ticket.Status != "" {
		t.Status = in.Ticket.Status
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t, "audit": map[string]any{"ticket_id": t.ID}})
}

func (z *Zendesk) userByID(id int) *zdUser {
	for _, u := range z.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

func uploadsOf(cs []zdCommentIn) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Uploads...)
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// BasicAuth is the Authorization header value for email and token.
func BasicAuth(email, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(email+"/token:"+token))
}
