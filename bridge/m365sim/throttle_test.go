package m365sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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

// TestThrottleOnByDefault: a zero Options throttles, and turning it off
// takes a reason, in Go, in Options and through the control API.
func TestThrottleOnByDefault(t *testing.T) {
	if s := New(Options{}); !s.Throttled() {
		t.Fatal("New(Options{}) does not throttle")
	}
	if s := New(Options{NoThrottle: "  "}); !s.Throttled() {
		t.Error("a blank NoThrottle reason turned throttling off")
	}
	if s := New(Options{NoThrottle: "measures raw speed"}); s.Throttled() {
		t.Error("NoThrottle with a reason left throttling on")
	}
	f := newGraphFixture(t, Options{MailboxBudget: 1})
	if err := f.sim.SetThrottle(false, ""); err != ErrThrottleReason {
		t.Errorf("SetThrottle(false, \"\") = %v, want ErrThrottleReason", err)
	}
	put := func(body string) int {
		req, _ := http.NewRequest("PUT", f.srv.URL+"/_sim/throttle", strings.NewReader(body))
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(`{"enabled":false}`); got != 400 {
		t.Errorf("control: off without reason = %d, want 400", got)
	}
	if got := put(`{}`); got != 400 {
		t.Errorf("control: no enabled = %d, want 400", got)
	}
	// Still on: the second request is over the budget of 1.
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 429)
	if got := put(`{"enabled":false,"reason":"test of the switch"}`); got != 204 {
		t.Fatalf("control: off with reason = %d", got)
	}
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
	if got := put(`{"enabled":true}`); got != 204 {
		t.Fatalf("control: on = %d", got)
	}
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 429)
}

// TestThrottleUploadVolume: PATCH/POST/PUT bodies count toward the
// per-mailbox upload limit (150 MB per 5 minutes, lowered here); over it,
// 429 ApplicationThrottled with Retry-After = the rest of the window.
// Reads and another mailbox are unaffected.
func TestThrottleUploadVolume(t *testing.T) {
	f := newGraphFixture(t, Options{MailboxUploadBytes: 100, MailboxUploadWindow: time.Minute})
	if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "s", From: "a@example.org", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	id := f.sim.Messages("alice@contoso.example", "Inbox")[0].ID
	body := map[string]any{"isRead": true, "categories": []string{strings.Repeat("x", 40)}}
	f.getJSON(t, "PATCH", "/v1.0/me/messages/"+id, f.aliceTok, body, 200) // ~60 bytes
	f.sim.Advance(15 * time.Second)
	resp, b := f.call(t, "PATCH", "/v1.0/me/messages/"+id, f.aliceTok, body) // over 100
	e := wantGraphError(t, resp, b, 429, "ApplicationThrottled")
	if e["message"] != msgOverUpload {
		t.Errorf("message %v", e["message"])
	}
	if ra := resp.Header.Get("Retry-After"); ra != "45" {
		t.Errorf("Retry-After %q, want 45 (rest of the window)", ra)
	}
	f.getJSON(t, "GET", "/v1.0/me/messages/"+id, f.aliceTok, nil, 200)
	f.sim.Advance(46 * time.Second)
	f.getJSON(t, "PATCH", "/v1.0/me/messages/"+id, f.aliceTok, body, 200)
}

