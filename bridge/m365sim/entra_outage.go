package m365sim

// Entra ID outages: the token endpoint answering 5xx or 429 with the OAuth
// error temporarily_unavailable (or server_error) while the test says so.
//
// Microsoft documents these answers as passing: the token endpoint's error
// table (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow,
// "Error codes for token endpoint errors") lists temporarily_unavailable,
// "The server is temporarily too busy to handle the request. Retry the
// request.", and server_error, "Retry the request. These errors can result
// from temporary conditions."; MSAL.NET's retry guidance
// (learn.microsoft.com/entra/msal/dotnet/advanced/exceptions/retry-policy)
// says Microsoft Entra ID answers errors with HTTP 5xx and "may return a
// Retry-After header indicating to clients to pause for a few seconds"; the
// MSAL.NET wiki's Client-Throttling page
// (github.com/AzureAD/microsoft-authentication-library-for-dotnet/wiki/Client-Throttling)
// says "AAD will respond with an HTTP code 429 and with header of
// Retry-After X seconds", and that it "may respond with an HTTP 5xx error
// code with no Retry-After header". RFC 6749 section 4.1.2.1 names
// temporarily_unavailable as the OAuth stand-in for a 503. The body keeps
// the A.6 shape of every other token error.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// EntraOutage describes an Entra ID outage of the token endpoint. While it
// is set, every token request of GrantType ("" = every grant) is answered
// Status (default 503) with the OAuth error Error (default
// temporarily_unavailable) and, when RetryAfter > 0, a Retry-After header
// of that many seconds. Requests are counted in EntraCounters under the
// grant type with Error as the outcome.
type EntraOutage struct {
	GrantType  string `json:"grant_type,omitempty"`
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

func (o EntraOutage) withDefaults() EntraOutage {
	if o.Status == 0 {
		o.Status = http.StatusServiceUnavailable
	}
	if o.Error == "" {
		o.Error = "temporarily_unavailable"
	}
	return o
}

// SetEntraOutage starts an outage of the token endpoint (replacing one
// that is running); nil ends it. Only 429 and 5xx are outages.
func (s *Sim) SetEntraOutage(o *EntraOutage) error {
	if o != nil {
		v := o.withDefaults()
		if v.Status != http.StatusTooManyRequests && (v.Status < 500 || v.Status > 599) {
			return fmt.Errorf("entra outage: status %d must be 429 or 5xx", v.Status)
		}
		if v.Error != "temporarily_unavailable" && v.Error != "server_error" {
			return fmt.Errorf("entra outage: error %q must be temporarily_unavailable or server_error", v.Error)
		}
		if v.RetryAfter < 0 {
			return fmt.Errorf("entra outage: retry_after %d must not be negative", v.RetryAfter)
		}
		o = &v
	}
	s.mu.Lock()
	s.entra.outage = o
	s.mu.Unlock()
	return nil
}

// outageLocked returns the outage that applies to a token request of
// grantType, counting it; nil when none does.
func (s *Sim) outageLocked(grantType string) *EntraOutage {
	o := s.entra.outage
	if o == nil || (o.GrantType != "" && o.GrantType != grantType) {
		return nil
	}
	s.entra.counters.count(grantType, o.Error)
	return o
}

// writeOutage answers a token request during an outage.
func (s *Sim) writeOutage(w http.ResponseWriter, r *http.Request, o EntraOutage) {
	ids := s.newErrorIDs(r)
	setTokenHeaders(w)
	if o.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(o.RetryAfter))
	}
	w.WriteHeader(o.Status)
	msg := "The server is temporarily too busy to handle the request."
	if o.Error == "server_error" {
		msg = "The server encountered an unexpected error."
	}
	json.NewEncoder(w).Encode(tokenErrorBody{
		Error:            o.Error,
		ErrorDescription: fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", msg, ids.Trace, ids.Correlation, ids.Timestamp),
		ErrorCodes:       []int{}, Timestamp: ids.Timestamp, TraceID: ids.Trace, CorrelationID: ids.Correlation,
	})
}

func (s *Sim) handleEntraOutage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		s.SetEntraOutage(nil)
		writeControlJSON(w, http.StatusOK, map[string]any{"outage": nil})
		return
	}
	var in EntraOutage
	if !decodeControl(w, r, &in) {
		return
	}
	err := s.SetEntraOutage(&in)
	controlResult(w, err, map[string]any{"outage": in.withDefaults()})
}
