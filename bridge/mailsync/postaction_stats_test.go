package mailsync

import (
	"context"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/config"
)

// TestPostActionsCountInStatus is issue 12 item 11: post-actions that run
// on a dispatcher's Notify (PostActions, outside a sync round) left the
// runner's post_done at 0 although the mail was marked read.
func TestPostActionsCountInStatus(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	ch := testChannel("sales", config.MailboxUser, "", "")
	ch.AfterImport = config.AfterImport{Action: config.ActionMarkRead}
	r := h.runner(ch)
	for _, s := range []string{"one", "two", "three"} {
		h.inject(simAgent, m365sim.NewMessage{Subject: s, From: "dave@example.com", Body: "Hi"})
	}
	if st := h.syncOnce(r); st.Queued != 3 || st.PostDone != 0 {
		t.Fatalf("first round = %+v, want 3 queued and nothing post-processed before delivery", st)
	}
	if n := h.deliver(context.Background()); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	st, err := r.PostActions(context.Background())
	if err != nil || st.PostDone != 3 {
		t.Fatalf("PostActions = %+v, %v; want 3 done", st, err)
	}
	if got := r.Status().Totals.PostDone; got != 3 {
		t.Errorf("Status().Totals.PostDone = %d after 3 post-actions, want 3", got)
	}
	// A sync round after that adds its own, not the same ones again.
	h.syncOnce(r)
	if got := r.Status().Totals.PostDone; got != 3 {
		t.Errorf("Status().Totals.PostDone = %d after another round, want still 3", got)
	}
}
