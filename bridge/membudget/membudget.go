// Package membudget bounds the bytes of mail held in memory at once: one
// budget shared by every channel runner (delta pages, attachments, the
// events built from them) and the webhook dispatcher (event bodies being
// POSTed), so a page of 1 MiB attachments and a page of tiny mails each
// cost what they weigh instead of one "page slot".
//
// A holder takes a Claim before it reads and grows it as it learns what it
// holds (a delta page's bodies, then its attachments). A claim larger than
// the whole budget is clamped to it: that holder then runs alone rather
// than never. Growing never deadlocks: a claim that cannot grow at once
// gives its bytes back and waits for the whole amount, so two holders can
// never each wait for the other's bytes.
package membudget

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// Budget is a byte budget shared by its holders. The zero value is not
// usable; New makes one. A nil *Budget is no limit at all.
type Budget struct {
	sem   *semaphore.Weighted
	limit int64
	// onWait, when set (tests), hears each time a claim has to wait for
	// total bytes.
	onWait func(total int64)
}

// New returns a budget of limit bytes (at least 1).
func New(limit int64) *Budget {
	limit = max(limit, 1)
	return &Budget{sem: semaphore.NewWeighted(limit), limit: limit}
}

// OnWait sets a hook (tests) that hears each time a claim has to wait for
// bytes, with the total it waits for; set it before the budget is shared.
func (b *Budget) OnWait(f func(total int64)) { b.onWait = f }

// Limit is the budget's size in bytes (0 for a nil budget: no limit).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Claim is bytes held against a Budget until Release. It is used by one
// goroutine at a time.
type Claim struct {
	b    *Budget
	held int64
}

// Claim waits until n bytes (clamped to the budget) are free and holds
// them. It fails only when ctx ends.
func (b *Budget) Claim(ctx context.Context, n int64) (*Claim, error) {
	c := &Claim{b: b}
	if err := c.Grow(ctx, n); err != nil {
		return nil, err
	}
	return c, nil
}

// Held is the bytes the claim holds now (after clamping).
func (c *Claim) Held() int64 { return c.held }

// Grow makes the claim hold total bytes (clamped to the budget); a total
// at or below what it holds changes nothing. When the extra bytes are not
// free at once, the claim gives back what it holds and waits for the
// whole total, so no two growing claims wait on each other. On error
// (ctx ended) the claim holds nothing.
func (c *Claim) Grow(ctx context.Context, total int64) error {
	if c.b == nil {
		return ctx.Err()
	}
	total = min(max(total, 1), c.b.limit)
	if total <= c.held {
		return nil
	}
	if c.b.sem.TryAcquire(total - c.held) {
		c.held = total
		return nil
	}
	c.Release()
	if c.b.onWait != nil {
		c.b.onWait(total)
	}
	if err := c.b.sem.Acquire(ctx, total); err != nil {
		return err
	}
	c.held = total
	return nil
}

// Release gives back every byte the claim holds; releasing twice is a
// no-op.
func (c *Claim) Release() {
	if c == nil || c.b == nil || c.held == 0 {
		return
	}
	c.b.sem.Release(c.held)
	c.held = 0
}
