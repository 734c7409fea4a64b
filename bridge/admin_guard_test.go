package bridge

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/web"
)

// rigAdminLine is the admin section newDaemonRig writes.
const rigAdminLine = "admin: {listen: 127.0.0.1:0, token: admin-token}\n"

// newAdminRig is newDaemonRig with edits to its bridge.yaml (pairs of old,
// new text) and the daemon's clock, so the admin listener runs from a real
// configuration file.
func newAdminRig(t *testing.T, now func() time.Time, edits ...string) *daemonRig {
	t.Helper()
	rig := newRigBase(t, nil)
	rig.writeConfig(defaultRigChannels)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(rig.yaml, edits[i]) {
			t.Fatalf("bridge.yaml has no %q to replace", edits[i])
		}
		rig.yaml = strings.Replace(rig.yaml, edits[i], edits[i+1], 1)
	}
	if err := os.WriteFile(rig.path, []byte(rig.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	rig.now = now
	rig.start()
	t.Cleanup(func() { rig.stop() })
	return rig
}

// fakeClock is the daemon's clock in these tests: it starts at the wall
// clock's now and moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// hostCall sends one request to the admin listener's address with the
// given Host header, the way a browser on a rebound name would (its own
// pages are same-origin to it).
func hostCall(t *testing.T, rig *daemonRig, method, path, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+rig.d.AdminAddr()+path, nil)
	req.Host = host
	req.Header.Set("Origin", "http://"+host)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, readBody(t, resp)
}

// TestAdminRefusesRebindingHost: without admin.token the admin listener
// trusts loopback peers, which is what a DNS-rebinding page in the
// operator's browser is. Requests naming another host are refused;
// loopback addresses, localhost, the listen host and admin.hosts pass.
func TestAdminRefusesRebindingHost(t *testing.T) {
	rig := newAdminRig(t, nil, rigAdminLine, "admin: {listen: 127.0.0.1:0}\n")
	_, port, _ := net.SplitHostPort(rig.d.AdminAddr())
	evil := "rebind.evil.example:" + port
	for _, r := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/api/channels"}, {"GET", "/metrics"}, {"GET", "/api/deliveries"},
		{"POST", "/api/endpoints/helpdesk/pause"}, {"POST", "/api/channels/sales/auth"},
	} {
		code, body := hostCall(t, rig, r.method, r.path, evil)
		if code != http.StatusForbidden || !strings.Contains(body, "admin.hosts") {
			t.Errorf("%s %s with Host %s = %d %.200s, want 403 naming admin.hosts", r.method, r.path, evil, code, body)
		}
	}
	if st, _ := rig.d.db.Outbox().Endpoint(t.Context(), "helpdesk"); st.State != "active" {
		t.Errorf("helpdesk is %s after a refused pause, want active", st.State)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port, "[::1]:" + port, "127.0.0.1"} {
		if code, body := hostCall(t, rig, "GET", "/api/channels", host); code != http.StatusOK {
			t.Errorf("GET /api/channels with Host %s = %d %.200s, want 200", host, code, body)
		}
	}
	// Health stays open to any name (load balancers probe by name).
	if code, _ := hostCall(t, rig, "GET", "/healthz", evil); code != http.StatusOK {
		t.Errorf("/healthz with Host %s = %d, want 200", evil, code)
	}
}

// TestAdminHostsAllowsConfiguredName: a name listed in admin.hosts (a
// hosts-file or tunnel name for the loopback listener) is served; others
// are still refused.
func TestAdminHostsAllowsConfiguredName(t *testing.T) {
	rig := newAdminRig(t, nil, rigAdminLine, "admin: {listen: 127.0.0.1:0, hosts: [bridge-admin.internal]}\n")
	_, port, _ := net.SplitHostPort(rig.d.AdminAddr())
	if code, body := hostCall(t, rig, "GET", "/api/endpoints", "Bridge-Admin.internal:"+port); code != http.StatusOK {
		t.Errorf("configured name: %d %.200s, want 200", code, body)
	}
	if code, _ := hostCall(t, rig, "GET", "/api/endpoints", "other.internal:"+port); code != http.StatusForbidden {
		t.Errorf("other name: %d, want 403", code)
	}
}

