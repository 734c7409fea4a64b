// Package cluster is a daemon's share of the channels when several daemons
// share one PostgreSQL database: the channels the last assignment gave it
// and the leases it holds (the daemon's cluster.go runs the membership
// loop and the leases; store has the tables and store.Assign).
package cluster

import (
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// Share is one daemon's membership: its id, the lease TTL, its assigned
// channels and held leases. Safe for concurrent use.
type Share struct {
	ID  string        // the daemon's member id (its instance id)
	TTL time.Duration // lease and member TTL (state.lease_ttl)

	mu      sync.Mutex
	mine    map[string]bool        // the channels the last assignment gave this daemon
	changed chan struct{}          // closed when mine changes, then replaced
	held    map[string]store.Lease // the leases this daemon holds, by channel
}

// New returns an empty share for member id.
func New(id string, ttl time.Duration) *Share {
	return &Share{ID: id, TTL: ttl, mine: map[string]bool{}, held: map[string]store.Lease{}, changed: make(chan struct{})}
}

// Assigned reports whether the channel is this daemon's, and a channel that
// is closed when the assignment changes next.
func (c *Share) Assigned(channel string) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mine[channel], c.changed
}

// Set records a new assignment; Assigned's waiters wake when it differs.
func (c *Share) Set(mine map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	same := len(mine) == len(c.mine)
	for ch := range mine {
		same = same && c.mine[ch]
	}
	if same {
		return
	}
	c.mine = mine
	close(c.changed)
	c.changed = make(chan struct{})
}

// Hold records (ok) or forgets (!ok) the lease this daemon holds on a
// channel.
func (c *Share) Hold(l store.Lease, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.held[l.Channel] = l
	} else {
		delete(c.held, l.Channel)
	}
}

// Held is the lease this daemon holds on a channel, if it holds one.
func (c *Share) Held(channel string) (store.Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.held[channel]
	return l, ok
}
