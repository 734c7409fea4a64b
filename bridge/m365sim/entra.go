package m365sim

// The Entra ID v2.0 side of the sim: tenant resolution, scopes, AADSTS errors
// and the routes. The flows live in entra_authorize.go and entra_token.go,
// signing and discovery in entra_jwt.go, the control API in
// entra_control.go. Facts: shared/reference/graph-and-entra.md section A.

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// entraState holds authorization codes, refresh tokens, the signing key and
// the token counters. Everything but the key is guarded by Sim.mu.
type entraState struct {
	mux *http.ServeMux // the Entra routes, behind a "/" fallback on the sim's mux
	// outage, when set, answers every matching token request (SetEntraOutage).
	outage *EntraOutage

	codes         map[string]*authCode
	refreshTokens map[string]*refreshGrant
	// seq orders sign-ins against revocations and MFA switches, so they
	// work on a frozen clock: every sign-in, revocation and RequireMFA
	// takes the next number.
	seq int64
	// mfaSeq is seq when RequireMFA was last turned on, per user id: refresh
	// tokens from sign-ins before it fail with AADSTS50076.
	mfaSeq map[string]int64
	// revokedSeq and revokedAt record the last revocation per user id (see
	// revokedLocked).
	revokedSeq map[string]int64
	revokedAt  map[string]time.Time
	// mfaPolicy is the Conditional Access policy id in AADSTS50076 claims.
	mfaPolicy string
	// adminConsent holds tenant-wide consent by tenant id, then client id.
	adminConsent map[string]map[string]bool
	counters     EntraCounters
	// controlRoutes lists the control endpoints for GET /_sim/.
	controlRoutes []controlRoute

	keyOnce sync.Once
	key     *rsa.PrivateKey
	kid     string
}

func (s *Sim) initEntra() {
	s.entra = entraState{
		mux:           http.NewServeMux(),
		codes:         map[string]*authCode{},
		refreshTokens: map[string]*refreshGrant{},
		mfaSeq:        map[string]int64{},
		revokedSeq:    map[string]int64{},
		revokedAt:     map[string]time.Time{},
		mfaPolicy:     newGUID(),
		adminConsent:  map[string]map[string]bool{},
		counters:      newEntraCounters(),
	}
}

// registerEntra mounts the Entra routes. They begin with a {tenant} wildcard,
// which would conflict with Graph's /v1.0/... patterns on one ServeMux, so
// they live on their own mux reached through the least specific pattern "/".
func (s *Sim) registerEntra(mux *http.ServeMux) {
	m := s.entra.mux
	m.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.handleAuthorize)
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", s.handleAuthorize)
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	m.HandleFunc("GET /{tenant}/oauth2/v2.0/logout", s.handleLogout)
	m.HandleFunc("GET /{tenant}/v2.0/adminconsent", s.handleAdminConsentEndpoint)
	m.HandleFunc("POST /{tenant}/v2.0/adminconsent", s.handleAdminConsentEndpoint)
	m.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleDiscovery)
	m.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleJWKS)
	mux.Handle("/", m)
	mux.HandleFunc("GET /oidc/userinfo", s.handleUserInfo)
}

// Entra constants.
const (
	loginHost    = "https://login.microsoftonline.com"
	graphAppID   = "00000003-0000-0000-c000-000000000000"
	graphPrefix  = "https://graph.microsoft.com/"
	codeLifetime = 10 * time.Minute // ENTRA: "typically expire after about 10 minutes"
	idTokenTTL   = time.Hour
)

// tenantKind says what a {tenant} path segment named.
type tenantKind int

const (
	tenantSpecific tenantKind = iota
	tenantCommon
	tenantOrganizations
	tenantConsumers
)

// tenantRef is a resolved {tenant} path segment.
type tenantRef struct {
	seg  string
	kind tenantKind
	t    *Tenant // for tenantSpecific
}

// multi reports whether the segment is one of the multi-tenant aliases.
func (tr tenantRef) multi() bool { return tr.kind != tenantSpecific }

