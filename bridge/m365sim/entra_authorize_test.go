package m365sim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAuthorizeAutoApproveRedirectsWithCode(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	p := f.authParams()
	p.Set("sim_auto", "1")
	resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
	q := f.redirectParams(resp)
	if q.Get("code") == "" || q.Get("state") != "st-123" || !guidPattern.MatchString(q.Get("session_state")) {
		t.Errorf("redirect params = %v, want code, state=st-123 and a session_state GUID", q)
	}
	// No login_hint: the first user with a mailbox, by UPN, consents.
	got, err := f.sim.Consent("agent@contoso.com", f.seeded.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parseScopes(testScopes)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("consent = %v, want %v", got, want)
	}
	if c := f.sim.EntraCounters().Authorize["code"]; c != 1 {
		t.Errorf("authorize code counter = %d, want 1", c)
	}
}

func TestAuthorizeAutoApproveOption(t *testing.T) {
	f := newEntraFixture(t, Options{AutoApprove: true}, nil)
	p := f.authParams()
	p.Set("login_hint", "sales@contoso.com")
	resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if q := f.redirectParams(resp); q.Get("code") == "" {
		t.Fatalf("no code in %v", q)
	}
	if got, _ := f.sim.Consent("sales@contoso.com", f.seeded.ClientID); len(got) == 0 {
		t.Error("login_hint user did not consent")
	}
	if got, _ := f.sim.Consent("agent@contoso.com", f.seeded.ClientID); len(got) != 0 {
		t.Errorf("agent consented %v, though login_hint named sales", got)
	}
	// sim_auto=0 asks for the page even with AutoApprove.
	p.Set("sim_auto", "0")
	resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="sim_action" value="accept"`) {
		t.Errorf("sim_auto=0: status %d, want the sign-in page", resp.StatusCode)
	}
}

func TestAuthorizeSignInPage(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	p := f.authParams()
	p.Set("login_hint", "sales@contoso.com")
	resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, type %s; want the HTML sign-in page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`value="agent@contoso.com"`, `value="sales@contoso.com" checked`, `name="sim_password"`,
		`value="accept">Accept`, `value="cancel">Cancel`, `name="state" value="st-123"`, "Mail.ReadWrite.Shared",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-in page lacks %q", want)
		}
	}
	form := f.authParams()
	action := f.srv.URL + "/" + DefaultTenantDomain + "/oauth2/v2.0/authorize"

	t.Run("accept", func(t *testing.T) {
		form := cloneValues(form)
		form.Set("sim_action", "accept")
		form.Set("sim_user", "sales@contoso.com")
		form.Set("sim_password", "sales")
		resp, _ := f.postForm(action, form)
		if q := f.redirectParams(resp); q.Get("code") == "" || q.Get("state") != "st-123" {
			t.Errorf("params = %v, want code and state", q)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		form := cloneValues(form)
		form.Set("sim_action", "cancel")
		resp, _ := f.postForm(action, form)
		wantDeclined(t, f.redirectParams(resp))
	})
	t.Run("wrong password", func(t *testing.T) {
		form := cloneValues(form)
		form.Set("sim_action", "accept")
		form.Set("sim_user", "agent@contoso.com")
		form.Set("sim_password", "nope")
		resp, body := f.postForm(action, form)
		wantErrorPage(t, resp, body, 50126)
	})
	t.Run("disabled user", func(t *testing.T) {
		if err := f.sim.SetUserDisabled("sales@contoso.com", true); err != nil {
			t.Fatal(err)
		}
		defer f.sim.SetUserDisabled("sales@contoso.com", false)
		form := cloneValues(form)
		form.Set("sim_action", "accept")
		form.Set("sim_user", "sales@contoso.com")
		resp, body := f.postForm(action, form)
		wantErrorPage(t, resp, body, 50057)
	})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// wantDeclined checks the redirect of a declined consent (reference A.2).
func wantDeclined(t *testing.T, q url.Values) {
	t.Helper()
	if q.Get("code") != "" {
		t.Errorf("declined consent carries a code")
	}
	if q.Get("error") != "access_denied" || q.Get("error_subcode") != "cancel" || q.Get("state") != "st-123" {
		t.Errorf("params = %v, want error=access_denied, error_subcode=cancel, state", q)
	}
	d := q.Get("error_description")
	if !strings.HasPrefix(d, "AADSTS65004: User declined to consent to access the app.\r\nTrace ID: ") || !descIDsPattern.MatchString(d) {
		t.Errorf("error_description = %q", d)
	}
	if got := q.Get("error_uri"); got != "https://login.microsoftonline.com/error?code=65004" {
		t.Errorf("error_uri = %q", got)
	}
}

// wantErrorPage checks an error shown on a page, never redirected.
func wantErrorPage(t *testing.T, resp *http.Response, body string, aadsts int) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("redirected to %s; this error must not be redirected", loc)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("Content-Type = %s, want HTML", resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "AADSTS"+itoa(aadsts)+":") {
		t.Errorf("page does not show AADSTS%d: %s", aadsts, body)
	}
}

func TestAuthorizeDecline(t *testing.T) {
	f := newEntraFixture(t, Options{AutoApprove: true}, nil)
	p := f.authParams()
	p.Set("sim_auto", "decline")
	resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
	wantDeclined(t, f.redirectParams(resp))
}

func TestAuthorizeErrorPages(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	other := f.sim.AddTenant(Tenant{Domains: []string{"fabrikam.onmicrosoft.com"}})
	bare := f.sim.AddApp(App{TenantID: f.seeded.TenantID, DisplayName: "no reply"})
	multi := f.sim.AddApp(App{TenantID: f.seeded.TenantID, MultiTenant: true, RedirectURIs: []string{DefaultRedirectURI}})
	tests := []struct {
		name   string
		tenant string
		edit   func(url.Values)
		want   int
	}{
		{"unknown tenant", "nowhere.onmicrosoft.com", nil, 90002},
		{"unknown tenant guid", "00000000-1111-4222-8333-444444444444", nil, 90002},
		{"missing client_id", DefaultTenantDomain, func(p url.Values) { p.Del("client_id") }, 900144},
		{"unknown client", DefaultTenantDomain, func(p url.Values) { p.Set("client_id", "99999999-2222-3333-4444-555555555555") }, 700016},
		{"redirect mismatch", DefaultTenantDomain, func(p url.Values) { p.Set("redirect_uri", "http://127.0.0.1:8365/oauth/callback/") }, 50011},
		{"redirect missing", DefaultTenantDomain, func(p url.Values) { p.Del("redirect_uri") }, 900971},
		{"no reply address registered", DefaultTenantDomain, func(p url.Values) { p.Set("client_id", bare.ClientID) }, 500113},
		{"single tenant on common", "common", nil, 50194},
		{"single tenant on organizations", "organizations", nil, 50194},
		{"single tenant on another tenant", other.ID, nil, 700016},
		{"consumers", "consumers", func(p url.Values) { p.Set("client_id", multi.ClientID) }, 9002331},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.authParams()
			p.Set("sim_auto", "1")
			if tt.edit != nil {
				tt.edit(p)
			}
			resp, body := f.get(f.authorizeURL(tt.tenant, p))
			wantErrorPage(t, resp, body, tt.want)
		})
	}
	if got := f.sim.EntraCounters().Authorize["AADSTS50011"]; got != 1 {
		t.Errorf("AADSTS50011 counter = %d, want 1", got)
	}
}

func TestAuthorizeErrorRedirects(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	tests := []struct {
		name    string
		edit    func(url.Values)
		wantErr string
		want    int
	}{
		{"unknown scope", func(p url.Values) { p.Set("scope", "openid Mail.ReadEverything") }, "invalid_scope", 70011},
		{"missing scope", func(p url.Values) { p.Del("scope") }, "invalid_request", 900144},
		{"missing response_type", func(p url.Values) { p.Del("response_type") }, "invalid_request", 900144},
		{"token response_type", func(p url.Values) { p.Set("response_type", "token") }, "unsupported_response_type", 700054},
		{"bad challenge method", func(p url.Values) {
			p.Set("code_challenge", strings.Repeat("a", 43))
			p.Set("code_challenge_method", "S512")
		}, "invalid_request", 90023},
		{"short challenge", func(p url.Values) { p.Set("code_challenge", "abc") }, "invalid_request", 501491},
		{"method without challenge", func(p url.Values) { p.Set("code_challenge_method", "S256") }, "invalid_request", 900144},
		{"bad prompt", func(p url.Values) { p.Set("prompt", "always") }, "invalid_request", 90023},
		{"bad response_mode", func(p url.Values) { p.Set("response_mode", "web_message") }, "invalid_request", 90023},
		{"prompt none without session", func(p url.Values) { p.Set("prompt", "none") }, "login_required", 50058},
		{"prompt none without consent", func(p url.Values) {
			p.Set("prompt", "none")
			p.Set("login_hint", "agent@contoso.com")
		}, "consent_required", 65001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.authParams()
			p.Set("sim_auto", "1")
			tt.edit(p)
			resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
			q := f.redirectParams(resp)
			if q.Get("error") != tt.wantErr || q.Get("state") != "st-123" || q.Get("code") != "" {
				t.Errorf("params = %v, want error=%s and state, no code", q, tt.wantErr)
			}
			prefix := "AADSTS" + itoa(tt.want) + ": "
			if d := q.Get("error_description"); !strings.HasPrefix(d, prefix) || !descIDsPattern.MatchString(d) {
				t.Errorf("error_description = %q, want %s... with id lines", d, prefix)
			}
			if got := q.Get("error_uri"); got != "https://login.microsoftonline.com/error?code="+itoa(tt.want) {
				t.Errorf("error_uri = %q", got)
			}
		})
	}
}

func TestAuthorizePromptNoneAfterConsent(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	f.code(DefaultTenantDomain, f.authParams()) // agent consents
	p := f.authParams()
	p.Set("prompt", "none")
	p.Set("login_hint", "agent@contoso.com")
	resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if q := f.redirectParams(resp); q.Get("code") == "" {
		t.Errorf("prompt=none after consent: params %v, want a code", q)
	}
}

func TestAuthorizeResponseModes(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	t.Run("fragment", func(t *testing.T) {
		p := f.authParams()
		p.Set("sim_auto", "1")
		p.Set("response_mode", "fragment")
		resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		frag, _ := url.ParseQuery(loc.Fragment)
		if resp.StatusCode != http.StatusFound || loc.RawQuery != "" || frag.Get("code") == "" || frag.Get("state") != "st-123" {
			t.Errorf("status %d, Location %s; want the code in the fragment", resp.StatusCode, loc)
		}
	})
	t.Run("form_post", func(t *testing.T) {
		p := f.authParams()
		p.Set("sim_auto", "1")
		p.Set("response_mode", "form_post")
		resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="`+DefaultRedirectURI+`"`) ||
			!strings.Contains(body, `name="code"`) || !strings.Contains(body, `name="state" value="st-123"`) {
			t.Errorf("status %d; want a form posting code and state to the redirect URI: %s", resp.StatusCode, body)
		}
	})
}

