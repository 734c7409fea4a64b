package m365sim

// The Entra control endpoints under /_sim/: JSON twins of the methods in
// entra_control.go, and the index at GET /_sim/.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// controlRoute is one control endpoint, listed by GET /_sim/.
type controlRoute struct {
	Pattern string `json:"pattern"`
	Summary string `json:"summary"`
}

// addControlRoute registers a control endpoint and lists it in the index.
func (s *Sim) addControlRoute(mux *http.ServeMux, pattern, summary string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, h)
	s.entra.controlRoutes = append(s.entra.controlRoutes, controlRoute{pattern, summary})
}

func (s *Sim) registerEntraControl(mux *http.ServeMux) {
	s.entra.controlRoutes = append(s.entra.controlRoutes,
		controlRoute{"POST /_sim/clock/advance?by=90m", "move the sim clock forward"},
		controlRoute{"GET /_sim/clock", "the sim clock"})
	mux.HandleFunc("GET /_sim/{$}", s.handleControlIndex)
	add := func(p, summary string, h http.HandlerFunc) { s.addControlRoute(mux, p, summary, h) }
	add("GET /_sim/users", "list users, their consent and MFA state", s.handleListUsers)
	add("POST /_sim/users", `add a user {"upn","display_name","password","tenant","id","no_mailbox","mfa_required","disabled"}`, s.handleAddUser)
	add("POST /_sim/users/{upn}/revoke", "revoke the user's refresh tokens (next refresh: AADSTS50173)", s.handleRevoke)
	add("POST /_sim/users/{upn}/password", `change the password {"password"}; revokes refresh tokens like /revoke`, s.handlePassword)
	add("POST /_sim/users/{upn}/mfa", `require MFA {"required":true}: refreshes of earlier sign-ins fail with AADSTS50076`, s.handleMFA)
	add("POST /_sim/users/{upn}/disabled", `block sign-in {"disabled":true} (AADSTS50057)`, s.handleDisabled)
	add("DELETE /_sim/users/{upn}/consent", "revoke consent (?client_id=, else all apps): next refresh AADSTS65001", s.handleRevokeConsent)
	add("GET /_sim/apps", "list app registrations and their secrets", s.handleListApps)
	add("POST /_sim/apps/{client_id}/secret/expire", "expire every secret of the app (AADSTS7000222)", s.handleExpireSecret)
	add("POST /_sim/apps/{client_id}/secrets", `add a secret {"value","expires_in":"720h"}`, s.handleAddSecret)
	add("POST /_sim/mailboxes", `add a shared mailbox {"address","display_name","disabled"}`, s.handleAddMailbox)
	add("POST /_sim/mailboxes/{address}/delegates", `grant or remove rights {"user","full_access","send_as"}`, s.handleDelegate)
	add("POST /_sim/tenants/{tenant}/admin-consent-required", `toggle "users cannot consent" {"required":true}`, s.handleAdminConsentRequired)
	add("POST /_sim/tenants/{tenant}/admin-consent", `grant tenant-wide consent {"client_id"}`, s.handleAdminConsent)
	add("POST /_sim/entra/lifetimes", `set {"access_token":"5m","refresh_token_inactivity":"1h"}`, s.handleLifetimes)
	add("POST /_sim/entra/outage", `start an outage of the token endpoint {"grant_type","status":503,"error":"temporarily_unavailable","retry_after":5}`, s.handleEntraOutage)
	add("DELETE /_sim/entra/outage", "end the outage", s.handleEntraOutage)
	add("POST /_sim/tokens", `sign in without a browser {"user","client_id","scope"}: tokens`, s.handleIssueTokens)
	add("GET /_sim/counters/entra", "token requests by grant type and outcome; authorize outcomes", s.handleEntraCounters)
	add("POST /_sim/counters/entra/reset", "zero the Entra counters", s.handleResetEntraCounters)
}

