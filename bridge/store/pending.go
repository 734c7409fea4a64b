package store

import (
	"context"
	"fmt"
	"sync"
)

// Pending bodies are the event bodies of outbox rows still to deliver
// (state pending); dead and rejected rows wait for an operator, not for a
// delivery, and do not count. The runners hold the import back while
// these weigh more than state_budget_bytes (mailsync.HoldBack): the state
// directory stays bounded when Graph is read faster than the receiver
// takes events, and the mail waits in the mailbox instead. Their size is
// read here only, so that where bodies are kept (spool segments on SQLite,
// the table on PostgreSQL) stays behind PendingBodyBytes.

// PendingBodies is what the pending event bodies weigh.
type PendingBodies struct {
	Total     int64            // bytes of every pending body
	ByChannel map[string]int64 // bytes per channel ("" for events of no channel)
}

// pendingBodiesSQL sums the pending bodies per channel from the size of
// each body (bodySize: the spool's recorded size, or length() of a body
// kept in the table, which reads a BLOB's or bytea's size, not its
// content).
// The size is a scalar subquery on purpose: with a join, SQLite's GROUP BY
// sorter carries the body column itself and takes length() after sorting,
// so every pending body was read and spilled to temporary files on each
// call (1.6 s and 150 MiB for 150 pending bodies of 1 MiB, against 0.1 ms
// this way; the first benchmark run wrote 214 MiB more to disk).
const pendingBodiesSQL = `SELECT o.channel, COALESCE(SUM((SELECT ` + bodySize + ` FROM event_bodies b WHERE b.seq = o.seq)), 0)
	FROM outbox o WHERE o.state = 'pending' GROUP BY o.channel`

// PendingBodyBytes returns the bytes of the pending event bodies, in total
// and per channel. Its cost grows with the pending rows, not with the
// retained history.
func (db *DB) PendingBodyBytes(ctx context.Context) (PendingBodies, error) {
	p := PendingBodies{ByChannel: map[string]int64{}}
	rows, err := db.poolQuery(ctx, db.read, pendingBodiesSQL)
	if err != nil {
		return p, fmt.Errorf("measure pending event bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch string
		var n int64
		if err := rows.Scan(&ch, &n); err != nil {
			return p, fmt.Errorf("measure pending event bodies: %w", err)
		}
		p.ByChannel[ch] = n
		p.Total += n
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("measure pending event bodies: %w", err)
	}
	return p, nil
}

// pendingSignal is a broadcast: the channel it hands out is closed the
// next time pending bodies drop (a row delivered, dead or rejected).
type pendingSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// PendingDropped returns a channel that is closed once a pending row of
// this process's outbox left pending (MarkDelivered, MarkDead,
// MarkRejected committed) after the call. Take it before measuring
// (PendingBodyBytes), then wait on it: no drop in between is missed.
// Deliveries by another daemon (PostgreSQL) are not signalled here; a
// waiter re-checks now and then.
func (db *DB) PendingDropped() <-chan struct{} {
	s := &db.pending
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// notePendingDropped wakes the waiters of PendingDropped; after a commit.
func (db *DB) notePendingDropped() {
	s := &db.pending
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// LeftPendingBytes is a running total of the body bytes of rows this
// process took out of pending (delivered, dead or rejected). A runner held
// back measures the pending bodies again only once enough bytes left to
// change its answer, not at every delivery: a measurement sums every
// pending row, and with thousands pending, one per delivery was most of a
// long import's extra CPU.
func (db *DB) LeftPendingBytes() int64 { return db.leftPending.Load() }
