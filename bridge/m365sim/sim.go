// Package m365sim emulates the parts of Microsoft Entra ID (v2.0 OAuth/OIDC)
// and Microsoft Graph v1.0 mail that the bridge uses, closely enough that the
// bridge's tests, its demo and its benchmarks never need a real tenant.
//
// Behaviour follows the facts in shared/reference/graph-and-entra.md: status
// codes, JSON shapes, header names, AADSTS and Graph error codes, throttling
// limits. The package imports nothing of the bridge.
//
// One *Sim serves three path families on one listener:
//
//	/{tenant}/oauth2/v2.0/...   Entra ID (authorize, token), discovery, JWKS
//	/v1.0/...                   Graph mail
//	/_sim/...                   the control API for tests and operators
//
// Links the sim hands out (nextLink, deltaLink, issuer) are built from the
// request's own scheme and host, so the same Sim works behind httptest, on a
// fixed port, or in-process.
package m365sim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Sim. The zero value is usable: New fills defaults.
type Options struct {
	// Now is the sim's clock; tests pass a controllable one. Default time.Now.
	Now func() time.Time
	// AccessTokenTTL is the lifetime of issued access tokens. Default 75 min.
	AccessTokenTTL time.Duration
	// RefreshTokenInactivity is how long an unused refresh token stays valid.
	// Default 90 days.
	RefreshTokenInactivity time.Duration
	// AutoApprove makes /authorize approve at once (as the first user in the
	// request's login_hint, or the tenant's first user) instead of showing the
	// sign-in page. Tests and the demo use it; a request can also ask for it
	// with the query parameter sim_auto=1 (or sim_auto=decline).
	AutoApprove bool
	// NoThrottle turns Graph throttling off; it is the reason why, and an
	// empty (or blank) reason leaves throttling on. Graph always
	// throttles, so the default is on, with Microsoft's published limits
	// (throttle.go): per app and mailbox MailboxConcurrency requests in
	// flight (4), MailboxBudget requests per MailboxWindow (10,000 per 10
	// minutes) and MailboxUploadBytes of PATCH/POST/PUT bodies per
	// MailboxUploadWindow (150 MB per 5 minutes); per app AppBudget
	// requests per AppWindow (130,000 per 10 seconds). Zero fields take
	// these defaults; tests lower them to reach a limit quickly.
	NoThrottle          string
	MailboxConcurrency  int
	MailboxBudget       int
	MailboxWindow       time.Duration
	MailboxUploadBytes  int64
	MailboxUploadWindow time.Duration
	AppBudget           int
	AppWindow           time.Duration
	// Seed is the random seed for fault rules and generated mail, so a run
	// can be reproduced. Default 1.
	Seed int64
	// Logger receives what seeding had to repair or skip (a malformed
	// message in eml_dir). Default: discard.
	Logger *slog.Logger
	// OnMove, when set, hears every message that leaves a folder (moved,
	// deleted into Recoverable Items, purged) at the moment it happens:
	// with the sim's lock held, before the request that caused it is
	// answered. Tests use it to order mailbox changes against what else
	// they observe (a receiver's acknowledgements); it changes nothing the
	// sim answers. It must not call back into the Sim.
	OnMove func(MoveEvent)
	// SentItemsDelay is how long after a send is accepted Exchange files
	// the Sent Items copy, on the sim clock (graph_drafts.go); until then no
	// folder lists it. Default 0: filed at once. SetSentItemsDelay changes it.
	SentItemsDelay time.Duration
	// SubscriptionMaxLifetime caps a change-notification subscription's
	// expirationDateTime (graph_subscriptions.go). Default
	// DefaultSubscriptionMaxLifetime (10,080 minutes).
	SubscriptionMaxLifetime time.Duration
	// AllowHTTPLoopback accepts http:// notification URLs on a loopback
	// host. Graph requires https; this exists for tests and the demo only.
	AllowHTTPLoopback bool
	// NotifyHTTPClient sends validation requests and notifications to
	// subscribers (an httptest TLS server's Client, say). Default
	// http.DefaultClient; the documented timeouts (10 s validation, 3 s
	// notifications) come from contexts.
	NotifyHTTPClient *http.Client
	// OnNotify, when set, hears every request the sim made (or, for a
	// dropped notification, did not make) to a subscriber, after it ended.
	// Tests synchronise on it. It is called without the sim's lock.
	OnNotify func(NotifyAttempt)
}

