package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// spoolFiles lists the segment files of db's spool.
func spoolFiles(t *testing.T, db *DB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(db.Path()+spoolSuffix, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func spoolBody(id string, n int) []byte {
	return []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("b", n) + `"}`)
}

// TestSpoolRoundTrip: on SQLite a body goes to a segment file, not into
// the database, and comes back whole through Body, Due, List(WithBody)
// and after a reopen; EventBodies counts it.
func TestSpoolRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, now := backends[0].openOutbox(t)
	body := spoolBody("a", 100<<10)
	enqueueSized(t, db, "a", body)
	var inDB int64
	if err := db.read.QueryRow(`SELECT length(body) FROM event_bodies`).Scan(&inDB); err != nil || inDB != 0 {
		t.Fatalf("event_bodies holds %d body bytes (%v), want 0: the body belongs in the spool", inDB, err)
	}
	if files := spoolFiles(t, db); len(files) != 1 {
		t.Fatalf("spool files %v, want one segment", files)
	}
	q := db.Outbox()
	check := func(db *DB, how string) {
		t.Helper()
		q := db.Outbox()
		if got, err := q.Body(ctx, 1); err != nil || string(got) != string(body) {
			t.Errorf("%s Body: %d bytes, %v; want the %d enqueued", how, len(got), err, len(body))
		}
		rows, err := q.List(ctx, deliver.Filter{WithBody: true})
		if err != nil || len(rows) != 1 || string(rows[0].Body) != string(body) {
			t.Errorf("%s List(WithBody): %d rows, %v; want the body", how, len(rows), err)
		}
		due, err := q.DueMeta(ctx, "helpdesk", *now, 10, false, nil)
		if err != nil || len(due) != 1 || due[0].BodySize != int64(len(body)) {
			t.Errorf("%s DueMeta: %+v, %v; want BodySize %d", how, due, err, len(body))
		}
		if st, err := db.EventBodies(ctx); err != nil || st.Bodies != 1 || st.Bytes != int64(len(body)) {
			t.Errorf("%s EventBodies = %+v, %v; want 1 body of %d bytes", how, st, err, len(body))
		}
	}
	check(db, "")
	if due, err := q.Due(ctx, "helpdesk", *now, 10, false); err != nil || len(due) != 1 || string(due[0].Body) != string(body) {
		t.Errorf("Due: %d rows, %v; want the body", len(due), err)
	}
	check(backends[0].reopen(t, db), "reopened:")
}

