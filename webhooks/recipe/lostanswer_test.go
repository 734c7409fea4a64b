package recipe_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

// lossyProxy forwards to upstream and, for the nth write (any method but
// GET), then the 2n+1th, and so on with gaps growing by one (a fixed gap
// could hit the same write of a run every time: a recipe whose run writes
// n times would never finish), lets the helpdesk carry it out and then
// closes the connection
// without an answer: the bridge cannot know whether the write happened, as
// after a kill inside the step. It returns the proxy and the number of
// answers it dropped so far.
func lossyProxy(t *testing.T, upstream string, nth int) (*httptest.Server, func() int) {
	var mu sync.Mutex
	writes, dropped, next, gap := 0, 0, nth, nth
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		mu.Lock()
		drop := false
		if r.Method != http.MethodGet && resp.StatusCode < 300 {
			writes++
			drop = writes == next
			if drop {
				dropped++
				gap++
				next += gap
			}
		}
		mu.Unlock()
		if drop {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	t.Cleanup(p.Close)
	return p, func() int { mu.Lock(); defer mu.Unlock(); return dropped }
}

// TestAnswersLost: about every 4th write's answer is lost after the helpdesk
// carried it out (the connection closes). For RT and Freshdesk: still
// exactly one ticket per thread and each reply stored once. (Zammad and
// Zendesk too.)
func TestAnswersLost(t *testing.T) {
	t.Run("rt", func(t *testing.T) {
		rt := newRT()
		defer rt.Close()
		proxy, dropped := lossyProxy(t, rt.URL, 4)
		cfg := loadShipped(t, "rt5.yaml", proxy.URL, mapEnv{"RT_TOKEN": rtToken})
		ms := scenario(newLinkServer(t), 30, 6, 2, 6)
		checkAllDelivered(t, deliverAll(t, cfg, ms, recipe.Options{}), len(ms))
		if dropped() < 4 {
			t.Fatalf("only %d answers dropped", dropped())
		}
		if n := len(rt.Tickets()); n != 36 {
			t.Errorf("%d tickets, want 36", n)
		}
		perMsg := map[string]int{}
		for _, x := range rt.Transactions() {
			for _, id := range x.CFs["M365 Reply Message-ID"] {
				perMsg[id]++
			}
		}
		for _, m := range ms {
			if m.parent >= 0 && perMsg[m.msgID] != 1 {
				t.Errorf("reply %d stored %d times", m.i, perMsg[m.msgID])
			}
		}
	})
	t.Run("freshdesk", func(t *testing.T) {
		f := newFreshdesk(t)
		proxy, dropped := lossyProxy(t, f.URL, 4)
		cfg := loadShipped(t, "freshdesk.yaml", proxy.URL, freshdeskCfgEnv())
		ms := scenario(newLinkServer(t), 30, 6, 2, 6)
		checkAllDelivered(t, deliverAll(t, cfg, ms, recipe.Options{}), len(ms))
		if dropped() < 4 {
			t.Fatalf("only %d answers dropped", dropped())
		}
		if n := len(f.Tickets()); n != 36 {
			t.Errorf("%d tickets, want 36", n)
		}
		for _, m := range ms {
			if m.parent < 0 {
				continue
			}
			n := 0
			for _, note := range f.Notes() {
				if strings.Contains(note.BodyText, markerOf(m.msgID)) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("reply %d stored %d times", m.i, n)
			}
		}
	})
	t.Run("zammad", func(t *testing.T) {
		z := helpdeskfake.NewZammad(zammadToken, "Support L1")
		defer z.Close()
		proxy, dropped := lossyProxy(t, z.URL, 4)
		cfg := loadShipped(t, "zammad.yaml", proxy.URL, mapEnv{"ZAMMAD_TOKEN": zammadToken})
		ms := scenario(newLinkServer(t), 30, 6, 2, 6)
		checkAllDelivered(t, deliverAll(t, cfg, ms, recipe.Options{}), len(ms))
		if dropped() < 4 {
			t.Fatalf("only %d answers dropped", dropped())
		}
		if n := len(z.Tickets()); n != 36 {
			t.Errorf("%d tickets, want 36", n)
		}
		per := map[string]int{}
		for _, a := range z.Articles() {
			per[a.MessageID]++
		}
		for _, m := range ms {
			if per[m.msgID] != 1 {
				t.Errorf("mail %d stored %d times", m.i, per[m.msgID])
			}
		}
	})
	t.Run("zendesk", func(t *testing.T) {
		z := helpdeskfake.NewZendesk(zendeskAgent, zendeskToken)
		defer z.Close()
		proxy, dropped := lossyProxy(t, z.URL, 4)
		cfg := loadShipped(t, "zendesk.yaml", proxy.URL, mapEnv{"ZENDESK_AUTH": helpdeskfake.BasicAuth(zendeskAgent, zendeskToken)})
		ms := scenario(newLinkServer(t), 30, 6, 2, 6)
		checkAllDelivered(t, deliverAll(t, cfg, ms, recipe.Options{}), len(ms))
		if dropped() < 4 {
			t.Fatalf("only %d answers dropped", dropped())
		}
		tickets := z.Tickets()
		comments := 0
		for _, tk := range tickets {
			comments += len(tk.Comments)
		}
		if len(tickets) != 36 || comments != len(ms) {
			t.Errorf("%d tickets with %d comments, want 36 with one comment per mail (%d)", len(tickets), comments, len(ms))
		}
	})
}
