package m365sim

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func b64url(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// getJSON fetches a JSON document.
func getJSON(t *testing.T, u string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", u, err)
	}
	return resp
}

// verifyIDToken checks an id_token's RS256 signature against the JWKS named
// by the discovery document at discoveryURL, and its issuer, audience and
// lifetime, the way a relying party would. It returns the claims.
func verifyIDToken(t *testing.T, discoveryURL, idToken, clientID string, now time.Time) map[string]any {
	t.Helper()
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, discoveryURL, &disco)
	var jwks struct {
		Keys []struct {
			Kty, Use, Kid, N, E string
		} `json:"keys"`
	}
	getJSON(t, disco.JWKSURI, &jwks)

	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token has %d parts", len(parts))
	}
	hb, _ := b64url(parts[0])
	var header struct{ Typ, Alg, Kid string }
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	if header.Typ != "JWT" || header.Alg != "RS256" || header.Kid == "" {
		t.Fatalf("header = %+v, want typ JWT, alg RS256 and a kid", header)
	}
	var pub *rsa.PublicKey
	for _, k := range jwks.Keys {
		if k.Kid != header.Kid {
			continue
		}
		if k.Kty != "RSA" || k.Use != "sig" {
			t.Fatalf("key %+v: want kty RSA, use sig", k)
		}
		n, err1 := b64url(k.N)
		e, err2 := b64url(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("key %s: n/e not base64url", k.Kid)
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if pub == nil {
		t.Fatalf("kid %s not in the JWKS %s", header.Kid, disco.JWKSURI)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := b64url(parts[2])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	claims := decodeJWTClaims(t, idToken)
	if claims["iss"] != disco.Issuer {
		t.Errorf("iss = %v, want the discovery issuer %s", claims["iss"], disco.Issuer)
	}
	if claims["aud"] != clientID {
		t.Errorf("aud = %v, want %s", claims["aud"], clientID)
	}
	exp, _ := claims["exp"].(float64)
	nbf, _ := claims["nbf"].(float64)
	if now.Unix() < int64(nbf) || now.Unix() >= int64(exp) {
		t.Errorf("nbf %v exp %v do not cover now %d", nbf, exp, now.Unix())
	}
	return claims
}

func TestOAuth2ClientAuthCodePKCERefresh(t *testing.T) {
	// A real clock: golang.org/x/oauth2 decides expiry by time.Now.
	srv, err := StartServer(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tenantURL := srv.URL + "/" + DefaultTenantDomain
	conf := &oauth2.Config{
		ClientID:     srv.Seeded.ClientID,
		ClientSecret: srv.Seeded.ClientSecret,
		RedirectURL:  DefaultRedirectURI,
		Scopes:       strings.Fields(testScopes),
		Endpoint: oauth2.Endpoint{
			AuthURL:   tenantURL + "/oauth2/v2.0/authorize",
			TokenURL:  tenantURL + "/oauth2/v2.0/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-xyz", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", "nonce-123"), oauth2.SetAuthURLParam("sim_auto", "1"),
		oauth2.SetAuthURLParam("login_hint", "agent@contoso.com"))

	// The browser leg: follow the authorize redirect to the callback.
	var callback *url.URL
	client := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		callback = req.URL
		return http.ErrUseLastResponse
	}}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if callback == nil || callback.Query().Get("state") != "state-xyz" || callback.Query().Get("code") == "" {
		t.Fatalf("authorize redirect = %v, want code and state-xyz", callback)
	}

	t.Run("wrong verifier", func(t *testing.T) {
		resp, err := client.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_, err = conf.Exchange(ctx, callback.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || !strings.Contains(string(re.Body), `"error_codes":[501481]`) {
			t.Fatalf("err = %v, want RetrieveError invalid_grant with AADSTS501481", err)
		}
	})

	resp, err = client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok, err := conf.Exchange(ctx, callback.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
		t.Fatalf("token = %+v, want access, refresh, Bearer, expiry", tok)
	}
	idToken, _ := tok.Extra("id_token").(string)
	claims := verifyIDToken(t, tenantURL+"/v2.0/.well-known/openid-configuration", idToken, conf.ClientID, time.Now())
	for k, want := range map[string]any{
		"tid": srv.Seeded.TenantID, "oid": "a9f0c1d2-0000-4000-8000-00000000a9e7",
		"preferred_username": "agent@contoso.com", "name": "Alex Agent", "nonce": "nonce-123", "ver": "2.0",
		"iss": srv.URL + "/" + srv.Seeded.TenantID + "/v2.0",
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if sub, _ := claims["sub"].(string); sub == "" || sub == claims["oid"] {
		t.Errorf("sub = %v, want a pairwise subject distinct from oid", claims["sub"])
	}

	// Refresh through the token source: an expired token is refreshed and
	// the refresh token rotates.
	old := *tok
	tok.Expiry = time.Now().Add(-time.Minute)
	ts := conf.TokenSource(ctx, tok)
	tok2, err := ts.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == old.RefreshToken || tok2.AccessToken == old.AccessToken {
		t.Error("refresh did not rotate the tokens")
	}
	if id2, _ := tok2.Extra("id_token").(string); id2 != "" {
		c2 := verifyIDToken(t, tenantURL+"/v2.0/.well-known/openid-configuration", id2, conf.ClientID, time.Now())
		if c2["sub"] != claims["sub"] || c2["nonce"] != nil {
			t.Errorf("refreshed id_token sub %v nonce %v; want the same sub and no nonce", c2["sub"], c2["nonce"])
		}
	} else {
		t.Error("refresh with openid granted returned no id_token")
	}
	tok2.Expiry = time.Now().Add(-time.Minute)
	tok3, err := conf.TokenSource(ctx, tok2).Token()
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	if tok3.RefreshToken == tok2.RefreshToken {
		t.Error("second refresh did not rotate the refresh token")
	}
	// The first refresh token is still valid (not revoked by rotation).
	old.Expiry = time.Now().Add(-time.Minute)
	if _, err := conf.TokenSource(ctx, &old).Token(); err != nil {
		t.Errorf("refresh with the original refresh token: %v", err)
	}
	if got := srv.Sim.TokenRequests("refresh_token"); got != 3 {
		t.Errorf("refresh requests = %d, want 3", got)
	}

	t.Run("basic auth style", func(t *testing.T) {
		c := *conf
		c.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		resp, err := client.Get(c.AuthCodeURL("s2", oauth2.SetAuthURLParam("sim_auto", "1")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, err := c.Exchange(ctx, callback.Query().Get("code")); err != nil {
			t.Errorf("Exchange with HTTP Basic: %v", err)
		}
	})
}

func TestDiscovery(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	tid := f.seeded.TenantID
	tests := []struct {
		seg, wantIssuer, wantPath string
	}{
		{DefaultTenantDomain, f.srv.URL + "/" + tid + "/v2.0", tid},
		{tid, f.srv.URL + "/" + tid + "/v2.0", tid},
		{"common", f.srv.URL + "/{tenantid}/v2.0", "common"},
		{"organizations", f.srv.URL + "/{tenantid}/v2.0", "organizations"},
	}
	for _, tt := range tests {
		t.Run(tt.seg, func(t *testing.T) {
			var doc map[string]any
			resp := getJSON(t, f.srv.URL+"/"+tt.seg+"/v2.0/.well-known/openid-configuration", &doc)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tt.wantPath == tid {
				wantShape(t, doc, "openid-configuration.json")
			}
			base := f.srv.URL + "/" + tt.wantPath
			for k, want := range map[string]string{
				"issuer":                 tt.wantIssuer,
				"authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"token_endpoint":         base + "/oauth2/v2.0/token",
				"jwks_uri":               base + "/discovery/v2.0/keys",
				"userinfo_endpoint":      f.srv.URL + "/oidc/userinfo",
			} {
				if doc[k] != want {
					t.Errorf("%s = %v, want %s", k, doc[k], want)
				}
			}
		})
	}
	t.Run("unknown tenant", func(t *testing.T) {
		var m map[string]any
		resp := getJSON(t, f.srv.URL+"/nowhere.example/v2.0/.well-known/openid-configuration", &m)
		wantAADError(t, resp, m, 400, "invalid_tenant", 90002)
	})
	t.Run("jwks", func(t *testing.T) {
		var m map[string]any
		resp := getJSON(t, f.srv.URL+"/"+DefaultTenantDomain+"/discovery/v2.0/keys", &m)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		wantShape(t, m, "jwks.json")
	})
}
