package m365sim

// POST /{tenant}/oauth2/v2.0/token: client authentication and the
// authorization_code and refresh_token grants (reference A.3–A.6).

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// refreshGrant is what one refresh token stands for. Rotation creates a new
// token with the same sign-in; the old one stays valid until its own
// inactivity expiry (reference A.5).
type refreshGrant struct {
	tenantID, clientID, userID string
	scopes                     []string  // everything granted at sign-in, offline_access included
	authTime                   time.Time // the interactive sign-in behind it
	authSeq                    int64     // orders the sign-in against revocations
	issued                     time.Time // this token's creation: inactivity counts from here
}

// tokenResponse is the A.5 success body, fields in the documented order.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// tokenErrorBody is the A.6 error body.
type tokenErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
	Suberror         string `json:"suberror,omitempty"`
	Claims           string `json:"claims,omitempty"`
}

func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	var form url.Values
	if err := r.ParseForm(); err == nil {
		form = r.PostForm
	}
	grantType := form.Get("grant_type")
	s.mu.Lock()
	if o := s.outageLocked(grantType); o != nil {
		out := *o
		s.mu.Unlock()
		s.writeOutage(w, r, out)
		return
	}
	resp, claims, e := s.tokenLocked(r, form)
	outcome := "ok"
	if e != nil {
		outcome = e.Error()[:strings.Index(e.Error(), ":")]
	}
	s.entra.counters.count(grantType, outcome)
	s.mu.Unlock()
	if e != nil {
		s.writeTokenError(w, r, e)
		return
	}
	if claims != nil {
		tok, err := s.signJWT(claims)
		if err != nil {
			s.writeTokenError(w, r, aad("server_error", 90033, "A transient error has occurred. Please try again: %v.", err))
			return
		}
		resp.IDToken = tok
	}
	setTokenHeaders(w)
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(resp)
}

// setTokenHeaders sets the A.5 headers, on success and error alike.
func setTokenHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	h.Set("x-ms-request-id", newGUID())
}

// writeTokenError writes the A.6 error body with e's status.
func (s *Sim) writeTokenError(w http.ResponseWriter, r *http.Request, e *aadError) {
	ids := s.newErrorIDs(r)
	setTokenHeaders(w)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(tokenErrorBody{
		Error: e.err, ErrorDescription: e.description(ids), ErrorCodes: []int{e.code},
		Timestamp: ids.Timestamp, TraceID: ids.Trace, CorrelationID: ids.Correlation,
		ErrorURI: e.errorURI(), Suberror: e.suberror, Claims: e.claims,
	})
}

// tokenLocked runs one token request. On success it returns the response
// and, when an id_token is due, its claims to sign after unlocking.
func (s *Sim) tokenLocked(r *http.Request, form url.Values) (*tokenResponse, map[string]any, *aadError) {
	seg := r.PathValue("tenant")
	tr, e := s.resolveTenantLocked(seg)
	if e != nil {
		return nil, nil, e
	}
	clientID, secret, e := clientCredentials(r, form)
	if e != nil {
		return nil, nil, e
	}
	if clientID == "" {
		return nil, nil, errMissingParam("client_id")
	}
	app := s.apps[clientID]
	if app == nil {
		return nil, nil, errAppNotFound(clientID, seg)
	}
	if e := checkAppTenant(app, tr); e != nil {
		return nil, nil, e
	}
	grantType := form.Get("grant_type")
	if grantType == "" {
		return nil, nil, errMissingParam("grant_type")
	}
	if form.Get("client_assertion") != "" {
		return nil, nil, aad("invalid_client", 700027, "Client assertion failed signature validation. The sim models client secrets only; send client_secret.")
	}
	if e := s.checkSecretLocked(app, secret); e != nil {
		return nil, nil, e
	}
	switch grantType {
	case "authorization_code":
		return s.redeemCodeLocked(r, form, tr, app)
	case "refresh_token":
		return s.redeemRefreshLocked(r, form, tr, app)
	default:
		return nil, nil, aad("unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'. The sim supports authorization_code and refresh_token.", grantType)
	}
}

