package mailsync

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// HoldBack keeps the state directory bounded while an import reads Graph
// faster than the receiver takes events: before a runner reads its next
// delta page, it waits while the pending (undelivered, not dead or
// rejected) event bodies weigh more than the budget (state_budget_bytes)
// and its own channel holds at least its fair share of them. The mail
// waits in the mailbox meanwhile; the delta cursor stays where the last
// committed page left it. One HoldBack is shared by all the daemon's
// runners.
//
// Fairness: when channel A's endpoint is down and A's pending bodies fill
// the budget, A waits (its share is at least budget/channels) while a
// channel B with less than its share keeps importing. So pending bodies
// stay near the budget in the common case and under twice it in the worst
// (every other channel grows to its share while one is stuck at the
// budget).
//
// No deadlock: a channel with nothing pending of its own never waits, so a
// page heavier than the whole budget still goes, alone, once the channel's
// earlier events are delivered.
type HoldBack struct {
	budget atomic.Int64
	// Recheck is how often a waiting runner measures again without a
	// wake-up (deliveries by another daemon are not signalled); default
	// DefaultHoldRecheck.
	Recheck time.Duration

	mu       sync.Mutex
	channels map[string]int // runners running, by channel
}

// DefaultHoldRecheck is HoldBack.Recheck's default: a safety net, not the
// way a waiting runner learns of deliveries (store.DB.PendingDropped).
const DefaultHoldRecheck = 30 * time.Second

// NewHoldBack returns a hold-back at budget bytes of pending event bodies;
// negative: never hold back.
func NewHoldBack(budget int64) *HoldBack {
	h := &HoldBack{channels: map[string]int{}}
	h.budget.Store(budget)
	return h
}

// SetBudget changes the budget (a reload); waiting runners see it at their
// next check.
func (h *HoldBack) SetBudget(n int64) { h.budget.Store(n) }

// Budget is the budget in force; negative when off.
func (h *HoldBack) Budget() int64 { return h.budget.Load() }

// join counts a running runner of channel towards the fair share until the
// returned func is called.
func (h *HoldBack) join(channel string) (leave func()) {
	h.mu.Lock()
	h.channels[channel]++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		if h.channels[channel]--; h.channels[channel] <= 0 {
			delete(h.channels, channel)
		}
		h.mu.Unlock()
	}
}

// mustWait reports whether a channel whose pending bodies weigh own must
// wait, all pending bodies weighing total; if so, until is the fewest body
// bytes that must leave pending (any channel's) before the answer can
// change: the total back within the budget or the channel's own below its
// share. New pending bodies only raise both, and a reload or a channel
// stopping is caught by the periodic re-check.
func (h *HoldBack) mustWait(total, own int64) (wait bool, until int64) {
	budget := h.budget.Load()
	if budget < 0 || total <= budget || own <= 0 {
		return false, 0
	}
	h.mu.Lock()
	n := int64(max(1, len(h.channels)))
	h.mu.Unlock()
	share := budget / n
	if own < share {
		return false, 0
	}
	return true, min(total-budget, own-max(share-1, 0)) // own below its share, or none left
}

// HeldBack is a runner's hold-back while it waits (Status.HeldBack).
type HeldBack struct {
	Since          time.Time `json:"since"`
	PendingBytes   int64     `json:"pending_bytes"`         // all channels' pending event bodies
	ChannelPending int64     `json:"channel_pending_bytes"` // this channel's
	BudgetBytes    int64     `json:"budget_bytes"`          // state_budget_bytes
}

// String is how an operator reads it: "held back: pending bodies X of
// budget Y (this channel Z)".
func (h HeldBack) String() string {
	return fmt.Sprintf("held back: pending bodies %s of budget %s (this channel %s), waiting for deliveries",
		mib(h.PendingBytes), mib(h.BudgetBytes), mib(h.ChannelPending))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// holdBack waits, before the next delta page is read, while the channel
// must hold back (HoldBack). It wakes when pending bodies drop and
// measures again every Recheck. Post-import actions of mail delivered
// meanwhile run at the end of the round, as during any long round (a
// channel waits only while its own events are undelivered). It logs once
// when the wait starts and once when it ends.
func (r *Runner) holdBack(ctx context.Context) (err error) {
	h := r.cfg.HoldBack
	if h == nil || h.Budget() < 0 {
		return nil
	}
	var held *HeldBack
	defer func() {
		if held == nil {
			return
		}
		r.setHeld(nil)
		if err == nil { // not when the daemon stops or the store failed
			r.log.Info("import resumed: pending event bodies back within state_budget_bytes",
				"held_for", r.cfg.Now().Sub(held.Since).Round(time.Second).String())
		}
	}()
	for {
		left := r.cfg.DB.LeftPendingBytes() // before measuring: what leaves meanwhile counts twice, never not at all
		p, err := r.cfg.DB.PendingBodyBytes(ctx)
		if err != nil {
			return err
		}
		own := p.ByChannel[r.ch.Name]
		wait, until := h.mustWait(p.Total, own)
		if !wait {
			return nil
		}
		if held == nil {
			held = &HeldBack{Since: r.cfg.Now()}
			r.log.Info("import held back: pending event bodies over state_budget_bytes; waiting for deliveries",
				"pending_bytes", p.Total, "channel_pending_bytes", own, "budget", h.Budget())
		}
		held.PendingBytes, held.ChannelPending, held.BudgetBytes = p.Total, own, h.Budget()
		r.setHeld(held)
		if r.cfg.onHold != nil {
			r.cfg.onHold(p)
		}
		recheck := h.Recheck
		if recheck <= 0 {
			recheck = DefaultHoldRecheck
		}
		if err := r.awaitLeftPending(ctx, left+until, recheck); err != nil {
			return err
		}
	}
}

// awaitLeftPending waits until the body bytes that left pending reach
// target (DB.LeftPendingBytes), woken by each row leaving pending, or
// until recheck passed: a runner held back measures the pending bodies
// again only when that can change its answer, not at every delivery.
func (r *Runner) awaitLeftPending(ctx context.Context, target int64, recheck time.Duration) error {
	timer := r.cfg.After(recheck)
	for {
		woken := r.cfg.DB.PendingDropped() // before reading the count: no drop in between is missed
		if r.cfg.DB.LeftPendingBytes() >= target {
			return nil
		}
		if r.cfg.onAwait != nil {
			r.cfg.onAwait()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-woken:
		case <-timer:
			return nil
		}
	}
}

// setHeld records the hold-back for Status; nil when not held.
func (r *Runner) setHeld(h *HeldBack) {
	var c *HeldBack
	if h != nil {
		v := *h
		c = &v
	}
	r.mu.Lock()
	r.status.HeldBack = c
	r.mu.Unlock()
}
