package m365sim

// GET/POST /{tenant}/v2.0/adminconsent: an administrator grants the app
// tenant-wide consent (reference A.2, ENTRA v2-admin-consent.md). It is how
// an operator gets past an admin-consent-required tenant.

import (
	"html/template"
	"net/http"
	"net/url"
)

// handleAdminConsentEndpoint answers the admin consent endpoint: a consent
// page for a GET, then the grant (or the decline) sent back to the app.
func (s *Sim) handleAdminConsentEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeErrorPage(w, r, aad("invalid_request", 90023, "The authentication service request isn't valid: %v.", err))
		return
	}
	p := r.Form
	s.mu.Lock()
	defer s.mu.Unlock()
	req, e := s.parseAdminConsentLocked(r.PathValue("tenant"), p)
	if e != nil {
		s.countAuthorize(e)
		s.writeErrorPage(w, r, e)
		return
	}
	tr, app := req.tr, req.app

	action := p.Get(fieldAction)
	auto := p.Get(paramAuto)
	if r.Method == http.MethodGet && auto != "1" && auto != "decline" && !(s.opts.AutoApprove && auto != "0") {
		fields := url.Values{}
		for k, v := range p {
			if k != paramAuto && k != fieldAction {
				fields[k] = v
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store, no-cache")
		adminConsentTmpl.Execute(w, map[string]any{"App": app, "Tenant": s.tenantNameLocked(tr.t.ID), "Fields": fields, "Action": r.URL.Path})
		return
	}
	if auto == "decline" || action == "cancel" {
		e := errDeclined()
		e.err, e.subcode = "consent_required", ""
		ids := s.newErrorIDs(r)
		v := url.Values{"admin_consent": {"True"}, "error": {e.err}, "error_description": {e.description(ids)}}
		if req.state != "" {
			v.Set("state", req.state)
		}
		s.countAuthorize(e)
		writeAuthRedirect(w, req, v)
		return
	}
	if s.entra.adminConsent[tr.t.ID] == nil {
		s.entra.adminConsent[tr.t.ID] = map[string]bool{}
	}
	s.entra.adminConsent[tr.t.ID][app.ClientID] = true
	s.entra.counters.Authorize["admin_consent"]++
	v := url.Values{"admin_consent": {"True"}, "tenant": {tr.t.ID}}
	if sc := p.Get("scope"); sc != "" {
		v.Set("scope", sc)
	}
	if req.state != "" {
		v.Set("state", req.state)
	}
	writeAuthRedirect(w, req, v)
}

// parseAdminConsentLocked validates an admin consent request: a single
// tenant, a known app and one of its redirect URIs (the first when none is
// given). Its errors are shown on a page, not sent to the redirect URI.
func (s *Sim) parseAdminConsentLocked(seg string, p url.Values) (*authRequest, *aadError) {
	tr, e := s.resolveTenantLocked(seg)
	if e == nil && tr.multi() {
		e = aad("invalid_request", 90023, "The authentication service request isn't valid: the admin consent endpoint needs a tenant id or domain, not '%s'.", seg)
	}
	var app *App
	if e == nil {
		switch cid := p.Get("client_id"); {
		case cid == "":
			e = errMissingParam("client_id")
		case s.apps[cid] == nil:
			e = errAppNotFound(cid, seg)
		default:
			app = s.apps[cid]
		}
	}
	ru := p.Get("redirect_uri")
	if e == nil {
		switch {
		case len(app.RedirectURIs) == 0:
			e = aad("invalid_request", 500113, "No reply address is registered for the application.")
		case ru == "":
			ru = app.RedirectURIs[0]
		case !contains(app.RedirectURIs, ru):
			e = aad("invalid_request", 50011, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", ru, app.ClientID)
		}
	}
	if e != nil {
		return nil, e
	}
	return &authRequest{tr: tr, app: app, redirectURI: ru, responseMode: "query", state: p.Get("state")}, nil
}

var adminConsentTmpl = template.Must(template.New("adminconsent").Parse(`<!DOCTYPE html>
<html><head><title>Permissions requested</title></head>
<body><h1>Permissions requested: accept for your organization</h1>
<p><strong>{{.App.DisplayName}}</strong> ({{.App.ClientID}}) wants to access resources in {{.Tenant}}. Accepting grants consent for every user in the organization.</p>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Fields}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<button type="submit" name="sim_action" value="accept">Accept</button>
<button type="submit" name="sim_action" value="cancel">Cancel</button>
</form></body></html>
`))
