package entra

// Contract tests, client side, against Microsoft's own Entra ID samples
// (bridge/m365sim/testdata/entra, README there lists repository, path and
// commit): the /authorize URL carries every documented parameter, and the
// documented OpenID configuration leads to the signing keys. The
// simulator's side is bridge/m365sim/contract_docs_test.go.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func entraDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "m365sim", "testdata", "entra", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docQuery parses a documented URL written with one parameter per line.
func docQuery(t *testing.T, name string) url.Values {
	t.Helper()
	s := strings.Join(strings.Fields(entraDoc(t, name)), "")
	_, q, _ := strings.Cut(s, "?")
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestContractAuthorizeURLHasDocumentedParameters(t *testing.T) {
	c := &Client{LoginURL: "https://login.example", Tenant: "contoso.onmicrosoft.com", ClientID: "00001111-aaaa-2222-bbbb-3333cccc4444",
		RedirectURI: "https://bridge.example/oauth/callback"}
	u, err := url.Parse(c.AuthCodeURL("12345", strings.Repeat("v", 43), ""))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/contoso.onmicrosoft.com/oauth2/v2.0/authorize" {
		t.Errorf("path %s", u.Path)
	}
	got := u.Query()
	for name, want := range docQuery(t, "authorize-request-docs.txt") {
		if got.Get(name) == "" {
			t.Errorf("parameter %s missing (documented: %s)", name, want[0])
		}
	}
	for _, name := range []string{"response_type", "response_mode", "code_challenge_method"} {
		if got.Get(name) != docQuery(t, "authorize-request-docs.txt").Get(name) {
			t.Errorf("%s = %q, documented %q", name, got.Get(name), docQuery(t, "authorize-request-docs.txt").Get(name))
		}
	}
	if got.Get("state") != "12345" || got.Get("redirect_uri") != c.RedirectURI {
		t.Errorf("query %v", got)
	}
}

func TestContractDiscoveryDocumentLeadsToKeys(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch r.URL.Path {
		case "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration":
			// The documented sample, its host and {tenant} placeholder
			// pointed at this server.
			doc := strings.ReplaceAll(entraDoc(t, "openid-configuration-docs.json"), "https://login.microsoftonline.com/{tenant}", srv.URL+"/contoso.onmicrosoft.com")
			w.Write([]byte(doc))
		case "/contoso.onmicrosoft.com/discovery/v2.0/keys":
			// No JWKS body sample in Microsoft's docs: the shape written
			// from RFC 7517 and Entra's published keys (README there).
			w.Write([]byte(entraDoc(t, "jwks.json")))
		default:
			t.Errorf("unexpected request %s", r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Client{LoginURL: srv.URL, Tenant: "contoso.onmicrosoft.com", ClientID: "x", HTTP: srv.Client(),
		Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}
	k, _, err := c.signingKey(context.Background(), "nOo3ZDrODXEK1jKWhXslHR_KXEg")
	if err != nil || k == nil || k.E != 65537 {
		t.Fatalf("key %v, %v", k, err)
	}
}
