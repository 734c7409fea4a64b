package mailsync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/config"
)

// Issue 17 item 3: memory is bounded by bytes, not pages. Two channels
// share a 2.5 MiB budget (and the default two page slots, which alone would
// let both build at once); each has a mail with a 512 KiB attachment, so a
// page weighs its 1 MiB reserve plus three copies of the attachment's
// base64 (683 KiB): 3 MiB, clamped to the whole budget. (Two pages' 1 MiB reserves alone would fit.) While
// the first page is being built, holding what it weighs, the second must
// wait for bytes before it is read; once the first commits, the second
// goes through, and both mails are queued exactly once.
func TestHeavyPagesWaitForTheByteBudget(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	big := strings.Repeat("x", 512<<10)
	h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "heavy one", From: "Carol <carol@example.com>", Body: "a",
		Attachments: []m365sim.NewAttachment{{Name: "a.bin", ContentType: "application/octet-stream", Content: big}}})
	h.inject(simAgent, m365sim.NewMessage{Subject: "heavy two", From: "Dan <dan@example.com>", Body: "b",
		Attachments: []m365sim.NewAttachment{{Name: "b.bin", ContentType: "application/octet-stream", Content: big}}})

	budget := membudget.New(5 << 19) // 2.5 MiB
	waits := make(chan int64, 8)
	budget.OnWait(func(total int64) { waits <- total })
	building := make(chan string, 4)
	release := make(chan struct{})
	mk := func(ch config.Channel) *Runner {
		mb := graph.Mailbox{Shared: ch.Mailbox.Type == config.MailboxShared, Address: ch.Mailbox.Address}
		return NewRunner(RunnerConfig{Channel: ch, Tenant: h.tenant, DB: h.db, Memory: budget,
			Graph: h.client.Mailbox(mb, graph.TokenFunc(func(context.Context) (string, error) { return h.token, nil })),
			Auth:  func(context.Context) (bool, error) { return true, nil },
			BeforeBuild: func(m *graph.Message) {
				building <- m.Subject
				<-release
			}})
	}
	first := mk(testChannel("support", config.MailboxShared, simSupport, "Inbox/Support"))
	second := mk(testChannel("agent", config.MailboxUser, simAgent, ""))

	const safety = 60 * time.Second // far above the ~100 ms these steps take
	errs := make(chan error, 2)
	go func() { _, err := first.SyncOnce(context.Background()); errs <- err }()
	select {
	case s := <-building:
		if s != "heavy one" {
			t.Fatalf("first build is %q", s)
		}
	case <-time.After(safety):
		t.Fatal("the first page was never built")
	}
	go func() { _, err := second.SyncOnce(context.Background()); errs <- err }()
	select {
	case total := <-waits:
		t.Logf("second page waits for %d bytes while the first holds the budget", total)
	case s := <-building:
		t.Fatalf("%q was built while the first page held the whole byte budget", s)
	case err := <-errs:
		t.Fatalf("a runner ended early: %v", err)
	case <-time.After(safety):
		t.Fatal("the second page neither waited for bytes nor was built")
	}
	t.Log("releasing the first page")
	close(release)
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
			t.Log("a runner finished")
		case <-time.After(safety):
			t.Fatal("the runners did not finish once the first page let go")
		}
	}
	if n := h.outboxLen(); n != 2 {
		t.Fatalf("outbox holds %d events, want 2 (each mail once)", n)
	}
}
