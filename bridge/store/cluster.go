package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// Members: the daemons on one database announce themselves with a heartbeat;
// each computes, from the same list of live members, the same assignment of
// channels (Assign) and acquires the leases of its own share. A member that
// stops heartbeating drops out of the list after the member TTL; the others'
// next assignment takes its channels, whose leases have run out by then.

// Member is one daemon on the database.
type Member struct {
	ID        string
	Address   string // where its status page / admin API answers, if it says
	Started   time.Time
	Heartbeat time.Time
}

// Heartbeat records that daemon id is alive now (by the lease clock).
func (db *DB) Heartbeat(ctx context.Context, id, address string) error {
	if id == "" {
		return fmt.Errorf("heartbeat: a member id is required")
	}
	var args []any
	arg := func(s string, a []any) string { args = append(args, a...); return s }
	args = append(args, id, address)
	q := `INSERT INTO cluster_members (id, address, started_at, heartbeat_at) VALUES (?, ?, ` +
		arg(db.leaseNow()) + `, ` + arg(db.leaseNow()) + `)
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_at = excluded.heartbeat_at`
	if _, err := db.write.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("heartbeat of %s: %w", id, err)
	}
	return nil
}

// LeaveCluster removes daemon id from the members (a clean shutdown), so
// the others rebalance without waiting for its heartbeat to age out.
func (db *DB) LeaveCluster(ctx context.Context, id string) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM cluster_members WHERE id = ?`, id); err != nil {
		return fmt.Errorf("leave cluster (%s): %w", id, err)
	}
	return nil
}

// LiveMembers lists the members whose last heartbeat is younger than ttl,
// by id.
func (db *DB) LiveMembers(ctx context.Context, ttl time.Duration) ([]Member, error) {
	since, args := db.leaseAt(-ttl)
	rows, err := db.read.QueryContext(ctx, `SELECT id, address, started_at, heartbeat_at FROM cluster_members
		WHERE heartbeat_at > `+since+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list cluster members: %w", err)
	}
	return scanAll(rows, "list cluster members", func(r rowScanner) (Member, error) {
		var m Member
		var st, hb dbTime
		err := r.Scan(&m.ID, &m.Address, &st, &hb)
		m.Started, m.Heartbeat = st.Time, hb.Time
		return m, err
	})
}

// Assign spreads channels over members, evenly and stably: no member gets
// more than ⌈len(channels)/len(members)⌉ channels, and a member joining or
// leaving moves few channels besides its own share. It is rendezvous (highest random weight) hashing with bounded
// load: channels in name order each go to the member that ranks highest for
// them among those not yet full. Pure: every daemon computes the same answer
// from the same lists, in any order. No members: an empty assignment.
func Assign(channels, members []string) map[string]string {
	out := make(map[string]string, len(channels))
	if len(members) == 0 {
		return out
	}
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	chs := slices.Clone(channels)
	slices.Sort(chs)
	chs = slices.Compact(chs)
	limit := (len(chs) + len(ms) - 1) / len(ms)
	load := make(map[string]int, len(ms))
	ranked := make([]string, len(ms))
	for _, ch := range chs {
		copy(ranked, ms)
		slices.SortFunc(ranked, func(a, b string) int {
			wa, wb := weight(a, ch), weight(b, ch)
			switch {
			case wa > wb:
				return -1
			case wa < wb:
				return 1
			}
			return 0
		})
		for _, m := range ranked {
			if load[m] < limit {
				out[ch] = m
				load[m]++
				break
			}
		}
	}
	return out
}

// weight is member m's rendezvous weight for channel ch.
func weight(m, ch string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(m))
	h.Write([]byte{0})
	h.Write([]byte(ch))
	x := h.Sum64()
	// fnv's low bits mix poorly for short inputs: finish with a 64-bit mixer.
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// LeaseClock is "now" by the clock that judges leases and heartbeats: the
// database server's on PostgreSQL, the store's clock on SQLite. Ages shown
// next to lease and heartbeat times are taken against it, so they never
// mix two machines' clocks.
func (db *DB) LeaseClock(ctx context.Context) (time.Time, error) {
	if !db.pg {
		return db.Now(), nil
	}
	var now dbTime
	if err := db.read.QueryRowContext(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read the database clock: %w", err)
	}
	return now.Time, nil
}
