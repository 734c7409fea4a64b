package m365sim

// The Entra half of the control API: Go methods for in-process tests. Their
// JSON twins under /_sim/ are in entra_control_http.go.

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is wrapped by control methods when the user, app, tenant or
// mailbox they name does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped when something to add already exists.
var ErrConflict = errors.New("already exists")

// EntraCounters counts Entra requests since the sim started or the counters
// were reset.
type EntraCounters struct {
	// TokenRequests maps grant type ("authorization_code",
	// "refresh_token", ... or "(none)") to outcome ("ok" or an AADSTS code
	// such as "AADSTS50173") to count.
	TokenRequests map[string]map[string]int `json:"token_requests"`
	// Authorize maps outcome ("code", "sign_in_page" or an AADSTS code) to
	// count.
	Authorize map[string]int `json:"authorize"`
}

func newEntraCounters() EntraCounters {
	return EntraCounters{TokenRequests: map[string]map[string]int{}, Authorize: map[string]int{}}
}

func (c *EntraCounters) count(grantType, outcome string) {
	if grantType == "" {
		grantType = "(none)"
	}
	if c.TokenRequests[grantType] == nil {
		c.TokenRequests[grantType] = map[string]int{}
	}
	c.TokenRequests[grantType][outcome]++
}

// EntraCounters returns a copy of the Entra counters.
func (s *Sim) EntraCounters() EntraCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := newEntraCounters()
	for g, m := range s.entra.counters.TokenRequests {
		out.TokenRequests[g] = map[string]int{}
		for k, v := range m {
			out.TokenRequests[g][k] = v
		}
	}
	for k, v := range s.entra.counters.Authorize {
		out.Authorize[k] = v
	}
	return out
}

// TokenRequests returns how many token requests of grantType the sim
// answered, whatever the outcome; "" counts every grant type.
func (s *Sim) TokenRequests(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for g, m := range s.entra.counters.TokenRequests {
		if grantType != "" && g != grantType {
			continue
		}
		for _, v := range m {
			n += v
		}
	}
	return n
}

// ResetEntraCounters zeroes the Entra counters.
func (s *Sim) ResetEntraCounters() {
	s.mu.Lock()
	s.entra.counters = newEntraCounters()
	s.mu.Unlock()
}

// userLocked finds a user by UPN or object id.
func (s *Sim) userLocked(upnOrID string) (*User, error) {
	if u := s.userByUPNLocked(upnOrID); u != nil {
		return u, nil
	}
	if u := s.users[upnOrID]; u != nil {
		return u, nil
	}
	return nil, fmt.Errorf("find user %q: %w", upnOrID, ErrNotFound)
}

