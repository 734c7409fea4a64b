// Package entra runs the Microsoft Entra ID (v2.0) OAuth flows a channel
// needs: the consent URL (state + PKCE S256), the callback that redeems the
// code, verifies the id_token and binds the account, and a per-channel token
// source that refreshes ahead of expiry, commits each rotated refresh token
// before handing out the access token that came with it, and turns Entra's
// AADSTS error codes into plain guidance for the operator.
//
// Tokens never appear in logs, errors or pages; at rest they are sealed by
// bridge/store.
package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultScopes are the delegated permissions the bridge asks for: a refresh
// token, the id_token, and mail on the user's own and shared mailboxes.
var DefaultScopes = []string{"offline_access", "openid", "profile",
	"Mail.ReadWrite", "Mail.Send", "Mail.ReadWrite.Shared", "Mail.Send.Shared"}

// Client talks to one Entra ID app registration's endpoints. Set the fields,
// then use it from any goroutine.
type Client struct {
	// LoginURL is the authority host, e.g. https://login.microsoftonline.com
	// (the simulator's URL in tests).
	LoginURL string
	// Tenant is a tenant GUID or verified domain, or "organizations".
	Tenant       string
	ClientID     string
	ClientSecret string
	// RedirectURI is {public_url}/oauth/callback, registered as a Web URI.
	RedirectURI string
	// Scopes default to DefaultScopes.
	Scopes []string
	// Prompt is sent to /authorize (select_account, login, consent, none);
	// empty sends none.
	Prompt string
	// HTTP makes every request; it must have a timeout.
	HTTP *http.Client
	// Now is the clock for expiries and id_token checks.
	Now func() time.Time

	jwks jwksCache
}

// TokenResponse is a successful token endpoint answer.
type TokenResponse struct {
	AccessToken  string
	RefreshToken string
	IDToken      string // empty on most refreshes
	Expiry       time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) login() string { return strings.TrimRight(c.LoginURL, "/") }

func (c *Client) tenant() string {
	if c.Tenant == "" {
		return "organizations"
	}
	return c.Tenant
}

func (c *Client) config() *oauth2.Config {
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	base := c.login() + "/" + c.tenant() + "/oauth2/v2.0"
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RedirectURL:  c.RedirectURI,
		Scopes:       scopes,
		// In the body only: auto-detect would retry a failed redemption with
		// the other style, spending the single-use code twice.
		Endpoint: oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

// AuthCodeURL is the /authorize URL for one pending authorization: the
// state, the PKCE S256 challenge of verifier, the scopes and the prompt.
// loginHint, when not empty, prefills the account.
func (c *Client) AuthCodeURL(state, verifier, loginHint string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "query")}
	if c.Prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", c.Prompt))
	}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return c.config().AuthCodeURL(state, opts...)
}

// Exchange redeems an authorization code (once: see AuthStyleInParams).
// Failures from Entra are *AuthError.
func (c *Client) Exchange(ctx context.Context, code, verifier string) (*TokenResponse, error) {
	tok, err := c.config().Exchange(c.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, wrapTokenError("redeem authorization code", err)
	}
	return c.response(tok, "redeem authorization code")
}

// Refresh redeems a refresh token for a new access token and, usually, a
// rotated refresh token (when Entra sends none, the old one is returned).
// Failures from Entra are *AuthError; network failures are returned wrapped.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*TokenResponse, error) {
	src := c.config().TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken})
	tok, err := src.Token()
	if err != nil {
		return nil, wrapTokenError("refresh token", err)
	}
	return c.response(tok, "refresh token")
}

func (c *Client) response(tok *oauth2.Token, op string) (*TokenResponse, error) {
	r := &TokenResponse{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	if s, ok := tok.Extra("id_token").(string); ok {
		r.IDToken = s
	}
	// expires_in is relative: anchor it to our clock, not x/oauth2's.
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		r.Expiry = c.now().Add(time.Duration(v) * time.Second)
	case string:
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil {
			r.Expiry = c.now().Add(time.Duration(n) * time.Second)
		}
	}
	if r.Expiry.IsZero() {
		r.Expiry = tok.Expiry
	}
	if r.AccessToken == "" {
		return nil, fmt.Errorf("%s: the response has no access_token", op)
	}
	if r.RefreshToken == "" {
		return nil, fmt.Errorf("%s: the response has no refresh_token (is offline_access among the scopes?)", op)
	}
	return r, nil
}

func wrapTokenError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return parseRetrieveError(op, re)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// jwksCache holds the tenant's signing keys; see idtoken.go.
type jwksCache struct {
	mu        sync.Mutex
	issuer    string
	jwksURI   string
	keys      map[string]any // kid -> *rsa.PublicKey
	fetchedAt time.Time
}
