package m365sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// ctl calls the control API and decodes its JSON answer.
func (f *entraFixture) ctl(method, path, body string) (int, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		f.t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, m
}

func (f *entraFixture) wantCtl(method, path, body string, status int) map[string]any {
	f.t.Helper()
	got, m := f.ctl(method, path, body)
	if got != status {
		f.t.Errorf("%s %s: status %d, want %d (%v)", method, path, got, status, m)
	}
	return m
}

func TestControlIndex(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	m := f.wantCtl("GET", "/_sim/", "", 200)
	var patterns []string
	for _, e := range m["endpoints"].([]any) {
		patterns = append(patterns, e.(map[string]any)["pattern"].(string))
	}
	for _, want := range []string{
		"POST /_sim/users", "POST /_sim/users/{upn}/revoke", "POST /_sim/apps/{client_id}/secret/expire",
		"POST /_sim/mailboxes/{address}/delegates", "GET /_sim/counters/entra", "POST /_sim/tokens",
	} {
		if !contains(patterns, want) {
			t.Errorf("index lacks %s: %v", want, patterns)
		}
	}
}

func TestControlUsers(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	u := f.wantCtl("POST", "/_sim/users", `{"upn":"new@contoso.com","display_name":"New Person"}`, 201)
	if u["tenant_id"] != f.seeded.TenantID || u["mailbox"] != true || !guidPattern.MatchString(u["id"].(string)) {
		t.Errorf("new user = %v", u)
	}
	f.wantCtl("POST", "/_sim/users", `{"upn":"NEW@contoso.com"}`, 409)
	f.wantCtl("POST", "/_sim/users", `{"upn":"nobody"}`, 400)
	f.wantCtl("POST", "/_sim/users", `{"upn":"x@contoso.com","tenant":"nowhere.example"}`, 404)
	f.wantCtl("POST", "/_sim/users", `{"upn":"x@contoso.com","shoe_size":9}`, 400)
	f.signIn("new@contoso.com")
	list := f.wantCtl("GET", "/_sim/users", "", 200)["users"].([]any)
	var found bool
	for _, x := range list {
		if v := x.(map[string]any); v["upn"] == "new@contoso.com" {
			found = len(v["consent"].(map[string]any)[f.seeded.ClientID].([]any)) > 0
		}
	}
	if !found {
		t.Errorf("GET /_sim/users does not show new@contoso.com with its consent: %v", list)
	}
}

func TestControlUserGrants(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		errCode                  string
		aadsts                   int
	}{
		{"revoke", "POST", "/_sim/users/agent@contoso.com/revoke", "", 400, "invalid_grant", 50173},
		{"password", "POST", "/_sim/users/agent@contoso.com/password", `{"password":"n3w"}`, 400, "invalid_grant", 50173},
		{"mfa", "POST", "/_sim/users/agent@contoso.com/mfa", "", 400, "invalid_grant", 50076},
		{"mfa off", "POST", "/_sim/users/agent@contoso.com/mfa", `{"required":false}`, 200, "", 0},
		{"disabled", "POST", "/_sim/users/agent@contoso.com/disabled", "", 400, "invalid_grant", 50057},
		{"consent of this app", "DELETE", "/_sim/users/agent@contoso.com/consent?client_id=" + DefaultClientID, "", 400, "invalid_grant", 65001},
		{"consent of all apps", "DELETE", "/_sim/users/agent@contoso.com/consent", "", 400, "invalid_grant", 65001},
		{"consent of another app", "DELETE", "/_sim/users/agent@contoso.com/consent?client_id=other", "", 200, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEntraFixture(t, Options{}, nil)
			rt := f.signIn("agent@contoso.com")["refresh_token"].(string)
			f.wantCtl(tt.method, tt.path, tt.body, 200)
			resp, m := f.refresh(DefaultTenantDomain, rt, nil)
			if tt.status == 200 {
				if resp.StatusCode != 200 {
					t.Errorf("refresh: %d %v", resp.StatusCode, m)
				}
				return
			}
			wantAADError(t, resp, m, tt.status, tt.errCode, tt.aadsts)
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		f := newEntraFixture(t, Options{}, nil)
		for _, p := range []string{"revoke", "password", "mfa", "disabled"} {
			f.wantCtl("POST", "/_sim/users/ghost@contoso.com/"+p, "", 404)
		}
	})
}

