package m365sim

// id_tokens (RS256, signed with crypto/rsa), the OIDC discovery document,
// the JWKS, userinfo and logout (reference A.1, A.7).

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"time"
)

// consumerTenantID is the tenant id of personal Microsoft accounts.
const consumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// signingKey returns the sim's RSA key and its kid. The key is made on first
// use, so sims that never sign (most Graph tests) do not pay for it.
func (s *Sim) signingKey() (*rsa.PrivateKey, string) {
	s.entra.keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("m365sim: generate signing key: %v", err)) // crypto/rand never fails on supported platforms
		}
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		sum := sha256.Sum256(der)
		s.entra.key = k
		s.entra.kid = base64.RawURLEncoding.EncodeToString(sum[:20])
	})
	return s.entra.key, s.entra.kid
}

// pairwiseSub is the per-app subject: stable for one user and app, different
// across apps (reference A.7).
func pairwiseSub(tenantID, oid, clientID string) string {
	sum := sha256.Sum256([]byte(tenantID + "|" + oid + "|" + clientID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// idTokenClaims are the claims of an id_token for u; profile adds oid, name
// and preferred_username, email adds email (reference A.7).
func (s *Sim) idTokenClaims(r *http.Request, app *App, u *User, tenantID string, scopes []string, nonce string, now time.Time) map[string]any {
	c := map[string]any{
		"aud": app.ClientID,
		"iss": baseURL(r) + "/" + tenantID + "/v2.0",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(idTokenTTL).Unix(),
		"sub": pairwiseSub(tenantID, u.ID, app.ClientID),
		"tid": tenantID,
		"uti": opaqueToken("", 16),
		"ver": "2.0",
	}
	if hasScope(scopes, "profile") {
		c["oid"] = u.ID
		c["name"] = u.DisplayName
		c["preferred_username"] = u.UPN
	}
	if hasScope(scopes, "email") {
		c["email"] = u.UPN
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

// signJWT returns the compact RS256 JWS of claims.
func (s *Sim) signJWT(claims map[string]any) (string, error) {
	key, kid := s.signingKey()
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": kid})
	if err != nil {
		return "", fmt.Errorf("encode jwt header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode jwt claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// discoveryDoc is the OIDC discovery document, in Entra's field order.
type discoveryDoc struct {
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	Issuer                            string   `json:"issuer"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	HTTPLogoutSupported               bool     `json:"http_logout_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ClaimsSupported                   []string `json:"claims_supported"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
	RBACURL                           string   `json:"rbac_url"`
}

// resolveForDiscovery maps {tenant} to the segment the endpoints use and the
// issuer's tenant: a specific tenant's GUID for both, or the alias and the
// literal {tenantid} (reference A.1).
func (s *Sim) resolveForDiscovery(r *http.Request) (pathTenant, issuerTenant string, e *aadError) {
	s.mu.Lock()
	tr, e := s.resolveTenantLocked(r.PathValue("tenant"))
	s.mu.Unlock()
	switch {
	case e != nil:
		e.err = "invalid_tenant"
		return "", "", e
	case tr.kind == tenantSpecific:
		return tr.t.ID, tr.t.ID, nil
	case tr.kind == tenantConsumers:
		return tr.seg, consumerTenantID, nil
	default:
		return tr.seg, "{tenantid}", nil
	}
}

func (s *Sim) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	pathTenant, issuerTenant, e := s.resolveForDiscovery(r)
	if e != nil {
		s.writeTokenError(w, r, e)
		return
	}
	base := baseURL(r)
	ep := base + "/" + pathTenant
	region := "NA"
	doc := discoveryDoc{
		TokenEndpoint:                     ep + "/oauth2/v2.0/token",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		JWKSURI:                           ep + "/discovery/v2.0/keys",
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token", "id_token token"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		Issuer:                            base + "/" + issuerTenant + "/v2.0",
		UserinfoEndpoint:                  base + "/oidc/userinfo",
		AuthorizationEndpoint:             ep + "/oauth2/v2.0/authorize",
		DeviceAuthorizationEndpoint:       ep + "/oauth2/v2.0/devicecode",
		HTTPLogoutSupported:               true,
		FrontchannelLogoutSupported:       true,
		EndSessionEndpoint:                ep + "/oauth2/v2.0/logout",
		ClaimsSupported: []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		TenantRegionScope:  &region,
		CloudInstanceName:  "microsoftonline.com",
		CloudGraphHostName: "graph.windows.net",
		MSGraphHost:        "graph.microsoft.com",
		RBACURL:            "https://pas.windows.net",
	}
	if issuerTenant == "{tenantid}" || issuerTenant == consumerTenantID {
		doc.TenantRegionScope = nil
	}
	writeJSONPublic(w, doc)
}

// jwk is one RSA public key in the JWKS.
type jwk struct {
	Kty    string `json:"kty"`
	Use    string `json:"use"`
	Kid    string `json:"kid"`
	X5t    string `json:"x5t"`
	N      string `json:"n"`
	E      string `json:"e"`
	Issuer string `json:"issuer"`
}

func (s *Sim) handleJWKS(w http.ResponseWriter, r *http.Request) {
	_, issuerTenant, e := s.resolveForDiscovery(r)
	if e != nil {
		s.writeTokenError(w, r, e)
		return
	}
	key, kid := s.signingKey()
	enc := base64.RawURLEncoding
	writeJSONPublic(w, map[string][]jwk{"keys": {{
		Kty: "RSA", Use: "sig", Kid: kid, X5t: kid,
		N:      enc.EncodeToString(key.PublicKey.N.Bytes()),
		E:      enc.EncodeToString(big.NewInt(int64(key.PublicKey.E)).Bytes()),
		Issuer: baseURL(r) + "/" + issuerTenant + "/v2.0",
	}}})
}

// writeJSONPublic answers a cacheable public document.
func writeJSONPublic(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	json.NewEncoder(w).Encode(v)
}

// handleUserInfo is the OIDC userinfo endpoint (Graph's /oidc/userinfo):
// a Graph access token with openid.
func (s *Sim) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	g := s.authenticate(w, r)
	if g == nil {
		return
	}
	if !g.HasScope("openid") {
		writeUnauthorized(w, r, "Access token validation failure. The token does not carry the openid scope.")
		return
	}
	s.mu.Lock()
	u := s.users[g.UserID]
	var name, upn string
	if u != nil {
		name, upn = u.DisplayName, u.UPN
	}
	s.mu.Unlock()
	out := map[string]string{"sub": pairwiseSub(g.TenantID, g.UserID, g.ClientID)}
	if g.HasScope("profile") {
		out["name"] = name
	}
	if g.HasScope("email") {
		out["email"] = upn
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(out)
}

// handleLogout ends the (unmodelled) browser session: it redirects to
// post_logout_redirect_uri when given, else shows a signed-out page.
func (s *Sim) handleLogout(w http.ResponseWriter, r *http.Request) {
	if to := r.URL.Query().Get("post_logout_redirect_uri"); to != "" {
		if u, err := url.Parse(to); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			if st := r.URL.Query().Get("state"); st != "" {
				q := u.Query()
				q.Set("state", st)
				u.RawQuery = q.Encode()
			}
			w.Header().Set("Location", u.String())
			w.WriteHeader(http.StatusFound)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Sign out</title></head><body><p>You signed out of your account.</p></body></html>\n")
}
