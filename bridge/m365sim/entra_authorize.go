package m365sim

// GET/POST /{tenant}/oauth2/v2.0/authorize: request validation, the sign-in
// and consent page, auto-approval, and the redirect back to the app
// (reference A.2).

import (
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// authRequest is a validated authorize request.
type authRequest struct {
	tr           tenantRef
	app          *App
	redirectURI  string
	responseMode string // query, fragment or form_post
	scopes       []string
	state        string
	nonce        string
	prompt       string
	loginHint    string
	challenge    string
	method       string // S256 or plain; empty without PKCE
	// params are the app's original parameters, carried through the
	// sign-in form.
	params url.Values
}

// authCode is an issued authorization code.
type authCode struct {
	tenantID, clientID, userID string
	redirectURI                string
	scopes                     []string
	challenge, method          string
	nonce                      string
	authTime, expires          time.Time
	authSeq                    int64
	redeemed                   bool
}

// Form fields of the sign-in page; the app's own parameters never start
// with "sim_".
const (
	fieldAction   = "sim_action" // accept, cancel, back
	fieldUser     = "sim_user"
	fieldPassword = "sim_password"
	paramAuto     = "sim_auto" // 1 (approve), decline, 0 (show the page even with AutoApprove)
)

func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeErrorPage(w, r, aad("invalid_request", 90023, "The authentication service request isn't valid: %v.", err))
		return
	}
	p := r.Form
	s.mu.Lock()
	defer s.mu.Unlock()
	req, pageErr, redirErr := s.parseAuthorizeLocked(r.PathValue("tenant"), p)
	switch {
	case pageErr != nil:
		s.countAuthorize(pageErr)
		s.writeErrorPage(w, r, pageErr)
		return
	case redirErr != nil:
		s.countAuthorize(redirErr)
		s.redirectError(w, r, req, redirErr)
		return
	}

	if r.Method == http.MethodPost && p.Get(fieldAction) != "" {
		switch p.Get(fieldAction) {
		case "accept":
			if p.Get(fieldUser) == "" {
				s.writeSignInPage(w, r, req)
				return
			}
			u := s.userByUPNLocked(p.Get(fieldUser))
			if u == nil {
				s.countAuthorize(errUnknownUser(p.Get(fieldUser), req.tr.seg))
				s.writeErrorPage(w, r, errUnknownUser(p.Get(fieldUser), req.tr.seg))
				return
			}
			s.signInLocked(w, r, req, u, p.Get(fieldPassword), true)
		case "cancel", "back":
			s.countAuthorize(errDeclined())
			s.redirectError(w, r, req, errDeclined())
		default:
			s.writeErrorPage(w, r, aad("invalid_request", 90023, "The authentication service request isn't valid: unknown %s %q.", fieldAction, p.Get(fieldAction)))
		}
		return
	}

	if req.prompt == "none" {
		s.silentSignInLocked(w, r, req)
		return
	}
	auto := p.Get(paramAuto)
	if auto == "decline" {
		s.countAuthorize(errDeclined())
		s.redirectError(w, r, req, errDeclined())
		return
	}
	if auto == "1" || auto == "true" || (s.opts.AutoApprove && auto != "0") {
		u, e := s.autoUserLocked(req)
		if e != nil {
			s.countAuthorize(e)
			s.writeErrorPage(w, r, e)
			return
		}
		s.signInLocked(w, r, req, u, "", false)
		return
	}
	s.entra.counters.Authorize["sign_in_page"]++
	s.writeSignInPage(w, r, req)
}

