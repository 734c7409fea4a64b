package entra

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// AuthError is an OAuth error answer from Entra ID (token endpoint, or an
// error redirect to the callback), parsed: the OAuth error, the AADSTS codes,
// the suberror and the first line of the description. It never holds a
// token.
type AuthError struct {
	Op          string // what was being done, e.g. "refresh token"
	Status      int    // HTTP status; 0 for a redirect
	Err         string // OAuth error, e.g. invalid_grant
	Codes       []int  // AADSTS codes
	Suberror    string // e.g. consent_required, bad_token
	Subcode     string // error_subcode of a redirect, e.g. cancel
	Description string // first line of error_description
	// RetryAfter is the answer's Retry-After (seconds or an HTTP date),
	// 0 when there was none. Entra may send it with 429 and 503; the
	// refresh waits at least this long before its next try (capped).
	RetryAfter time.Duration
}

func (e *AuthError) Error() string {
	s := e.Op + ": " + e.Err
	if e.Description != "" {
		s += ": " + e.Description
	} else if c := e.Code(); c != 0 {
		s += fmt.Sprintf(" (AADSTS%d)", c)
	}
	return s
}

// Code is the first AADSTS code, 0 when there is none.
func (e *AuthError) Code() int {
	if len(e.Codes) == 0 {
		return 0
	}
	return e.Codes[0]
}

// Temporary reports whether retrying later may succeed without anyone
// acting: Entra unavailable or throttling.
func (e *AuthError) Temporary() bool {
	switch {
	case e.Status >= 500, e.Status == 429:
		return true
	case e.Err == "temporarily_unavailable", e.Err == "server_error":
		return true
	}
	switch e.Code() {
	case 90055, 50196: // tenant throttling, client loop detected
		return true
	}
	return false
}

// Guidance says what an AuthError means and what to do about it.
func (e *AuthError) Guidance() Guidance { return Explain(e.Err, e.Codes, e.Subcode) }

var aadstsRe = regexp.MustCompile(`AADSTS(\d+)`)