func TestAuthorizeAdminConsentRequired(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	// sales consents before the tenant turns admin consent on.
	p := f.authParams()
	p.Set("login_hint", "sales@contoso.com")
	f.code(DefaultTenantDomain, p)
	if err := f.sim.SetAdminConsentRequired(DefaultTenantDomain, true); err != nil {
		t.Fatal(err)
	}

	t.Run("page and back to app", func(t *testing.T) {
		form := f.authParams()
		form.Set("sim_action", "accept")
		form.Set("sim_user", "agent@contoso.com")
		action := f.srv.URL + "/" + DefaultTenantDomain + "/oauth2/v2.0/authorize"
		resp, body := f.postForm(action, form)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Need admin approval") ||
			!strings.Contains(body, "AADSTS90094") || !strings.Contains(body, `value="back">Back to app`) {
			t.Fatalf("status %d; want the Need admin approval page: %s", resp.StatusCode, body)
		}
		form.Set("sim_action", "back")
		resp, _ = f.postForm(action, form)
		wantDeclined(t, f.redirectParams(resp))
	})
	t.Run("auto approve backs out", func(t *testing.T) {
		p := f.authParams()
		p.Set("sim_auto", "1")
		p.Set("login_hint", "agent@contoso.com")
		resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
		q := f.redirectParams(resp)
		if q.Get("error") != "access_denied" || q.Get("error_subcode") != "cancel" || q.Get("code") != "" {
			t.Errorf("params = %v, want access_denied/cancel", q)
		}
	})
	t.Run("user who consented before", func(t *testing.T) {
		p := f.authParams()
		p.Set("login_hint", "sales@contoso.com")
		f.code(DefaultTenantDomain, p)
	})
	t.Run("after admin consent", func(t *testing.T) {
		if err := f.sim.GrantAdminConsent(DefaultTenantDomain, f.seeded.ClientID); err != nil {
			t.Fatal(err)
		}
		p := f.authParams()
		p.Set("login_hint", "agent@contoso.com")
		f.code(DefaultTenantDomain, p)
	})
}

