package m365sim

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func batchResponses(t *testing.T, m map[string]any) map[string]map[string]any {
	t.Helper()
	assertShape(t, "batch", m, loadSample(t, "batch-response.json"))
	out := map[string]map[string]any{}
	for _, r := range m["responses"].([]any) {
		rm := r.(map[string]any)
		out[rm["id"].(string)] = rm
	}
	return out
}

func TestBatch(t *testing.T) {
	f := newGraphFixture(t, Options{})
	seeded := seedList(t, f, "alice@contoso.example", "Inbox", 3)

	t.Run("each item has its own status, headers and body", func(t *testing.T) {
		before := f.sim.Counters()
		m := f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, map[string]any{"requests": []any{
			map[string]any{"id": "1", "method": "GET", "url": "/me/mailFolders/inbox"},
			map[string]any{"id": "2", "method": "GET", "url": "/me/messages/" + url.PathEscape(seeded[0].ID) + "?$select=subject"},
			map[string]any{"id": "3", "method": "GET", "url": "/me/messages/AAMkAGnope"},
			map[string]any{"id": "4", "method": "PATCH", "url": "/me/messages/" + url.PathEscape(seeded[1].ID), "headers": map[string]string{"Content-Type": "application/json"}, "body": map[string]any{"isRead": true}},
			map[string]any{"id": "5", "method": "GET", "url": "/me/messages/" + url.PathEscape(seeded[2].ID) + "/$value"},
		}}, 200)
		res := batchResponses(t, m)
		if res["1"]["status"] != 200.0 || res["1"]["body"].(map[string]any)["displayName"] != "Inbox" {
			t.Errorf("1: %v", res["1"])
		}
		if res["2"]["body"].(map[string]any)["subject"] != seeded[0].Subject {
			t.Errorf("2: %v", res["2"])
		}
		if res["3"]["status"] != 404.0 || res["3"]["body"].(map[string]any)["error"].(map[string]any)["code"] != "ErrorItemNotFound" {
			t.Errorf("3: %v", res["3"])
		}
		if res["4"]["status"] != 200.0 || res["4"]["body"].(map[string]any)["isRead"] != true {
			t.Errorf("4: %v", res["4"])
		}
		raw, err := base64.StdEncoding.DecodeString(res["5"]["body"].(string))
		if err != nil || !strings.Contains(string(raw), "Subject: Message 02") {
			t.Errorf("5: %v %s", err, raw)
		}
		if ct := res["1"]["headers"].(map[string]any)["Content-Type"]; ct != graphContentType {
			t.Errorf("inner Content-Type %v", ct)
		}
		after := f.sim.Counters()
		if after.Requests-before.Requests != 1 || after.BatchInner-before.BatchInner != 5 || after.Batches-before.Batches != 1 {
			t.Errorf("counters: requests +%d, inner +%d, batches +%d", after.Requests-before.Requests, after.BatchInner-before.BatchInner, after.Batches-before.Batches)
		}
	})

	t.Run("answers come in any order", func(t *testing.T) {
		var reqs []any
		for i := 0; i < 20; i++ {
			reqs = append(reqs, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": "/me/mailFolders/inbox"})
		}
		m := f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, map[string]any{"requests": reqs}, 200)
		var order []string
		for _, r := range m["responses"].([]any) {
			order = append(order, r.(map[string]any)["id"].(string))
		}
		if len(order) != 20 {
			t.Fatalf("%d responses", len(order))
		}
		inOrder := true
		for i, id := range order {
			inOrder = inOrder && id == fmt.Sprint(i)
		}
		if inOrder {
			t.Error("20 answers in request order: not shuffled")
		}
	})

	t.Run("dependsOn: 424 after a failed prerequisite", func(t *testing.T) {
		m := f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, map[string]any{"requests": []any{
			map[string]any{"id": "a", "method": "GET", "url": "/me/messages/AAMkAGnope"},
			map[string]any{"id": "b", "method": "GET", "url": "/me/mailFolders/inbox", "dependsOn": []string{"a"}},
			map[string]any{"id": "c", "method": "GET", "url": "/me/mailFolders/drafts"},
			map[string]any{"id": "d", "method": "GET", "url": "/me/mailFolders/archive", "dependsOn": []string{"C"}},
		}}, 200)
		res := batchResponses(t, m)
		if res["a"]["status"] != 404.0 || res["b"]["status"] != 424.0 || res["c"]["status"] != 200.0 || res["d"]["status"] != 200.0 {
			t.Errorf("statuses a=%v b=%v c=%v d=%v", res["a"]["status"], res["b"]["status"], res["c"]["status"], res["d"]["status"])
		}
	})

	t.Run("whole-batch errors", func(t *testing.T) {
		var many []any
		for i := 0; i < 21; i++ {
			many = append(many, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": "/me/messages"})
		}
		cases := map[string]any{
			"more than 20":       map[string]any{"requests": many},
			"duplicate ids":      map[string]any{"requests": []any{map[string]any{"id": "X", "method": "GET", "url": "/me"}, map[string]any{"id": "x", "method": "GET", "url": "/me"}}},
			"body without type":  map[string]any{"requests": []any{map[string]any{"id": "1", "method": "PATCH", "url": "/me/messages/a", "body": map[string]any{"isRead": true}}}},
			"unknown dependency": map[string]any{"requests": []any{map[string]any{"id": "1", "method": "GET", "url": "/me", "dependsOn": []string{"9"}}}},
			"empty":              map[string]any{"requests": []any{}},
			"nested batch":       map[string]any{"requests": []any{map[string]any{"id": "1", "method": "POST", "url": "/$batch"}}},
			"malformed":          []byte(`{"requests": [`),
		}
		for name, body := range cases {
			t.Run(name, func(t *testing.T) {
				resp, b := f.call(t, "POST", "/v1.0/$batch", f.aliceTok, body)
				wantGraphError(t, resp, b, 400, "BadRequest")
			})
		}
	})

	t.Run("inner requests are throttled like real ones", func(t *testing.T) {
		f := newGraphFixture(t, Options{MailboxBudget: 3})
		var reqs []any
		for i := 0; i < 5; i++ {
			reqs = append(reqs, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": "/me/mailFolders/inbox", "dependsOn": dependsOnPrev(i)})
		}
		res := batchResponses(t, f.getJSON(t, "POST", "/v1.0/$batch", f.aliceTok, map[string]any{"requests": reqs}, 200))
		if res["2"]["status"] != 200.0 || res["3"]["status"] != 429.0 || res["4"]["status"] != 424.0 {
			t.Errorf("statuses %v %v %v", res["2"]["status"], res["3"]["status"], res["4"]["status"])
		}
		if ra := res["3"]["headers"].(map[string]any)["Retry-After"]; ra == nil {
			t.Error("429 item without Retry-After header")
		}
	})
}

func dependsOnPrev(i int) []string {
	if i == 0 {
		return nil
	}
	return []string{fmt.Sprint(i - 1)}
}
