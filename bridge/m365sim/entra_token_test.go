package m365sim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTokenAuthorizationCodeSuccess(t *testing.T) {
	f := newEntraFixture(t, Options{AccessTokenTTL: 4538 * time.Second}, nil)
	p := f.authParams()
	p.Set("nonce", "n-0S6_WzA2Mj")
	resp, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, p), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	wantTokenHeaders(t, resp)
	wantShape(t, m, "token_success.json")
	wantDocShape(t, m, "token_success_docs.json") // Microsoft's own sample (README)
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(4538) || m["ext_expires_in"] != float64(4538) {
		t.Errorf("token_type/expires_in/ext_expires_in = %v/%v/%v, want Bearer/4538/4538", m["token_type"], m["expires_in"], m["ext_expires_in"])
	}
	if got, want := m["scope"], "openid profile Mail.ReadWrite Mail.Send Mail.ReadWrite.Shared Mail.Send.Shared"; got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
	claims := decodeJWTClaims(t, m["id_token"].(string))
	wantShape(t, claims, "id_token_claims.json")
	if claims["nonce"] != "n-0S6_WzA2Mj" || claims["preferred_username"] != "agent@contoso.com" || claims["aud"] != f.seeded.ClientID {
		t.Errorf("claims = %v", claims)
	}
	// The access token is what the Graph side accepts.
	req, _ := http.NewRequest("GET", f.srv.URL+"/oidc/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+m["access_token"].(string))
	uresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	uresp.Body.Close()
	if uresp.StatusCode != http.StatusOK {
		t.Errorf("userinfo with the new access token: %d", uresp.StatusCode)
	}
}

func TestTokenOptionalParts(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	tests := []struct {
		scope           string
		wantRT, wantID  bool
		wantScope       string
		wantOidAndNames bool
	}{
		{"Mail.ReadWrite", false, false, "Mail.ReadWrite", false},
		{"offline_access Mail.ReadWrite", true, false, "Mail.ReadWrite", false},
		{"openid Mail.ReadWrite", false, true, "openid Mail.ReadWrite", false},
		{"openid profile https://graph.microsoft.com/mail.readwrite", false, true, "openid profile Mail.ReadWrite", true},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			p := f.authParams()
			p.Set("scope", tt.scope)
			_, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, p), nil)
			_, hasRT := m["refresh_token"]
			_, hasID := m["id_token"]
			if hasRT != tt.wantRT || hasID != tt.wantID || m["scope"] != tt.wantScope {
				t.Errorf("refresh_token %v id_token %v scope %q; want %v %v %q", hasRT, hasID, m["scope"], tt.wantRT, tt.wantID, tt.wantScope)
			}
			if hasID {
				_, hasOid := decodeJWTClaims(t, m["id_token"].(string))["oid"]
				if hasOid != tt.wantOidAndNames {
					t.Errorf("id_token oid present = %v, want %v (needs profile)", hasOid, tt.wantOidAndNames)
				}
			}
		})
	}
}

