package mailsync

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// panicDelta is the real mailbox client whose Delta panics once: a bug in
// a round outside any one message.
type panicDelta struct {
	MailboxAPI
	fired atomic.Bool
}

func (p *panicDelta) Delta(ctx context.Context, folderID, cursor string, opts graph.DeltaOptions) (*graph.DeltaPage, error) {
	if p.fired.CompareAndSwap(false, true) {
		panic("test: a bug while paging the delta")
	}
	return p.MailboxAPI.Delta(ctx, folderID, cursor, opts)
}

// A panic in a round outside one message fails that round (recorded like
// any sync error, with the stack in the log); the next round works.
func TestRunnerRoundPanicFailsTheRound(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	h.inject(simSupport, m365sim.NewMessage{Subject: "hello", From: "carol@example.com", Body: "Hi"})
	ch := testChannel("support", "shared", simSupport, "")
	r := h.runner(ch)
	r.cfg.Graph = &panicDelta{MailboxAPI: r.cfg.Graph}
	_, err := r.SyncOnce(context.Background())
	var pe *PanicError
	if !errors.As(err, &pe) || !strings.Contains(string(pe.Stack), "runtime/debug.Stack") {
		t.Fatalf("round with a panic: %v, want a *PanicError with its stack", err)
	}
	if st := r.Status(); st.State != RunnerError {
		t.Errorf("runner state after the panic = %s, want %s", st.State, RunnerError)
	}
	if st := h.syncOnce(r); st.Queued != 1 {
		t.Errorf("the next round queued %d, want 1", st.Queued)
	}
}
