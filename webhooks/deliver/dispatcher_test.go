package deliver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

func byID(reqs []received) map[string][]received {
	out := map[string][]received{}
	for _, r := range reqs {
		out[r.ID] = append(out[r.ID], r)
	}
	return out
}

// TestOutage: the receiver answers 503 (without, then with Retry-After)
// and recovers. Every event arrives, in order, attempts follow the
// schedule, Retry-After is honoured up to its cap, nothing is dropped.
func TestOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		switch n {
		case 0:
			return http.StatusServiceUnavailable, nil
		case 1:
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"86400"}} // a day: capped to 1 h
		case 2:
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"60"}} // shorter than the schedule: schedule wins
		}
		return http.StatusNoContent, nil
	})
	ids := []string{"msg_1", "msg_2", "msg_3", "msg_4", "msg_5"}
	for _, id := range ids {
		h.enqueue(id, "support")
	}
	h.start(deliver.Options{})
	h.runUntil("every event delivered", h.allIn(deliver.StateDelivered, ids...))

	reqs := h.requests()
	got := byID(reqs)
	head := got["msg_1"]
	if len(head) != 4 {
		t.Fatalf("msg_1 got %d attempts, want 4", len(head))
	}
	gaps := []struct {
		want   time.Duration
		jitter float64
	}{
		{5 * time.Second, 0.2},  // schedule
		{time.Hour, 0},          // Retry-After 86400 capped at 1 h, beyond the 5 min schedule
		{30 * time.Minute, 0.2}, // Retry-After 60 s is shorter than the schedule
	}
	for i, g := range gaps {
		d := head[i+1].At.Sub(head[i].At)
		if !within(d, g.want, g.jitter) {
			t.Errorf("gap between attempts %d and %d = %s, want %s ±%.0f%%", i+1, i+2, d, g.want, g.jitter*100)
		}
		if head[i].Attempt != i+1 {
			t.Errorf("attempt header of try %d = %d", i+1, head[i].Attempt)
		}
		if head[i].Header.Get(webhooks.HeaderTimestamp) == head[i+1].Header.Get(webhooks.HeaderTimestamp) {
			t.Errorf("attempts %d and %d share a webhook-timestamp: not signed afresh", i+1, i+2)
		}
		if string(head[i].Body) != string(head[i+1].Body) {
			t.Errorf("attempt %d body differs from attempt %d", i+2, i+1)
		}
	}
	// Order kept: first arrivals in enqueue order, the later ones only after
	// the head was delivered.
	var order []string
	for _, r := range reqs {
		if r.Attempt == 1 {
			order = append(order, r.ID)
		}
	}
	if strings.Join(order, ",") != strings.Join(ids, ",") {
		t.Errorf("first arrivals %v, want %v", order, ids)
	}
	for _, id := range ids[1:] {
		if len(got[id]) != 1 || got[id][0].At.Before(head[3].At) {
			t.Errorf("%s: %d requests, first at %v; want 1, not before msg_1's success at %v", id, len(got[id]), got[id][0].At, head[3].At)
		}
	}
	rows := h.rows()
	if r := rows["msg_1"]; r.Attempts != 4 || r.LastStatus != 204 {
		t.Errorf("msg_1 row: attempts %d, last status %d; want 4, 204", r.Attempts, r.LastStatus)
	}
}

// TestOrderIsPerChannel: a failing head blocks its own channel only.
func TestOrderIsPerChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	var aFailures atomic.Int32
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		if id == "a1" && aFailures.Add(1) <= 2 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusNoContent, nil
	})
	h.enqueue("a1", "A")
	h.enqueue("a2", "A")
	h.enqueue("b1", "B")
	h.start(deliver.Options{})
	h.runUntil("all delivered", h.allIn(deliver.StateDelivered, "a1", "a2", "b1"))
	got := byID(h.requests())
	if !got["b1"][0].At.Before(got["a1"][2].At) {
		t.Errorf("b1 waited for channel A's head (b1 at %v, a1 success at %v)", got["b1"][0].At, got["a1"][2].At)
	}
	if got["a2"][0].At.Before(got["a1"][2].At) {
		t.Errorf("a2 sent at %v before a1 succeeded at %v", got["a2"][0].At, got["a1"][2].At)
	}
}