func TestTokenClientAuthentication(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	odd, err := f.sim.AddClientSecret(f.seeded.ClientID, "a+b/c=d%e:f~g", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
	}
	tests := []struct {
		name    string
		form    func(url.Values)
		req     func(*http.Request)
		status  int
		errCode string
		aadsts  int
	}{
		{"secret in body", nil, nil, 200, "", 0},
		{"odd secret in body", func(v url.Values) { v.Set("client_secret", odd.Value) }, nil, 200, "", 0},
		{"basic, url-encoded", func(v url.Values) { v.Del("client_secret"); v.Del("client_id") }, basic(f.seeded.ClientID, odd.Value), 200, "", 0},
		{"basic and body id", func(v url.Values) { v.Del("client_secret") }, basic(f.seeded.ClientID, f.seeded.ClientSecret), 200, "", 0},
		{"basic id differs from body", func(v url.Values) { v.Del("client_secret"); v.Set("client_id", "other") }, basic(f.seeded.ClientID, f.seeded.ClientSecret), 400, "invalid_request", 700038},
		{"no secret", func(v url.Values) { v.Del("client_secret") }, nil, 401, "invalid_client", 7000218},
		{"wrong secret", func(v url.Values) { v.Set("client_secret", "nope") }, nil, 401, "invalid_client", 7000215},
		{"secret id instead of value", func(v url.Values) { v.Set("client_secret", odd.ID) }, nil, 401, "invalid_client", 7000215},
		{"missing client_id", func(v url.Values) { v.Del("client_id") }, nil, 400, "invalid_request", 900144},
		{"unknown client", func(v url.Values) { v.Set("client_id", "99999999-2222-3333-4444-555555555555") }, nil, 400, "unauthorized_client", 700016},
		{"missing grant_type", func(v url.Values) { v.Del("grant_type") }, nil, 400, "invalid_request", 900144},
		{"unsupported grant_type", func(v url.Values) { v.Set("grant_type", "password") }, nil, 400, "unsupported_grant_type", 70003},
		{"client assertion", func(v url.Values) { v.Set("client_assertion", "eyJ.x.y") }, nil, 401, "invalid_client", 700027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{
				"grant_type": {"authorization_code"}, "code": {f.code(DefaultTenantDomain, f.authParams())},
				"redirect_uri": {DefaultRedirectURI}, "client_id": {f.seeded.ClientID}, "client_secret": {f.seeded.ClientSecret},
			}
			if tt.form != nil {
				tt.form(form)
			}
			req, _ := http.NewRequest("POST", f.srv.URL+"/"+DefaultTenantDomain+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.req != nil {
				tt.req(req)
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			if tt.status == 200 {
				if resp.StatusCode != 200 || m["access_token"] == nil {
					t.Errorf("status %d: %v", resp.StatusCode, m)
				}
				return
			}
			msg := wantAADError(t, resp, m, tt.status, tt.errCode, tt.aadsts)
			wantShape(t, m, "token_error.json")
			if tt.aadsts == 7000215 {
				want := "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + f.seeded.ClientID + "'."
				if msg != want {
					t.Errorf("message = %q, want %q", msg, want)
				}
			}
		})
	}
}

func TestTokenExpiredSecret(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	if err := f.sim.ExpireClientSecrets(f.seeded.ClientID); err != nil {
		t.Fatal(err)
	}
	resp, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), nil)
	msg := wantAADError(t, resp, m, 401, "invalid_client", 7000222)
	if !strings.HasPrefix(msg, "The provided client secret keys for app '"+f.seeded.ClientID+"' are expired.") {
		t.Errorf("message = %q", msg)
	}
	cs, err := f.sim.AddClientSecret(f.seeded.ClientID, "", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resp, m = f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), url.Values{"client_secret": {cs.Value}})
	if resp.StatusCode != 200 {
		t.Errorf("new secret: status %d %v", resp.StatusCode, m)
	}
	f.sim.Advance(time.Hour)
	resp, m = f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), url.Values{"client_secret": {cs.Value}})
	wantAADError(t, resp, m, 401, "invalid_client", 7000222)
}

