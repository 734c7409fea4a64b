package recipe_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
)

const (
	zendeskAgent = "agent@contoso.example"
	zendeskToken = "zendesk-api-token-0123456789"
)

func markerOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "m365b" + hex.EncodeToString(sum[:10])
}

// TestZendeskRecipe delivers 200 mails through the shipped Zendesk recipe
// (150 originals, 15 customer replies, 5 auto-replies to known tickets, 30
// archived), with runs cut after create, import and reply steps and three
// 429 answers with Retry-After on the way: exactly 180 tickets, every
// reply on its parent's ticket, archived mail imported closed with its
// original date, no notification to archived or auto-submitted senders,
// attachments byte-identical.
func TestZendeskRecipe(t *testing.T) {
	z := helpdeskfake.NewZendesk(zendeskAgent, zendeskToken)
	defer z.Close()
	ls := newLinkServer(t)
	cfg := loadShipped(t, "zendesk.yaml", z.URL, mapEnv{"ZENDESK_AUTH": helpdeskfake.BasicAuth(zendeskAgent, zendeskToken)})
	ms := scenario(ls, 150, 15, 5, 30)
	cuts := map[string]int{"create": 10, "import_archived": 4, "reply": 3}
	z.FailNext(3, 429, "1")
	rows := deliverAll(t, cfg, ms, recipe.Options{AfterStep: cutAfter(cuts)})
	checkAllDelivered(t, rows, len(ms))
	for step, left := range cuts {
		if left != 0 {
			t.Errorf("%d cuts after %s were not reached", left, step)
		}
	}

	tickets := z.Tickets()
	if got, want := len(tickets), 150+30; got != want {
		t.Errorf("got %d tickets, want %d", got, want)
	}
	byExt := map[string][]helpdeskfake.ZendeskTicket{}
	comments := 0
	for _, tk := range tickets {
		byExt[tk.ExternalID] = append(byExt[tk.ExternalID], tk)
		comments += len(tk.Comments)
	}
	if comments != len(ms) {
		t.Errorf("%d comments in all, want one per mail (%d)", comments, len(ms))
	}
	ticketOf := map[int]helpdeskfake.ZendeskTicket{}
	for _, m := range ms {
		if m.parent >= 0 {
			tk := ticketOf[m.parent]
			if n := strings.Count(strings.Join(tk.Tags, " "), markerOf(m.msgID)); n != 1 {
				t.Errorf("reply %d: its marker is on its parent's ticket %d %d times, want 1", m.i, tk.ID, n)
			}
			continue
		}
		got := byExt[m.msgID]
		if len(got) != 1 {
			t.Errorf("mail %d: %d tickets with its Message-ID as external_id, want 1", m.i, len(got))
			continue
		}
		tk := got[0]
		ticketOf[m.i] = tk
		if z.UserEmail(tk.RequesterID) != m.customer {
			t.Errorf("mail %d: requester %s, want %s", m.i, z.UserEmail(tk.RequesterID), m.customer)
		}
		if m.archive {
			want := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(m.i) * time.Minute).Format(time.RFC3339)
			if !tk.Imported || tk.Status != "closed" || tk.CreatedAt != want {
				t.Errorf("archived mail %d: imported %t, status %s, created %s; want an import, closed, created %s", m.i, tk.Imported, tk.Status, tk.CreatedAt, want)
			}
		}
		c := tk.Comments[0]
		checkFiles(t, m, c.Attachments, c.HTMLBody)
		if m.html != "" && (strings.Contains(c.HTMLBody, "cid:") || !strings.Contains(c.HTMLBody, "/attachments/token/")) {
			t.Errorf("mail %d: inline image not linked to its upload: %s", m.i, c.HTMLBody)
		}
	}
	// Replies: one comment each on the parent's ticket, private for
	// auto-replies.
	for _, m := range ms {
		if m.parent < 0 {
			continue
		}
		tk := ticketOf[m.parent]
		var replies []helpdeskfake.ZendeskComment
		for _, c := range tk.Comments[1:] {
			if strings.Contains(c.Body, "Mail "+itoa(m.i)) {
				replies = append(replies, c)
			}
		}
		if len(replies) != 1 {
			t.Errorf("reply %d: %d comments on ticket %d, want 1", m.i, len(replies), tk.ID)
		} else if replies[0].Public == m.auto {
			t.Errorf("reply %d (auto-submitted %t): public %t", m.i, m.auto, replies[0].Public)
		}
	}
	notified := map[string]int{}
	for _, n := range z.Notifications() {
		notified[n.To]++
	}
	for _, m := range ms {
		switch {
		case m.archive || m.auto:
			if notified[m.customer] > 0 {
				t.Errorf("mail %d: %s (archived %t, auto-submitted %t) was notified", m.i, m.customer, m.archive, m.auto)
			}
		case m.parent < 0 && notified[m.customer] < 1:
			t.Errorf("new mail %d: %s got no receipt", m.i, m.customer)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
