package m365sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// entraFixture is a sim served over loopback HTTP with the default seed.
type entraFixture struct {
	t      *testing.T
	srv    *Server
	sim    *Sim
	seeded *Seeded
	// client does not follow redirects, so tests see the 302s.
	client *http.Client
}

// t0 is the frozen start of the sims in these tests; Advance moves it.
var t0 = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func newEntraFixture(t *testing.T, opts Options, seed *Seed) *entraFixture {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	srv, err := StartServer(opts, seed)
	if err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &entraFixture{
		t: t, srv: srv, sim: srv.Sim, seeded: srv.Seeded,
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

const testScopes = "offline_access openid profile Mail.ReadWrite Mail.Send Mail.ReadWrite.Shared Mail.Send.Shared"

// authParams are a valid authorize request for the default app.
func (f *entraFixture) authParams() url.Values {
	return url.Values{
		"client_id":     {f.seeded.ClientID},
		"response_type": {"code"},
		"redirect_uri":  {DefaultRedirectURI},
		"scope":         {testScopes},
		"state":         {"st-123"},
	}
}

func (f *entraFixture) authorizeURL(tenant string, p url.Values) string {
	return f.srv.URL + "/" + tenant + "/oauth2/v2.0/authorize?" + p.Encode()
}

func (f *entraFixture) get(u string) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.client.Get(u)
	if err != nil {
		f.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *entraFixture) postForm(u string, form url.Values) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.client.PostForm(u, form)
	if err != nil {
		f.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// redirectParams asserts a 302 to the default redirect URI and returns its
// query.
func (f *entraFixture) redirectParams(resp *http.Response) url.Values {
	f.t.Helper()
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("status = %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		f.t.Fatalf("Location %q: %v", resp.Header.Get("Location"), err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != DefaultRedirectURI {
		f.t.Fatalf("redirected to %s, want %s", got, DefaultRedirectURI)
	}
	return loc.Query()
}

// code runs an auto-approved authorize request and returns the code.
func (f *entraFixture) code(tenant string, p url.Values) string {
	f.t.Helper()
	p.Set("sim_auto", "1")
	resp, body := f.get(f.authorizeURL(tenant, p))
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("authorize: status %d, body %s", resp.StatusCode, body)
	}
	q := f.redirectParams(resp)
	if q.Get("code") == "" {
		f.t.Fatalf("authorize redirect without code: %v", q)
	}
	return q.Get("code")
}

// token posts to the token endpoint and decodes the JSON answer.
func (f *entraFixture) token(tenant string, form url.Values) (*http.Response, map[string]any) {
	f.t.Helper()
	resp, body := f.postForm(f.srv.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		f.t.Fatalf("token answer is not JSON (%v): %s", err, body)
	}
	return resp, m
}

// redeem exchanges a code with the default client credentials.
func (f *entraFixture) redeem(tenant, code string, extra url.Values) (*http.Response, map[string]any) {
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {DefaultRedirectURI},
		"client_id": {f.seeded.ClientID}, "client_secret": {f.seeded.ClientSecret},
	}
	for k, v := range extra {
		form[k] = v
	}
	return f.token(tenant, form)
}

func (f *entraFixture) refresh(tenant, rt string, extra url.Values) (*http.Response, map[string]any) {
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {f.seeded.ClientID}, "client_secret": {f.seeded.ClientSecret},
	}
	for k, v := range extra {
		form[k] = v
	}
	return f.token(tenant, form)
}

// signIn runs authorize + code redemption and returns the token response.
func (f *entraFixture) signIn(upn string) map[string]any {
	f.t.Helper()
	p := f.authParams()
	p.Set("login_hint", upn)
	resp, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, p), nil)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("redeem: status %d: %v", resp.StatusCode, m)
	}
	return m
}

var (
	guidPattern      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	timestampPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`)
	descIDsPattern   = regexp.MustCompile(`\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`)
)

// wantAADError checks a token endpoint error against reference A.6 and
// returns the message after "AADSTSnnnn: " (without the id lines).
func wantAADError(t *testing.T, resp *http.Response, m map[string]any, status int, errCode string, aadsts int) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %v)", resp.StatusCode, status, m)
	}
	if got := m["error"]; got != errCode {
		t.Errorf("error = %v, want %s", got, errCode)
	}
	codes, _ := m["error_codes"].([]any)
	if len(codes) != 1 || codes[0] != float64(aadsts) {
		t.Errorf("error_codes = %v, want [%d]", m["error_codes"], aadsts)
	}
	desc, _ := m["error_description"].(string)
	prefix := "AADSTS" + itoa(aadsts) + ": "
	if !strings.HasPrefix(desc, prefix) || !descIDsPattern.MatchString(desc) {
		t.Errorf("error_description = %q, want %q... with Trace ID, Correlation ID and Timestamp lines", desc, prefix)
	}
	for _, k := range []string{"trace_id", "correlation_id"} {
		if s, _ := m[k].(string); !guidPattern.MatchString(s) {
			t.Errorf("%s = %v, want a GUID", k, m[k])
		}
	}
	if s, _ := m["timestamp"].(string); !timestampPattern.MatchString(s) {
		t.Errorf("timestamp = %v, want yyyy-mm-dd hh:mm:ssZ", m["timestamp"])
	}
	if got, want := m["error_uri"], "https://login.microsoftonline.com/error?code="+itoa(aadsts); got != want {
		t.Errorf("error_uri = %v, want %s", got, want)
	}
	wantTokenHeaders(t, resp)
	msg := strings.TrimPrefix(desc, prefix)
	if i := strings.Index(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// wantTokenHeaders checks the A.5 response headers.
func wantTokenHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":           "application/json; charset=utf-8",
		"Cache-Control":          "no-store, no-cache",
		"Pragma":                 "no-cache",
		"Expires":                "-1",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("header Strict-Transport-Security missing")
	}
}

// wantShape compares got with a documented sample in testdata/entra: the
// same keys with the same JSON types, recursively through objects and the
// first element of arrays.
func wantShape(t *testing.T, got any, sample string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "entra", sample))
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", sample, err)
	}
	// Round-trip got through JSON so structs compare like decoded bodies.
	gb, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var g any
	json.Unmarshal(gb, &g)
	for _, d := range shapeDiff("", want, g) {
		t.Errorf("%s: %s", sample, d)
	}
}

func shapeDiff(path string, want, got any) []string {
	kind := func(v any) string {
		switch v.(type) {
		case map[string]any:
			return "object"
		case []any:
			return "array"
		case string:
			return "string"
		case float64:
			return "number"
		case bool:
			return "bool"
		case nil:
			return "null"
		}
		return "?"
	}
	if kind(want) != kind(got) {
		return []string{path + ": got " + kind(got) + ", want " + kind(want)}
	}
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		var keys []string
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				out = append(out, path+"."+k+": not in the documented sample")
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				out = append(out, path+"."+k+": missing")
				continue
			}
			out = append(out, shapeDiff(path+"."+k, w[k], gv)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) > 0 {
			out = append(out, shapeDiff(path+"[0]", w[0], g[0])...)
		}
	}
	return out
}

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

// decodeJWTClaims decodes a JWT's payload without checking it.
func decodeJWTClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts", len(parts))
	}
	b, err := b64url(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