func TestTokenAuthorizationCodeErrors(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	other := f.sim.AddTenant(Tenant{Domains: []string{"fabrikam.onmicrosoft.com"}})
	t.Run("single use", func(t *testing.T) {
		code := f.code(DefaultTenantDomain, f.authParams())
		if resp, m := f.redeem(DefaultTenantDomain, code, nil); resp.StatusCode != 200 {
			t.Fatalf("first redemption: %d %v", resp.StatusCode, m)
		}
		resp, m := f.redeem(DefaultTenantDomain, code, nil)
		msg := wantAADError(t, resp, m, 400, "invalid_grant", 54005)
		if want := "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		resp, m := f.redeem(DefaultTenantDomain, "0.AXoAgarbage", nil)
		wantAADError(t, resp, m, 400, "invalid_grant", 70000)
	})
	t.Run("missing code", func(t *testing.T) {
		resp, m := f.redeem(DefaultTenantDomain, "", nil)
		wantAADError(t, resp, m, 400, "invalid_request", 900144)
	})
	t.Run("expired", func(t *testing.T) {
		code := f.code(DefaultTenantDomain, f.authParams())
		f.sim.Advance(10*time.Minute + time.Second)
		resp, m := f.redeem(DefaultTenantDomain, code, nil)
		msg := wantAADError(t, resp, m, 400, "invalid_grant", 70000)
		if want := "The provided value for the 'code' parameter is not valid. The code has expired."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})
	t.Run("valid just before ten minutes", func(t *testing.T) {
		code := f.code(DefaultTenantDomain, f.authParams())
		f.sim.Advance(9*time.Minute + 59*time.Second)
		if resp, m := f.redeem(DefaultTenantDomain, code, nil); resp.StatusCode != 200 {
			t.Errorf("status %d %v", resp.StatusCode, m)
		}
	})
	t.Run("redirect_uri differs", func(t *testing.T) {
		code := f.code(DefaultTenantDomain, f.authParams())
		resp, m := f.redeem(DefaultTenantDomain, code, url.Values{"redirect_uri": {"http://127.0.0.1:8365/other"}})
		msg := wantAADError(t, resp, m, 401, "invalid_client", 500112)
		if want := "The reply address 'http://127.0.0.1:8365/other' does not match the reply address '" + DefaultRedirectURI + "' provided when requesting Authorization code."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
		// The failed redemption spent the code.
		resp, m = f.redeem(DefaultTenantDomain, code, nil)
		wantAADError(t, resp, m, 400, "invalid_grant", 54005)
	})
	t.Run("wrong tenant", func(t *testing.T) {
		code := f.code(DefaultTenantDomain, f.authParams())
		// A single-tenant app is not found on another tenant's path.
		resp, m := f.redeem(other.ID, code, nil)
		wantAADError(t, resp, m, 400, "unauthorized_client", 700016)
	})
	t.Run("tenant by guid and domain", func(t *testing.T) {
		code := f.code(f.seeded.TenantID, f.authParams())
		if resp, m := f.redeem("contoso.com", code, nil); resp.StatusCode != 200 {
			t.Errorf("status %d %v", resp.StatusCode, m)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		resp, m := f.redeem("nowhere.example", "x", nil)
		wantAADError(t, resp, m, 400, "invalid_request", 90002)
	})
	t.Run("single tenant app on common", func(t *testing.T) {
		resp, m := f.redeem("common", f.code(DefaultTenantDomain, f.authParams()), nil)
		wantAADError(t, resp, m, 400, "invalid_request", 50194)
	})
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestTokenPKCE(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	verifier := strings.Repeat("v3rifier-", 6) // 54 characters
	tests := []struct {
		name      string
		challenge string
		method    string
		verifier  string
		ok        bool
	}{
		{"S256", s256(verifier), "S256", verifier, true},
		{"S256 wrong verifier", s256(verifier), "S256", verifier + "x", false},
		{"S256 missing verifier", s256(verifier), "S256", "", false},
		{"S256 verifier sent as challenge", s256(verifier), "S256", s256(verifier), false},
		{"plain", verifier, "plain", verifier, true},
		{"plain assumed without method", verifier, "", verifier, true},
		{"plain wrong verifier", verifier, "", verifier + "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.authParams()
			p.Set("code_challenge", tt.challenge)
			if tt.method != "" {
				p.Set("code_challenge_method", tt.method)
			}
			extra := url.Values{}
			if tt.verifier != "" {
				extra.Set("code_verifier", tt.verifier)
			}
			resp, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, p), extra)
			if tt.ok {
				if resp.StatusCode != 200 {
					t.Errorf("status %d %v", resp.StatusCode, m)
				}
				return
			}
			msg := wantAADError(t, resp, m, 400, "invalid_grant", 501481)
			if want := "The Code_Verifier doesn't match the code_challenge supplied in the authorization request."; msg != want {
				t.Errorf("message = %q, want %q", msg, want)
			}
		})
	}
}