// postLogin posts the sign-in form with a token and optional headers
// (pairs) and returns the response.
func postLogin(t *testing.T, rig *daemonRig, token string, header ...string) *http.Response {
	t.Helper()
	base := "http://" + rig.d.AdminAddr()
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return resp
}

func adminCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == web.AdminCookie {
			return c
		}
	}
	return nil
}

// withCookie calls the admin listener with only the given admin cookie.
func withCookie(t *testing.T, rig *daemonRig, method, path, value string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+rig.d.AdminAddr()+path, nil)
	req.AddCookie(&http.Cookie{Name: web.AdminCookie, Value: value})
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return resp.StatusCode
}

// TestAdminSignInRateLimit: wrong tokens from one client are refused with
// 429 after 10 failures within 5 minutes, whatever X-Forwarded-For says
// (no proxy is trusted), also for the right token; the Bearer API counts
// the same way; the window passes on the daemon's clock.
func TestAdminSignInRateLimit(t *testing.T) {
	clock := newFakeClock()
	rig := newAdminRig(t, clock.Now)
	for i := range 10 {
		resp := postLogin(t, rig, "guess-"+strconv.Itoa(i), "X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d, want 401", i, resp.StatusCode)
		}
	}
	resp := postLogin(t, rig, "admin-token", "X-Forwarded-For", "198.51.100.7")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || adminCookie(resp) != nil {
		t.Fatalf("sign-in after 10 failures = %d (Retry-After %q, cookie %v), want 429 with Retry-After and no cookie",
			resp.StatusCode, resp.Header.Get("Retry-After"), adminCookie(resp))
	}
	if code, body := adminCall(t, rig, "GET", "/api/channels", "admin-token", nil); code != http.StatusTooManyRequests || !strings.Contains(body, "sign-in attempts") {
		t.Errorf("Bearer while locked out = %d %s, want 429", code, body)
	}
	if !strings.Contains(rig.logs.String(), "too many failed admin sign-ins") {
		t.Error("the lock-out is not logged")
	}

	clock.Advance(5*time.Minute + time.Second)
	if resp := postLogin(t, rig, "admin-token"); resp.StatusCode != http.StatusSeeOther || adminCookie(resp) == nil {
		t.Fatalf("sign-in after the window = %d, want 303 with the cookie", resp.StatusCode)
	}
	// The Bearer API counts failures too.
	for i := range 10 {
		if code, _ := adminCall(t, rig, "GET", "/api/endpoints", "wrong-"+strconv.Itoa(i), nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong Bearer %d = %d, want 401", i, code)
		}
	}
	if code, _ := adminCall(t, rig, "GET", "/api/endpoints", "admin-token", nil); code != http.StatusTooManyRequests {
		t.Errorf("Bearer after 10 wrong ones = %d, want 429", code)
	}
}

// TestAdminSignInLogsPeer: with no trusted proxy, the failed sign-in log
// names the TCP peer, not what X-Forwarded-For claims.
func TestAdminSignInLogsPeer(t *testing.T) {
	rig := newAdminRig(t, nil)
	postLogin(t, rig, "guess", "X-Forwarded-For", "203.0.113.9")
	var line string
	for l := range strings.SplitSeq(rig.logs.String(), "\n") {
		if strings.Contains(l, "sign-in with a wrong admin token") {
			line = l
		}
	}
	if !strings.Contains(line, "client=127.0.0.1") || strings.Contains(line, "203.0.113.9") {
		t.Errorf("failed sign-in log %q, want client=127.0.0.1 and nothing from X-Forwarded-For", line)
	}
}

