package entra

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestParseRetrieveError(t *testing.T) {
	body := `{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[700082],"suberror":"bad_token"}`
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, Body: []byte(body), ErrorCode: "invalid_grant",
		ErrorDescription: "AADSTS700082: The refresh token has expired due to inactivity.\r\nTrace ID: x\r\nCorrelation ID: y"}
	e := parseRetrieveError("refresh token", re)
	if got, want := e.Code(), 700082; got != want {
		t.Fatalf("Code() = %d, want %d", got, want)
	}
	if e.Suberror != "bad_token" || e.Status != 400 || e.Temporary() {
		t.Fatalf("parsed %+v", e)
	}
	if strings.Contains(e.Error(), "Trace ID") {
		t.Fatalf("Error() keeps more than the first line: %q", e.Error())
	}
	if g := e.Guidance(); g.Code != "AADSTS700082" || !strings.Contains(g.Reason, "90 days") {
		t.Fatalf("guidance %+v", g)
	}
}

func TestAuthErrorTemporary(t *testing.T) {
	tests := []struct {
		name string
		e    AuthError
		want bool
	}{
		{"503", AuthError{Status: 503, Err: "http_503"}, true},
		{"429", AuthError{Status: 429}, true},
		{"temporarily_unavailable", AuthError{Status: 400, Err: "temporarily_unavailable"}, true},
		{"throttled tenant", AuthError{Status: 400, Err: "invalid_request", Codes: []int{90055}}, true},
		{"invalid_grant", AuthError{Status: 400, Err: "invalid_grant", Codes: []int{50173}}, false},
		{"invalid_client", AuthError{Status: 401, Err: "invalid_client", Codes: []int{7000215}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Temporary(); got != tt.want {
				t.Fatalf("Temporary() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		err     string
		codes   []int
		subcode string
		code    string
		reason  string // a phrase the reason must contain
		fix     string // a phrase the fix must contain
	}{
		{"invalid_grant", []int{700082}, "", "AADSTS700082", "90 days", "--reauth"},
		{"invalid_grant", []int{50173}, "", "AADSTS50173", "password", "--reauth"},
		{"invalid_grant", []int{65001}, "", "AADSTS65001", "Consent", "consent"},
		{"invalid_client", []int{7000215}, "", "AADSTS7000215", "wrong", "Value, not its Secret ID"},
		{"invalid_client", []int{7000222}, "", "AADSTS7000222", "expired", "new client secret"},
		{"invalid_grant", []int{50076}, "", "AADSTS50076", "Multi-factor", "interactively"},
		{"interaction_required", []int{50079}, "", "AADSTS50079", "multi-factor", "interactively"},
		{"invalid_request", []int{90002}, "", "AADSTS90002", "tenant", "microsoft.tenant"},
		{"unauthorized_client", []int{700016}, "", "AADSTS700016", "application", "client_id"},
		{"invalid_grant", []int{53003}, "", "AADSTS53003", "Conditional Access", "Conditional Access"},
		{"access_denied", []int{65004}, "cancel", "AADSTS65004", "declined", "Accept"},
		{"access_denied", nil, "cancel", "access_denied", "cancelled", "administrator"},
		{"access_denied", []int{90094}, "", "AADSTS90094", "administrator", "Grant admin consent"},
		{"invalid_grant", []int{123456}, "", "AADSTS123456", "refused the grant", "--reauth"},
		{"weird_error", nil, "", "weird_error", "unexpected", "--reauth"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			g := Explain(tt.err, tt.codes, tt.subcode)
			if g.Code != tt.code || !strings.Contains(g.Reason, tt.reason) || !strings.Contains(g.Fix, tt.fix) {
				t.Fatalf("Explain(%q, %v, %q) = %+v, want code %s, reason ~%q, fix ~%q", tt.err, tt.codes, tt.subcode, g, tt.code, tt.reason, tt.fix)
			}
		})
	}
}

func TestCodesIn(t *testing.T) {
	got := codesIn("AADSTS65004: User declined. AADSTS90094 too")
	if len(got) != 2 || got[0] != 65004 || got[1] != 90094 {
		t.Fatalf("codesIn = %v", got)
	}
}