func TestControlSecrets(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	f.wantCtl("POST", "/_sim/apps/"+DefaultClientID+"/secret/expire", "", 200)
	resp, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), nil)
	wantAADError(t, resp, m, 401, "invalid_client", 7000222)
	cs := f.wantCtl("POST", "/_sim/apps/"+DefaultClientID+"/secrets", `{"value":"fresh-secret","expires_in":"720h"}`, 201)
	if cs["value"] != "fresh-secret" || cs["id"] == "" || cs["expires"] == nil {
		t.Errorf("new secret = %v", cs)
	}
	resp, m = f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), url.Values{"client_secret": {"fresh-secret"}})
	if resp.StatusCode != 200 {
		t.Errorf("with the new secret: %d %v", resp.StatusCode, m)
	}
	apps := f.wantCtl("GET", "/_sim/apps", "", 200)["apps"].([]any)
	if n := len(apps[0].(map[string]any)["secrets"].([]any)); n != 2 {
		t.Errorf("app has %d secrets, want 2", n)
	}
	f.wantCtl("POST", "/_sim/apps/nope/secret/expire", "", 404)
	f.wantCtl("POST", "/_sim/apps/"+DefaultClientID+"/secrets", `{"expires_in":"soon"}`, 400)
}

func TestControlMailboxes(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	mb := f.wantCtl("POST", "/_sim/mailboxes", `{"address":"billing@contoso.com","display_name":"Billing"}`, 201)
	if mb["shared"] != true || mb["enabled"] != true {
		t.Errorf("mailbox = %v", mb)
	}
	f.wantCtl("POST", "/_sim/mailboxes", `{"address":"billing@contoso.com"}`, 409)
	f.wantCtl("POST", "/_sim/mailboxes", `{"address":"agent@contoso.com"}`, 409)
	f.wantCtl("POST", "/_sim/mailboxes", `{"address":"billing"}`, 400)
	f.wantCtl("POST", "/_sim/mailboxes/billing@contoso.com/delegates", `{"user":"sales@contoso.com","full_access":true}`, 200)
	f.wantCtl("POST", "/_sim/mailboxes/nobox@contoso.com/delegates", `{"user":"sales@contoso.com","full_access":true}`, 404)
	f.wantCtl("POST", "/_sim/mailboxes/billing@contoso.com/delegates", `{"user":"ghost@contoso.com","full_access":true}`, 404)
	f.wantCtl("POST", "/_sim/mailboxes", `{"address":"off@contoso.com","disabled":true}`, 201)
	f.sim.mu.Lock()
	defer f.sim.mu.Unlock()
	b := f.sim.mailboxes["billing@contoso.com"]
	sales := f.sim.userByUPNLocked("sales@contoso.com")
	if b == nil || !b.FullAccess[sales.ID] || b.SendAs[sales.ID] {
		t.Errorf("billing = %+v, want sales with Full Access only", b)
	}
	if off := f.sim.mailboxes["off@contoso.com"]; off == nil || off.Enabled {
		t.Errorf("disabled mailbox = %+v", off)
	}
}

func TestControlAdminConsent(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	f.wantCtl("POST", "/_sim/tenants/contoso.com/admin-consent-required", `{"required":true}`, 200)
	p := f.authParams()
	p.Set("sim_auto", "1")
	resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, p))
	if q := f.redirectParams(resp); q.Get("error") != "access_denied" {
		t.Errorf("admin consent required: %v", q)
	}
	f.wantCtl("POST", "/_sim/tenants/contoso.com/admin-consent", `{"client_id":"`+DefaultClientID+`"}`, 200)
	f.code(DefaultTenantDomain, f.authParams())
	f.wantCtl("POST", "/_sim/tenants/contoso.com/admin-consent-required", `{"required":false}`, 200)
	f.wantCtl("POST", "/_sim/tenants/nowhere/admin-consent-required", `{}`, 404)
	f.wantCtl("POST", "/_sim/tenants/contoso.com/admin-consent", `{"client_id":"nope"}`, 404)
}

