package m365sim

import (
	"net/http"
	"strings"
	"testing"
)

// An outage answers every refresh 503 temporarily_unavailable with
// Retry-After, in the A.6 error shape, until it is ended; the refresh token
// still works afterwards (an outage revokes nothing).
func TestEntraOutage(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	rt := f.signIn("agent@contoso.com")["refresh_token"].(string)
	if err := f.sim.SetEntraOutage(&EntraOutage{GrantType: "refresh_token", RetryAfter: 7}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, m := f.refresh(DefaultTenantDomain, rt, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("refresh during the outage: %d Retry-After %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), m)
		}
		if d, _ := m["error_description"].(string); !strings.Contains(d, "Trace ID:") {
			t.Errorf("error_description %q lacks the trace lines of A.6", d)
		}
	}
	if got := f.sim.EntraCounters().TokenRequests["refresh_token"]["temporarily_unavailable"]; got != 2 {
		t.Errorf("counted %d outage answers, want 2", got)
	}
	if err := f.sim.SetEntraOutage(nil); err != nil {
		t.Fatal(err)
	}
	if resp, m := f.refresh(DefaultTenantDomain, rt, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh after the outage: %d %v", resp.StatusCode, m)
	}
	for _, bad := range []EntraOutage{{Status: 400}, {Error: "invalid_grant"}, {RetryAfter: -1}} {
		if err := f.sim.SetEntraOutage(&bad); err == nil {
			t.Errorf("SetEntraOutage(%+v) accepted", bad)
		}
	}
}
