package m365sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

type result struct {
	status int
	header http.Header
	body   []byte
}

// TestThrottleMailboxConcurrency is acceptance 3.4: eight concurrent
// requests to one mailbox yield 429s with Retry-After while another
// mailbox is unaffected. A Hold fault keeps the admitted requests in
// flight, so the overlap does not depend on timing.
func TestThrottleMailboxConcurrency(t *testing.T) {
	f := newGraphFixture(t, Options{})
	hold := make(chan struct{})
	if _, err := f.sim.AddFault(FaultRule{Method: "GET", Path: "/me/messages", Mailbox: "alice@contoso.example", Hold: hold}); err != nil {
		t.Fatal(err)
	}
	results := make(chan result, 8)
	for i := 0; i < 8; i++ {
		go func() {
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1.0/me/messages", nil)
			req.Header.Set("Authorization", "Bearer "+f.aliceTok)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				results <- result{status: -1}
				return
			}
			var b []byte
			b, _ = readAll(resp)
			results <- result{resp.StatusCode, resp.Header, b}
		}()
	}
	// The four requests beyond the limit answer at once.
	for i := 0; i < 4; i++ {
		r := <-results
		if r.status != 429 {
			t.Fatalf("early answer %d: %s", r.status, r.body)
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		var env struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(r.body, &env)
		if env.Error.Code != "ApplicationThrottled" || env.Error.Message != "Application is over its MailboxConcurrency limit." {
			t.Errorf("429 body %s", r.body)
		}
	}
	// Meanwhile other mailboxes are served: bob's own, and support@ for alice.
	f.getJSON(t, "GET", "/v1.0/me/messages", f.bobTok, nil, 200)
	f.getJSON(t, "GET", "/v1.0/users/support@contoso.example/messages", f.aliceTok, nil, 200)
	close(hold)
	for i := 0; i < 4; i++ {
		if r := <-results; r.status != 200 {
			t.Errorf("held request answered %d: %s", r.status, r.body)
		}
	}
	c := f.sim.Counters()
	if c.Throttled != 4 || c.ByStatus["429"] != 4 {
		t.Errorf("counters: throttled %d, 429s %d", c.Throttled, c.ByStatus["429"])
	}
}

func TestThrottleBudgetWindow(t *testing.T) {
	f := newGraphFixture(t, Options{MailboxBudget: 5, MailboxWindow: time.Minute})
	for i := 0; i < 5; i++ {
		f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
	}
	f.sim.Advance(20 * time.Second)
	resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil)
	if resp.StatusCode != 429 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var env any
	json.Unmarshal(b, &env)
	assertShape(t, "429", env, loadSample(t, "throttled.json"))
	if ra := resp.Header.Get("Retry-After"); ra != "40" {
		t.Errorf("Retry-After %q, want 40 (rest of the window)", ra)
	}
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.bobTok, nil, 200)
	f.sim.Advance(41 * time.Second)
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return buf, nil
		}
	}
}