func TestTokenRefreshRotation(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	first := f.signIn("agent@contoso.com")
	rt1 := first["refresh_token"].(string)

	resp, second := f.refresh(DefaultTenantDomain, rt1, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", resp.StatusCode, second)
	}
	wantTokenHeaders(t, resp)
	wantShape(t, second, "token_success.json")
	rt2 := second["refresh_token"].(string)
	if rt2 == rt1 || second["access_token"] == first["access_token"] {
		t.Error("refresh did not rotate the refresh token and issue a new access token")
	}
	if second["scope"] != first["scope"] {
		t.Errorf("refresh without scope: scope %q, want the original %q", second["scope"], first["scope"])
	}
	// The old refresh token stays valid until its own expiry.
	if resp, m := f.refresh(DefaultTenantDomain, rt1, nil); resp.StatusCode != 200 {
		t.Errorf("old refresh token after rotation: %d %v", resp.StatusCode, m)
	}
	t.Run("scope subset", func(t *testing.T) {
		resp, m := f.refresh(DefaultTenantDomain, rt2, url.Values{"scope": {"Mail.ReadWrite offline_access"}})
		if resp.StatusCode != 200 || m["scope"] != "Mail.ReadWrite" || m["id_token"] != nil || m["refresh_token"] == nil {
			t.Errorf("status %d scope %v id_token %v; want Mail.ReadWrite, no id_token, a refresh token", resp.StatusCode, m["scope"], m["id_token"] != nil)
		}
	})
	t.Run("scope not consented", func(t *testing.T) {
		resp, m := f.refresh(DefaultTenantDomain, rt2, url.Values{"scope": {"Mail.Read.Shared"}})
		wantAADError(t, resp, m, 400, "invalid_grant", 65001)
		if m["suberror"] != "consent_required" {
			t.Errorf("suberror = %v, want consent_required", m["suberror"])
		}
	})
	t.Run("unknown scope", func(t *testing.T) {
		resp, m := f.refresh(DefaultTenantDomain, rt2, url.Values{"scope": {"Files.Read"}})
		wantAADError(t, resp, m, 400, "invalid_scope", 70011)
		// Microsoft's own invalid_scope sample (README); the sim's extra
		// error_uri is documented as optional (reference A.6).
		wantDocShape(t, m, "token_error_docs.json")
	})
	t.Run("garbled", func(t *testing.T) {
		resp, m := f.refresh(DefaultTenantDomain, rt2+"x", nil)
		msg := wantAADError(t, resp, m, 400, "invalid_grant", 9002313)
		if want := "Invalid request. Request is malformed or invalid."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})
	t.Run("missing", func(t *testing.T) {
		resp, m := f.refresh(DefaultTenantDomain, "", nil)
		wantAADError(t, resp, m, 400, "invalid_request", 900144)
	})
	if got := f.sim.TokenRequests("refresh_token"); got != 7 {
		t.Errorf("TokenRequests(refresh_token) = %d, want 7", got)
	}
	c := f.sim.EntraCounters()
	if got := c.TokenRequests["refresh_token"]["ok"]; got != 3 {
		t.Errorf("refresh ok = %d, want 3", got)
	}
	if got := c.TokenRequests["refresh_token"]["AADSTS9002313"]; got != 1 {
		t.Errorf("refresh AADSTS9002313 = %d, want 1", got)
	}
}

var inactivityPattern = regexp.MustCompile(`^The refresh token has expired due to inactivity\. The token was issued on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z and was inactive for (.+)\.$`)

