package m365sim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaultRules(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seedList(t, f, "alice@contoso.example", "Inbox", 3)

	t.Run("count: next N then normal", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Path: "/v1.0/me/mailFolders/*/messages", Count: 2, Status: 503, RetryAfter: 7})
		for i := 0; i < 2; i++ {
			resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages", f.aliceTok, nil)
			wantGraphError(t, resp, b, 503, "serviceNotAvailable")
			if resp.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
		f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox/messages", f.aliceTok, nil, 200)
	})

	t.Run("glob, method and mailbox must match", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Method: "GET", Path: "/me/**", Mailbox: "alice@contoso.example", Status: 500})
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages", f.aliceTok, nil)
		wantGraphError(t, resp, b, 500, "generalException")
		f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.bobTok, nil, 200)
		f.getJSON(t, "POST", "/v1.0/me/mailFolders", f.aliceTok, map[string]string{"displayName": "Z"}, 201)
	})

	t.Run("429 with Retry-After", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Path: "re:/messages$", Count: 1, Status: 429, RetryAfter: 3})
		resp, b := f.call(t, "GET", "/v1.0/me/messages", f.aliceTok, nil)
		wantGraphError(t, resp, b, 429, "TooManyRequests")
		if resp.Header.Get("Retry-After") != "3" {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	})

	t.Run("504 when the page is too large", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Path: "/me/**", MaxPageSize: 50})
		resp, b := f.call(t, "GET", "/v1.0/me/messages?$top=100", f.aliceTok, nil)
		wantGraphError(t, resp, b, 504, "UnknownError")
		f.getJSON(t, "GET", "/v1.0/me/messages?$top=50", f.aliceTok, nil, 200)
		resp, _ = f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages/delta", f.aliceTok, nil, "Prefer", "odata.maxpagesize=200")
		if resp.StatusCode != 504 {
			t.Errorf("delta with maxpagesize 200: %d", resp.StatusCode)
		}
	})

	t.Run("dropped connection", func(t *testing.T) {
		defer f.sim.ClearFaults()
		// No Count: Go's transport retries an idempotent request once when a
		// reused connection closes without an answer.
		f.sim.AddFault(FaultRule{Path: "/me/messages", Drop: true})
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1.0/me/messages", nil)
		req.Header.Set("Authorization", "Bearer "+f.aliceTok)
		resp, err := f.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got a response %d, want a dropped connection", resp.StatusCode)
		}
		if n := f.sim.Counters().ByStatus["dropped"]; n < 1 {
			t.Errorf("byStatus dropped = %d", n)
		}
	})

	t.Run("latency", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Path: "/me/messages", Count: 1, Latency: 30 * time.Millisecond})
		start := time.Now()
		f.getJSON(t, "GET", "/v1.0/me/messages", f.aliceTok, nil, 200)
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})

	t.Run("empty delta page keeps the round going", func(t *testing.T) {
		defer f.sim.ClearFaults()
		f.sim.AddFault(FaultRule{Path: "/me/mailFolders/*/messages/delta", Count: 1, EmptyPage: true})
		entries, _, pages := deltaRound(t, f, "/v1.0/me/mailFolders/inbox/messages/delta", f.aliceTok)
		if len(entries) != 3 || pages != 2 {
			t.Errorf("%d entries in %d pages, want 3 in 2", len(entries), pages)
		}
	})

	t.Run("bad rules are refused", func(t *testing.T) {
		for _, r := range []FaultRule{{}, {Path: "re:("}, {Path: "/x", Rate: 2}, {Path: "/x", Status: 200}} {
			if _, err := f.sim.AddFault(r); err == nil {
				t.Errorf("AddFault(%+v) accepted", r)
			}
		}
	})
}

// TestFaultRateIsSeeded: the same seed fires the same requests.
func TestFaultRateIsSeeded(t *testing.T) {
	pattern := func(seed int64) string {
		f := newGraphFixture(t, Options{Seed: seed})
		f.sim.AddFault(FaultRule{Path: "/me/mailFolders/inbox", Rate: 0.5, Status: 500})
		var b strings.Builder
		for i := 0; i < 40; i++ {
			resp, _ := f.call(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil)
			if resp.StatusCode == 500 {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := pattern(7), pattern(7)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < 8 || n > 32 {
		t.Errorf("rate 0.5 fired %d of 40", n)
	}
}

func TestFaultControlAPI(t *testing.T) {
	f := newGraphFixture(t, Options{})
	resp, b := f.call(t, "POST", "/_sim/faults", "", map[string]any{"path": "/me/mailFolders/inbox", "status": 503, "retryAfter": 2, "count": 1, "latency": "1ms"})
	if resp.StatusCode != 201 {
		t.Fatalf("add: %d %s", resp.StatusCode, b)
	}
	resp, b = f.call(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil)
	wantGraphError(t, resp, b, 503, "serviceNotAvailable")
	f.call(t, "POST", "/_sim/faults", "", map[string]any{"path": "/me/**", "status": 500})
	resp, _ = f.call(t, "DELETE", "/_sim/faults", "", nil)
	if resp.StatusCode != 204 {
		t.Fatal(resp.Status)
	}
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
	resp, _ = f.call(t, "POST", "/_sim/faults", "", map[string]any{"path": "/x", "latency": "soon"})
	if resp.StatusCode != 400 {
		t.Errorf("bad latency accepted: %d", resp.StatusCode)
	}
}
