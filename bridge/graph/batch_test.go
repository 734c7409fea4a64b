package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBatch answers $batch calls: answer decides each item's status and
// headers; responses are returned in reverse order to prove correlation by id.
type fakeBatch struct {
	mu     sync.Mutex
	calls  [][]batchItem
	answer func(call int, it batchItem) (int, map[string]string)
}

func (f *fakeBatch) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1.0/$batch" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, 400)
		return
	}
	var req struct {
		Requests []batchItem `json:"requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Requests) > MaxBatchSize {
		writeEnvelope(w, 400, "BadRequest")
		return
	}
	f.mu.Lock()
	call := len(f.calls)
	f.calls = append(f.calls, req.Requests)
	f.mu.Unlock()
	var out []batchReply
	for _, it := range slices.Backward(req.Requests) {
		status, h := f.answer(call, it)
		body := json.RawMessage(`{"id":"x"}`)
		if status >= 300 {
			body = fmt.Appendf(nil, `{"error":{"code":"%s","message":"m"}}`, codeFor(status))
		}
		out = append(out, batchReply{ID: it.ID, Status: status, Headers: h, Body: body})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"responses": out})
}

func codeFor(status int) string {
	switch status {
	case 404:
		return "ErrorItemNotFound"
	case 429:
		return "TooManyRequests"
	case 403:
		return "ErrorAccessDenied"
	}
	return "serviceNotAvailable"
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("msg-%02d", i)
	}
	return out
}

func TestMarkReadSplitsAndCorrelates(t *testing.T) {
	fb := &fakeBatch{answer: func(int, batchItem) (int, map[string]string) { return 200, nil }}
	c, _ := fakeGraph(t, fb.handle)
	mc := c.Mailbox(Mailbox{Shared: true, Address: "s@x"}, staticToken("a.b.c"))
	res := mc.MarkRead(context.Background(), ids(45))
	if len(res) != 45 {
		t.Fatalf("%d results, want 45", len(res))
	}
	for id, err := range res {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if got := []int{len(fb.calls[0]), len(fb.calls[1]), len(fb.calls[2])}; len(fb.calls) != 3 || fmt.Sprint(got) != "[20 20 5]" {
		t.Errorf("batch calls = %d with sizes %v, want 3 of 20, 20, 5", len(fb.calls), got)
	}
	it := fb.calls[0][0]
	if it.Method != "PATCH" || it.URL != "/users/s@x/messages/msg-00" || it.Headers["Prefer"] != `IdType="ImmutableId"` ||
		it.Headers["Content-Type"] != "application/json" {
		t.Errorf("first item = %+v", it)
	}
}

func TestBatchRetriesOnlyFailedItems(t *testing.T) {
	fb := &fakeBatch{answer: func(call int, it batchItem) (int, map[string]string) {
		switch {
		case it.URL == "/me/messages/msg-03/move":
			return 404, nil // already gone
		case it.URL == "/me/messages/msg-04/move":
			return 403, nil // permanent
		case call == 0 && (it.URL == "/me/messages/msg-01/move" || it.URL == "/me/messages/msg-02/move"):
			return 429, map[string]string{"Retry-After": "4"}
		case call < 2 && it.URL == "/me/messages/msg-05/move":
			return 503, nil
		}
		return 201, nil
	}}
	c, rec := fakeGraph(t, fb.handle)
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	res := mc.Move(context.Background(), ids(7), "deleteditems")
	for id, err := range res {
		switch id {
		case "msg-04":
			if !errors.Is(err, ErrAccessDenied) {
				t.Errorf("%s: %v, want ErrAccessDenied", id, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v, want done", id, err)
			}
		}
	}
	if len(fb.calls) != 3 {
		t.Fatalf("%d batch calls, want 3", len(fb.calls))
	}
	var second []string
	for _, it := range fb.calls[1] {
		second = append(second, it.URL)
	}
	slices.Sort(second)
	if want := []string{"/me/messages/msg-01/move", "/me/messages/msg-02/move", "/me/messages/msg-05/move"}; !slices.Equal(second, want) {
		t.Errorf("retried items = %v, want %v", second, want)
	}
	if len(fb.calls[2]) != 1 || fb.calls[2][0].URL != "/me/messages/msg-05/move" {
		t.Errorf("third call = %+v, want msg-05 only", fb.calls[2])
	}
	waits := rec.get()
	if len(waits) != 2 || waits[0] != 4*time.Second {
		t.Errorf("waits = %v, want Retry-After 4s first, then a backoff", waits)
	}
	if got := mc.Stats().Throttled; got != 2 {
		t.Errorf("throttled = %d, want 2", got)
	}
	var body map[string]string
	json.Unmarshal(mustJSON(fb.calls[0][0].Body), &body)
	if body["destinationId"] != "deleteditems" {
		t.Errorf("move body = %v", body)
	}
}

func TestBatchRetriesAreBounded(t *testing.T) {
	fb := &fakeBatch{answer: func(int, batchItem) (int, map[string]string) {
		return 429, map[string]string{"Retry-After": "1"}
	}}
	c, _ := fakeGraph(t, fb.handle)
	c.MaxRetries = 2
	res := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c")).MarkRead(context.Background(), ids(3))
	for id, err := range res {
		if !errors.Is(err, ErrThrottled) {
			t.Errorf("%s: %v, want ErrThrottled", id, err)
		}
	}
	if len(fb.calls) != 3 {
		t.Errorf("%d batch calls, want 3 (1 + MaxRetries)", len(fb.calls))
	}
}

func TestBatchRejectsBadInput(t *testing.T) {
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request expected") })
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	_, err := mc.Batch(context.Background(), []BatchRequest{{ID: "a", Method: "GET", Path: "/x"}, {ID: "A", Method: "GET", Path: "/y"}})
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate ids: %v", err)
	}
	_, err = mc.Batch(context.Background(), []BatchRequest{{Method: "GET", Path: "x"}})
	if err == nil {
		t.Error("relative path without / accepted")
	}
	res := mc.Move(context.Background(), []string{"m1"}, "")
	if res["m1"] == nil {
		t.Error("move without destination accepted")
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
