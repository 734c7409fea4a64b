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
