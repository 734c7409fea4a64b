package mailsync

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
)

// A panic in the runner (a bug, or input no test foresaw) must not take the
// daemon and every other channel down with it: one message fails alone,
// one round fails alone, each with its stack in the log (as mox recovers
// its deliveries).

// PanicError is a panic recovered from one item of work.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error (panic: %v)", e.Value) }

// syncRoundSafe is syncRound; a panic fails the round (retried at the next
// poll) instead of the process.
func (r *Runner) syncRoundSafe(ctx context.Context) (stats Stats, err error) {
	defer r.recoverInto(&err, "sync round")
	return r.syncRound(ctx)
}

// postActionsRound is postActions with the same recovery.
func (r *Runner) postActionsRound(ctx context.Context) (stats Stats, err error) {
	defer r.recoverInto(&err, "post-import actions")
	stats, _, err = r.postActions(ctx, false)
	return stats, err
}

// postActionsSafe is PostActions (round lock included) with the same
// recovery, for Run's notify (fullOnly) and deadline paths; it returns how
// many due messages wait for a full batch.
func (r *Runner) postActionsSafe(ctx context.Context, fullOnly bool) (waiting int, err error) {
	defer r.recoverInto(&err, "post-import actions")
	_, waiting, err = r.lockedPostActions(ctx, fullOnly)
	return waiting, err
}

func (r *Runner) recoverInto(err *error, what string) {
	v := recover()
	if v == nil {
		return
	}
	pe := &PanicError{Value: v, Stack: debug.Stack()}
	r.log.Error(what+" panicked: the round failed and is retried at the next poll; please report this bug",
		"panic", fmt.Sprint(v), "stack", string(pe.Stack))
	*err = pe
}

// buildOneSafe is buildOne; a panic rejects this message alone (a ledger
// row in state rejected that names the panic, the message left in the
// mailbox, replayable) and the rest of the page goes on.
func (r *Runner) buildOneSafe(ctx context.Context, src event.Source, m *graph.Message) (b built, err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		pe := &PanicError{Value: v, Stack: debug.Stack()}
		entry := store.LedgerEntry{
			Channel: r.ch.Name, MessageID: m.ID, InternetMessageID: m.InternetMessageID,
			EventID: eventIDOf(src, m), Kind: store.KindNew, ReceivedAt: m.ReceivedDateTime,
			State: store.LedgerRejected, Reason: pe.Error() + " while building the event; the message stays in the mailbox",
		}
		r.log.Error("building a message's event panicked: message rejected; please report this bug",
			"message_id", m.ID, "event_id", entry.EventID, "panic", fmt.Sprint(v), "stack", string(pe.Stack))
		b, err = built{entry: entry, notice: r.rejectedNotice(src, entry, m.Subject)}, nil
	}()
	if r.cfg.BeforeBuild != nil {
		r.cfg.BeforeBuild(m)
	}
	return r.buildOne(ctx, src, m)
}