func (s *Sim) handleControlIndex(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	routes := append([]controlRoute(nil), s.entra.controlRoutes...)
	s.mu.Unlock()
	sort.SliceStable(routes, func(i, j int) bool { return routePath(routes[i]) < routePath(routes[j]) })
	writeControlJSON(w, http.StatusOK, map[string]any{"endpoints": routes})
}

func routePath(r controlRoute) string {
	_, p, _ := strings.Cut(r.Pattern, " ")
	return p
}

// decodeControl reads an optional JSON body strictly into v.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeControlError(w, http.StatusBadRequest, "decode request body: "+err.Error())
		return false
	}
	return true
}

// controlResult answers a control call that changed state.
func controlResult(w http.ResponseWriter, err error, ok any) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeControlError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		writeControlError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeControlError(w, http.StatusBadRequest, err.Error())
	default:
		writeControlJSON(w, http.StatusOK, ok)
	}
}

// userView is a user as the control API shows it.
type userView struct {
	ID              string              `json:"id"`
	TenantID        string              `json:"tenant_id"`
	UPN             string              `json:"upn"`
	DisplayName     string              `json:"display_name"`
	Mailbox         bool                `json:"mailbox"`
	MFARequired     bool                `json:"mfa_required"`
	Disabled        bool                `json:"disabled"`
	TokensValidFrom *time.Time          `json:"tokens_valid_from,omitempty"`
	Consent         map[string][]string `json:"consent"`
}

func (s *Sim) userViewLocked(u *User) userView {
	v := userView{ID: u.ID, TenantID: u.TenantID, UPN: u.UPN, DisplayName: u.DisplayName,
		Mailbox: s.mailboxByID[u.ID] != nil, MFARequired: u.MFARequired, Disabled: u.Disabled, Consent: map[string][]string{}}
	if !u.TokensValidFrom.IsZero() {
		t := u.TokensValidFrom
		v.TokensValidFrom = &t
	}
	for k, sc := range u.Consent {
		v.Consent[k] = append([]string(nil), sc...)
	}
	return v
}

func (s *Sim) handleListUsers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []userView{}
	for _, u := range s.users {
		out = append(out, s.userViewLocked(u))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UPN < out[j].UPN })
	writeControlJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Sim) handleAddUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UPN         string `json:"upn"`
		DisplayName string `json:"display_name"`
		Password    string `json:"password"`
		Tenant      string `json:"tenant"`
		ID          string `json:"id"`
		NoMailbox   bool   `json:"no_mailbox"`
		MFARequired bool   `json:"mfa_required"`
		Disabled    bool   `json:"disabled"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	u, err := s.AddDirectoryUser(in.Tenant, User{ID: in.ID, UPN: in.UPN, DisplayName: in.DisplayName,
		Password: in.Password, MFARequired: in.MFARequired, Disabled: in.Disabled}, in.NoMailbox)
	if err != nil {
		controlResult(w, err, nil)
		return
	}
	s.mu.Lock()
	v := s.userViewLocked(u)
	s.mu.Unlock()
	writeControlJSON(w, http.StatusCreated, v)
}

// AddDirectoryUser adds a user to a tenant (GUID or domain; empty means the
// sim's only tenant) after checking the UPN is new; unless noMailbox the
// user gets a mailbox.
func (s *Sim) AddDirectoryUser(tenant string, u User, noMailbox bool) (*User, error) {
	if !strings.Contains(u.UPN, "@") {
		return nil, fmt.Errorf("add user: upn %q is not an address like agent@contoso.com", u.UPN)
	}
	s.mu.Lock()
	var t *Tenant
	var err error
	switch {
	case tenant != "":
		t, err = s.tenantLocked(tenant)
	case len(s.tenants) == 1:
		for _, only := range s.tenants {
			t = only
		}
	default:
		err = fmt.Errorf("add user: the sim has %d tenants; say which in tenant", len(s.tenants))
	}
	if err == nil && (s.userByUPNLocked(u.UPN) != nil || s.mailboxes[strings.ToLower(u.UPN)] != nil) {
		err = fmt.Errorf("add user %q: %w", u.UPN, ErrConflict)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	u.TenantID = t.ID
	return s.AddUser(u, noMailbox), nil
}

func (s *Sim) handleRevoke(w http.ResponseWriter, r *http.Request) {
	controlResult(w, s.RevokeSignInSessions(r.PathValue("upn")), map[string]string{"revoked": r.PathValue("upn")})
}

func (s *Sim) handlePassword(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password string `json:"password"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	controlResult(w, s.SetPassword(r.PathValue("upn"), in.Password), map[string]string{"password_changed": r.PathValue("upn")})
}

