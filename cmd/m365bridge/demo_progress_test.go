package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestDemoProgressWait: the demo's wait ends on the dispatcher's results,
// however long they take in total: each mail event counts once (retries
// and duplicates do not), refused ones count as settled, operational events
// do not count; a wait with nothing settling ends with the receiver's last
// answer; Ctrl-C is not an error.
func TestDemoProgressWait(t *testing.T) {
	var out strings.Builder
	pr := &demoPrinter{w: &out}
	p := newDemoProgress()
	go func() {
		for i := range 50 {
			id := fmt.Sprintf("msg_%d", i)
			if i%10 == 0 {
				p.onResult("helpdesk", deliver.Row{EventID: id, Type: "mail.archived"}, deliver.Result{Outcome: deliver.Transient, Status: 503, Excerpt: "busy"})
			}
			p.onResult("helpdesk", deliver.Row{EventID: id, Type: "mail.archived"}, deliver.Result{Outcome: deliver.Delivered, Status: 204})
			p.onResult("helpdesk", deliver.Row{EventID: id, Type: "mail.archived"}, deliver.Result{Outcome: deliver.Delivered, Status: 204})
			p.onResult("helpdesk", deliver.Row{EventID: "evt_" + id, Type: "channel.error"}, deliver.Result{Outcome: deliver.Delivered})
		}
		p.onResult("helpdesk", deliver.Row{EventID: "msg_refused", Type: "mail.received"}, deliver.Result{Outcome: deliver.Permanent, Status: 422, Excerpt: "no such group"})
	}()
	if err := p.wait(context.Background(), "First sync", 51, time.Minute, pr); err != nil {
		t.Fatalf("wait for 51: %v", err)
	}
	if d, r := p.counts(); d != 50 || r != 1 {
		t.Errorf("counts = %d delivered, %d refused; want 50 and 1", d, r)
	}

	// Nothing more settles: the safety net (short here, to test it) ends
	// the wait with what the receiver said last.
	err := p.wait(context.Background(), "New mail", 52, 50*time.Millisecond, pr)
	if err == nil || !strings.Contains(err.Error(), "New mail stalled: 51 of 52") || !strings.Contains(err.Error(), "422 no such group") {
		t.Errorf("stalled wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.wait(ctx, "Live pickup", 52, time.Minute, pr); err != nil {
		t.Errorf("wait after Ctrl-C = %v, want nil", err)
	}
}