// clientCredentials reads the client id and secret from HTTP Basic
// (URL-encoded parts, RFC 6749 §2.3.1) or, failing that, the body.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, e *aadError) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return form.Get("client_id"), form.Get("client_secret"), nil
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return "", "", aad("invalid_client", 7000215, "Invalid client secret provided. The HTTP Basic credentials are not valid URL-encoded values.")
	}
	if bodyID := form.Get("client_id"); bodyID != "" && bodyID != id {
		return "", "", aad("invalid_request", 700038, "The client_id in the request body ('%s') does not match the one in the Authorization header ('%s').", bodyID, id)
	}
	return id, secret, nil
}

// checkSecretLocked authenticates the app by one of its secrets.
func (s *Sim) checkSecretLocked(app *App, secret string) *aadError {
	if secret == "" {
		return aad("invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	now := s.now()
	expired := false
	for _, cs := range app.Secrets {
		if subtle.ConstantTimeCompare([]byte(cs.Value), []byte(secret)) != 1 {
			continue
		}
		if cs.Expires.IsZero() || now.Before(cs.Expires) {
			return nil
		}
		expired = true
	}
	if expired {
		return aad("invalid_client", 7000222, "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", app.ClientID)
	}
	return aad("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID)
}

// redeemCodeLocked is the authorization_code grant. A code is spent by its
// first redemption that passes client authentication, even a failing one.
func (s *Sim) redeemCodeLocked(r *http.Request, form url.Values, tr tenantRef, app *App) (*tokenResponse, map[string]any, *aadError) {
	code := form.Get("code")
	if code == "" {
		return nil, nil, errMissingParam("code")
	}
	c := s.entra.codes[code]
	if c == nil {
		return nil, nil, aad("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")
	}
	if c.redeemed {
		return nil, nil, aad("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	}
	c.redeemed = true
	now := s.now()
	if tr.kind == tenantConsumers || (tr.kind == tenantSpecific && tr.t.ID != c.tenantID) {
		return nil, nil, aad("invalid_grant", 700005, "Provided Authorization Code is intended to use against other tenant, thus rejected.")
	}
	if c.clientID != app.ClientID {
		return nil, nil, aad("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code was not issued to this client.")
	}
	if !now.Before(c.expires) {
		return nil, nil, aad("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code has expired.")
	}
	if ru := form.Get("redirect_uri"); ru != c.redirectURI {
		return nil, nil, aad("invalid_client", 500112, "The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.", ru, c.redirectURI)
	}
	if c.challenge != "" && !pkceMatches(c.method, c.challenge, form.Get("code_verifier")) {
		return nil, nil, aad("invalid_grant", 501481, "The Code_Verifier doesn't match the code_challenge supplied in the authorization request.")
	}
	u := s.users[c.userID]
	if u == nil {
		return nil, nil, aad("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")
	}
	if u.Disabled {
		return nil, nil, errUserDisabled()
	}
	resp, claims := s.issueTokensLocked(r, form, app, u, c.tenantID, c.scopes, c.scopes, c.authTime, c.authSeq, c.nonce)
	return resp, claims, nil
}

// pkceMatches checks a code_verifier against the challenge (RFC 7636).
func pkceMatches(method, challenge, verifier string) bool {
	if verifier == "" {
		return false
	}
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		verifier = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(verifier), []byte(challenge)) == 1
}

// redeemRefreshLocked is the refresh_token grant: it rotates the token and
// applies revocation, MFA and consent.
func (s *Sim) redeemRefreshLocked(r *http.Request, form url.Values, tr tenantRef, app *App) (*tokenResponse, map[string]any, *aadError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, nil, errMissingParam("refresh_token")
	}
	g := s.entra.refreshTokens[rt]
	if g == nil {
		return nil, nil, aad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	}
	if g.clientID != app.ClientID {
		return nil, nil, aad("invalid_grant", 70000, "Provided grant is invalid or malformed.")
	}
	if tr.kind == tenantConsumers || (tr.kind == tenantSpecific && tr.t.ID != g.tenantID) {
		return nil, nil, aad("invalid_grant", 700005, "Provided grant is intended to use against other tenant, thus rejected.")
	}
	now := s.now()
	if inactive := s.opts.RefreshTokenInactivity; !now.Before(g.issued.Add(inactive)) {
		return nil, nil, aad("invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", dotnetTime(g.issued), timespan(inactive))
	}
	u := s.users[g.userID]
	if u == nil {
		return nil, nil, aad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	}
	if u.Disabled {
		return nil, nil, errUserDisabled()
	}
	if s.revokedLocked(u, g) {
		return nil, nil, aad("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", dotnetTime(g.authTime), dotnetTime(u.TokensValidFrom))
	}
	if u.MFARequired && g.authSeq < s.entra.mfaSeq[u.ID] {
		e := aad("invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", graphAppID)
		e.suberror = "basic_action"
		e.claims = `{"access_token":{"capolids":{"essential":true,"values":["` + s.entra.mfaPolicy + `"]}}}`
		return nil, nil, e
	}
	have, _ := s.consentedLocked(u, app.ClientID)
	if len(have) == 0 {
		return nil, nil, errConsentRequired(app)
	}
	effective := g.scopes
	if sp := form.Get("scope"); sp != "" {
		want, bad := parseScopes(sp)
		if bad != "" {
			return nil, nil, errInvalidScope(bad)
		}
		if len(missingScopes(want, unionScopes(g.scopes, have))) > 0 {
			return nil, nil, errConsentRequired(app)
		}
		effective = want
	}
	resp, claims := s.issueTokensLocked(r, form, app, u, g.tenantID, g.scopes, effective, g.authTime, g.authSeq, "")
	return resp, claims, nil
}

// revokedLocked reports whether a sign-in predates the user's
// TokensValidFrom. Revocations through the sim's methods are ordered by
// sequence, so they work on a frozen clock; a TokensValidFrom set directly
// on the User compares by time.
func (s *Sim) revokedLocked(u *User, g *refreshGrant) bool {
	if seq, ok := s.entra.revokedSeq[u.ID]; ok && u.TokensValidFrom.Equal(s.entra.revokedAt[u.ID]) {
		return g.authSeq < seq
	}
	return !u.TokensValidFrom.IsZero() && g.authTime.Before(u.TokensValidFrom)
}

// issueTokensLocked issues an access token for the effective scopes, a
// refresh token when offline_access was granted, and the id_token claims
// when openid is in effect.
func (s *Sim) issueTokensLocked(r *http.Request, form url.Values, app *App, u *User, tenantID string, granted, effective []string, authTime time.Time, authSeq int64, nonce string) (*tokenResponse, map[string]any) {
	now := s.now()
	scopes := responseScopes(effective)
	at := s.issueAccessTokenLocked(tenantID, app.ClientID, u.ID, scopes)
	ttl := int(at.Expires.Sub(now) / time.Second)
	resp := &tokenResponse{
		TokenType: "Bearer", Scope: strings.Join(scopes, " "),
		ExpiresIn: ttl, ExtExpiresIn: ttl, AccessToken: at.Token,
	}
	if hasScope(granted, "offline_access") {
		rt := opaqueToken("0.A", 192)
		s.entra.refreshTokens[rt] = &refreshGrant{
			tenantID: tenantID, clientID: app.ClientID, userID: u.ID,
			scopes: granted, authTime: authTime, authSeq: authSeq, issued: now,
		}
		resp.RefreshToken = rt
	}
	if form.Get("client_info") == "1" {
		ci, _ := json.Marshal(map[string]string{"uid": u.ID, "utid": tenantID})
		resp.ClientInfo = base64.RawURLEncoding.EncodeToString(ci)
	}
	var claims map[string]any
	if hasScope(effective, "openid") {
		claims = s.idTokenClaims(r, app, u, tenantID, effective, nonce, now)
	}
	return resp, claims
}