// resolveTenantLocked resolves {tenant}; an unknown GUID or domain is
// AADSTS90002.
func (s *Sim) resolveTenantLocked(seg string) (tenantRef, *aadError) {
	switch strings.ToLower(seg) {
	case "common":
		return tenantRef{seg: seg, kind: tenantCommon}, nil
	case "organizations":
		return tenantRef{seg: seg, kind: tenantOrganizations}, nil
	case "consumers":
		return tenantRef{seg: seg, kind: tenantConsumers}, nil
	}
	if t := s.lookupTenantLocked(seg); t != nil {
		return tenantRef{seg: seg, kind: tenantSpecific, t: t}, nil
	}
	return tenantRef{}, errTenantNotFound(seg)
}

// checkAppTenantLocked applies the app's audience to the path's tenant:
// a single-tenant app works only on its home tenant's path.
func checkAppTenant(app *App, tr tenantRef) *aadError {
	if app.MultiTenant {
		return nil
	}
	if tr.multi() {
		return errNotMultiTenant(app)
	}
	if tr.t.ID != app.TenantID {
		return errAppNotFound(app.ClientID, tr.seg)
	}
	return nil
}

// knownScopes are the scopes the sim grants, in their documented spelling;
// requests match them case-insensitively, with or without the Graph prefix.
var knownScopes = []string{
	"openid", "profile", "email", "offline_access",
	"User.Read",
	"Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite", "Mail.Send",
	"Mail.Read.Shared", "Mail.ReadBasic.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared",
}

var scopeIndex = func() map[string]string {
	m := map[string]string{}
	for _, s := range knownScopes {
		m[strings.ToLower(s)] = s
	}
	return m
}()

// isOIDCScope reports the scopes that name no resource.
func isOIDCScope(s string) bool {
	switch s {
	case "openid", "profile", "email", "offline_access":
		return true
	}
	return false
}

// parseScopes splits a scope parameter into canonical scope names, in order
// and without duplicates. https://graph.microsoft.com/.default stands for
// every Graph scope the sim knows. bad is the first unknown scope.
func parseScopes(param string) (scopes []string, bad string) {
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			scopes = append(scopes, s)
		}
	}
	for _, f := range strings.Fields(param) {
		name := f
		if len(name) > len(graphPrefix) && strings.EqualFold(name[:len(graphPrefix)], graphPrefix) {
			name = name[len(graphPrefix):]
			if strings.EqualFold(name, ".default") {
				for _, k := range knownScopes {
					if !isOIDCScope(k) {
						add(k)
					}
				}
				continue
			}
		}
		c, ok := scopeIndex[strings.ToLower(name)]
		if !ok {
			return nil, f
		}
		add(c)
	}
	return scopes, ""
}

// hasScope reports whether list holds scope (canonical names).
func hasScope(list []string, scope string) bool { return contains(list, scope) }

// missingScopes returns the scopes in want that have is lacking.
func missingScopes(want, have []string) []string {
	var out []string
	for _, s := range want {
		if !hasScope(have, s) {
			out = append(out, s)
		}
	}
	return out
}

// unionScopes returns a ∪ b in order, without duplicates.
func unionScopes(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		if !hasScope(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// responseScopes is what a token response's scope field and the access
// grant carry: the requested scopes without offline_access.
func responseScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		if s != "offline_access" {
			out = append(out, s)
		}
	}
	return out
}

// consentedLocked returns the scopes a user has granted an app, including
// tenant-wide admin consent (which covers every scope).
func (s *Sim) consentedLocked(u *User, clientID string) (scopes []string, admin bool) {
	if s.entra.adminConsent[u.TenantID][clientID] {
		return knownScopes, true
	}
	return u.Consent[clientID], false
}

