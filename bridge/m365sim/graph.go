package m365sim

// The Graph v1.0 mail front door: routing and the per-request pipeline
// (authentication, mailbox access, throttling, faults, counters). Response
// writing, Prefer headers, request bodies and the error envelope are in
// graph_response.go.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// graphState holds the Graph side's sim-wide state: router, throttling,
// fault rules, counters and delta-token policy. Guarded by Sim.mu.
type graphState struct {
	mux      *http.ServeMux // the Graph router, on normalised paths
	rng      *rand.Rand     // seeded: fault rates and generated mail
	throttle map[throttleKey]*throttleBucket
	apps     map[string]*appBucket // the global per-app limit
	faults   []*faultRule
	faultSeq int
	counters counterState
	// deltaTTL: delta tokens older than this answer 410 syncStateNotFound;
	// 0 means they never age out.
	deltaTTL time.Duration
	// deltaCache is how many delta/skip tokens per folder stay valid: each
	// page answered issues one and advances the folder's generation; a
	// token deltaCache generations old answers 410. 0: no limit.
	deltaCache int
	// sentDelay is Options.SentItemsDelay; pending holds the Sent Items
	// copies not filed yet (graph_drafts.go).
	sentDelay time.Duration
	pending   []pendingFiling
	// uploads are the open attachment upload sessions by id (graph_upload.go).
	uploads map[string]*uploadSession
	// subs are the change-notification subscriptions by id
	// (graph_subscriptions.go); notify is their delivery queue
	// (graph_notify.go).
	subs   map[string]*subscription
	notify notifyState
}

func (s *Sim) initGraph() {
	s.graph.rng = rand.New(rand.NewPCG(uint64(s.opts.Seed), 0x6d333635))
	s.graph.throttle = map[throttleKey]*throttleBucket{}
	s.graph.apps = map[string]*appBucket{}
	s.graph.counters = newCounterState()
	s.graph.deltaTTL = 7 * 24 * time.Hour
	s.graph.deltaCache = defaultDeltaTokenCache
	s.graph.sentDelay = s.opts.SentItemsDelay
	s.graph.uploads = map[string]*uploadSession{}
	s.graph.subs = map[string]*subscription{}
}