func TestPermanentRejection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		switch id {
		case "bad":
			return http.StatusBadRequest, nil
		case "unprocessable":
			return http.StatusUnprocessableEntity, nil
		case "conflict":
			if attempt == 1 {
				return http.StatusConflict, nil // transient
			}
		}
		return http.StatusNoContent, nil
	})
	for _, id := range []string{"bad", "unprocessable", "conflict", "good"} {
		h.enqueue(id, id)
	}
	h.start(deliver.Options{})
	h.runUntil("final states", func() bool {
		r := h.rows()
		return r["bad"].State == deliver.StateRejected && r["unprocessable"].State == deliver.StateRejected &&
			r["conflict"].State == deliver.StateDelivered && r["good"].State == deliver.StateDelivered
	})
	rows := h.rows()
	if r := rows["bad"]; r.Attempts != 1 || r.LastStatus != 400 || !strings.Contains(r.LastError, "from the test receiver") {
		t.Errorf("bad row: attempts %d status %d error %q; want 1, 400 and the response excerpt", r.Attempts, r.LastStatus, r.LastError)
	}
	if r := rows["conflict"]; r.Attempts != 2 {
		t.Errorf("409 row took %d attempts, want 2 (409 is retried)", r.Attempts)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	var gone atomic.Bool
	gone.Store(true)
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		if gone.Load() {
			return http.StatusGone, nil
		}
		return http.StatusNoContent, nil
	})
	h.enqueue("m1", "c")
	h.enqueue("m2", "c")
	h.start(deliver.Options{})
	ctx := context.Background()
	disabled := func() bool {
		st, err := h.q.Endpoint(ctx, "helpdesk")
		return err == nil && st.State == deliver.EndpointDisabled
	}
	h.runUntil("endpoint disabled", disabled)
	// Days pass: nothing more is sent, rows wait.
	start := h.clock.Now()
	h.runUntil("two days", func() bool { return h.clock.Now().Sub(start) > 48*time.Hour })
	if n := len(h.requests()); n != 1 {
		t.Errorf("%d requests while disabled, want 1 (the 410)", n)
	}
	if r := h.rows(); r["m1"].State != deliver.StatePending || r["m2"].State != deliver.StatePending {
		t.Errorf("rows after 410: %s %s, want pending", r["m1"].State, r["m2"].State)
	}
	st, _ := h.q.Endpoint(ctx, "helpdesk")
	if !strings.Contains(st.Reason, "410") {
		t.Errorf("disabled reason %q does not mention 410", st.Reason)
	}
	gone.Store(false)
	if err := h.d.Resume(ctx, "helpdesk"); err != nil {
		t.Fatal(err)
	}
	h.runUntil("delivered after resume", h.allIn(deliver.StateDelivered, "m1", "m2"))
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	h.start(deliver.Options{})
	ctx := context.Background()
	if err := h.d.Pause(ctx, "helpdesk", ""); err != nil {
		t.Fatal(err)
	}
	h.enqueue("m1", "c")
	start := h.clock.Now()
	h.runUntil("an hour paused", func() bool { return h.clock.Now().Sub(start) > time.Hour })
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d requests while paused", n)
	}
	if err := h.d.Resume(ctx, "helpdesk"); err != nil {
		t.Fatal(err)
	}
	h.runUntil("delivered", h.allIn(deliver.StateDelivered, "m1"))
}