// MoveEvent is one message leaving a folder, for Options.OnMove. Folders
// are display paths below the root ("Inbox/Support", "Deleted Items");
// To is "" when the message was purged.
type MoveEvent struct {
	Mailbox     string
	ImmutableID string
	From, To    string
}

// Sim is an in-memory Entra ID tenant plus Exchange Online mail behind Graph.
// It is an http.Handler and safe for concurrent use.
type Sim struct {
	opts Options
	mux  *http.ServeMux

	mu sync.Mutex // guards everything below and the mailboxes' contents
	// offset is added to opts.Now: Advance moves the clock forward.
	clockMu sync.Mutex
	offset  time.Duration // guarded by clockMu
	// tenants by id; tenantAlias maps lower-cased domains to ids.
	tenants     map[string]*Tenant
	tenantAlias map[string]string
	apps        map[string]*App // by client id
	users       map[string]*User
	// upnIndex maps a lower-cased UPN or mail address to a user id.
	upnIndex map[string]string
	// mailboxes by lower-cased address, and by object id.
	mailboxes   map[string]*Mailbox
	mailboxByID map[string]*Mailbox
	// access tokens issued by the Entra side and checked by the Graph side.
	accessTokens map[string]*AccessGrant

	entra entraState // authorization codes, refresh tokens, signing key (entra*.go)
	graph graphState // throttling, faults, counters, delta state (graph*.go)
}

// Tenant is one Entra ID directory.
type Tenant struct {
	ID      string   // GUID
	Domains []string // verified domains, e.g. contoso.onmicrosoft.com
	// AdminConsentRequired: users cannot consent to the app themselves; the
	// authorize endpoint shows "Need admin approval" (AADSTS90094).
	AdminConsentRequired bool
}

// App is an app registration (a confidential web client).
type App struct {
	ClientID     string
	TenantID     string // home tenant
	MultiTenant  bool
	RedirectURIs []string
	Secrets      []*ClientSecret
	DisplayName  string
}

// ClientSecret is one secret of an app; ID is what Entra shows as
// "Secret ID", Value what the operator must configure.
type ClientSecret struct {
	ID      string
	Value   string
	Expires time.Time // zero: never
}

// User is a directory user who can sign in.
type User struct {
	ID          string // object id (oid), GUID
	TenantID    string
	UPN         string
	DisplayName string
	Password    string
	// TokensValidFrom: refresh tokens issued before it are revoked
	// (password change, "revoke sessions"): AADSTS50173.
	TokensValidFrom time.Time
	// MFARequired makes the next refresh fail with AADSTS50076.
	MFARequired bool
	// Consented scopes per client id; empty until the user consents.
	Consent map[string][]string
	// Disabled users cannot sign in.
	Disabled bool
}

// Mailbox is an Exchange Online mailbox: a user's own, or a shared one that
// users reach through delegation.
type Mailbox struct {
	ID          string // object id; for a user mailbox, the user's id
	Address     string // primary SMTP address
	DisplayName string
	Shared      bool
	// Enabled false answers 404 MailboxNotEnabledForRESTAPI (no licence,
	// soft-deleted, on-premises).
	Enabled bool
	// FullAccess and SendAs hold user ids granted those rights.
	FullAccess map[string]bool
	SendAs     map[string]bool

	data *mailData // folders, messages, delta state (graph_mailbox.go)
}