// reqInfo travels in the request context so the outer handler can count
// what the inner handlers learned (endpoint kind, mailbox).
type reqInfo struct {
	kind    string
	mailbox string
	batched bool
	dropped bool // a fault closed the connection
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// graphCtx is what a mail handler gets after the pipeline ran.
type graphCtx struct {
	grant  *AccessGrant
	mb     *Mailbox
	d      *mailData
	base   string // e.g. http://127.0.0.1:4312/v1.0
	prefix string // "/me" or "/users/{user}" as requested
	pref   preferences
	// emptyPage is set by a fault rule: a delta page comes back empty.
	emptyPage bool
}

type graphHandler func(w http.ResponseWriter, r *http.Request, c *graphCtx)

// access levels a route needs.
const (
	permRead = iota
	permWrite
	permSend
)

func (s *Sim) registerGraph(mux *http.ServeMux) {
	// One subtree: every /v1.0 path gets Graph headers and Graph errors,
	// and OData key syntax such as users('a@b') is normalised first.
	mux.HandleFunc("/v1.0/", s.serveGraph)
	mux.HandleFunc(uploadPathPrefix, s.serveUpload)
	g := http.NewServeMux()
	s.graph.mux = g
	g.HandleFunc("POST /v1.0/$batch", s.handleBatch)
	g.HandleFunc("GET /v1.0/me", s.handleUserGet)
	g.HandleFunc("GET /v1.0/users/{user}", s.handleUserGet)
	s.registerSubscriptions(g)

	route := func(method, suffix, kind string, perm int, h graphHandler) {
		for _, prefix := range []string{"/v1.0/me", "/v1.0/users/{user}"} {
			g.Handle(method+" "+prefix+suffix, s.mailRoute(kind, perm, h))
		}
	}
	route("GET", "/mailFolders", "folder.list", permRead, s.handleFolderList)
	route("POST", "/mailFolders", "folder.create", permWrite, s.handleFolderCreate)
	route("GET", "/mailFolders/{fid}", "folder.get", permRead, s.handleFolderGet)
	route("PATCH", "/mailFolders/{fid}", "folder.update", permWrite, s.handleFolderUpdate)
	route("DELETE", "/mailFolders/{fid}", "folder.delete", permWrite, s.handleFolderDelete)
	route("GET", "/mailFolders/{fid}/childFolders", "folder.list", permRead, s.handleFolderList)
	route("POST", "/mailFolders/{fid}/childFolders", "folder.create", permWrite, s.handleFolderCreate)
	route("GET", "/mailFolders/{fid}/messages", "message.list", permRead, s.handleMessageList)
	route("GET", "/mailFolders/{fid}/messages/delta", "delta", permRead, s.handleDelta)
	route("GET", "/messages", "message.list", permRead, s.handleMessageList)
	route("POST", "/sendMail", "sendMail", permSend, s.handleSendMail)
	route("POST", "/messages", "message.create", permWrite, s.handleMessageCreate)
	route("POST", "/translateExchangeIds", "translateIds", permRead, s.handleTranslateIDs)
	for _, m := range []string{"/messages/{mid}", "/mailFolders/{fid}/messages/{mid}"} {
		route("GET", m, "message.get", permRead, s.handleMessageGet)
		route("PATCH", m, "message.update", permWrite, s.handleMessageUpdate)
		route("DELETE", m, "message.delete", permWrite, s.handleMessageDelete)
		route("GET", m+"/$value", "message.value", permRead, s.handleMessageValue)
		route("POST", m+"/move", "message.move", permWrite, s.handleMessageMove)
		route("POST", m+"/copy", "message.copy", permWrite, s.handleMessageCopy)
		route("POST", m+"/permanentDelete", "message.delete", permWrite, s.handleMessagePermanentDelete)
		route("POST", m+"/reply", "reply", permSend, s.handleReply)
		route("POST", m+"/createReply", "message.create", permWrite, s.handleCreateReply)
		route("POST", m+"/send", "sendMail", permSend, s.handleSendDraft)
		route("GET", m+"/attachments", "attachment.list", permRead, s.handleAttachmentList)
		route("POST", m+"/attachments", "attachment.create", permWrite, s.handleAttachmentCreate)
		route("POST", m+"/attachments/createUploadSession", "attachment.create", permWrite, s.handleCreateUploadSession)
		route("GET", m+"/attachments/{aid}", "attachment.get", permRead, s.handleAttachmentGet)
		route("GET", m+"/attachments/{aid}/$value", "attachment.value", permRead, s.handleAttachmentValue)
	}
}

var reKeySegment = regexp.MustCompile(`/(mailFolders|messages|childFolders|attachments|users)\('([^']*)'\)`)

// serveGraph is the outer Graph handler: it normalises OData key syntax
// (mailFolders('Inbox') → mailFolders/Inbox), sets the standard response
// headers, dispatches, and counts the request.
func (s *Sim) serveGraph(w http.ResponseWriter, r *http.Request) {
	info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo)
	if !ok {
		info = &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
	}
	if p := reKeySegment.ReplaceAllString(r.URL.Path, "/$1/$2"); p != r.URL.Path {
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2 := r.Clone(r.Context())
		r2.URL = &u
		r = r2
	}
	h := w.Header()
	reqID := newGUID()
	h.Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		h.Set("client-request-id", c)
	} else {
		h.Set("client-request-id", reqID)
	}
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Sim","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM1"}}`)
	h.Set("Cache-Control", "no-cache")
	sw := &statusWriter{ResponseWriter: w}
	if _, pattern := s.graph.mux.Handler(r); pattern == "" {
		info.kind = "unknown"
		if s.pathExists(r) {
			// Status documented (C.1 table, 405 for an unsupported OData request).
			writeGraphError(sw, r, http.StatusMethodNotAllowed, "ErrorInvalidRequest", "The OData request is not supported.")
		} else {
			seg := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			writeGraphError(sw, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", seg))
		}
	} else {
		s.graph.mux.ServeHTTP(sw, r)
	}
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	s.count(info, r.Method, sw.status)
}

// countStatus is the byStatus key: the code, or "dropped".
func countStatus(info *reqInfo, status int) string {
	if info.dropped {
		return "dropped"
	}
	return strconv.Itoa(status)
}

// pathExists reports whether the path is served for some other method.
func (s *Sim) pathExists(r *http.Request) bool {
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := s.graph.mux.Handler(r2); pattern != "" {
			return true
		}
	}
	return false
}

// statusWriter records the status for the counters. Unwrap lets
// http.ResponseController reach Hijack for dropped-connection faults.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// mailRoute wraps a mail handler in the pipeline: authenticate, resolve the
// mailbox and check access, throttle, apply fault rules.
func (s *Sim) mailRoute(kind string, perm int, h graphHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoOf(r)
		info.kind = kind
		g := s.authenticate(w, r)
		if g == nil {
			return
		}
		c, gerr := s.resolveMailbox(r, g, perm)
		if gerr != nil {
			if c != nil {
				info.mailbox = c.mb.Address
			}
			writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
			return
		}
		info.mailbox = c.mb.Address
		if !s.appAdmit(w, r, g.ClientID) {
			return
		}
		release, ok := s.throttleAcquire(w, r, g.ClientID, c.mb)
		if !ok {
			return
		}
		// The answer leaves only after the slot is free (throttleAcquire).
		dw := &deferredWriter{w: w}
		drop := false
		func() {
			defer release()
			fx, handled := s.applyFaults(dw, r, c.mb.Address, c.pref)
			if handled {
				return
			}
			c.emptyPage = fx.emptyPage
			s.mu.Lock()
			s.fileDueLocked()
			s.kickNotificationsLocked()
			s.mu.Unlock()
			if fx.dropAfter {
				h(&discardWriter{h: http.Header{}}, r, c)
				drop = true
				return
			}
			h(dw, r, c)
		}()
		if drop {
			dropConnection(w, r)
			return
		}
		dw.send()
	})
}