// withUser runs f on a user under the lock.
func (s *Sim) withUser(upn string, f func(*User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.userLocked(upn)
	if err != nil {
		return err
	}
	f(u)
	return nil
}

// revokeLocked makes every refresh token from earlier sign-ins fail with
// AADSTS50173. Issued access tokens stay valid until they expire, as in
// Entra.
func (s *Sim) revokeLocked(u *User) {
	s.entra.seq++
	u.TokensValidFrom = s.now()
	s.entra.revokedSeq[u.ID] = s.entra.seq
	s.entra.revokedAt[u.ID] = u.TokensValidFrom
}

// RevokeSignInSessions revokes a user's refresh tokens ("revoke sessions"):
// the next refresh fails with AADSTS50173.
func (s *Sim) RevokeSignInSessions(upn string) error {
	return s.withUser(upn, s.revokeLocked)
}

// SetPassword changes a user's password, which revokes the user's refresh
// tokens like RevokeSignInSessions.
func (s *Sim) SetPassword(upn, password string) error {
	return s.withUser(upn, func(u *User) {
		u.Password = password
		s.revokeLocked(u)
	})
}

// RequireMFA turns multi-factor authentication on or off for a user. Turned
// on, refresh tokens from earlier sign-ins fail with AADSTS50076
// (suberror basic_action, with claims) until the user signs in again.
func (s *Sim) RequireMFA(upn string, required bool) error {
	return s.withUser(upn, func(u *User) {
		u.MFARequired = required
		if required {
			s.entra.seq++
			s.entra.mfaSeq[u.ID] = s.entra.seq
		}
	})
}

// SetUserDisabled blocks or unblocks a user's sign-in; refreshes of a
// disabled user fail with AADSTS50057.
func (s *Sim) SetUserDisabled(upn string, disabled bool) error {
	return s.withUser(upn, func(u *User) { u.Disabled = disabled })
}

// RevokeConsent removes a user's consent to an app (every app when clientID
// is empty): the next refresh fails with AADSTS65001, suberror
// consent_required.
func (s *Sim) RevokeConsent(upn, clientID string) error {
	return s.withUser(upn, func(u *User) {
		if clientID == "" {
			clear(u.Consent)
		} else {
			delete(u.Consent, clientID)
		}
	})
}

// Consent returns the scopes a user has consented to for an app.
func (s *Sim) Consent(upn, clientID string) ([]string, error) {
	var out []string
	err := s.withUser(upn, func(u *User) { out = append(out, u.Consent[clientID]...) })
	return out, err
}

// ExpireClientSecrets makes every secret of an app expire now: token
// requests fail with AADSTS7000222 until a new secret is added.
func (s *Sim) ExpireClientSecrets(clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[clientID]
	if app == nil {
		return fmt.Errorf("expire secrets of app %q: %w", clientID, ErrNotFound)
	}
	now := s.now()
	for _, cs := range app.Secrets {
		if cs.Expires.IsZero() || cs.Expires.After(now) {
			cs.Expires = now
		}
	}
	return nil
}

// AddClientSecret adds a secret to an app; an empty value is generated, a
// zero expiry never expires.
func (s *Sim) AddClientSecret(clientID, value string, expires time.Time) (ClientSecret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[clientID]
	if app == nil {
		return ClientSecret{}, fmt.Errorf("add secret to app %q: %w", clientID, ErrNotFound)
	}
	if value == "" {
		value = randomToken(20)
	}
	cs := &ClientSecret{ID: newGUID(), Value: value, Expires: expires}
	app.Secrets = append(app.Secrets, cs)
	return *cs, nil
}

// RedirectURIs returns the redirect URIs registered for an app (nil for an
// unknown app).
func (s *Sim) RedirectURIs(clientID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if app := s.apps[clientID]; app != nil {
		return append([]string(nil), app.RedirectURIs...)
	}
	return nil
}

// tenantLocked finds a tenant by GUID or domain.
func (s *Sim) tenantLocked(tenant string) (*Tenant, error) {
	if t := s.lookupTenantLocked(tenant); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("find tenant %q: %w", tenant, ErrNotFound)
}

// SetAdminConsentRequired switches a tenant's "users cannot consent" mode:
// on, a user who has not consented yet sees "Need admin approval"
// (AADSTS90094) unless an admin granted consent (GrantAdminConsent).
func (s *Sim) SetAdminConsentRequired(tenant string, required bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.tenantLocked(tenant)
	if err != nil {
		return err
	}
	t.AdminConsentRequired = required
	return nil
}

// GrantAdminConsent records tenant-wide consent to an app: every user of the
// tenant may use it with any scope, even in admin-consent-required mode.
func (s *Sim) GrantAdminConsent(tenant, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.tenantLocked(tenant)
	if err != nil {
		return err
	}
	if s.apps[clientID] == nil {
		return fmt.Errorf("grant admin consent to app %q: %w", clientID, ErrNotFound)
	}
	if s.entra.adminConsent[t.ID] == nil {
		s.entra.adminConsent[t.ID] = map[string]bool{}
	}
	s.entra.adminConsent[t.ID][clientID] = true
	return nil
}

// SetTokenLifetimes changes the lifetime of access tokens issued from now
// on and the refresh-token inactivity window (which applies to existing
// tokens too); a zero duration keeps the current value.
func (s *Sim) SetTokenLifetimes(accessToken, refreshInactivity time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if accessToken > 0 {
		s.opts.AccessTokenTTL = accessToken
	}
	if refreshInactivity > 0 {
		s.opts.RefreshTokenInactivity = refreshInactivity
	}
}

// TokenSet is what IssueTokens hands out.
type TokenSet struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Scope        string    `json:"scope"`
	Expires      time.Time `json:"expires"`
	UserID       string    `json:"user_id"`
	TenantID     string    `json:"tenant_id"`
}

// IssueTokens signs a user in to an app without the browser flow, as if
// the user had consented to scope (space-separated; offline_access adds a
// refresh token). Graph tests use it to get an access token in one call.
func (s *Sim) IssueTokens(upn, clientID, scope string) (TokenSet, error) {
	scopes, bad := parseScopes(scope)
	if bad != "" {
		return TokenSet{}, fmt.Errorf("issue tokens: unknown scope %q", bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.userLocked(upn)
	if err != nil {
		return TokenSet{}, err
	}
	app := s.apps[clientID]
	if app == nil {
		return TokenSet{}, fmt.Errorf("issue tokens for app %q: %w", clientID, ErrNotFound)
	}
	if _, admin := s.consentedLocked(u, clientID); !admin {
		u.Consent[clientID] = unionScopes(u.Consent[clientID], scopes)
	}
	s.entra.seq++
	now := s.now()
	at := s.issueAccessTokenLocked(u.TenantID, clientID, u.ID, responseScopes(scopes))
	ts := TokenSet{AccessToken: at.Token, Scope: strings.Join(responseScopes(scopes), " "), Expires: at.Expires, UserID: u.ID, TenantID: u.TenantID}
	if hasScope(scopes, "offline_access") {
		ts.RefreshToken = opaqueToken("0.A", 192)
		s.entra.refreshTokens[ts.RefreshToken] = &refreshGrant{
			tenantID: u.TenantID, clientID: clientID, userID: u.ID, scopes: scopes,
			authTime: now, authSeq: s.entra.seq, issued: now,
		}
	}
	return ts, nil
}
