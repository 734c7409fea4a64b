package helpdeskfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Zammad fakes the Zammad REST API (api/v1) as documented in
// zammad/zammad-documentation, api/ticket/index.rst (tickets: search,
// show, create with customer_id "guess:<email>" and an article, which
// creates the customer user), api/user.rst (users: show),
// api/ticket/articles.rst (ticket_articles: create, by_ticket, attachments
// as {filename, data, mime-type}, inline images as data: URIs in HTML
// bodies) and api/intro.rst (token access: "Authorization: Token
// token=…"). Error bodies follow Zammad's {"error": …, "error_human": …}.
type Zammad struct {
	*httptest.Server
	failer

	Token  string
	Groups []string // existing groups; a ticket for another group is refused (422)

	mu            sync.Mutex
	now           func() time.Time
	tickets       []*ZammadTicket
	articles      []*ZammadArticle
	users         map[string]int // email → id
	notifications []Notification
	requests      int
}

// ZammadTicket is a stored ticket.
type ZammadTicket struct {
	ID         int    `json:"id"`
	Number     string `json:"number"`
	Title      string `json:"title"`
	Group      string `json:"group"`
	State      string `json:"state"`
	CustomerID int    `json:"customer_id"`
	Customer   string `json:"-"`
	CreatedAt  string `json:"created_at"`
	ArticleIDs []int  `json:"article_ids"`
}

// ZammadArticleFields are an article's fields as Zammad's API takes and
// returns them (POST /api/v1/ticket_articles, GET .../by_ticket/{id}).
type ZammadArticleFields struct {
	TicketID    int            `json:"ticket_id"`
	Type        string         `json:"type"`
	Sender      string         `json:"sender"`
	Internal    bool           `json:"internal"`
	From        string         `json:"from"`
	To          string         `json:"to"`
	Cc          string         `json:"cc"`
	Subject     string         `json:"subject"`
	MessageID   string         `json:"message_id"`
	InReplyTo   string         `json:"in_reply_to"`
	ContentType string         `json:"content_type"`
	Body        string         `json:"body"`
	Preferences map[string]any `json:"preferences"`
}

// ZammadArticle is a stored article.
type ZammadArticle struct {
	ID int `json:"id"`
	ZammadArticleFields
	CreatedAt string       `json:"created_at"`
	Files     []Attachment `json:"-"`
}

// NewZammad starts a fake Zammad accepting token and the groups given.
func NewZammad(token string, groups ...string) *Zammad {
	z := &Zammad{Token: token, Groups: groups, users: map[string]int{}, now: time.Now}
	z.Server = httptest.NewServer(http.HandlerFunc(z.serve))
	return z
}

// Tickets returns a copy of the stored tickets.
func (z *Zammad) Tickets() []ZammadTicket {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]ZammadTicket, len(z.tickets))
	for i, t := range z.tickets {
		out[i] = *t
		out[i].ArticleIDs = append([]int(nil), t.ArticleIDs...)
	}
	return out
}

// Articles returns a copy of the stored articles.
func (z *Zammad) Articles() []ZammadArticle {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]ZammadArticle, len(z.articles))
	for i, a := range z.articles {
		out[i] = *a
	}
	return out
}

// Notifications returns the mails Zammad's triggers would have sent.
func (z *Zammad) Notifications() []Notification {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]Notification(nil), z.notifications...)
}

// zerr is Zammad's error body.
func zerr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "error_human": msg})
}

var (
	zTicketPath  = regexp.MustCompile(`^/api/v1/tickets/(\d+)$`)
	zUserPath    = regexp.MustCompile(`^/api/v1/users/(\d+)$`)
	zByTicket    = regexp.MustCompile(`^/api/v1/ticket_articles/by_ticket/(\d+)$`)
	zMessageIDQ  = regexp.MustCompile(`^article\.message_id:"(.*)"$`)
	zNumberQ     = regexp.MustCompile(`^number:(\d+)$`)
	zDataURI     = regexp.MustCompile(`src="data:([a-z]+/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=]+)"`)
	zGuessPrefix = "guess:"
)

