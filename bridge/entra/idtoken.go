package entra

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Identity is who signed in, from a verified id_token.
type Identity struct {
	TenantID string // tid
	ObjectID string // oid: with tid, the stable identity of the user
	UPN      string // preferred_username: display only, it can change
	Name     string
}

// ErrIDToken is wrapped by every id_token verification failure.
var ErrIDToken = errors.New("id_token rejected")

// clockSkew is the tolerance for exp, nbf and iat.
const clockSkew = 2 * time.Minute

// jwksMinRefetch keeps an unknown kid from making a discovery request per
// callback.
const jwksMinRefetch = 30 * time.Second

// VerifyIDToken checks an id_token from the token endpoint: RS256 signature
// by a key of the tenant's JWKS (found through the OIDC discovery document,
// cached, refetched when a kid is unknown), issuer
// {login}/{tid}/v2.0 (and the discovery issuer for a single tenant), audience
// = client id, exp and nbf within a small skew, tid and oid present.
func (c *Client) VerifyIDToken(ctx context.Context, raw string) (Identity, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w: not a JWS compact token", ErrIDToken)
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return Identity{}, fmt.Errorf("%w: header: %v", ErrIDToken, err)
	}
	if hdr.Alg != "RS256" {
		return Identity{}, fmt.Errorf("%w: alg %q, want RS256", ErrIDToken, hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: signature encoding: %v", ErrIDToken, err)
	}
	key, discIssuer, err := c.signingKey(ctx, hdr.Kid)
	if err != nil {
		return Identity{}, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return Identity{}, fmt.Errorf("%w: bad signature", ErrIDToken)
	}

	var cl struct {
		Iss  string          `json:"iss"`
		Aud  json.RawMessage `json:"aud"`
		Exp  *float64        `json:"exp"`
		Nbf  *float64        `json:"nbf"`
		Tid  string          `json:"tid"`
		Oid  string          `json:"oid"`
		UPN  string          `json:"preferred_username"`
		Name string          `json:"name"`
	}
	if err := decodeSegment(parts[1], &cl); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %v", ErrIDToken, err)
	}
	if cl.Tid == "" || cl.Oid == "" {
		return Identity{}, fmt.Errorf("%w: tid or oid missing (is profile among the scopes?)", ErrIDToken)
	}
	wantIss := c.login() + "/" + cl.Tid + "/v2.0"
	if cl.Iss != wantIss {
		return Identity{}, fmt.Errorf("%w: issuer %q, want %q", ErrIDToken, cl.Iss, wantIss)
	}
	if discIssuer != "" && !strings.Contains(discIssuer, "{tenantid}") && cl.Iss != discIssuer {
		return Identity{}, fmt.Errorf("%w: issuer %q is not the configured tenant's (%q)", ErrIDToken, cl.Iss, discIssuer)
	}
	if !audienceHas(cl.Aud, c.ClientID) {
		return Identity{}, fmt.Errorf("%w: audience is not client id %s", ErrIDToken, c.ClientID)
	}
	now := c.now()
	if cl.Exp == nil || now.After(unix(*cl.Exp).Add(clockSkew)) {
		return Identity{}, fmt.Errorf("%w: expired", ErrIDToken)
	}
	if cl.Nbf != nil && now.Add(clockSkew).Before(unix(*cl.Nbf)) {
		return Identity{}, fmt.Errorf("%w: not valid yet (check the clock)", ErrIDToken)
	}
	return Identity{TenantID: cl.Tid, ObjectID: cl.Oid, UPN: cl.UPN, Name: cl.Name}, nil
}

func unix(f float64) time.Time { return time.Unix(int64(f), 0) }

func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// signingKey returns the RSA key for kid and the discovery issuer, fetching
// discovery and JWKS on first use and again (at most every jwksMinRefetch)
// when kid is unknown.
func (c *Client) signingKey(ctx context.Context, kid string) (*rsa.PublicKey, string, error) {
	j := &c.jwks
	j.mu.Lock()
	defer j.mu.Unlock()
	if k, ok := j.keys[kid].(*rsa.PublicKey); ok {
		return k, j.issuer, nil
	}
	if !j.fetchedAt.IsZero() && c.now().Sub(j.fetchedAt) < jwksMinRefetch {
		return nil, "", fmt.Errorf("%w: unknown signing key %q", ErrIDToken, kid)
	}
	if err := c.fetchKeysLocked(ctx); err != nil {
		return nil, "", err
	}
	if k, ok := j.keys[kid].(*rsa.PublicKey); ok {
		return k, j.issuer, nil
	}
	return nil, "", fmt.Errorf("%w: unknown signing key %q", ErrIDToken, kid)
}

func (c *Client) fetchKeysLocked(ctx context.Context) error {
	j := &c.jwks
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	discURL := c.login() + "/" + c.tenant() + "/v2.0/.well-known/openid-configuration"
	if err := c.getJSON(ctx, discURL, &disc); err != nil {
		return fmt.Errorf("fetch OIDC discovery: %w", err)
	}
	if disc.JWKSURI == "" {
		return fmt.Errorf("fetch OIDC discovery: %s has no jwks_uri", discURL)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := c.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	keys := map[string]any{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	j.keys, j.issuer, j.jwksURI, j.fetchedAt = keys, disc.Issuer, disc.JWKSURI, c.now()
	return nil
}

func (c *Client) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