// TestSpoolOrphansOfARolledBackPage: a page transaction that wrote its
// bodies and then failed (as a crash before the commit would) leaves
// bytes no row references, never a row without its body; the next open
// deletes the orphan segment. A reclaim that runs while a page is between
// its spool write and its commit (another process opening the database:
// the CLI) must not delete the segment that page is about to reference.
func TestSpoolOrphansOfARolledBackPage(t *testing.T) {
	ctx := context.Background()
	db, _ := backends[0].openOutbox(t)
	db.spool.segBytes = 64 << 10 // a segment per body
	boom := errors.New("crash before commit")
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		for i := range 3 {
			if err := db.EnqueueTx(ctx, tx, OutboxEvent{EventID: fmt.Sprint("lost-", i), Endpoint: "helpdesk", Channel: "c",
				Type: "mail.received", Body: spoolBody("lost", 60<<10)}); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want %v", err, boom)
	}
	if n := len(spoolFiles(t, db)); n != 3 {
		t.Fatalf("%d segment files after the rolled-back page, want its 3 (written before the commit)", n)
	}
	// A page between its spool write and its commit while a second handle
	// on the database (another process: the CLI) and this one reclaim.
	other := backends[0].reopen(t, db)
	body := spoolBody("kept", 60<<10)
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.EnqueueTx(ctx, tx, OutboxEvent{EventID: "kept", Endpoint: "helpdesk", Channel: "c", Type: "mail.received", Body: body}); err != nil {
			return err
		}
		for _, h := range []*DB{other, db} {
			if _, err := h.reclaimSegments(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kept := func(db *DB) ([]byte, error) {
		rows, err := db.Outbox().List(ctx, deliver.Filter{IDs: []string{"kept"}, WithBody: true})
		if err != nil || len(rows) != 1 {
			return nil, fmt.Errorf("%d rows, %w", len(rows), err)
		}
		return rows[0].Body, nil
	}
	if got, err := kept(db); err != nil || string(got) != string(body) {
		t.Fatalf("body committed while a reclaim ran: %d bytes, %v; want it whole (its segment was deleted before the commit)", len(got), err)
	}
	if files := spoolFiles(t, db); len(files) != 1 {
		t.Errorf("segment files %v, want only the committed body's: the rolled-back page's orphans were not reclaimed", files)
	}
	other.Close()
	db.Close()
	db = backends[0].reopen(t, db)
	if files := spoolFiles(t, db); len(files) != 1 {
		t.Errorf("segment files after a reopen: %v, want only the referenced one", files)
	}
	if got, err := kept(db); err != nil || string(got) != string(body) {
		t.Errorf("after reopen: %d bytes, %v; want the body", len(got), err)
	}
}

// TestSpoolDamagedBody: a segment truncated, changed or deleted under a
// pending row gives an error that names the file and the row; the row
// stays pending (deferred, the error in its last_error, so that the
// dispatcher does not spin on it), and a restored file delivers it.
func TestSpoolDamagedBody(t *testing.T) {
	ctx := context.Background()
	db, now := backends[0].openOutbox(t)
	body := spoolBody("x", 32<<10)
	enqueueSized(t, db, "x", body)
	seg := spoolFiles(t, db)[0]
	good, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	q := db.Outbox()
	for _, c := range []struct {
		name   string
		damage func() error
		want   string
	}{
		{"truncated", func() error { return os.Truncate(seg, int64(len(good)/2)) }, "truncated"},
		{"changed", func() error {
			bad := append([]byte(nil), good...)
			bad[len(bad)/2] ^= 1
			return os.WriteFile(seg, bad, 0o600)
		}, "CRC-32C"},
		{"deleted", func() error { return os.Remove(seg) }, "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			_, err := q.Body(ctx, 1)
			var damaged *BodyDamagedError
			if !errors.As(err, &damaged) || errors.Is(err, deliver.ErrNotPending) {
				t.Fatalf("Body = %v, want a BodyDamagedError (not ErrNotPending: the dispatcher would reject the row)", err)
			}
			for _, want := range []string{seg, "outbox row 1", c.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if _, err := q.List(ctx, deliver.Filter{WithBody: true}); !errors.As(err, &damaged) {
				t.Errorf("List(WithBody) = %v, want the BodyDamagedError", err)
			}
			rows, err := q.List(ctx, deliver.Filter{})
			if err != nil || len(rows) != 1 || rows[0].State != deliver.StatePending || !strings.Contains(rows[0].LastError, seg) {
				t.Fatalf("row after the damaged read: %+v, %v; want it pending with the error in last_error", rows, err)
			}
			if due, _ := q.DueMeta(ctx, "helpdesk", *now, 10, false, nil); len(due) != 0 {
				t.Errorf("damaged row due again at once, want it deferred by %v", damagedBodyRetry)
			}
			// The operator restores the file: the row is due after the delay.
			if err := os.WriteFile(seg, good, 0o600); err != nil {
				t.Fatal(err)
			}
			due, err := q.DueMeta(ctx, "helpdesk", now.Add(damagedBodyRetry), 10, false, nil)
			if err != nil || len(due) != 1 {
				t.Fatalf("restored row: %d due, %v; want it", len(due), err)
			}
			if got, err := q.Body(ctx, 1); err != nil || string(got) != string(body) {
				t.Fatalf("restored body: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestBodiesWrittenBeforeTheSpool: rows written by the code before
// migration 0011 (the body in event_bodies, no size) keep their body
// there and are read, measured, trimmed and delivered as before, beside
// spooled ones.
func TestBodiesWrittenBeforeTheSpool(t *testing.T) {
	ctx := context.Background()
	db, now := backends[0].openOutbox(t)
	old := spoolBody("old", 10<<10)
	// What the code before 0011 wrote (the outbox and body inserts of that version).
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var seq int64
		if err := tx.QueryRow(insertOutbox, "old", "helpdesk", "c", "mail.received", timeText(*now), timeText(*now)).Scan(&seq); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO event_bodies (seq, body) VALUES (?, ?)`, seq, old)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := spoolBody("new", 20<<10)
	enqueueSized(t, db, "new", fresh)
	q := db.Outbox()
	rows, err := q.List(ctx, deliver.Filter{WithBody: true})
	if err != nil || len(rows) != 2 || string(rows[0].Body) != string(old) || string(rows[1].Body) != string(fresh) {
		t.Fatalf("List(WithBody): %d rows, %v; want the old body from the table and the new one from the spool", len(rows), err)
	}
	if got, err := q.Body(ctx, 1); err != nil || string(got) != string(old) {
		t.Errorf("old Body: %d bytes, %v", len(got), err)
	}
	due, err := q.DueMeta(ctx, "helpdesk", *now, 10, false, nil)
	if err != nil || len(due) != 2 || due[0].BodySize != int64(len(old)) || due[1].BodySize != int64(len(fresh)) {
		t.Fatalf("DueMeta sizes: %+v, %v", due, err)
	}
	if st, _ := db.EventBodies(ctx); st.Bytes != int64(len(old)+len(fresh)) {
		t.Errorf("EventBodies = %+v, want %d bytes", st, len(old)+len(fresh))
	}
	for _, r := range due {
		if err := q.MarkDelivered(ctx, r.Seq, 200, *now); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := db.TrimBodies(ctx, 0); err != nil || n != 2 {
		t.Fatalf("TrimBodies = %d, %v; want both bodies dropped", n, err)
	}
	if files := spoolFiles(t, db); len(files) != 1 { // the active segment stays open for the next page
		t.Errorf("segment files after the trim: %v", files)
	}
}

// spoolSegments opens a SQLite outbox whose spool rolls at segBytes,
// enqueues events bodies of about size bytes (ids ev-0, ev-1, ...) and
// returns them due, oldest first.
func spoolSegments(t *testing.T, segBytes int64, size, events int) (*DB, *time.Time, []deliver.Row) {
	t.Helper()
	db, now := backends[0].openOutbox(t)
	db.spool.segBytes = segBytes
	for i := range events {
		enqueueSized(t, db, fmt.Sprint("ev-", i), spoolBody(fmt.Sprint(i), size))
	}
	due, err := db.Outbox().DueMeta(context.Background(), "helpdesk", *now, events, false, nil)
	if err != nil || len(due) != events {
		t.Fatalf("DueMeta: %d rows, %v", len(due), err)
	}
	return db, now, due
}

// TestSpoolCompactsSegmentsKeptByDeadLetters: one dead letter in each
// segment would keep every segment, and the state directory, whole after
// the delivered bodies around it were trimmed; compaction copies such
// sparse segments' live bodies out, so the spool holds at most twice the
// bytes of the bodies it keeps plus the segment being written. A reader
// that read a body's reference before the move still gets the body.
func TestSpoolCompactsSegmentsKeptByDeadLetters(t *testing.T) {
	ctx := context.Background()
	const segBytes, size, events = 128 << 10, 30 << 10, 40 // 4 bodies a segment, 10 segments
	db, now, due := spoolSegments(t, segBytes, size, events)
	q := db.Outbox()
	var err error
	var dead []int64
	for i, r := range due {
		if i%4 == 1 { // one in each segment
			dead = append(dead, r.Seq)
			err = q.MarkDead(ctx, r.Seq, 500, "x")
		} else {
			err = q.MarkDelivered(ctx, r.Seq, 200, *now)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// A reader has the first dead letter's reference before the move.
	var before storedBody
	if err := db.read.QueryRow(`SELECT `+storedBodyColumns+` FROM event_bodies b WHERE b.seq = ?`, dead[0]).Scan(before.dst()...); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TrimBodies(ctx, 0); err != nil {
		t.Fatal(err)
	}
	st, err := db.EventBodies(ctx)
	if err != nil || st.Bodies != len(dead) {
		t.Fatalf("EventBodies = %+v, %v; want the %d dead letters' bodies only", st, err, len(dead))
	}
	spooled, err := db.SpoolBytes()
	if err != nil {
		t.Fatal(err)
	}
	if limit := 2*st.Bytes + segBytes; spooled > limit {
		t.Errorf("spool files hold %d bytes for %d bytes of bodies, want <= %d: segments kept whole by one dead letter each (%d files)",
			spooled, st.Bytes, limit, len(spoolFiles(t, db)))
	}
	for i, seq := range dead {
		got, err := q.Body(ctx, seq)
		if want := spoolBody(fmt.Sprint(i*4+1), size); err != nil || string(got) != string(want) {
			t.Errorf("dead letter %d after compaction: %d bytes, %v; want it whole", seq, len(got), err)
		}
	}
	if got, err := db.loadBody(dead[0], before); err != nil || string(got) != string(spoolBody("1", size)) {
		t.Errorf("body read through the reference from before the move: %d bytes, %v; want it (read again from where it went)", len(got), err)
	}
	t.Logf("%d segment files, %d bytes, for %d bodies of %d bytes", len(spoolFiles(t, db)), spooled, st.Bodies, st.Bytes)
}

// TestSpoolHoldKeepsSegmentsForABackup: while the hold file exists no
// segment is deleted (a backup copies the database, then the segments);
// once it is gone, the next tidy deletes what is unreferenced.
func TestSpoolHoldKeepsSegmentsForABackup(t *testing.T) {
	ctx := context.Background()
	db, now := backends[0].openOutbox(t)
	db.spool.segBytes = 16 << 10
	for i := range 4 {
		enqueueSized(t, db, fmt.Sprint("ev-", i), spoolBody(fmt.Sprint(i), 12<<10))
	}
	due, err := db.Outbox().DueMeta(ctx, "helpdesk", *now, 10, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range due {
		if err := db.Outbox().MarkDelivered(ctx, r.Seq, 200, *now); err != nil {
			t.Fatal(err)
		}
	}
	hold := filepath.Join(db.Path()+spoolSuffix, HoldFile)
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TrimBodies(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(spoolFiles(t, db)); n != 4 {
		t.Errorf("%d segment files while held, want all 4", n)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if err := db.tidySpool(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(spoolFiles(t, db)); n != 1 {
		t.Errorf("%d segment files after the hold, want 1 (the one being written)", n)
	}
}

// TestSpoolConcurrentPages: runners commit pages at once (SQLite
// serialises their transactions) while segments roll and reclaims and
// trims run beside them; every committed body reads back whole.
func TestSpoolConcurrentPages(t *testing.T) {
	ctx := context.Background()
	db, _ := backends[0].openOutbox(t)
	db.spool.segBytes = 32 << 10
	const runners, pages, perPage = 4, 6, 5
	errs := make(chan error, runners+1)
	stop := make(chan struct{})
	go func() { // a reclaim loop, as the other process (the CLI) or Retire would run it
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if err := db.tidySpool(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range pages {
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					for i := range perPage {
						id := fmt.Sprintf("r%d-p%d-%d", r, p, i)
						if err := db.EnqueueTx(ctx, tx, OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: fmt.Sprint("c", r),
							Type: "mail.received", Body: spoolBody(id, 3000+i*1000)}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	rows, err := db.Outbox().List(ctx, deliver.Filter{WithBody: true})
	if err != nil {
		t.Fatalf("List(WithBody): %v (a committed body's segment was lost)", err)
	}
	if len(rows) != runners*pages*perPage {
		t.Fatalf("%d rows, want %d", len(rows), runners*pages*perPage)
	}
	for _, r := range rows {
		var i int
		fmt.Sscanf(r.EventID[strings.LastIndexByte(r.EventID, '-')+1:], "%d", &i)
		if want := spoolBody(r.EventID, 3000+i*1000); string(r.Body) != string(want) {
			t.Fatalf("%s: body of %d bytes, want %d", r.EventID, len(r.Body), len(want))
		}
	}
	t.Logf("%d bodies in %d segment files", len(rows), len(spoolFiles(t, db)))
}

// TestSpoolCompactionDropsDeliveredBodies: the trim leaves the segment at
// its boundary mostly unreferenced; compacting it drops the delivered
// body left there (next in line for the trim) instead of copying it into
// the segment being written, which a long import did at every trim.
func TestSpoolCompactionDropsDeliveredBodies(t *testing.T) {
	ctx := context.Background()
	const segBytes, size, events = 128 << 10, 30 << 10, 12 // 4 bodies a segment, 3 segments
	db, now, due := spoolSegments(t, segBytes, size, events)
	q := db.Outbox()
	for _, r := range due {
		if err := q.MarkDelivered(ctx, r.Seq, 200, *now); err != nil {
			t.Fatal(err)
		}
	}
	files := spoolFiles(t, db)
	last := files[len(files)-1]
	before, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	// Keep 5 bodies: the first segment goes whole, the second keeps 1 of 4.
	st0, err := db.EventBodies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TrimBodies(ctx, st0.Bytes*5/events+64); err != nil { // ids differ in length by a byte
		t.Fatal(err)
	}
	after, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != before.Size() {
		t.Errorf("segment being written grew from %d to %d bytes: a delivered body was copied by the compaction", before.Size(), after.Size())
	}
	st, err := db.EventBodies(ctx)
	if err != nil || st.Bodies != 4 {
		t.Errorf("EventBodies = %+v, %v; want the last segment's 4 bodies", st, err)
	}
	if n := len(spoolFiles(t, db)); n != 1 {
		t.Errorf("%d segment files left, want 1 (the one being written)", n)
	}
}
