package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// Compaction: a segment is deleted only once none of its bodies is left,
// and the bodies that stay longest are the ones never trimmed: pending,
// dead and rejected rows. One dead letter per segment would keep every
// segment, and the state directory, whole. So once more than half of a
// segment's bytes are no longer referenced, its live bodies are copied
// into the active segment (references updated in the transaction that
// syncs the copies, as any other write) and the segment goes. The spool's
// files then hold at most twice the bytes of the bodies they keep, plus
// the segment being written.
//
// A delivered body in a segment being compacted is dropped, not copied:
// the segment is mostly unreferenced because the trim took its delivered
// bodies, oldest delivery first, so the delivered ones left in it are
// next in line anyway, and copying them rewrote up to half a segment at
// every trim of a long import (a 40,000-mail import wrote 2.0x the bytes
// it delivered with them copied). Pending, dead and rejected bodies are
// copied: they are never dropped.

// compactChunk bounds the bytes copied in one transaction: the page
// transactions wait for the writer meanwhile.
const compactChunk = 4 << 20

// tidySpool compacts the segments that are mostly unreferenced and deletes
// those left without references; for after a trim or a retirement. One
// runs at a time in this process.
func (db *DB) tidySpool(ctx context.Context) error {
	s := db.spool
	if s == nil || s.held() || !s.compacting.CompareAndSwap(false, true) {
		return nil
	}
	defer s.compacting.Store(false)
	if err := db.compactSegments(ctx); err != nil {
		return err
	}
	_, err := db.reclaimSegments(ctx)
	return err
}

// compactSegments copies out the live bodies of every segment, other than
// the one being written, whose file is more than twice their size.
func (db *DB) compactSegments(ctx context.Context) error {
	rows, err := db.read.QueryContext(ctx, `SELECT segment, SUM(size) FROM event_bodies WHERE segment IS NOT NULL GROUP BY segment`)
	if err != nil {
		return fmt.Errorf("measure body spool segments: %w", err)
	}
	type live struct{ num, bytes int64 }
	segs, err := scanAll(rows, "measure body spool segments", func(r rowScanner) (live, error) {
		var l live
		return l, r.Scan(&l.num, &l.bytes)
	})
	if err != nil {
		return err
	}
	for _, l := range segs {
		if err := db.compactIfSparse(ctx, l.num, l.bytes); err != nil {
			return err
		}
	}
	return nil
}

// compactIfSparse compacts segment num, which holds live bytes of bodies,
// when its file is more than twice that and no writer holds it (the
// segment being written, here or in another process, is left alone).
func (db *DB) compactIfSparse(ctx context.Context, num, live int64) error {
	f, err := os.Open(db.spool.path(num))
	if err != nil {
		return nil // missing: its rows report it when read
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() <= 2*live {
		return nil
	}
	if lockFile(f, false) != nil {
		return nil // being written
	}
	return db.compactSegment(ctx, num)
}

// compactSegment moves segment num's live bodies to the active segment, a
// chunk per transaction. A damaged body stays where it is (its row
// reports it when read), and so does its segment.
func (db *DB) compactSegment(ctx context.Context, num int64) error {
	rows, err := db.read.QueryContext(ctx, `SELECT b.seq, b.seg_offset, b.size, b.crc32c, o.state = 'delivered'
		FROM event_bodies b JOIN outbox o ON o.seq = b.seq WHERE b.segment = ? ORDER BY b.seg_offset`, num)
	if err != nil {
		return fmt.Errorf("list bodies of spool segment %d: %w", num, err)
	}
	type moving struct {
		seq       int64
		ref       bodyRef
		delivered bool // dropped, not copied
	}
	todo, err := scanAll(rows, "list bodies of spool segment", func(r rowScanner) (moving, error) {
		m := moving{ref: bodyRef{segment: num}}
		var crc int64
		err := r.Scan(&m.seq, &m.ref.offset, &m.ref.size, &crc, &m.delivered)
		m.ref.crc = uint32(crc)
		return m, err
	})
	if err != nil {
		return err
	}
	for len(todo) > 0 {
		n, bytes := 0, int64(0)
		for n < len(todo) && (n == 0 || bytes+todo[n].ref.size <= compactChunk) {
			if !todo[n].delivered {
				bytes += todo[n].ref.size
			}
			n++
		}
		chunk := todo[:n]
		todo = todo[n:]
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			for _, m := range chunk {
				move := db.moveBody
				if m.delivered {
					move = db.dropDeliveredBody
				}
				if err := move(ctx, tx, m.seq, m.ref); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("compact body spool segment %s: %w", db.spool.path(num), err)
		}
	}
	return nil
}

// moveBody copies row seq's body from ref into the active segment and
// points the row at the copy, unless the row went or moved meanwhile.
func (db *DB) moveBody(ctx context.Context, tx *sql.Tx, seq int64, ref bodyRef) error {
	body, err := db.spool.read(seq, ref)
	if damaged := (*BodyDamagedError)(nil); errors.As(err, &damaged) {
		db.logger().Warn("event body damaged: left in its spool segment", "seq", seq, "error", err)
		return nil
	}
	if err != nil {
		return err
	}
	to, err := db.spool.append(tx, body)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE event_bodies SET segment = ?, seg_offset = ? WHERE seq = ? AND segment = ? AND seg_offset = ?`,
		to.segment, to.offset, seq, ref.segment, ref.offset)
	return err
}

// dropDeliveredBody drops delivered row seq's body at ref, unless the row
// moved meanwhile; the row, its id and its history stay (as a trim).
func (db *DB) dropDeliveredBody(ctx context.Context, tx *sql.Tx, seq int64, ref bodyRef) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM event_bodies WHERE seq = ? AND segment = ? AND seg_offset = ?
		AND (SELECT state FROM outbox WHERE outbox.seq = event_bodies.seq) = 'delivered'`, seq, ref.segment, ref.offset)
	return err
}