func TestAuthorizeUnknownLoginHint(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	p := f.authParams()
	p.Set("sim_auto", "1")
	p.Set("login_hint", "ghost@contoso.com")
	resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
	wantErrorPage(t, resp, body, 50034)
}

func TestAuthorizeMultiTenantApp(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	fab := f.sim.AddTenant(Tenant{Domains: []string{"fabrikam.onmicrosoft.com"}})
	f.sim.AddUser(User{TenantID: fab.ID, UPN: "ops@fabrikam.com", DisplayName: "Fab Ops"}, false)
	app := f.sim.AddApp(App{TenantID: f.seeded.TenantID, MultiTenant: true, RedirectURIs: []string{DefaultRedirectURI}, DisplayName: "multi"})
	cs, err := f.sim.AddClientSecret(app.ClientID, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	form := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {DefaultRedirectURI},
			"client_id": {app.ClientID}, "client_secret": {cs.Value}}
	}
	for _, seg := range []string{"common", "organizations"} {
		t.Run(seg, func(t *testing.T) {
			p := f.authParams()
			p.Set("client_id", app.ClientID)
			p.Set("login_hint", "ops@fabrikam.com")
			resp, m := f.token(seg, form(f.code(seg, p)))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("redeem on %s: %d %v", seg, resp.StatusCode, m)
			}
			claims := decodeJWTClaims(t, m["id_token"].(string))
			if claims["tid"] != fab.ID {
				t.Errorf("tid = %v, want the user's tenant %s", claims["tid"], fab.ID)
			}
		})
	}
	t.Run("code redeemed against the wrong tenant", func(t *testing.T) {
		p := f.authParams()
		p.Set("client_id", app.ClientID)
		p.Set("login_hint", "ops@fabrikam.com")
		resp, m := f.token(DefaultTenantDomain, form(f.code("common", p)))
		wantAADError(t, resp, m, 400, "invalid_grant", 700005)
	})
	t.Run("tenant path limits the users", func(t *testing.T) {
		p := f.authParams()
		p.Set("client_id", app.ClientID)
		p.Set("login_hint", "ops@fabrikam.com")
		p.Set("sim_auto", "1")
		resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
		wantErrorPage(t, resp, body, 50020)
	})
}

func TestAuthorizePagesEscapeInput(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	hostile := `"><script>alert(1)</script>`
	p := f.authParams()
	p.Set("state", hostile)
	p.Set("login_hint", hostile)
	resp, body := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "<script>") {
		t.Errorf("sign-in page: status %d; hostile input must be escaped: %s", resp.StatusCode, body)
	}
	p.Set("redirect_uri", "http://evil.example/"+hostile)
	resp, body = f.get(f.authorizeURL(DefaultTenantDomain, p))
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "<script>") {
		t.Errorf("error page: status %d; hostile input must be escaped: %s", resp.StatusCode, body)
	}
}