func parseRetrieveError(op string, re *oauth2.RetrieveError) *AuthError {
	e := &AuthError{Op: op, Err: re.ErrorCode, Description: firstLine(re.ErrorDescription)}
	if re.Response != nil {
		e.Status = re.Response.StatusCode
		e.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"))
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
		Suberror    string `json:"suberror"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		if e.Err == "" {
			e.Err = body.Error
		}
		if e.Description == "" {
			e.Description = firstLine(body.Description)
		}
		e.Codes, e.Suberror = body.Codes, body.Suberror
	}
	if len(e.Codes) == 0 {
		e.Codes = codesIn(e.Description)
	}
	if e.Err == "" {
		e.Err = fmt.Sprintf("http_%d", e.Status)
	}
	return e
}

// retryAfter parses a Retry-After value in delay-seconds, the form Entra
// sends; 0 when absent or not a positive number. (An HTTP date would need
// a clock here; Entra does not send one.)
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func codesIn(s string) []int {
	var out []int
	for _, m := range aadstsRe.FindAllStringSubmatch(s, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(strings.TrimSuffix(s, "\r"))
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// temporary classifies any refresh failure: an *AuthError by its own rule;
// anything else (network errors, timeouts, a malformed answer) is taken as
// temporary, since nobody can fix it by re-authenticating.
func temporary(err error) bool {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return true
}

// Guidance is an operator-facing explanation of an Entra ID error.
type Guidance struct {
	Code   string // "AADSTS700082", or the OAuth error when there is no code
	Reason string // what happened, in plain words
	Fix    string // what to do
}

const reauthFix = "Re-authenticate the channel: run `m365bridge auth CHANNEL --reauth` and open the URL it prints."

var codeGuidance = map[int]Guidance{
	700082:  {Reason: "The refresh token expired after 90 days without use.", Fix: reauthFix},
	70008:   {Reason: "The refresh token or code expired or was revoked.", Fix: reauthFix},
	70043:   {Reason: "A Conditional Access sign-in frequency policy ended the session.", Fix: reauthFix},
	700084:  {Reason: "The refresh token reached its fixed lifetime: the redirect URI is registered as a single-page application.", Fix: "Register the redirect URI under the Web platform (not SPA) in the app registration, then re-authenticate."},
	50173:   {Reason: "The grant was revoked, usually because the user changed or reset their password, or an administrator revoked the user's sessions.", Fix: reauthFix},
	65001:   {Reason: "Consent is missing: the user or an administrator has not consented to the app's permissions, or consent was revoked.", Fix: "Re-authenticate and accept the permissions, or have an administrator grant consent (App registrations > API permissions > Grant admin consent)."},
	65004:   {Reason: "The user declined to consent to the app's permissions (or went back from Entra's \"Need admin approval\" page).", Fix: "Start again (`m365bridge auth CHANNEL`) and click Accept on the permissions page; if Entra asked for admin approval, an administrator must grant consent first (App registrations > API permissions > Grant admin consent)."},
	7000215: {Reason: "The client secret is wrong.", Fix: "In Entra (App registrations > Certificates & secrets) copy the secret's Value, not its Secret ID, into microsoft.client_secret; restart the bridge and re-authenticate."},
	7000222: {Reason: "The client secret has expired.", Fix: "Create a new client secret (App registrations > Certificates & secrets), put its Value in microsoft.client_secret, restart the bridge and re-authenticate."},
	7000218: {Reason: "No client secret was sent.", Fix: "Set microsoft.client_secret to the secret's Value and restart the bridge."},
	700025:  {Reason: "The app is registered as a public client, which may not send a secret.", Fix: "Register the redirect URI under the Web platform and turn off 'Allow public client flows'."},
	50076:   {Reason: "Multi-factor authentication is now required for this user.", Fix: "Re-authenticate interactively (the sign-in completes MFA): `m365bridge auth CHANNEL --reauth`."},
	50079:   {Reason: "The user must register for multi-factor authentication.", Fix: "Have the user enrol in MFA, then re-authenticate interactively: `m365bridge auth CHANNEL --reauth`."},
	50078:   {Reason: "The user's MFA has expired.", Fix: "Re-authenticate interactively: `m365bridge auth CHANNEL --reauth`."},
	90002:   {Reason: "The tenant was not found.", Fix: "Set microsoft.tenant to the Directory (tenant) ID or a verified domain of the tenant (or organizations for a multitenant app)."},
	700016:  {Reason: "The application was not found in the tenant.", Fix: "Set microsoft.client_id to the app's Application (client) ID; for a multitenant app, an administrator of this tenant must consent to it first."},
	53003:   {Reason: "Access was blocked by a Conditional Access policy.", Fix: "Ask an Entra administrator to allow this app (or the bridge's network location) in Conditional Access, then re-authenticate."},
	50011:   {Reason: "The redirect URI does not match any registered for the app.", Fix: "Register {public_url}/oauth/callback exactly (see `m365bridge check`) as a Web redirect URI, or fix public_url in bridge.yaml."},
	500112:  {Reason: "The redirect URI used to redeem the code differs from the one used to start the sign-in (public_url changed in between).", Fix: "Start again with `m365bridge auth CHANNEL` after the configuration is final."},
	500113:  {Reason: "No redirect URI is registered for the app.", Fix: "Register {public_url}/oauth/callback as a Web redirect URI in the app registration."},
	54005:   {Reason: "The authorization code was already redeemed.", Fix: "Start again with `m365bridge auth CHANNEL`."},
	70000:   {Reason: "The authorization code is invalid or expired.", Fix: "Start again with `m365bridge auth CHANNEL` and finish the sign-in within ten minutes."},
	501481:  {Reason: "The PKCE verifier did not match the sign-in request.", Fix: "Start again with `m365bridge auth CHANNEL`."},
	90094:   {Reason: "An administrator must approve the app's permissions for this tenant.", Fix: "Have an administrator grant consent (Entra admin center > App registrations > API permissions > Grant admin consent), then start again."},
	90095:   {Reason: "An administrator must approve the app's permissions; an approval request can be sent.", Fix: "Have an administrator approve the request or grant consent (App registrations > API permissions), then start again."},
	50194:   {Reason: "The app is single-tenant but microsoft.tenant is organizations or common.", Fix: "Set microsoft.tenant to the Directory (tenant) ID, or make the app multitenant."},
	50020:   {Reason: "The account does not exist in the app's tenant.", Fix: "Sign in with an account of the configured tenant, or make the app multitenant and set microsoft.tenant to organizations."},
	50057:   {Reason: "The user account is disabled.", Fix: "Enable the account or use another one, then start again."},
	50053:   {Reason: "The account is locked after too many failed sign-ins.", Fix: "Wait, or have an administrator unlock it, then start again."},
	50055:   {Reason: "The user's password has expired.", Fix: "Change the password, then re-authenticate."},
	50126:   {Reason: "Wrong user name or password.", Fix: "Start again and sign in with the right credentials."},
	90055:   {Reason: "Entra ID is throttling requests from this tenant.", Fix: "Nothing: the bridge retries with backoff."},
}

var errorGuidance = map[string]Guidance{
	"invalid_grant":           {Reason: "Entra ID refused the grant (expired or revoked).", Fix: reauthFix},
	"invalid_client":          {Reason: "Entra ID refused the app's credentials (client id or secret).", Fix: "Check microsoft.client_id and microsoft.client_secret (use the secret's Value, not its ID), restart, then re-authenticate."},
	"unauthorized_client":     {Reason: "The app is not allowed to do this in the tenant.", Fix: "Check microsoft.client_id and the app registration's supported account types."},
	"interaction_required":    {Reason: "Entra ID requires the user to sign in interactively.", Fix: reauthFix},
	"consent_required":        {Reason: "Consent is missing for the app's permissions.", Fix: "Re-authenticate and accept the permissions, or have an administrator grant consent."},
	"login_required":          {Reason: "The user must sign in.", Fix: reauthFix},
	"invalid_scope":           {Reason: "A requested permission is not valid for the app.", Fix: "Add the delegated Microsoft Graph permissions listed in the docs to the app registration."},
	"invalid_request":         {Reason: "Entra ID rejected the request.", Fix: "Check microsoft.tenant and microsoft.client_id, then start again."},
	"access_denied":           {Reason: "Access was denied.", Fix: "Start again with `m365bridge auth CHANNEL` and accept the permissions."},
	"temporarily_unavailable": {Reason: "Entra ID is temporarily unavailable.", Fix: "Nothing: try again in a few minutes."},
	"server_error":            {Reason: "Entra ID had an internal error.", Fix: "Nothing: try again in a few minutes."},
}

// Explain maps an Entra error (OAuth error, AADSTS codes, a redirect's
// error_subcode) to plain guidance. The first known AADSTS code wins; then
// the subcode "cancel"; then the OAuth error.
func Explain(oauthErr string, codes []int, subcode string) Guidance {
	for _, c := range codes {
		if g, ok := codeGuidance[c]; ok {
			g.Code = fmt.Sprintf("AADSTS%d", c)
			return g
		}
	}
	code := oauthErr
	if len(codes) > 0 {
		code = fmt.Sprintf("AADSTS%d", codes[0])
	}
	if subcode == "cancel" {
		return Guidance{Code: code, Reason: "The sign-in was cancelled (or an administrator's approval is needed and the user went back).",
			Fix: "Start again with `m365bridge auth CHANNEL`; if Entra asked for admin approval, have an administrator grant consent first."}
	}
	if g, ok := errorGuidance[oauthErr]; ok {
		g.Code = code
		return g
	}
	return Guidance{Code: code, Reason: "Entra ID returned an unexpected error (" + oauthErr + ").", Fix: reauthFix}
}