func (s *Sim) handleMFA(w http.ResponseWriter, r *http.Request) {
	in := struct {
		Required bool `json:"required"`
	}{Required: true}
	if !decodeControl(w, r, &in) {
		return
	}
	controlResult(w, s.RequireMFA(r.PathValue("upn"), in.Required), map[string]any{"user": r.PathValue("upn"), "mfa_required": in.Required})
}

func (s *Sim) handleDisabled(w http.ResponseWriter, r *http.Request) {
	in := struct {
		Disabled bool `json:"disabled"`
	}{Disabled: true}
	if !decodeControl(w, r, &in) {
		return
	}
	controlResult(w, s.SetUserDisabled(r.PathValue("upn"), in.Disabled), map[string]any{"user": r.PathValue("upn"), "disabled": in.Disabled})
}

func (s *Sim) handleRevokeConsent(w http.ResponseWriter, r *http.Request) {
	cid := r.URL.Query().Get("client_id")
	controlResult(w, s.RevokeConsent(r.PathValue("upn"), cid), map[string]string{"user": r.PathValue("upn"), "consent_revoked": cid})
}

// appView is an app as the control API shows it (secret values included:
// the control API is for tests and a loopback demo).
type appView struct {
	ClientID     string       `json:"client_id"`
	TenantID     string       `json:"tenant_id"`
	DisplayName  string       `json:"display_name"`
	MultiTenant  bool         `json:"multi_tenant"`
	RedirectURIs []string     `json:"redirect_uris"`
	Secrets      []secretView `json:"secrets"`
}

// secretView is a client secret as the control API shows it.
type secretView struct {
	ID      string     `json:"id"`
	Value   string     `json:"value"`
	Expires *time.Time `json:"expires,omitempty"`
}

func viewSecret(cs ClientSecret) secretView {
	v := secretView{ID: cs.ID, Value: cs.Value}
	if !cs.Expires.IsZero() {
		e := cs.Expires
		v.Expires = &e
	}
	return v
}