func (z *Zammad) serve(w http.ResponseWriter, r *http.Request) {
	// api/intro.rst: token access is "Authorization: Token token={your_token}";
	// a wrong or missing token answers 401.
	if r.Header.Get("Authorization") != "Token token="+z.Token {
		zerr(w, http.StatusUnauthorized, "authentication failed")
		return
	}
	if z.fail(w, map[string]string{"error": "fake failure"}) {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.requests++
	switch p := r.URL.Path; {
	case r.Method == http.MethodPost && p == "/api/v1/tickets":
		z.createTicket(w, r)
	case r.Method == http.MethodGet && p == "/api/v1/tickets/search":
		z.search(w, r)
	case r.Method == http.MethodGet && zTicketPath.MatchString(p):
		id, _ := strconv.Atoi(zTicketPath.FindStringSubmatch(p)[1])
		t := z.ticket(id)
		if t == nil {
			// Rails' RecordNotFound, as Zammad answers it.
			zerr(w, http.StatusNotFound, fmt.Sprintf("Couldn't find Ticket with 'id'=%d", id))
			return
		}
		writeJSON(w, http.StatusOK, t)
	case r.Method == http.MethodGet && zUserPath.MatchString(p):
		// api/user.rst, "Show": GET /api/v1/users/{id}.
		id, _ := strconv.Atoi(zUserPath.FindStringSubmatch(p)[1])
		for email, uid := range z.users {
			if uid == id {
				writeJSON(w, http.StatusOK, map[string]any{"id": uid, "login": email, "email": email, "active": true, "role_ids": []int{3}})
				return
			}
		}
		zerr(w, http.StatusNotFound, fmt.Sprintf("Couldn't find User with 'id'=%d", id))
	case r.Method == http.MethodPost && p == "/api/v1/ticket_articles":
		z.createArticle(w, r)
	case r.Method == http.MethodGet && zByTicket.MatchString(p):
		id, _ := strconv.Atoi(zByTicket.FindStringSubmatch(p)[1])
		if z.ticket(id) == nil {
			zerr(w, http.StatusNotFound, fmt.Sprintf("Couldn't find Ticket with 'id'=%d", id))
			return
		}
		list := []*ZammadArticle{}
		for _, a := range z.articles {
			if a.TicketID == id {
				list = append(list, a)
			}
		}
		writeJSON(w, http.StatusOK, list)
	default:
		zerr(w, http.StatusNotFound, "No route matches ["+r.Method+"] "+p)
	}
}

func (z *Zammad) ticket(id int) *ZammadTicket {
	if id < 1 || id > len(z.tickets) {
		return nil
	}
	return z.tickets[id-1]
}

type zArticleIn struct {
	ZammadArticleFields
	Attachments []map[string]any `json:"attachments"`
}

func (z *Zammad) createTicket(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title      string      `json:"title"`
		Group      string      `json:"group"`
		CustomerID string      `json:"customer_id"`
		Customer   string      `json:"customer"`
		State      string      `json:"state"`
		Article    *zArticleIn `json:"article"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		zerr(w, http.StatusUnprocessableEntity, "Unable to parse JSON: "+err.Error())
		return
	}
	switch {
	case in.Title == "":
		zerr(w, http.StatusUnprocessableEntity, "Title can't be blank")
		return
	case !contains(z.Groups, in.Group):
		zerr(w, http.StatusUnprocessableEntity, fmt.Sprintf("No lookup value found for 'group': %q", in.Group))
		return
	}
	if in.State == "" {
		in.State = "new"
	}
	if !contains([]string{"new", "open", "closed", "pending reminder", "pending close", "merged"}, in.State) {
		zerr(w, http.StatusUnprocessableEntity, fmt.Sprintf("No lookup value found for 'state': %q", in.State))
		return
	}
	// index.rst: "Use guess:{email address} to save an API call if you
	// don't know the users ID or want to create the user in question."
	email := strings.TrimPrefix(in.CustomerID, zGuessPrefix)
	if email == "" {
		email = in.Customer
	}
	if email == "" || !strings.Contains(email, "@") {
		zerr(w, http.StatusUnprocessableEntity, "customer_id: guess:<email> or customer is required")
		return
	}
	var art *ZammadArticle
	if in.Article != nil {
		var err error
		if art, err = z.article(*in.Article); err != nil {
			zerr(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
	}
	t := &ZammadTicket{ID: len(z.tickets) + 1, Title: in.Title, Group: in.Group, State: in.State,
		CustomerID: z.user(email), Customer: email, CreatedAt: z.now().UTC().Format(time.RFC3339Nano)}
	t.Number = strconv.Itoa(22000 + t.ID)
	z.tickets = append(z.tickets, t)
	if art != nil {
		z.attach(t, art)
		// The default trigger "auto reply (on new tickets)" (zammad/zammad
		// db/seeds/triggers.rb and the UpdateTrigger2 migration): condition
		// ticket.action is create, ticket.state is not closed, article.type
		// is email, phone or web, article.sender is Customer; recipient
		// article_last_sender. Ticket#perform_triggers skips every
		// notification.email when the article's preferences carry
		// send-auto-response: false (app/models/ticket.rb).
		if t.State != "closed" && contains([]string{"email", "phone", "web"}, art.Type) && art.Sender == "Customer" &&
			art.Preferences["send-auto-response"] != false {
			z.notifications = append(z.notifications, Notification{TicketID: t.ID, To: addrOf(art.From, email), Trigger: "auto reply (on new tickets)"})
		}
	}
	writeJSON(w, http.StatusCreated, t)
}

func (z *Zammad) createArticle(w http.ResponseWriter, r *http.Request) {
	var in zArticleIn
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		zerr(w, http.StatusUnprocessableEntity, "Unable to parse JSON: "+err.Error())
		return
	}
	t := z.ticket(in.TicketID)
	if t == nil {
		zerr(w, http.StatusNotFound, fmt.Sprintf("Couldn't find Ticket with 'id'=%d", in.TicketID))
		return
	}
	art, err := z.article(in)
	if err != nil {
		zerr(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	z.attach(t, art)
	// "auto reply (on follow-up of tickets)" ships inactive
	// (db/seeds/triggers.rb: active: false): a follow-up notifies nobody.
	writeJSON(w, http.StatusCreated, art)
}

// article builds an article; inline data: URIs in an HTML body become
// inline attachments with a Content-ID (articles.rst, "Article with inline
// images"), as Zammad stores them.
func (z *Zammad) article(in zArticleIn) (*ZammadArticle, error) {
	if in.Body == "" {
		return nil, fmt.Errorf("Need at least article: { body: \"some text\" }")
	}
	if in.Type == "" {
		in.Type = "note" // articles.rst: note is the default fall back
	}
	if in.Sender == "" {
		in.Sender = "Agent"
	}
	if in.ContentType == "" {
		in.ContentType = "text/plain"
	}
	a := &ZammadArticle{ZammadArticleFields: in.ZammadArticleFields, CreatedAt: z.now().UTC().Format(time.RFC3339Nano)}
	if a.Preferences == nil {
		a.Preferences = map[string]any{}
	}
	for i, at := range in.Attachments {
		name, _ := at["filename"].(string)
		data, _ := at["data"].(string)
		mt, _ := at["mime-type"].(string)
		b, err := base64.StdEncoding.DecodeString(data)
		if name == "" || err != nil {
			return nil, fmt.Errorf("attachments[%d]: filename and base64 data are required", i)
		}
		a.Files = append(a.Files, Attachment{Filename: name, ContentType: mt, Data: b})
	}
	if in.ContentType == "text/html" {
		n := 0
		a.Body = zDataURI.ReplaceAllStringFunc(in.Body, func(m string) string {
			sub := zDataURI.FindStringSubmatch(m)
			b, err := base64.StdEncoding.DecodeString(sub[2])
			if err != nil {
				return m
			}
			n++
			cid := fmt.Sprintf("%d.%d@zammad.example.com", len(z.articles)+1, n)
			a.Files = append(a.Files, Attachment{Filename: fmt.Sprintf("image%d", n), ContentType: sub[1], ContentID: cid, Inline: true, Data: b})
			return `src="cid:` + cid + `"`
		})
	}
	return a, nil
}

func (z *Zammad) attach(t *ZammadTicket, a *ZammadArticle) {
	a.ID = len(z.articles) + 1
	a.TicketID = t.ID
	z.articles = append(z.articles, a)
	t.ArticleIDs = append(t.ArticleIDs, a.ID)
}

func (z *Zammad) user(email string) int {
	email = strings.ToLower(email)
	if id, ok := z.users[email]; ok {
		return id
	}
	z.users[email] = len(z.users) + 2 // id 1 is Zammad's system user
	return z.users[email]
}

// search answers GET /api/v1/tickets/search (index.rst, "Search"):
// {"tickets": [ids], "tickets_count": n, "assets": {...}}. The fake knows
// the two queries recipes use, article.message_id:"…" and number:…
// (attributes of Zammad's search index); any other query answers 422 so a
// recipe cannot come to rely on what the fake does not model. Real Zammad
// searches its Elasticsearch index, refreshed about once a second: the
// fake's index is immediate, which the retry schedule's first delay (5 s)
// covers for a re-run after a crash.
func (z *Zammad) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("query"))
	var ids []int
	switch {
	case zMessageIDQ.MatchString(q):
		mid := zMessageIDQ.FindStringSubmatch(q)[1]
		seen := map[int]bool{}
		for _, a := range z.articles {
			if a.MessageID == mid && !seen[a.TicketID] {
				seen[a.TicketID] = true
				ids = append(ids, a.TicketID)
			}
		}
	case zNumberQ.MatchString(q):
		for _, t := range z.tickets {
			if t.Number == zNumberQ.FindStringSubmatch(q)[1] {
				ids = append(ids, t.ID)
			}
		}
	default:
		zerr(w, http.StatusUnprocessableEntity, "fake Zammad: query not modelled: "+q)
		return
	}
	assets := map[string]any{}
	tickets := map[string]any{}
	for _, id := range ids {
		tickets[strconv.Itoa(id)] = z.ticket(id)
	}
	assets["Ticket"] = tickets
	writeJSON(w, http.StatusOK, map[string]any{"tickets": append([]int{}, ids...), "tickets_count": len(ids), "assets": assets})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// addrOf extracts the address of "Name <addr>" (or returns fallback).
func addrOf(from, fallback string) string {
	if i, j := strings.LastIndexByte(from, '<'), strings.LastIndexByte(from, '>'); i >= 0 && j > i {
		return strings.ToLower(from[i+1 : j])
	}
	if strings.Contains(from, "@") {
		return strings.ToLower(strings.TrimSpace(from))
	}
	return strings.ToLower(fallback)
}
