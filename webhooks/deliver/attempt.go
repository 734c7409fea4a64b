package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// deliver makes one attempt at row and records its outcome; it reports
// whether the endpoint answered 410 Gone. A panic anywhere in the attempt
// (rendering, sending, the OnResult hook) is this row's failed attempt,
// logged with its stack: the lane, the other rows and the process go on.
func (d *Dispatcher) deliver(ep Endpoint, row Row) (gone bool) {
	d.mu.Lock()
	ctx := d.postCtx
	d.mu.Unlock()
	log := withLazy(d.log, slog.String("endpoint", ep.Name), slog.String("event_id", row.EventID), slog.Int64("seq", row.Seq))
	defer func() {
		// Last resort (a panic before the attempt was recorded, or while
		// recording a panicked one): the row stays as the queue has it.
		if v := recover(); v != nil {
			log.Error("delivery panicked; please report this bug", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if row.Body == nil && !d.readBody(ctx, log, ep, &row) {
		return
	}
	attempt := row.Attempts + 1
	start := d.opts.Now()
	next := start.Add(d.opts.Jitter(ep.delayAfter(attempt)))
	if err := d.q.MarkAttempt(ctx, row.Seq, attempt, start, next); err != nil {
		if !errors.Is(err, ErrNotPending) {
			d.logErr(ctx, "record attempt", err, "endpoint", ep.Name, "event_id", row.EventID)
		}
		return
	}
	defer d.recoverAttempt(ctx, log, ep, row, attempt, next)
	var res Result
	if ep.Recipe != nil {
		res = ep.Recipe.Run(ctx, ep, row, attempt)
	} else {
		res = d.post(ctx, log, ep, row, attempt)
	}
	if res.Outcome == rendered {
		return // rejected by post: recorded there
	}
	if ctx.Err() != nil {
		return // shut down mid-POST: retried at the committed next time
	}
	d.observe(ep, row, res)
	log = log.With("attempt", attempt, "status", res.Status)
	switch res.Outcome {
	case Delivered:
		log.Debug("event delivered")
		d.record(ctx, log, d.q.MarkDelivered(ctx, row.Seq, res.Status, d.opts.Now()))
	case Permanent:
		log.Warn("receiver rejected the event: not retried (replay it once fixed)", "response", res.Excerpt)
		d.record(ctx, log, d.q.MarkRejected(ctx, row.Seq, res.Status, res.Excerpt))
	case Gone:
		reason := fmt.Sprintf("receiver answered 410 Gone at %s", d.opts.Now().UTC().Format(time.RFC3339))
		log.Error("webhook endpoint answered 410 Gone: endpoint DISABLED, events wait until `resume`", "response", res.Excerpt)
		gone = true
		d.record(ctx, log, d.q.SetEndpoint(ctx, ep.Name, EndpointDisabled, reason, d.opts.Now()))
		d.record(ctx, log, d.q.MarkFailed(ctx, row.Seq, res.Status, res.Excerpt, d.opts.Now()))
	default:
		retryAt := next
		if res.RetryAfter > 0 {
			if t := d.opts.Now().Add(res.RetryAfter); t.After(retryAt) {
				retryAt = t
			}
		}
		if attempt >= ep.MaxAttempts || retryAt.Sub(row.AgeBase()) > ep.MaxAge {
			log.Error("delivery failed for good: event is a dead letter (replay it once fixed)",
				"attempts", attempt, "err", res.Excerpt)
			d.record(ctx, log, d.q.MarkDead(ctx, row.Seq, res.Status, res.Excerpt))
			return
		}
		log.Warn("delivery failed: will retry", "next_attempt_at", retryAt.UTC(), "err", res.Excerpt)
		d.record(ctx, log, d.q.MarkFailed(ctx, row.Seq, res.Status, res.Excerpt, retryAt))
	}
	return gone
}

// readBody reads row's body (once per attempt, after the lane claimed its
// size) and reports whether the attempt can go on.
func (d *Dispatcher) readBody(ctx context.Context, log *slog.Logger, ep Endpoint, row *Row) bool {
	body, err := d.q.Body(ctx, row.Seq)
	if errors.Is(err, ErrNotPending) {
		// A pending row always has its body (only delivered rows' are
		// dropped): without it the event can never be sent.
		log.Error("event body missing from the outbox: rejected", "err", err)
		d.record(ctx, log, d.q.MarkRejected(ctx, row.Seq, 0, "the event body is missing from the outbox: it cannot be delivered"))
		return false
	}
	if err != nil {
		d.logErr(ctx, "read event body", err, "endpoint", ep.Name, "event_id", row.EventID)
		return false
	}
	row.Body = body
	return true
}

// rendered is post's outcome for a row it already rejected (its body
// could not be rendered); never seen outside the dispatcher.
const rendered Outcome = -1

// post renders row for ep and POSTs it signed: the delivery of an endpoint
// without a recipe.
func (d *Dispatcher) post(ctx context.Context, log *slog.Logger, ep Endpoint, row Row, attempt int) Result {
	body, err := Render(ep, row.Body)
	if err != nil {
		log.Error("event cannot be rendered for this endpoint: rejected", "err", err)
		res := Result{Outcome: Permanent, Excerpt: excerpt(err.Error()), Err: err}
		d.observe(ep, row, res)
		d.record(ctx, log, d.q.MarkRejected(ctx, row.Seq, 0, res.Excerpt))
		return Result{Outcome: rendered}
	}
	return d.sender.Send(ctx, ep, Message{ID: row.EventID, Type: row.Type, Body: body, Attempt: attempt})
}

// recoverAttempt turns a panic during a recorded attempt into that
// attempt's failure: retried on the row's schedule like a transient error
// (a dead letter once its attempts or age run out), with the panic in the
// row's last error for the operator and the stack in the log. It must be
// deferred directly.
func (d *Dispatcher) recoverAttempt(ctx context.Context, log *slog.Logger, ep Endpoint, row Row, attempt int, next time.Time) {
	v := recover()
	if v == nil {
		return
	}
	msg := excerpt(fmt.Sprintf("internal error in the bridge (panic: %v); the stack is in its log", v))
	log.Error("delivery attempt panicked: counted as a failed attempt; please report this bug",
		"attempt", attempt, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if attempt >= ep.MaxAttempts || next.Sub(row.AgeBase()) > ep.MaxAge {
		log.Error("delivery failed for good: event is a dead letter (replay it once fixed)", "attempts", attempt, "err", msg)
		d.record(ctx, log, d.q.MarkDead(ctx, row.Seq, 0, msg))
		return
	}
	d.record(ctx, log, d.q.MarkFailed(ctx, row.Seq, 0, msg, next))
}

func (d *Dispatcher) observe(ep Endpoint, row Row, res Result) {
	if d.opts.OnResult != nil {
		d.opts.OnResult(ep.Name, row, res)
	}
}

func (d *Dispatcher) record(ctx context.Context, log *slog.Logger, err error) {
	if err != nil && ctx.Err() == nil {
		log.Error("record delivery outcome", "err", err)
	}
}

func (d *Dispatcher) logErr(ctx context.Context, what string, err error, kv ...any) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	d.log.Error(what, append(kv, "err", err)...)
}