func TestControlLifetimesTokensCounters(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	m := f.wantCtl("POST", "/_sim/entra/lifetimes", `{"access_token":"2m","refresh_token_inactivity":"1h"}`, 200)
	if m["access_token"] != "2m0s" || m["refresh_token_inactivity"] != "1h0m0s" {
		t.Errorf("lifetimes = %v", m)
	}
	f.wantCtl("POST", "/_sim/entra/lifetimes", `{"access_token":"-1m"}`, 400)

	ts := f.wantCtl("POST", "/_sim/tokens", `{"user":"sales@contoso.com"}`, 200)
	req, _ := http.NewRequest("GET", f.srv.URL+"/oidc/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+ts["access_token"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("userinfo with a /_sim/tokens access token: %d", resp.StatusCode)
	}
	if r, m := f.refresh(DefaultTenantDomain, ts["refresh_token"].(string), nil); r.StatusCode != 200 || m["expires_in"] != float64(120) {
		t.Errorf("refresh of a /_sim/tokens refresh token: %d %v", r.StatusCode, m)
	}
	f.wantCtl("POST", "/_sim/tokens", `{"user":"ghost@contoso.com"}`, 404)
	f.wantCtl("POST", "/_sim/tokens", `{"user":"sales@contoso.com","scope":"Files.Read"}`, 400)

	f.refresh(DefaultTenantDomain, "garbage", nil)
	c := f.wantCtl("GET", "/_sim/counters/entra", "", 200)
	rt := c["token_requests"].(map[string]any)["refresh_token"].(map[string]any)
	if rt["ok"] != float64(1) || rt["AADSTS9002313"] != float64(1) {
		t.Errorf("refresh counters = %v, want ok 1 and AADSTS9002313 1", rt)
	}
	c = f.wantCtl("POST", "/_sim/counters/entra/reset", "", 200)
	if len(c["token_requests"].(map[string]any)) != 0 || f.sim.TokenRequests("") != 0 {
		t.Errorf("after reset: %v", c)
	}
}

func TestAdminConsentEndpoint(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	if err := f.sim.SetAdminConsentRequired(DefaultTenantDomain, true); err != nil {
		t.Fatal(err)
	}
	base := f.srv.URL + "/" + DefaultTenantDomain + "/v2.0/adminconsent"
	p := url.Values{"client_id": {DefaultClientID}, "redirect_uri": {DefaultRedirectURI}, "state": {"st-123"},
		"scope": {"https://graph.microsoft.com/.default"}}

	resp, body := f.get(base + "?" + p.Encode())
	if resp.StatusCode != 200 || !strings.Contains(body, `value="accept">Accept`) {
		t.Fatalf("admin consent page: %d %s", resp.StatusCode, body)
	}
	decline := cloneValues(p)
	decline.Set("sim_action", "cancel")
	resp, _ = f.postForm(base, decline)
	q := f.redirectParams(resp)
	if q.Get("admin_consent") != "True" || q.Get("error") != "consent_required" || q.Get("state") != "st-123" ||
		!strings.HasPrefix(q.Get("error_description"), "AADSTS65004: ") {
		t.Errorf("declined admin consent: %v", q)
	}

	accept := cloneValues(p)
	accept.Set("sim_action", "accept")
	resp, _ = f.postForm(base, accept)
	q = f.redirectParams(resp)
	if q.Get("admin_consent") != "True" || q.Get("tenant") != f.seeded.TenantID || q.Get("state") != "st-123" || q.Get("error") != "" {
		t.Errorf("admin consent: %v", q)
	}
	// Users of the tenant may now sign in despite admin-consent-required.
	f.code(DefaultTenantDomain, f.authParams())

	for _, tt := range []struct {
		name, tenant string
		edit         func(url.Values)
		want         int
	}{
		{"common", "common", nil, 90023},
		{"unknown app", DefaultTenantDomain, func(v url.Values) { v.Set("client_id", "nope") }, 700016},
		{"redirect mismatch", DefaultTenantDomain, func(v url.Values) { v.Set("redirect_uri", "http://evil.example/cb") }, 50011},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := cloneValues(p)
			v.Set("sim_auto", "1")
			if tt.edit != nil {
				tt.edit(v)
			}
			resp, body := f.get(f.srv.URL + "/" + tt.tenant + "/v2.0/adminconsent?" + v.Encode())
			wantErrorPage(t, resp, body, tt.want)
		})
	}
}