// graphError is an error answer before a handler runs.
type graphError struct {
	status    int
	code, msg string
}

const (
	msgAccessDenied = "Access is denied. Check credentials and try again."
	msgNotEnabled   = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."
	msgSendAsDenied = "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."
	msgItemNotFound = "The specified object was not found in the store."
	msgFolderNF     = "The specified folder could not be found in the store."
)

// resolveMailbox applies B.1's delegated-access rules.
func (s *Sim) resolveMailbox(r *http.Request, g *AccessGrant, perm int) (*graphCtx, *graphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &graphCtx{grant: g, base: baseURL(r) + "/v1.0", prefix: "/me", pref: parsePrefer(r)}
	user := r.PathValue("user")
	if user == "" {
		c.mb = s.mailboxByID[g.UserID]
		if c.mb == nil {
			return nil, &graphError{http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNotEnabled}
		}
	} else {
		c.prefix = "/users/" + user
		c.mb = s.mailboxes[strings.ToLower(user)]
		if c.mb == nil {
			c.mb = s.mailboxByID[user]
		}
		if c.mb == nil {
			if u := s.userByUPNLocked(user); u != nil {
				c.mb = s.mailboxByID[u.ID]
				if c.mb == nil {
					return nil, &graphError{http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNotEnabled}
				}
			}
		}
		if c.mb == nil {
			return nil, &graphError{http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", user)}
		}
	}
	c.d = c.mb.data
	if !c.mb.Enabled {
		return c, &graphError{http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNotEnabled}
	}
	own := c.mb.ID == g.UserID
	denied := &graphError{http.StatusForbidden, "ErrorAccessDenied", msgAccessDenied}
	switch {
	case perm == permSend && own:
		if !g.HasScope("Mail.Send") {
			return c, denied
		}
	case perm == permSend:
		if !g.HasScope("Mail.Send.Shared") {
			return c, denied
		}
		if !c.mb.SendAs[g.UserID] {
			return c, &graphError{http.StatusForbidden, "ErrorSendAsDenied", msgSendAsDenied}
		}
	case own && perm == permRead:
		if !g.HasScope("Mail.Read") && !g.HasScope("Mail.ReadWrite") {
			return c, denied
		}
	case own:
		if !g.HasScope("Mail.ReadWrite") {
			return c, denied
		}
	case perm == permRead:
		if (!g.HasScope("Mail.Read.Shared") && !g.HasScope("Mail.ReadWrite.Shared")) || !c.mb.FullAccess[g.UserID] {
			return c, denied
		}
	default:
		if !g.HasScope("Mail.ReadWrite.Shared") || !c.mb.FullAccess[g.UserID] {
			return c, denied
		}
	}
	return c, nil
}

// handleUserGet answers GET /me and /users/{id}: the directory profile.
// It needs User.Read (own) or User.Read.All/User.ReadBasic.All (others).
func (s *Sim) handleUserGet(w http.ResponseWriter, r *http.Request) {
	infoOf(r).kind = "user.get"
	g := s.authenticate(w, r)
	if g == nil || !s.appAdmit(w, r, g.ClientID) {
		return
	}
	s.mu.Lock()
	var u *User
	if ref := r.PathValue("user"); ref == "" {
		u = s.users[g.UserID]
	} else if u = s.users[ref]; u == nil {
		u = s.userByUPNLocked(ref)
	}
	var body jobj
	if u != nil {
		mail := any(nil)
		if mb := s.mailboxByID[u.ID]; mb != nil {
			mail = mb.Address
		}
		body = jobj{
			{"@odata.context", baseURL(r) + "/v1.0/$metadata#users/$entity"},
			{"businessPhones", []string{}}, {"displayName", u.DisplayName}, {"givenName", nil},
			{"jobTitle", nil}, {"mail", mail}, {"mobilePhone", nil}, {"officeLocation", nil},
			{"preferredLanguage", nil}, {"surname", nil}, {"userPrincipalName", u.UPN}, {"id", u.ID},
		}
	}
	own := u != nil && u.ID == g.UserID
	s.mu.Unlock()
	switch {
	case u == nil:
		writeGraphError(w, r, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", r.PathValue("user")))
	case own && !g.HasScope("User.Read") && !g.HasScope("User.ReadBasic.All") && !g.HasScope("User.Read.All"),
		!own && !g.HasScope("User.ReadBasic.All") && !g.HasScope("User.Read.All"):
		writeGraphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	default:
		writeJSON(w, http.StatusOK, body)
	}
}