func TestTokenRefreshInactivity(t *testing.T) {
	t.Run("default 90 days", func(t *testing.T) {
		f := newEntraFixture(t, Options{}, nil)
		rt := f.signIn("agent@contoso.com")["refresh_token"].(string)
		f.sim.Advance(90*24*time.Hour - time.Second)
		resp, m := f.refresh(DefaultTenantDomain, rt, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("just before 90 days: %d %v", resp.StatusCode, m)
		}
		f.sim.Advance(time.Second)
		resp, m = f.refresh(DefaultTenantDomain, rt, nil)
		msg := wantAADError(t, resp, m, 400, "invalid_grant", 700082)
		if g := inactivityPattern.FindStringSubmatch(msg); g == nil || g[1] != "90.00:00:00" {
			t.Errorf("message = %q, want the A.6 shape with 90.00:00:00", msg)
		}
		wantShape(t, m, "token_error.json")
	})
	t.Run("configured window and rotation", func(t *testing.T) {
		f := newEntraFixture(t, Options{RefreshTokenInactivity: time.Hour}, nil)
		rt1 := f.signIn("agent@contoso.com")["refresh_token"].(string)
		f.sim.Advance(30 * time.Minute)
		_, m := f.refresh(DefaultTenantDomain, rt1, nil)
		rt2 := m["refresh_token"].(string)
		f.sim.Advance(30 * time.Minute)
		resp, m := f.refresh(DefaultTenantDomain, rt1, nil)
		msg := wantAADError(t, resp, m, 400, "invalid_grant", 700082)
		if g := inactivityPattern.FindStringSubmatch(msg); g == nil || g[1] != "01:00:00" {
			t.Errorf("message = %q, want inactive for 01:00:00", msg)
		}
		if resp, m := f.refresh(DefaultTenantDomain, rt2, nil); resp.StatusCode != 200 {
			t.Errorf("rotated token, 30 min old: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("SetTokenLifetimes", func(t *testing.T) {
		f := newEntraFixture(t, Options{}, nil)
		f.sim.SetTokenLifetimes(2*time.Minute, 10*time.Minute)
		m := f.signIn("agent@contoso.com")
		if m["expires_in"] != float64(120) {
			t.Errorf("expires_in = %v, want 120", m["expires_in"])
		}
		f.sim.Advance(10 * time.Minute)
		resp, m := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil)
		wantAADError(t, resp, m, 400, "invalid_grant", 700082)
	})
}

var revokedPattern = regexp.MustCompile(`^The provided grant has expired due to it being revoked, a fresh auth token is needed\. The user might have changed or reset their password\. The grant was issued on '\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z' and the TokensValidFrom date \(before which tokens are not valid\) for this user is '\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z'\.$`)

func TestTokenRefreshRevocation(t *testing.T) {
	for _, how := range []string{"revoke", "password"} {
		t.Run(how, func(t *testing.T) {
			f := newEntraFixture(t, Options{}, nil)
			m := f.signIn("agent@contoso.com")
			var err error
			if how == "revoke" {
				err = f.sim.RevokeSignInSessions("agent@contoso.com")
			} else {
				err = f.sim.SetPassword("agent@contoso.com", "new-password")
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, e := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil)
			msg := wantAADError(t, resp, e, 400, "invalid_grant", 50173)
			if !revokedPattern.MatchString(msg) {
				t.Errorf("message = %q, want the AADSTS50173 shape", msg)
			}
			// Issued access tokens stay valid, as in Entra.
			req, _ := http.NewRequest("GET", f.srv.URL+"/oidc/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+m["access_token"].(string))
			uresp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			uresp.Body.Close()
			if uresp.StatusCode != 200 {
				t.Errorf("access token after revocation: %d, want 200", uresp.StatusCode)
			}
			// A new sign-in (same frozen instant) works.
			m = f.signIn("agent@contoso.com")
			if resp, e := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil); resp.StatusCode != 200 {
				t.Errorf("refresh after a new sign-in: %d %v", resp.StatusCode, e)
			}
		})
	}
	t.Run("TokensValidFrom set directly", func(t *testing.T) {
		f := newEntraFixture(t, Options{}, nil)
		m := f.signIn("agent@contoso.com")
		f.sim.Advance(time.Minute)
		f.sim.withUser("agent@contoso.com", func(u *User) { u.TokensValidFrom = f.sim.now() })
		resp, e := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil)
		wantAADError(t, resp, e, 400, "invalid_grant", 50173)
	})
}