func (s *Sim) handleListApps(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []appView{}
	for _, a := range s.apps {
		v := appView{ClientID: a.ClientID, TenantID: a.TenantID, DisplayName: a.DisplayName, MultiTenant: a.MultiTenant,
			RedirectURIs: append([]string(nil), a.RedirectURIs...), Secrets: []secretView{}}
		for _, cs := range a.Secrets {
			v.Secrets = append(v.Secrets, viewSecret(*cs))
		}
		out = append(out, v)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	writeControlJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (s *Sim) handleExpireSecret(w http.ResponseWriter, r *http.Request) {
	controlResult(w, s.ExpireClientSecrets(r.PathValue("client_id")), map[string]string{"secrets_expired": r.PathValue("client_id")})
}

func (s *Sim) handleAddSecret(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Value     string `json:"value"`
		ExpiresIn string `json:"expires_in"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	var exp time.Time
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 {
			writeControlError(w, http.StatusBadRequest, "expires_in must be a positive Go duration such as 720h")
			return
		}
		exp = s.now().Add(d)
	}
	cs, err := s.AddClientSecret(r.PathValue("client_id"), in.Value, exp)
	if err != nil {
		controlResult(w, err, nil)
		return
	}
	writeControlJSON(w, http.StatusCreated, viewSecret(cs))
}

func (s *Sim) handleAddMailbox(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Address     string `json:"address"`
		DisplayName string `json:"display_name"`
		Disabled    bool   `json:"disabled"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	if !strings.Contains(in.Address, "@") {
		writeControlError(w, http.StatusBadRequest, "address must be a mail address such as support@contoso.com")
		return
	}
	s.mu.Lock()
	exists := s.mailboxes[strings.ToLower(in.Address)] != nil || s.userByUPNLocked(in.Address) != nil
	s.mu.Unlock()
	if exists {
		writeControlError(w, http.StatusConflict, fmt.Sprintf("mailbox %q already exists", in.Address))
		return
	}
	mb := s.AddSharedMailbox(in.Address, in.DisplayName)
	s.mu.Lock()
	mb.Enabled = !in.Disabled
	s.mu.Unlock()
	writeControlJSON(w, http.StatusCreated, map[string]any{"id": mb.ID, "address": mb.Address, "display_name": mb.DisplayName, "shared": true, "enabled": !in.Disabled})
}

func (s *Sim) handleDelegate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User       string `json:"user"`
		FullAccess bool   `json:"full_access"`
		SendAs     bool   `json:"send_as"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	if err := s.Delegate(r.PathValue("address"), in.User, in.FullAccess, in.SendAs); err != nil {
		writeControlError(w, http.StatusNotFound, err.Error())
		return
	}
	writeControlJSON(w, http.StatusOK, map[string]any{"mailbox": r.PathValue("address"), "user": in.User, "full_access": in.FullAccess, "send_as": in.SendAs})
}

func (s *Sim) handleAdminConsentRequired(w http.ResponseWriter, r *http.Request) {
	in := struct {
		Required bool `json:"required"`
	}{Required: true}
	if !decodeControl(w, r, &in) {
		return
	}
	controlResult(w, s.SetAdminConsentRequired(r.PathValue("tenant"), in.Required), map[string]any{"tenant": r.PathValue("tenant"), "admin_consent_required": in.Required})
}

func (s *Sim) handleAdminConsent(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ClientID string `json:"client_id"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	controlResult(w, s.GrantAdminConsent(r.PathValue("tenant"), in.ClientID), map[string]any{"tenant": r.PathValue("tenant"), "admin_consent": in.ClientID})
}

func (s *Sim) handleLifetimes(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AccessToken            string `json:"access_token"`
		RefreshTokenInactivity string `json:"refresh_token_inactivity"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	parse := func(name, v string) (time.Duration, bool) {
		if v == "" {
			return 0, true
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeControlError(w, http.StatusBadRequest, name+" must be a positive Go duration such as 5m")
			return 0, false
		}
		return d, true
	}
	at, ok1 := parse("access_token", in.AccessToken)
	if !ok1 {
		return
	}
	rt, ok2 := parse("refresh_token_inactivity", in.RefreshTokenInactivity)
	if !ok2 {
		return
	}
	s.SetTokenLifetimes(at, rt)
	s.mu.Lock()
	out := map[string]string{"access_token": s.opts.AccessTokenTTL.String(), "refresh_token_inactivity": s.opts.RefreshTokenInactivity.String()}
	s.mu.Unlock()
	writeControlJSON(w, http.StatusOK, out)
}

func (s *Sim) handleIssueTokens(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User     string `json:"user"`
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	if !decodeControl(w, r, &in) {
		return
	}
	if in.ClientID == "" {
		s.mu.Lock()
		if len(s.apps) == 1 {
			for id := range s.apps {
				in.ClientID = id
			}
		}
		s.mu.Unlock()
	}
	if in.Scope == "" {
		in.Scope = "offline_access openid profile User.Read Mail.ReadWrite Mail.Send Mail.ReadWrite.Shared Mail.Send.Shared"
	}
	ts, err := s.IssueTokens(in.User, in.ClientID, in.Scope)
	if err != nil {
		controlResult(w, err, nil)
		return
	}
	writeControlJSON(w, http.StatusOK, ts)
}

func (s *Sim) handleEntraCounters(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, s.EntraCounters())
}

func (s *Sim) handleResetEntraCounters(w http.ResponseWriter, r *http.Request) {
	s.ResetEntraCounters()
	writeControlJSON(w, http.StatusOK, s.EntraCounters())
}