// AccessGrant is what an access token stands for.
type AccessGrant struct {
	Token    string
	TenantID string
	ClientID string
	UserID   string
	Scopes   []string // as granted, e.g. "Mail.ReadWrite"
	Expires  time.Time
}

// HasScope reports whether the grant holds scope (case-insensitive, with or
// without the https://graph.microsoft.com/ prefix).
func (g *AccessGrant) HasScope(scope string) bool {
	for _, s := range g.Scopes {
		s = strings.TrimPrefix(strings.ToLower(s), "https://graph.microsoft.com/")
		if s == strings.ToLower(scope) {
			return true
		}
	}
	return false
}

// setDefault sets *v to def when it is zero.
func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// New returns a Sim with an empty directory; see Load and the Add methods.
func New(opts Options) *Sim {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = 75 * time.Minute
	}
	if opts.RefreshTokenInactivity == 0 {
		opts.RefreshTokenInactivity = 90 * 24 * time.Hour
	}
	opts.NoThrottle = strings.TrimSpace(opts.NoThrottle)
	setDefault(&opts.MailboxConcurrency, DefaultMailboxConcurrency)
	setDefault(&opts.MailboxBudget, DefaultMailboxBudget)
	setDefault(&opts.MailboxWindow, DefaultMailboxWindow)
	setDefault(&opts.MailboxUploadBytes, DefaultMailboxUploadBytes)
	setDefault(&opts.MailboxUploadWindow, DefaultMailboxUploadWindow)
	setDefault(&opts.AppBudget, DefaultAppBudget)
	setDefault(&opts.AppWindow, DefaultAppWindow)
	setDefault(&opts.SubscriptionMaxLifetime, DefaultSubscriptionMaxLifetime)
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	s := &Sim{
		opts:         opts,
		mux:          http.NewServeMux(),
		tenants:      map[string]*Tenant{},
		tenantAlias:  map[string]string{},
		apps:         map[string]*App{},
		users:        map[string]*User{},
		upnIndex:     map[string]string{},
		mailboxes:    map[string]*Mailbox{},
		mailboxByID:  map[string]*Mailbox{},
		accessTokens: map[string]*AccessGrant{},
	}
	s.initEntra()
	s.initGraph()
	s.registerEntra(s.mux)
	s.registerGraph(s.mux)
	s.registerControl(s.mux)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// now reads the sim clock; it takes only clockMu, so callers may hold s.mu.
func (s *Sim) now() time.Time {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	return s.opts.Now().Add(s.offset)
}

// baseURL is the scheme and host the request came in on, e.g.
// http://127.0.0.1:43121, used for every link the sim hands out.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// newGUID returns a random RFC 4122 version-4 GUID.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// randomToken returns n random bytes, hex encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// AddTenant registers a tenant. The first domain is its default.
func (s *Sim) AddTenant(t Tenant) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ID == "" {
		t.ID = newGUID()
	}
	tt := t
	s.tenants[t.ID] = &tt
	for _, d := range t.Domains {
		s.tenantAlias[strings.ToLower(d)] = t.ID
	}
	return &tt
}

// AddApp registers an app registration.
func (s *Sim) AddApp(a App) *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ClientID == "" {
		a.ClientID = newGUID()
	}
	aa := a
	s.apps[a.ClientID] = &aa
	return &aa
}

// AddUser registers a user and, unless noMailbox, the user's own mailbox.
func (s *Sim) AddUser(u User, noMailbox bool) *User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newGUID()
	}
	if u.Consent == nil {
		u.Consent = map[string][]string{}
	}
	uu := u
	s.users[u.ID] = &uu
	s.upnIndex[strings.ToLower(u.UPN)] = u.ID
	if !noMailbox {
		s.addMailboxLocked(&Mailbox{ID: u.ID, Address: u.UPN, DisplayName: u.DisplayName, Enabled: true})
	}
	return &uu
}