func TestTokenRefreshMFA(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	m := f.signIn("agent@contoso.com")
	if err := f.sim.RequireMFA("agent@contoso.com", true); err != nil {
		t.Fatal(err)
	}
	resp, e := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil)
	msg := wantAADError(t, resp, e, 400, "invalid_grant", 50076)
	if want := "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."; msg != want {
		t.Errorf("message = %q, want %q", msg, want)
	}
	wantShape(t, e, "token_error_mfa.json")
	if e["suberror"] != "basic_action" {
		t.Errorf("suberror = %v, want basic_action", e["suberror"])
	}
	var claims struct {
		AccessToken struct {
			Capolids struct {
				Essential bool     `json:"essential"`
				Values    []string `json:"values"`
			} `json:"capolids"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(e["claims"].(string)), &claims); err != nil || !claims.AccessToken.Capolids.Essential || len(claims.AccessToken.Capolids.Values) != 1 {
		t.Errorf("claims = %v (%v), want a capolids challenge", e["claims"], err)
	}
	// Signing in again (interactively, with MFA) clears it.
	m = f.signIn("agent@contoso.com")
	if resp, e := f.refresh(DefaultTenantDomain, m["refresh_token"].(string), nil); resp.StatusCode != 200 {
		t.Errorf("after a new sign-in: %d %v", resp.StatusCode, e)
	}
}

func TestTokenRefreshConsentRevokedAndDisabled(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	rtAgent := f.signIn("agent@contoso.com")["refresh_token"].(string)
	rtSales := f.signIn("sales@contoso.com")["refresh_token"].(string)
	if err := f.sim.RevokeConsent("agent@contoso.com", f.seeded.ClientID); err != nil {
		t.Fatal(err)
	}
	resp, e := f.refresh(DefaultTenantDomain, rtAgent, nil)
	msg := wantAADError(t, resp, e, 400, "invalid_grant", 65001)
	if want := "The user or administrator has not consented to use the application with ID '" + f.seeded.ClientID + "' named 'm365bridge'. Send an interactive authorization request for this user and resource."; msg != want {
		t.Errorf("message = %q, want %q", msg, want)
	}
	if e["suberror"] != "consent_required" {
		t.Errorf("suberror = %v", e["suberror"])
	}
	if err := f.sim.SetUserDisabled("sales@contoso.com", true); err != nil {
		t.Fatal(err)
	}
	resp, e = f.refresh(DefaultTenantDomain, rtSales, nil)
	wantAADError(t, resp, e, 400, "invalid_grant", 50057)
}

func TestTokenCorrelationID(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	corr := "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
	req, _ := http.NewRequest("POST", f.srv.URL+"/"+DefaultTenantDomain+"/oauth2/v2.0/token",
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {f.seeded.ClientID}, "client_secret": {f.seeded.ClientSecret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", corr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if m["correlation_id"] != corr || !strings.Contains(m["error_description"].(string), "Correlation ID: "+corr) {
		t.Errorf("correlation_id = %v, want the client-request-id %s", m["correlation_id"], corr)
	}
}

func TestTokenClientInfo(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	_, m := f.redeem(DefaultTenantDomain, f.code(DefaultTenantDomain, f.authParams()), url.Values{"client_info": {"1"}})
	b, err := base64.RawURLEncoding.DecodeString(m["client_info"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var ci map[string]string
	json.Unmarshal(b, &ci)
	if ci["uid"] != "a9f0c1d2-0000-4000-8000-00000000a9e7" || ci["utid"] != f.seeded.TenantID {
		t.Errorf("client_info = %v", ci)
	}
}

// wantDocShape checks that got has every property of a documented sample
// in testdata/entra, with the same JSON kind; extra properties are allowed.
func wantDocShape(t *testing.T, got map[string]any, sample string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "entra", sample))
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", sample, err)
	}
	assertShape(t, sample, map[string]any(got), want)
}