// parseAuthorizeLocked validates an authorize request. Errors about the
// tenant, the app and the redirect URI are shown on a page (pageErr), since
// the redirect URI cannot be trusted yet; later ones go back to the app
// (redirErr, with req filled enough to redirect).
func (s *Sim) parseAuthorizeLocked(seg string, p url.Values) (req *authRequest, pageErr, redirErr *aadError) {
	tr, e := s.resolveTenantLocked(seg)
	if e != nil {
		return nil, e, nil
	}
	clientID := p.Get("client_id")
	if clientID == "" {
		return nil, errMissingParam("client_id"), nil
	}
	app := s.apps[clientID]
	if app == nil {
		return nil, errAppNotFound(clientID, seg), nil
	}
	if e := checkAppTenant(app, tr); e != nil {
		return nil, e, nil
	}
	if tr.kind == tenantConsumers {
		return nil, aad("invalid_request", 9002331, "Application '%s'(%s) is configured for use by Azure Active Directory users only. Please do not use the /consumers endpoint to serve this request.", app.ClientID, app.DisplayName), nil
	}
	ru := p.Get("redirect_uri")
	switch {
	case len(app.RedirectURIs) == 0:
		return nil, aad("invalid_request", 500113, "No reply address is registered for the application."), nil
	case ru == "":
		return nil, aad("invalid_request", 900971, "No reply address provided."), nil
	case !contains(app.RedirectURIs, ru):
		return nil, aad("invalid_request", 50011, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", ru, app.ClientID), nil
	}

	req = &authRequest{
		tr: tr, app: app, redirectURI: ru, responseMode: "query",
		state: p.Get("state"), nonce: p.Get("nonce"), prompt: p.Get("prompt"),
		loginHint: p.Get("login_hint"), challenge: p.Get("code_challenge"),
		params: url.Values{},
	}
	for k, v := range p {
		if !strings.HasPrefix(k, "sim_") {
			req.params[k] = v
		}
	}
	switch m := p.Get("response_mode"); m {
	case "", "query":
	case "fragment", "form_post":
		req.responseMode = m
	default:
		return req, nil, aad("invalid_request", 90023, "The authentication service request isn't valid: response_mode '%s' is not supported; use query, fragment or form_post.", m)
	}
	switch rt := p.Get("response_type"); rt {
	case "":
		return req, nil, errMissingParam("response_type")
	case "code":
	default:
		e := aad("unsupported_response_type", 700054, "response_type '%s' is not enabled for the application.", rt)
		return req, nil, e
	}
	if p.Get("scope") == "" {
		return req, nil, errMissingParam("scope")
	}
	scopes, bad := parseScopes(p.Get("scope"))
	if bad != "" {
		return req, nil, errInvalidScope(bad)
	}
	req.scopes = scopes
	if e := req.checkCodeChallenge(p.Get("code_challenge_method")); e != nil {
		return req, nil, e
	}
	switch req.prompt {
	case "", "login", "none", "consent", "select_account":
	default:
		return req, nil, aad("invalid_request", 90023, "The authentication service request isn't valid: prompt '%s' is not supported; use login, none, consent or select_account.", req.prompt)
	}
	return req, nil, nil
}

// checkCodeChallenge checks the request's PKCE code_challenge and its
// method (plain by default, or S256) and records the method in req.
func (req *authRequest) checkCodeChallenge(method string) *aadError {
	switch m := method; {
	case req.challenge == "" && m != "":
		return errMissingParam("code_challenge")
	case req.challenge == "":
	case m == "" || m == "plain":
		req.method = "plain"
	case m == "S256":
		req.method = "S256"
	default:
		return aad("invalid_request", 90023, "The authentication service request isn't valid: code_challenge_method '%s' is not supported; use S256 or plain.", m)
	}
	if n := len(req.challenge); req.challenge != "" && (n < 43 || n > 128) {
		return aad("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
	}
	return nil
}

func errUnknownUser(upn, tenant string) *aadError {
	return aad("invalid_request", 50034, "The user account %s does not exist in the %s directory. To sign into this application, the account must be added to the directory.", upn, tenant)
}

// autoUserLocked picks who auto-approval signs in as: the login_hint user,
// else the first user (by UPN) with an enabled mailbox.
func (s *Sim) autoUserLocked(req *authRequest) (*User, *aadError) {
	if req.loginHint != "" {
		u := s.userByUPNLocked(req.loginHint)
		if u == nil {
			return nil, errUnknownUser(req.loginHint, req.tr.seg)
		}
		return u, nil
	}
	for _, u := range s.candidateUsersLocked(req.app, req.tr) {
		if mb := s.mailboxByID[u.ID]; mb != nil && mb.Enabled {
			return u, nil
		}
	}
	return nil, aad("invalid_request", 50034, "The sim cannot auto-approve: no user with a mailbox in %s; add one or pass login_hint.", req.tr.seg)
}

// signInLocked signs user in (interactive: through the page), checks the
// consent rules and redirects with a code, or shows why it cannot.
func (s *Sim) signInLocked(w http.ResponseWriter, r *http.Request, req *authRequest, u *User, password string, interactive bool) {
	if e := s.checkSignInLocked(req, u, password); e != nil {
		s.countAuthorize(e)
		s.writeErrorPage(w, r, e)
		return
	}
	have, admin := s.consentedLocked(u, req.app.ClientID)
	missing := missingScopes(req.scopes, have)
	if t := s.tenants[u.TenantID]; t != nil && t.AdminConsentRequired && !admin && len(missing) > 0 {
		if interactive {
			e := aad("access_denied", 90094, "The grant requires admin permission.")
			s.countAuthorize(e)
			s.writeAdminApprovalPage(w, r, req, e)
			return
		}
		// Auto mode: the user backs out of "Need admin approval".
		s.countAuthorize(errDeclined())
		s.redirectError(w, r, req, errDeclined())
		return
	}
	if !admin {
		u.Consent[req.app.ClientID] = unionScopes(u.Consent[req.app.ClientID], req.scopes)
	}
	s.issueCodeLocked(w, r, req, u)
}

// checkSignInLocked applies the credential, account and tenant rules.
func (s *Sim) checkSignInLocked(req *authRequest, u *User, password string) *aadError {
	switch {
	case password != "" && u.Password != "" && password != u.Password:
		return aad("invalid_request", 50126, "Error validating credentials due to invalid username or password.")
	case u.Disabled:
		return aad("invalid_request", 50057, "The user account is disabled.")
	}
	allowed := false
	for _, c := range s.candidateUsersLocked(req.app, req.tr) {
		allowed = allowed || c == u
	}
	if !allowed {
		return aad("access_denied", 50020, "User account '%s' from identity provider 'https://sts.windows.net/%s/' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.", u.UPN, u.TenantID, req.tr.seg, req.app.ClientID, req.app.DisplayName)
	}
	return nil
}

// silentSignInLocked answers prompt=none: the login_hint user stands for
// the browser session the sim does not keep.
func (s *Sim) silentSignInLocked(w http.ResponseWriter, r *http.Request, req *authRequest) {
	u := s.userByUPNLocked(req.loginHint)
	var e *aadError
	switch {
	case u == nil:
		e = aad("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
	case s.checkSignInLocked(req, u, "") != nil:
		e = aad("interaction_required", 50058, "A silent sign-in request was sent but the signed-in user cannot use this application.")
	case u.MFARequired:
		e = aad("interaction_required", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", graphAppID)
	default:
		have, _ := s.consentedLocked(u, req.app.ClientID)
		if len(missingScopes(req.scopes, have)) > 0 {
			e = errConsentRequired(req.app)
			e.err = "consent_required"
		}
	}
	if e != nil {
		s.countAuthorize(e)
		s.redirectError(w, r, req, e)
		return
	}
	s.issueCodeLocked(w, r, req, u)
}

// issueCodeLocked records a code and redirects to the app with it.
func (s *Sim) issueCodeLocked(w http.ResponseWriter, r *http.Request, req *authRequest, u *User) {
	now := s.now()
	s.entra.seq++
	code := opaqueToken("0.A", 96)
	s.entra.codes[code] = &authCode{
		tenantID: u.TenantID, clientID: req.app.ClientID, userID: u.ID,
		redirectURI: req.redirectURI, scopes: req.scopes,
		challenge: req.challenge, method: req.method, nonce: req.nonce,
		authTime: now, expires: now.Add(codeLifetime), authSeq: s.entra.seq,
	}
	s.entra.counters.Authorize["code"]++
	v := url.Values{"code": {code}, "session_state": {newGUID()}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	writeAuthRedirect(w, req, v)
}

// redirectError sends an error back to the app (reference A.2 error
// redirect).
func (s *Sim) redirectError(w http.ResponseWriter, r *http.Request, req *authRequest, e *aadError) {
	ids := s.newErrorIDs(r)
	v := url.Values{
		"error":             {e.err},
		"error_description": {e.description(ids)},
		"error_uri":         {e.errorURI()},
	}
	if e.subcode != "" {
		v.Set("error_subcode", e.subcode)
	}
	if req.state != "" {
		v.Set("state", req.state)
	}
	writeAuthRedirect(w, req, v)
}

// writeAuthRedirect delivers v to the redirect URI in the request's
// response mode.
func writeAuthRedirect(w http.ResponseWriter, req *authRequest, v url.Values) {
	w.Header().Set("Cache-Control", "no-store, no-cache")
	switch req.responseMode {
	case "form_post":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		formPostTmpl.Execute(w, map[string]any{"Action": req.redirectURI, "Fields": v})
	case "fragment":
		w.Header().Set("Location", strings.SplitN(req.redirectURI, "#", 2)[0]+"#"+v.Encode())
		w.WriteHeader(http.StatusFound)
	default:
		u, err := url.Parse(req.redirectURI)
		if err != nil { // registered URIs are validated when added; be safe anyway
			http.Error(w, "bad redirect URI", http.StatusInternalServerError)
			return
		}
		q := u.Query()
		for k, vs := range v {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusFound)
	}
}

// countAuthorize counts an authorize outcome by its AADSTS code.
func (s *Sim) countAuthorize(e *aadError) {
	s.entra.counters.Authorize[e.Error()[:strings.Index(e.Error(), ":")]]++
}

// opaqueToken returns prefix followed by n random bytes, base64url.
func opaqueToken(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// writeErrorPage shows an error that is not redirected: 400 and an HTML page
// in the shape of Entra's "Sorry, but we're having trouble signing you in".
func (s *Sim) writeErrorPage(w http.ResponseWriter, r *http.Request, e *aadError) {
	ids := s.newErrorIDs(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(http.StatusBadRequest)
	errorPageTmpl.Execute(w, map[string]any{"Err": e, "IDs": ids, "Code": e.code})
}

func (s *Sim) writeSignInPage(w http.ResponseWriter, r *http.Request, req *authRequest) {
	type userRow struct {
		UPN, Name string
		Selected  bool
	}
	var users []userRow
	for _, u := range s.candidateUsersLocked(req.app, req.tr) {
		users = append(users, userRow{UPN: u.UPN, Name: u.DisplayName, Selected: strings.EqualFold(u.UPN, req.loginHint)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	signInTmpl.Execute(w, map[string]any{
		"App": req.app, "Scopes": req.scopes, "Users": users, "Fields": req.params, "Action": r.URL.Path,
	})
}

func (s *Sim) writeAdminApprovalPage(w http.ResponseWriter, r *http.Request, req *authRequest, e *aadError) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	adminApprovalTmpl.Execute(w, map[string]any{
		"App": req.app, "Err": e, "Fields": req.params, "Action": r.URL.Path,
	})
}

var errorPageTmpl = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html><head><title>Sign in to your account</title></head>
<body><h1>Sign in</h1>
<p>Sorry, but we're having trouble signing you in.</p>
<p id="error">{{.Err.Error}}</p>
<dl><dt>Request Id</dt><dd>{{.IDs.Trace}}</dd><dt>Correlation Id</dt><dd>{{.IDs.Correlation}}</dd>
<dt>Timestamp</dt><dd>{{.IDs.Timestamp}}</dd><dt>Error code</dt><dd id="code">{{.Code}}</dd></dl>
</body></html>
`))

var signInTmpl = template.Must(template.New("signin").Parse(`<!DOCTYPE html>
<html><head><title>Sign in to your account</title></head>
<body><h1>m365sim: sign in and consent</h1>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Fields}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<fieldset><legend>Pick an account</legend>
{{range .Users}}<label><input type="radio" name="sim_user" value="{{.UPN}}"{{if .Selected}} checked{{end}}> {{.Name}} &lt;{{.UPN}}&gt;</label><br>
{{else}}<p>No accounts can sign in to this application here.</p>
{{end}}</fieldset>
<p><label>Password (optional) <input type="password" name="sim_password"></label></p>
<p><strong>{{.App.DisplayName}}</strong> ({{.App.ClientID}}) wants to:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<button type="submit" name="sim_action" value="accept">Accept</button>
<button type="submit" name="sim_action" value="cancel">Cancel</button>
</form></body></html>
`))

var adminApprovalTmpl = template.Must(template.New("admin").Parse(`<!DOCTYPE html>
<html><head><title>Need admin approval</title></head>
<body><h1>Need admin approval</h1>
<p>{{.App.DisplayName}} needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<p id="error">{{.Err.Error}}</p>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Fields}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<button type="submit" name="sim_action" value="back">Back to app</button>
</form></body></html>
`))

var formPostTmpl = template.Must(template.New("formpost").Parse(`<!DOCTYPE html>
<html><head><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Fields}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<noscript><button type="submit">Continue</button></noscript>
</form></body></html>
`))
