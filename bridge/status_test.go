package bridge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/web"
	"github.com/m365bridge/m365bridge/webhooks"
)

// pageClient is a browser without JavaScript: a cookie jar, forms posted
// by hand, redirects shown rather than followed.
type pageClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newPageClient(t *testing.T, rig *daemonRig) *pageClient {
	jar, _ := cookiejar.New(nil)
	return &pageClient{t: t, base: "http://" + rig.d.AdminAddr(), hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (p *pageClient) do(method, path string, form url.Values) (*http.Response, string) {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, p.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// What a browser sends with a same-origin form post.
		req.Header.Set("Origin", p.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// signIn posts the admin token and returns the status page and its CSRF token.
func (p *pageClient) signIn(token string) (page, csrf string) {
	p.t.Helper()
	resp, _ := p.do(http.MethodPost, "/login", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		p.t.Fatalf("sign-in: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	return p.page()
}

func (p *pageClient) page() (page, csrf string) {
	p.t.Helper()
	resp, page := p.do(http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET / = %d: %.300s", resp.StatusCode, page)
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		p.t.Fatalf("no CSRF token in the page: %.500s", page)
	}
	return page, m[1]
}

func TestStatusPageSignIn(t *testing.T) {
	rig := newDaemonRig(t, nil)
	p := newPageClient(t, rig)

	resp, page := p.do(http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `action="/login"`) || strings.Contains(page, "channel-support") {
		t.Errorf("GET / without sign-in = %d, want 401 with the sign-in form only: %.300s", resp.StatusCode, page)
	}
	resp, page = p.do(http.MethodPost, "/login", url.Values{"token": {"guess"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "That is not the admin token") {
		t.Errorf("wrong token = %d: %.300s", resp.StatusCode, page)
	}

	resp, _ = p.do(http.MethodPost, "/login", url.Values{"token": {"admin-token"}})
	var admin *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == web.AdminCookie {
			admin = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || admin == nil || !admin.HttpOnly || admin.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in = %d, cookie %+v; want 303 and an HttpOnly SameSite=Strict admin cookie", resp.StatusCode, admin)
	}
	page, _ = p.page()
	for _, want := range []string{`id="channel-support"`, `id="channel-sales"`, "support@contoso.com", "Inbox/Support",
		`id="auth-support">Connect`, "Not connected yet.", `id="endpoint-helpdesk"`, "None: every event was delivered", "Sign out"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, `id="cluster"`) {
		t.Error("status page shows a cluster section on SQLite (one daemon): it belongs to PostgreSQL only")
	}

	// The API accepts the browser's cookie too.
	resp, _ = p.do(http.MethodGet, "/api/channels", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/api/channels with the cookie = %d", resp.StatusCode)
	}
	if resp, _ = p.do(http.MethodPost, "/logout", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out = %d, want 303", resp.StatusCode)
	}
	if resp, _ = p.do(http.MethodGet, "/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after sign-out GET / = %d, want 401", resp.StatusCode)
	}
}

func TestStatusPageFormsNeedCSRF(t *testing.T) {
	rig := newDaemonRig(t, nil)
	p := newPageClient(t, rig)
	_, csrf := p.signIn("admin-token")

	for _, tc := range []struct{ name, token string }{{"missing", ""}, {"forged", strings.Repeat("ab", 32)}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := p.do(http.MethodPost, "/ui/endpoints/helpdesk/pause", url.Values{"csrf": {tc.token}})
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#endpoints" {
				t.Errorf("pause with %s token = %d to %q", tc.name, resp.StatusCode, resp.Header.Get("Location"))
			}
			page, _ := p.page()
			if !strings.Contains(page, "That form had expired") {
				t.Errorf("no flash saying the form expired")
			}
			if st, _ := rig.d.db.Outbox().Endpoint(t.Context(), "helpdesk"); st.State != "active" {
				t.Errorf("endpoint %s after a refused form, want active", st.State)
			}
		})
	}

	resp, _ := p.do(http.MethodPost, "/ui/endpoints/helpdesk/pause", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause = %d", resp.StatusCode)
	}
	page, _ := p.page()
	if !strings.Contains(page, "Webhook helpdesk paused.") || !strings.Contains(page, "paused from the status page") || !strings.Contains(page, ">Resume</button>") {
		t.Errorf("after pause the page shows no paused state and Resume button: %.2000s", page)
	}

	resp, _ = p.do(http.MethodPost, "/ui/channels/sales/auth", url.Values{"csrf": {csrf}, "kind": {"connect"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, rig.sim.URL) || !strings.Contains(loc, "/oauth2/v2.0/authorize?") {
		t.Errorf("Connect = %d to %q, want 303 to the sim's authorize URL", resp.StatusCode, loc)
	}

	// A page on another site cannot post the form even with the cookie.
	req, _ := http.NewRequest(http.MethodPost, p.base+"/ui/endpoints/helpdesk/resume", strings.NewReader("csrf="+csrf))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site form post = %d, want 403", resp.StatusCode)
	}
}

// TestStatusPageDeadLetterReplay: a rejected event shows with the
// receiver's answer (escaped) and a replay button that re-delivers it.
func TestStatusPageDeadLetterReplay(t *testing.T) {
	rig := newDaemonRig(t, nil)
	sr := newSwitchReceiver(rig, 5)
	sr.fail(http.StatusUnprocessableEntity, `<script>alert("x")</script> group missing`)
	injectSales(t, rig, "quote please")
	mustConnect(t, rig, "sales", "sales@contoso.com")
	id := waitDeliveries(t, rig, "state=rejected", 1)[0].EventID

	p := newPageClient(t, rig)
	page, csrf := p.signIn("admin-token")
	for _, want := range []string{`id="replay-` + id + `"`, "HTTP 422", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; group missing",
		`id="auth-sales">Re-authenticate`, "off: every message is new"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("the receiver's answer reached the page unescaped")
	}

	sr.fail(0, "")
	resp, _ := p.do(http.MethodPost, "/ui/replay", url.Values{"csrf": {csrf}, "id": {id}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#dead-letters" {
		t.Fatalf("replay = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sr.waitFor(t, id)
	page, _ = p.page()
	if !strings.Contains(page, "Event "+id+" is queued again with the same id") {
		t.Errorf("no replay flash on the page")
	}
	// The flash shows once.
	if page, _ = p.page(); strings.Contains(page, "queued again") {
		t.Errorf("the flash message showed twice")
	}
	if resp, _ = p.do(http.MethodPost, "/ui/replay", url.Values{"csrf": {csrf}, "id": {id}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("second replay = %d, want 303 back to the page", resp.StatusCode)
	}
	if page, _ = p.page(); !strings.Contains(page, "Nothing to replay") {
		t.Errorf("replaying a delivered event: no flash saying there was nothing to replay")
	}
}

// TestStatusPageSyncNow: a connected channel has a Sync now button whose
// round picks up new mail at once. The channel polls once a day, so after
// its first round only the button can bring the mail within the test's
// 30 s safety net.
func TestStatusPageSyncNow(t *testing.T) {
	rig := newDaemonRigChannels(t, nil, strings.ReplaceAll(defaultRigChannels, "poll_interval: 10s", "poll_interval: 24h"))
	mustConnect(t, rig, "sales", "sales@contoso.com")
	// The first round (at connect) must be over before the mail comes, or
	// it, not the button, would pick it up. The API is polled (20 ms
	// pacing) because it is what tells; the deadline is a safety net.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := adminCall(t, rig, http.MethodGet, "/api/channels", "admin-token", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /api/channels = %d %s", code, body)
		}
		var chans []struct {
			Name string
			Sync struct {
				LastSyncAt time.Time `json:"last_sync_at"`
			}
		}
		jsonField(t, body, &chans)
		done := false
		for _, c := range chans {
			done = done || c.Name == "sales" && !c.Sync.LastSyncAt.IsZero()
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sales channel never finished its first round: %s", body)
		}
	}
	p := newPageClient(t, rig)
	page, csrf := p.signIn("admin-token")
	if !strings.Contains(page, `id="sync-sales"`) {
		t.Fatalf("no Sync now button for the connected channel: %.1500s", page)
	}
	if strings.Contains(page, `id="sync-support"`) {
		t.Error("the unconnected support channel has a Sync now button")
	}
	if _, err := rig.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{Subject: "sync me", From: "dave@example.com", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.do(http.MethodPost, "/ui/channels/sales/sync", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") == "" {
		t.Fatalf("sync now = %d to %q, want 303 back to the page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page, _ := p.page(); !strings.Contains(page, "Channel sales is syncing now") {
		t.Errorf("no flash after Sync now: %.1500s", page)
	}
	rig.waitEventsUntil(`the "sync me" mail`, func(evs map[string]webhooks.Event) bool {
		for _, ev := range evs {
			var md webhooks.MailData
			if json.Unmarshal(ev.Data, &md) == nil && md.Article.Subject == "sync me" {
				return true
			}
		}
		return false
	})
}
