package bridge

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// Several daemons on one PostgreSQL database (state.database): each
// heartbeats into the database every third of the lease TTL, computes from
// the live members the same assignment of channels (store.Assign) and holds
// the leases of its own share. A channel's supervisor runs only while its
// daemon holds the channel's lease, with that lease in its context, so
// every ledger, cursor and outbox write of the channel is fenced; a lease
// that is lost (a renewal refused: the daemon was paused or cut off past
// the TTL) stops the channel's work at once. On SQLite (one daemon) none of
// this runs: cluster is nil and channels start as before.

// runMembership heartbeats and reassigns every third of the lease TTL until
// ctx ends, then leaves the cluster so that the others rebalance at once.
func (d *Daemon) runMembership(ctx context.Context) error {
	c := d.cluster
	log := d.log.With("component", "cluster", "member", c.ID)
	for {
		if err := d.reassign(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cluster heartbeat failed; keeping the last assignment", "err", err)
		}
		t := time.NewTimer(c.TTL / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := d.db.LeaveCluster(lctx, c.ID); err != nil {
				log.Warn("leave cluster", "err", err)
			}
			return nil
		case <-t.C:
		}
	}
}

// reassign heartbeats, then computes this daemon's share of the channels
// from the live members.
func (d *Daemon) reassign(ctx context.Context) error {
	c := d.cluster
	if err := d.db.Heartbeat(ctx, c.ID, d.web.AdminAddr()); err != nil {
		return err
	}
	members, err := d.db.LiveMembers(ctx, c.TTL)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	if !slices.Contains(ids, c.ID) {
		ids = append(ids, c.ID) // our heartbeat just landed; a slow read may miss it
	}
	mine := map[string]bool{}
	for ch, owner := range store.Assign(channelNames(d.config()), ids) {
		if owner == c.ID {
			mine[ch] = true
		}
	}
	c.Set(mine)
	return nil
}

// runChannel is a channel's supervisor as startChannel runs it: directly on
// SQLite, under the channel's lease on PostgreSQL.
func (d *Daemon) runChannel(ctx context.Context, ch config.Channel) error {
	if d.cluster == nil {
		return d.superviseChannel(ctx, ch)
	}
	return d.ownChannel(ctx, ch)
}

// ownChannel runs a channel's supervisor whenever this daemon is assigned
// the channel and holds its lease, until ctx ends: it acquires the lease
// (retrying while another daemon's has not run out), runs the supervisor
// with the lease in its context, renews the lease every third of the TTL,
// and stops the supervisor when the lease is lost or the channel is
// assigned elsewhere, then releases the lease for the next owner.
func (d *Daemon) ownChannel(ctx context.Context, ch config.Channel) error {
	c := d.cluster
	log := d.log.With("channel", ch.Name, "member", c.ID)
	for ctx.Err() == nil {
		mine, changed := c.Assigned(ch.Name)
		if !mine {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		lease, err := d.db.AcquireLease(ctx, ch.Name, c.ID, c.TTL)
		if err != nil {
			if !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
				log.Warn("acquire channel lease", "err", err)
			}
			t := time.NewTimer(c.TTL / 10) // the holder's lease runs out within the TTL
			select {
			case <-ctx.Done():
			case <-changed:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		log.Info("channel lease acquired", "fence", lease.Token)
		if err := d.holdChannel(ctx, ch, lease, changed); err != nil {
			return err
		}
	}
	return nil
}

// holdChannel runs the channel's supervisor under lease until ctx ends, the
// lease is lost or the assignment changes away from this daemon, then
// releases the lease.
func (d *Daemon) holdChannel(ctx context.Context, ch config.Channel, lease store.Lease, changed <-chan struct{}) error {
	c := d.cluster
	log := d.log.With("channel", ch.Name, "member", c.ID)
	sctx, stop := context.WithCancel(store.WithLease(ctx, lease))
	c.Hold(lease, true)
	done := make(chan error, 1)
	go func() { done <- d.superviseChannel(sctx, ch) }()
	renewed := time.Now()
	var runErr error
	lost := false
	for running := true; running; {
		t := time.NewTimer(c.TTL / 3)
		select {
		case runErr = <-done:
			running = false
		case <-ctx.Done():
		case <-changed:
			if mine, next := c.Assigned(ch.Name); mine {
				changed = next
			} else {
				log.Info("channel assigned to another daemon; handing it over")
				changed = nil // closed: wait for the supervisor only
				stop()
			}
		case <-t.C:
			l, err := d.db.RenewLease(ctx, lease, c.TTL)
			switch {
			case err == nil:
				lease, renewed = l, time.Now()
				c.Hold(lease, true)
			case errors.Is(err, store.ErrLeaseLost) || time.Since(renewed) >= c.TTL:
				log.Warn("channel lease lost; stopping the channel's work", "fence", lease.Token, "err", err)
				lost = true
				stop()
			case ctx.Err() == nil:
				log.Warn("renew channel lease", "err", err)
			}
		}
		t.Stop()
	}
	stop()
	c.Hold(lease, false)
	d.mu.Lock()
	delete(d.runners, ch.Name)
	d.mu.Unlock()
	if !lost {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := d.db.ReleaseLease(rctx, lease); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			log.Warn("release channel lease", "err", err)
		}
		cancel()
	}
	if runErr != nil && sctx.Err() == nil {
		return runErr // the supervisor failed on its own: as without leases
	}
	return nil
}

// outboxQueue is the dispatcher's queue: on PostgreSQL a claiming outbox
// (several daemons deliver it; a claim outlives the longest attempt), else
// the plain one. Its hooks carry the link from an acknowledgement to the
// ledger (and so to the post-action): nothing is deleted before the
// helpdesk answered 2xx.
func (d *Daemon) outboxQueue() *store.Outbox {
	hooks := mailsync.LedgerHooks(d.db, d.notifyRunner)
	if d.cluster == nil {
		return d.db.OutboxWith(hooks)
	}
	visibility := d.cluster.TTL
	for _, w := range d.cfg.Webhooks {
		visibility = max(visibility, 2*w.Timeout)
	}
	return d.db.ClaimingOutbox(hooks, d.cluster.ID, visibility)
}

// ownedContext is the send worker's send.Env.Owner: the context for a
// channel's writes on this daemon — the channel's lease when this daemon
// holds it — and false when another daemon owns the channel. On SQLite
// every channel is this daemon's.
func (d *Daemon) ownedContext(ctx context.Context, channel string) (context.Context, bool) {
	if d.cluster == nil {
		return ctx, true
	}
	l, ok := d.cluster.Held(channel)
	if !ok {
		return ctx, false
	}
	return store.WithLease(ctx, l), true
}