// TestDeadThenReplay: retries run out, the row is a dead letter; a replay
// delivers it with the same webhook-id and a fresh attempt count.
func TestDeadThenReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{MaxAttempts: 3, Schedule: []time.Duration{time.Minute, 10 * time.Minute}})
	var down atomic.Bool
	down.Store(true)
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		if down.Load() {
			return http.StatusBadGateway, nil
		}
		return http.StatusNoContent, nil
	})
	h.enqueue("m1", "c")
	h.start(deliver.Options{})
	h.runUntil("dead", h.allIn(deliver.StateDead, "m1"))
	if r := h.rows()["m1"]; r.Attempts != 3 || r.LastStatus != 502 {
		t.Errorf("dead row: attempts %d status %d, want 3, 502", r.Attempts, r.LastStatus)
	}
	first := h.requests()
	if len(first) != 3 {
		t.Fatalf("%d requests before dead, want 3", len(first))
	}
	down.Store(false)
	n, err := h.q.Replay(context.Background(), deliver.Filter{IDs: []string{"m1"}}, h.clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	h.d.Wake()
	h.runUntil("delivered after replay", h.allIn(deliver.StateDelivered, "m1"))
	reqs := h.requests()
	last := reqs[len(reqs)-1]
	if last.ID != "m1" || last.ID != first[0].ID || last.Attempt != 1 || string(last.Body) != string(first[0].Body) {
		t.Errorf("replayed request id %q attempt %d; want id m1 (unchanged), attempt 1, same body", last.ID, last.Attempt)
	}
}

func TestMaxAgeMakesDead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{MaxAge: 90 * time.Second, Schedule: []time.Duration{time.Minute}})
	h.setRespond(func(int, string, int) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	h.enqueue("m1", "c")
	h.start(deliver.Options{})
	h.runUntil("dead", h.allIn(deliver.StateDead, "m1"))
	if r := h.rows()["m1"]; r.Attempts != 2 {
		t.Errorf("attempts %d, want 2 (the third would be past MaxAge)", r.Attempts)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	mux.HandleFunc("/hooks", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved", http.StatusPermanentRedirect)
	})
	h.srv.Config.Handler = mux
	h.enqueue("m1", "c")
	h.start(deliver.Options{})
	h.runUntil("a failed attempt", func() bool { return h.rows()["m1"].LastStatus == http.StatusPermanentRedirect })
	r := h.rows()["m1"]
	if followed.Load() != 0 || r.State != deliver.StatePending || !strings.Contains(r.LastError, "not followed") {
		t.Errorf("redirect followed %d times; row %s %q; want 0, pending, 'not followed'", followed.Load(), r.State, r.LastError)
	}
}

// TestTemplateEndpoint: the body is rendered from the event, signed as sent.
func TestTemplateEndpoint(t *testing.T) {
	t.Parallel()
	tmpl, err := deliver.ParseTemplate("zammad", deliver.ZammadTicketTemplate)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, deliver.Endpoint{Template: tmpl, Headers: map[string]string{"Authorization": "Token token=abc"}})
	h.enqueue("m1", "c")
	h.start(deliver.Options{UserAgent: "m365bridge/test"})
	h.runUntil("delivered", h.allIn(deliver.StateDelivered, "m1"))
	r := h.requests()[0]
	var ticket struct {
		Title      string `json:"title"`
		CustomerID string `json:"customer_id"`
		Article    struct {
			Body string `json:"body"`
		} `json:"article"`
	}
	if err := json.Unmarshal(r.Body, &ticket); err != nil {
		t.Fatalf("rendered body is not JSON: %v\n%s", err, r.Body)
	}
	if ticket.Title != "Subject m1" || ticket.CustomerID != "guess:alice@example.org" || ticket.Article.Body != "hello" {
		t.Errorf("rendered ticket = %+v", ticket)
	}
	for k, want := range map[string]string{"Authorization": "Token token=abc", "User-Agent": "m365bridge/test", "Content-Type": "application/json", deliver.EventTypeHeader: "mail.received"} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if r.Status != http.StatusNoContent {
		t.Errorf("receiver answered %d: signature over the rendered body did not verify", r.Status)
	}
}

// TestConcurrency: with Concurrency 4, four POSTs are in flight at once.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{Concurrency: 4})
	var inflight atomic.Int32
	release := make(chan struct{})
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight.Add(1) == 4 {
			close(release)
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ids := []string{"m1", "m2", "m3", "m4"}
	for _, id := range ids {
		h.enqueue(id, "same-channel")
	}
	h.start(deliver.Options{})
	h.runUntil("delivered", h.allIn(deliver.StateDelivered, ids...))
	for id, r := range h.rows() {
		if r.Attempts != 1 {
			t.Errorf("%s took %d attempts: the four were not in flight together", id, r.Attempts)
		}
	}
}