// candidateUsersLocked lists who may sign in through a request, sorted by
// UPN: the path tenant's users, or everyone for a multi-tenant app on
// common/organizations. Personal accounts (consumers) do not exist here.
func (s *Sim) candidateUsersLocked(app *App, tr tenantRef) []*User {
	var out []*User
	for _, u := range s.users {
		switch {
		case tr.kind == tenantConsumers:
			continue
		case tr.kind == tenantSpecific && u.TenantID != tr.t.ID:
			continue
		case !app.MultiTenant && u.TenantID != app.TenantID:
			continue
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].UPN) < strings.ToLower(out[j].UPN) })
	return out
}

// tenantNameLocked is a tenant's default domain, for messages.
func (s *Sim) tenantNameLocked(id string) string {
	if t := s.tenants[id]; t != nil && len(t.Domains) > 0 {
		return t.Domains[0]
	}
	return id
}

// aadError is one AADSTS error: the OAuth error code, the AADSTS number and
// its message, and the HTTP status the token endpoint answers with.
type aadError struct {
	status   int
	err      string // invalid_grant, invalid_client, ...
	code     int    // AADSTS number
	msg      string // text after "AADSTSnnnn: "
	suberror string
	claims   string
	subcode  string // authorize redirects: error_subcode
}

func (e *aadError) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.code, e.msg) }

// aad builds an aadError; invalid_client is 401, everything else 400
// (reference A.6).
func aad(errCode string, code int, format string, args ...any) *aadError {
	status := http.StatusBadRequest
	if errCode == "invalid_client" {
		status = http.StatusUnauthorized
	}
	return &aadError{status: status, err: errCode, code: code, msg: fmt.Sprintf(format, args...)}
}

// The AADSTS errors the sim produces, with the reference's wording.
func errTenantNotFound(seg string) *aadError {
	return aad("invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", seg)
}

func errAppNotFound(clientID, tenant string) *aadError {
	return aad("unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)
}

func errNotMultiTenant(app *App) *aadError {
	return aad("invalid_request", 50194, "Application '%s'(%s) isn't configured as a multitenant application. Usage of the /common endpoint isn't supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multitenant.", app.ClientID, app.DisplayName)
}

func errMissingParam(name string) *aadError {
	return aad("invalid_request", 900144, "The request body must contain the following parameter: '%s'.", name)
}

func errInvalidScope(scope string) *aadError {
	return aad("invalid_scope", 70011, "The provided value for the input parameter 'scope' isn't valid. The scope '%s' isn't valid.", scope)
}

func errConsentRequired(app *App) *aadError {
	e := aad("invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", app.ClientID, app.DisplayName)
	e.suberror = "consent_required"
	return e
}

func errDeclined() *aadError {
	e := aad("access_denied", 65004, "User declined to consent to access the app.")
	e.subcode = "cancel"
	return e
}

func errUserDisabled() *aadError {
	return aad("invalid_grant", 50057, "The user account is disabled.")
}

// dotnetTime formats t the way AADSTS messages print instants.
func dotnetTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// timespan formats d as a .NET TimeSpan: [d.]hh:mm:ss.
func timespan(d time.Duration) string {
	d = d.Round(time.Second)
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	hms := fmt.Sprintf("%02d:%02d:%02d", int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60)
	if days > 0 {
		return fmt.Sprintf("%d.%s", days, hms)
	}
	return hms
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// errorIDs are the trace and correlation ids and timestamp of one error.
type errorIDs struct {
	Trace, Correlation, Timestamp string
}

// newErrorIDs makes ids for an error answer; a client-request-id header that
// is a GUID becomes the correlation id, as Entra does.
func (s *Sim) newErrorIDs(r *http.Request) errorIDs {
	corr := r.Header.Get("client-request-id")
	if !guidRE.MatchString(corr) {
		corr = newGUID()
	}
	return errorIDs{Trace: newGUID(), Correlation: corr, Timestamp: s.now().UTC().Format("2006-01-02 15:04:05Z")}
}

// description is error_description: the AADSTS text and the id lines.
func (e *aadError) description(ids errorIDs) string {
	return fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", e.Error(), ids.Trace, ids.Correlation, ids.Timestamp)
}

func (e *aadError) errorURI() string {
	return fmt.Sprintf("%s/error?code=%d", loginHost, e.code)
}