// TestAdminSession: the cookie holds a random session id, not the admin
// token; the raw token is no cookie; sign-out ends the session on the
// server; a session expires after 12 hours on the daemon's clock.
func TestAdminSession(t *testing.T) {
	clock := newFakeClock()
	rig := newAdminRig(t, clock.Now)
	resp := postLogin(t, rig, "admin-token")
	ck := adminCookie(resp)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure {
		t.Fatalf("sign-in cookie %+v, want HttpOnly, SameSite=Strict, not Secure over plain http", ck)
	}
	if strings.Contains(ck.Value, "admin-token") || len(ck.Value) < 32 {
		t.Errorf("cookie value %q: want a random session id, not the token", ck.Value)
	}
	if code := withCookie(t, rig, "GET", "/api/channels", ck.Value); code != http.StatusOK {
		t.Errorf("API with the session cookie = %d, want 200", code)
	}
	if code := withCookie(t, rig, "GET", "/api/channels", "admin-token"); code != http.StatusUnauthorized {
		t.Errorf("API with the raw token as cookie = %d, want 401", code)
	}

	// Sign-out invalidates the session: replaying the old cookie fails.
	p := newPageClient(t, rig)
	p.signIn("admin-token")
	var old string
	for _, c := range p.hc.Jar.Cookies(&url.URL{Scheme: "http", Host: rig.d.AdminAddr(), Path: "/"}) {
		if c.Name == web.AdminCookie {
			old = c.Value
		}
	}
	if r, _ := p.do(http.MethodPost, "/logout", url.Values{}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", r.StatusCode)
	}
	if code := withCookie(t, rig, "GET", "/api/channels", old); code != http.StatusUnauthorized {
		t.Errorf("API with a signed-out session's cookie = %d, want 401", code)
	}
	if code := withCookie(t, rig, "GET", "/", old); code != http.StatusUnauthorized {
		t.Errorf("status page with a signed-out session's cookie = %d, want the sign-in form (401)", code)
	}

	// The first session still works until it expires.
	clock.Advance(12*time.Hour - time.Minute)
	if code := withCookie(t, rig, "GET", "/", ck.Value); code != http.StatusOK {
		t.Errorf("status page before expiry = %d, want 200", code)
	}
	clock.Advance(2 * time.Minute)
	if code := withCookie(t, rig, "GET", "/api/channels", ck.Value); code != http.StatusUnauthorized {
		t.Errorf("API after the session expired = %d, want 401", code)
	}
}

// TestAdminCookieSecure: behind an https public_url the session cookie is
// Secure.
func TestAdminCookieSecure(t *testing.T) {
	rig := newAdminRig(t, nil, "public_url: http://", "public_url: https://bridge.example.com\n#")
	ck := adminCookie(postLogin(t, rig, "admin-token"))
	if ck == nil || !ck.Secure {
		t.Errorf("cookie %+v with an https public_url, want Secure", ck)
	}
}

// TestAdminTrustedProxy: only a configured proxy's X-Forwarded-For names
// the client (rightmost untrusted entry) in the log and the rate limit,
// and its X-Forwarded-Proto: https makes the cookie Secure.
func TestAdminTrustedProxy(t *testing.T) {
	clock := newFakeClock()
	rig := newAdminRig(t, clock.Now, rigAdminLine, "admin: {listen: 127.0.0.1:0, token: admin-token, trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]}\n")
	for i := range 10 {
		postLogin(t, rig, "guess-"+strconv.Itoa(i), "X-Forwarded-For", "192.0.2.1, 203.0.113.9, 10.1.2.3")
	}
	if !strings.Contains(rig.logs.String(), "client=203.0.113.9") || !strings.Contains(rig.logs.String(), "peer=127.0.0.1") {
		t.Errorf("log does not name the forwarded client and the proxy: %s", rig.logs.String())
	}
	if resp := postLogin(t, rig, "admin-token", "X-Forwarded-For", "203.0.113.9"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the locked-out client through the proxy = %d, want 429", resp.StatusCode)
	}
	resp := postLogin(t, rig, "admin-token", "X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "https")
	if ck := adminCookie(resp); resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.Secure {
		t.Errorf("another client through the proxy over https = %d, cookie %+v; want 303 and a Secure cookie", resp.StatusCode, ck)
	}
}

// TestAdminSignInAnyToken: the cookie holds the session id, so a token
// with characters a cookie cannot carry (quote, semicolon, backslash,
// non-ASCII) signs in to the page too.
func TestAdminSignInAnyToken(t *testing.T) {
	const token = `semi;colon"näive\x`
	rig := newAdminRig(t, nil, rigAdminLine, "admin: {listen: 127.0.0.1:0, token: 'semi;colon\"näive\\x'}\n")
	resp := postLogin(t, rig, token)
	ck := adminCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || ck == nil {
		t.Fatalf("sign-in = %d, cookie %v; want 303 with a session cookie", resp.StatusCode, ck)
	}
	if code := withCookie(t, rig, "GET", "/", ck.Value); code != http.StatusOK {
		t.Errorf("status page with the session = %d, want 200", code)
	}
}