// AddSharedMailbox registers a shared mailbox; grant rights with Delegate.
func (s *Sim) AddSharedMailbox(address, displayName string) *Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addMailboxLocked(&Mailbox{ID: newGUID(), Address: address, DisplayName: displayName, Shared: true, Enabled: true})
}

func (s *Sim) addMailboxLocked(mb *Mailbox) *Mailbox {
	if mb.FullAccess == nil {
		mb.FullAccess = map[string]bool{}
	}
	if mb.SendAs == nil {
		mb.SendAs = map[string]bool{}
	}
	mb.data = newMailData(s, mb)
	s.mailboxes[strings.ToLower(mb.Address)] = mb
	s.mailboxByID[mb.ID] = mb
	return mb
}

// Delegate grants (or with grant false, removes) a user's Full Access and
// Send As rights on a mailbox.
func (s *Sim) Delegate(mailbox, userUPN string, fullAccess, sendAs bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[strings.ToLower(mailbox)]
	if mb == nil {
		return fmt.Errorf("no mailbox %q", mailbox)
	}
	uid, ok := s.upnIndex[strings.ToLower(userUPN)]
	if !ok {
		return fmt.Errorf("no user %q", userUPN)
	}
	setOrDelete(mb.FullAccess, uid, fullAccess)
	setOrDelete(mb.SendAs, uid, sendAs)
	return nil
}

func setOrDelete(m map[string]bool, k string, v bool) {
	if v {
		m[k] = true
	} else {
		delete(m, k)
	}
}

// lookupTenant resolves a {tenant} path segment (GUID or domain) to a tenant;
// nil when unknown. "common", "organizations" and "consumers" are handled by
// the callers.
func (s *Sim) lookupTenantLocked(seg string) *Tenant {
	if t := s.tenants[seg]; t != nil {
		return t
	}
	if id, ok := s.tenantAlias[strings.ToLower(seg)]; ok {
		return s.tenants[id]
	}
	return nil
}

// userByUPNLocked finds a user by UPN (case-insensitive).
func (s *Sim) userByUPNLocked(upn string) *User {
	if id, ok := s.upnIndex[strings.ToLower(upn)]; ok {
		return s.users[id]
	}
	return nil
}

// issueAccessTokenLocked records a grant and returns the token that names it.
// The token is a JWT-shaped string (three dot-separated parts) so clients
// that peek at it see the usual shape; only the sim's table gives it meaning.
func (s *Sim) issueAccessTokenLocked(tenantID, clientID, userID string, scopes []string) *AccessGrant {
	tok := "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0." + randomToken(24) + "." + randomToken(16)
	g := &AccessGrant{
		Token: tok, TenantID: tenantID, ClientID: clientID, UserID: userID,
		Scopes: append([]string(nil), scopes...), Expires: s.now().Add(s.opts.AccessTokenTTL),
	}
	s.accessTokens[tok] = g
	return g
}

// authenticate checks the bearer token on a Graph request. On failure it has
// already written the documented 401 and returns nil.
func (s *Sim) authenticate(w http.ResponseWriter, r *http.Request) *AccessGrant {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		writeUnauthorized(w, r, "Access token is empty.")
		return nil
	}
	tok = strings.TrimSpace(tok)
	if !strings.Contains(tok, ".") {
		writeUnauthorized(w, r, "IDX14100: JWT is not well formed, there are no dots (.).")
		return nil
	}
	s.mu.Lock()
	g := s.accessTokens[tok]
	var expired bool
	if g != nil {
		expired = !s.now().Before(g.Expires)
	}
	s.mu.Unlock()
	switch {
	case g == nil:
		writeUnauthorized(w, r, "Access token validation failure.")
		return nil
	case expired:
		writeUnauthorized(w, r, "Access token has expired or is not yet valid.")
		return nil
	}
	return g
}

func writeUnauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
}