// TestThrottleBatch: the $batch request counts as a whole against the
// app's global limit and is refused as a whole over it (429, the documented
// body, Retry-After); under it, an item that meets a full mailbox answers
// its own 429 with Retry-After inside a 200 batch, while the other items run.
func TestThrottleBatch(t *testing.T) {
	t.Run("whole batch over the app limit", func(t *testing.T) {
		f := newGraphFixture(t, Options{AppBudget: 3, AppWindow: 10 * time.Second})
		f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
		reqs := map[string]any{"requests": []any{
			map[string]any{"id": "1", "method": "GET", "url": "/me/mailFolders/inbox"},
		}}
		// The batch (2) and its item (3) fit.
		res := batchResponses(t, f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, reqs, 200))
		if res["1"]["status"] != 200.0 {
			t.Fatalf("item %v", res["1"])
		}
		before := f.sim.Counters().ByKind["mailFolder.get"] + f.sim.Counters().ByKind["folder.get"]
		resp, b := f.call(t, "POST", "/v1.0/$batch", f.aliceTok, reqs)
		if resp.StatusCode != 429 {
			t.Fatalf("batch over the app limit: %d %s", resp.StatusCode, b)
		}
		var env any
		json.Unmarshal(b, &env)
		assertShape(t, "429", env, loadSample(t, "throttled.json"))
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 10 {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		if after := f.sim.Counters().ByKind["mailFolder.get"] + f.sim.Counters().ByKind["folder.get"]; after != before {
			t.Errorf("items ran inside a refused batch (%d -> %d)", before, after)
		}
		f.sim.Advance(10 * time.Second)
		f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, reqs, 200)
	})
	t.Run("item meets a full mailbox", func(t *testing.T) {
		f := newGraphFixture(t, Options{})
		hold, fired := make(chan struct{}), make(chan struct{}, 4)
		if _, err := f.sim.AddFault(FaultRule{Method: "GET", Path: "/me/messages", Hold: hold, Fired: fired}); err != nil {
			t.Fatal(err)
		}
		results := make(chan result, 4)
		for range 4 {
			go func() {
				req, _ := http.NewRequest("GET", f.srv.URL+"/v1.0/me/messages", nil)
				req.Header.Set("Authorization", "Bearer "+f.aliceTok)
				resp, err := f.srv.Client().Do(req)
				if err != nil {
					results <- result{status: -1}
					return
				}
				b, _ := readAll(resp)
				results <- result{resp.StatusCode, resp.Header, b}
			}()
		}
		for range 4 {
			<-fired // the four hold alice's slots
		}
		reqs := map[string]any{"requests": []any{
			map[string]any{"id": "alice", "method": "GET", "url": "/me/mailFolders/inbox"},
			map[string]any{"id": "support", "method": "GET", "url": "/users/support@contoso.example/mailFolders/inbox"},
		}}
		res := batchResponses(t, f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, reqs, 200))
		if res["alice"]["status"] != 429.0 {
			t.Errorf("item on the full mailbox: %v", res["alice"])
		}
		h, _ := res["alice"]["headers"].(map[string]any)
		if ra, _ := h["Retry-After"].(string); ra == "" {
			t.Errorf("429 item without its own Retry-After: %v", res["alice"])
		}
		if res["support"]["status"] != 200.0 {
			t.Errorf("item on another mailbox: %v", res["support"])
		}
		close(hold)
		for range 4 {
			if r := <-results; r.status != 200 {
				t.Errorf("held request %d: %s", r.status, r.body)
			}
		}
	})
}

// TestThrottleHelpersDoNotCount: the control API and the Go methods are
// the test's hands, not Graph traffic; with the mailbox's 4 slots taken
// they still work, and they take no slot or budget.
func TestThrottleHelpersDoNotCount(t *testing.T) {
	f := newGraphFixture(t, Options{MailboxBudget: 5})
	hold, fired := make(chan struct{}), make(chan struct{}, 4)
	if _, err := f.sim.AddFault(FaultRule{Method: "GET", Path: "/me/messages", Hold: hold, Fired: fired}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 4)
	for range 4 {
		go func() {
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1.0/me/messages", nil)
			req.Header.Set("Authorization", "Bearer "+f.aliceTok)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range 4 {
		<-fired // the four hold alice's slots
	}
	for i := range 10 {
		req, _ := http.NewRequest("POST", f.srv.URL+"/_sim/mail/alice@contoso.example/messages", strings.NewReader(`{"subject":"helper `+strconv.Itoa(i)+`","from":"a@example.org","body":"b"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("control inject %d", resp.StatusCode)
		}
		if _, err := f.sim.InjectMessage("alice@contoso.example", NewMessage{Subject: "go", From: "a@example.org", Body: "b"}); err != nil {
			t.Fatal(err)
		}
		_ = f.sim.Messages("alice@contoso.example", "Inbox")
	}
	close(hold)
	for range 4 {
		if st := <-done; st != 200 {
			t.Errorf("held request %d", st)
		}
	}
	// 4 requests of the budget of 5 used: one more Graph request fits.
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 200)
	f.getJSON(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil, 429)
}
