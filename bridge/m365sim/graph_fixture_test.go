package m365sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-graph", false, "rewrite golden files in testdata/graph")

// graphFixture is a sim on loopback with a tenant, an app, two users with
// mailboxes (alice, bob) and a shared mailbox support@ on which alice has
// Full Access and Send As.
type graphFixture struct {
	sim       *Sim
	srv       *httptest.Server
	tenantID  string
	clientID  string
	alice     *User
	bob       *User
	shared    *Mailbox
	aliceTok  string // all mail scopes
	bobTok    string // all mail scopes, no rights on support@
	clockBase time.Time
}

var allMailScopes = []string{"Mail.ReadWrite", "Mail.Send", "Mail.ReadWrite.Shared", "Mail.Send.Shared", "User.Read"}

func newGraphFixture(t *testing.T, opts Options) *graphFixture {
	t.Helper()
	base := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	if opts.Now == nil {
		opts.Now = func() time.Time { return base }
	}
	s := New(opts)
	f := &graphFixture{sim: s, clockBase: base}
	tn := s.AddTenant(Tenant{Domains: []string{"contoso.example"}})
	app := s.AddApp(App{TenantID: tn.ID, RedirectURIs: []string{"http://127.0.0.1/cb"}})
	f.tenantID, f.clientID = tn.ID, app.ClientID
	f.alice = s.AddUser(User{TenantID: tn.ID, UPN: "alice@contoso.example", DisplayName: "Alice Agent"}, false)
	f.bob = s.AddUser(User{TenantID: tn.ID, UPN: "bob@contoso.example", DisplayName: "Bob Agent"}, false)
	f.shared = s.AddSharedMailbox("support@contoso.example", "Support")
	if err := s.Delegate("support@contoso.example", "alice@contoso.example", true, true); err != nil {
		t.Fatal(err)
	}
	f.aliceTok = f.token(f.alice.ID, allMailScopes...)
	f.bobTok = f.token(f.bob.ID, allMailScopes...)
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *graphFixture) token(userID string, scopes ...string) string {
	f.sim.mu.Lock()
	defer f.sim.mu.Unlock()
	return f.sim.issueAccessTokenLocked(f.tenantID, f.clientID, userID, scopes).Token
}

// call sends a request; hdr is name, value pairs. A non-nil body that is
// not []byte is sent as JSON.
func (f *graphFixture) call(t *testing.T, method, path, tok string, body any, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = f.srv.URL + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// getJSON calls and decodes, failing unless the status is want.
func (f *graphFixture) getJSON(t *testing.T, method, path, tok string, body any, want int, hdr ...string) map[string]any {
	t.Helper()
	resp, b := f.call(t, method, path, tok, body, hdr...)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return m
}

// wantGraphError checks the C.1 envelope, the status and the code.
func wantGraphError(t *testing.T, resp *http.Response, body []byte, status int, code string) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	e, _ := env["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error object: %s", body)
	}
	if got := e["code"]; got != code {
		t.Errorf("code %v, want %s (%s)", got, code, body)
	}
	assertShape(t, "error", env, loadSample(t, "error.json"))
	inner := e["innerError"].(map[string]any)
	if inner["request-id"] != resp.Header.Get("request-id") {
		t.Errorf("innerError request-id %v, header %q", inner["request-id"], resp.Header.Get("request-id"))
	}
	return e
}

func loadSample(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "graph", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// assertShape checks that got has every key of the documented sample
// want, recursively, with the same JSON kind (null in the sample accepts
// anything; an array's first element is the element shape).
func assertShape(t *testing.T, path string, got, want any) {
	t.Helper()
	switch w := want.(type) {
	case nil:
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T, want object", path, got)
			return
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s: missing %q", path, k)
				continue
			}
			assertShape(t, path+"."+k, gv, wv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			t.Errorf("%s: got %T, want array", path, got)
			return
		}
		if len(w) > 0 && len(g) > 0 {
			assertShape(t, path+"[0]", g[0], w[0])
		}
	default:
		if got == nil {
			t.Errorf("%s: got null, want %T", path, want)
		} else if wk, gk := jsonKind(want), jsonKind(got); wk != gk {
			t.Errorf("%s: got %s, want %s", path, gk, wk)
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "other"
}

// golden compares got (JSON) with testdata/graph/<name>, rewriting it
// under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	pretty := buf.Bytes()
	path := filepath.Join("testdata", "graph", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update-graph to create it)", err, t.Name())
	}
	if !bytes.Equal(pretty, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, pretty, want)
	}
}
