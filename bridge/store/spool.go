package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The body spool (SQLite only, migration 0011): event bodies are appended
// to segment files in <database>.bodies/ (000001.seg, ...) and written
// once, instead of into SQLite, which wrote each body twice (into the WAL,
// then again at checkpoint) and spent a third of the bridge's CPU copying
// it through cgo. event_bodies keeps, per row, only the reference: segment,
// offset, size and CRC-32C.
//
// Durable before referenced: the bytes a transaction appended are on disk
// (fdatasync, once per transaction, DB.Tx) before it commits. A crash
// between the two leaves unreferenced bytes in a segment, never a row
// without its body. Such orphans go with their segment.
//
// A segment is deleted once no row references it and no writer holds it:
// the process appending to a segment holds an exclusive flock(2) on it
// from its creation until every transaction that wrote to it ended, and
// reclaimSegments (at Open, after TrimBodies and Retire, in any process
// that opens the database: the CLI too) takes that lock before it reads
// the references, so it never deletes a segment a commit is about to
// reference. Segments roll at segmentBytes, so deleting them frees space
// in steps.
//
// PostgreSQL keeps bodies in event_bodies: its replicas share them through
// the database, and its files are the server's business.

// segmentBytes is the size past which the spool starts a new segment.
const segmentBytes = 64 << 20

// spoolSuffix names the spool directory beside the database file.
const spoolSuffix = ".bodies"

// HoldFile, while it exists in the spool directory, stops every deletion
// of segment files (reclaim and compaction), so that a copy of the
// database taken first and of the segments taken after is consistent: the
// segments are append-only, and every body the database copy references
// was synced before its row committed. Operators create it around an
// online backup (README "Backup and hardening") and remove it after.
const HoldFile = "backup.hold"

// held reports whether HoldFile exists.
func (s *spool) held() bool {
	_, err := os.Stat(filepath.Join(s.dir, HoldFile))
	return err == nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bodyRef is where a spooled body lives.
type bodyRef struct {
	segment int64
	offset  int64
	size    int64
	crc     uint32
}

// segment is one spool file open for appending.
type segment struct {
	num     int64
	f       *os.File // holds the flock while open
	size    int64    // bytes reserved so far
	pending int      // transactions that wrote here and have not ended
}

// spool appends bodies to segment files; safe for concurrent use.
type spool struct {
	dir      string
	segBytes int64 // segmentBytes; smaller in tests

	mu     sync.Mutex
	active *segment
	next   int64                  // the next segment number to try
	txs    map[*sql.Tx][]*segment // segments each open transaction wrote to

	compacting atomic.Bool // tidySpool runs (one at a time)
}

// openSpool opens the spool in dir, which is created with its first
// segment (a command that only reads state creates nothing).
func openSpool(dir string) (*spool, error) {
	s := &spool{dir: dir, segBytes: segmentBytes, txs: map[*sql.Tx][]*segment{}}
	nums, err := s.segments()
	if err != nil {
		return nil, err
	}
	s.next = 1
	if n := len(nums); n > 0 {
		s.next = nums[n-1] + 1
	}
	return s, nil
}

// path is segment num's file.
func (s *spool) path(num int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%06d.seg", num))
}

// segments lists the segment numbers present, ascending.
func (s *spool) segments() ([]int64, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list body spool %s: %w", s.dir, err)
	}
	var nums []int64
	for _, e := range ents { // ReadDir sorts by name; numbers are zero-padded
		base, ok := strings.CutSuffix(e.Name(), ".seg")
		if n, err := strconv.ParseInt(base, 10, 64); ok && err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	return nums, nil
}

// begin registers tx: its appends are synced by sync and released by end.
func (s *spool) begin(tx *sql.Tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txs[tx] = nil
}

// append writes body to the active segment for tx (not yet synced). The
// lock is held only to reserve the range, not while writing.
func (s *spool) append(tx *sql.Tx, body []byte) (bodyRef, error) {
	seg, off, err := s.reserve(tx, int64(len(body)))
	if err != nil {
		return bodyRef{}, err
	}
	if _, err := seg.f.WriteAt(body, off); err != nil {
		return bodyRef{}, fmt.Errorf("write event body to %s: %w", s.path(seg.num), err)
	}
	return bodyRef{segment: seg.num, offset: off, size: int64(len(body)), crc: crc32.Checksum(body, castagnoli)}, nil
}

func (s *spool) reserve(tx *sql.Tx, n int64) (*segment, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wrote, ok := s.txs[tx]
	if !ok {
		return nil, 0, errors.New("store event body: the transaction was not begun by DB.Tx (its body could not be synced before commit)")
	}
	if s.active == nil || (s.active.size > 0 && s.active.size+n > s.segBytes) {
		seg, err := s.create()
		if err != nil {
			return nil, 0, err
		}
		if old := s.active; old != nil && old.pending == 0 {
			old.f.Close() // releases its lock: reclaimable once unreferenced
		}
		s.active = seg
	}
	seg := s.active
	off := seg.size
	seg.size += n
	if len(wrote) == 0 || wrote[len(wrote)-1] != seg {
		seg.pending++
		s.txs[tx] = append(wrote, seg)
	}
	return seg, off, nil
}

// create makes the next segment file, locked, and syncs the directory so
// that its name is as durable as the bytes synced into it later.
func (s *spool) create() (*segment, error) {
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create body spool %s: %w", s.dir, err)
		}
		if err := syncDir(filepath.Dir(s.dir)); err != nil {
			return nil, err
		}
	}
	for tries := 0; tries < 100; tries++ {
		num := s.next
		s.next++
		f, err := os.OpenFile(s.path(num), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process (a CLI command) made it
		}
		if err != nil {
			return nil, fmt.Errorf("create body spool segment %s: %w", s.path(num), err)
		}
		if err := lockFile(f, true); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock body spool segment %s: %w", s.path(num), err)
		}
		// Another process's reclaim may have locked and removed the new,
		// unreferenced file before the lock was ours: take another.
		if !stillNamed(f, s.path(num)) {
			f.Close()
			continue
		}
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return nil, err
		}
		return &segment{num: num, f: f}, nil
	}
	return nil, fmt.Errorf("create body spool segment in %s: 100 names taken", s.dir)
}

// stillNamed reports whether path still names the open file f.
func stillNamed(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync body spool %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync body spool %s: %w", dir, err)
	}
	return nil
}

// sync makes the bodies tx appended durable: one fdatasync per segment it
// wrote to (one, unless the segment rolled), before tx commits.
func (s *spool) sync(tx *sql.Tx) error {
	s.mu.Lock()
	wrote := append([]*segment(nil), s.txs[tx]...)
	s.mu.Unlock()
	for _, seg := range wrote {
		if err := datasync(seg.f); err != nil {
			return fmt.Errorf("sync event bodies to %s: %w", s.path(seg.num), err)
		}
		// Removed or replaced under the writer (by hand): what was
		// appended is not where the references would point.
		if !stillNamed(seg.f, s.path(seg.num)) {
			s.retire(seg)
			return fmt.Errorf("sync event bodies: body spool segment %s was removed or replaced while being written; the transaction is rolled back (retried on a new segment)", s.path(seg.num))
		}
	}
	return nil
}

// retire stops appending to seg (end closes it).
func (s *spool) retire(seg *segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == seg {
		s.active = nil
	}
}

// end forgets tx once it committed or rolled back; a segment no longer
// active and no longer written by an open transaction is closed, which
// releases its lock.
func (s *spool) end(tx *sql.Tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.txs[tx] {
		seg.pending--
		if seg != s.active && seg.pending == 0 {
			seg.f.Close()
		}
	}
	delete(s.txs, tx)
}

// close closes the active segment (Close: no transaction is open).
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return nil
	}
	err := s.active.f.Close()
	s.active = nil
	return err
}

// BodyDamagedError is a spooled body that is missing, short or fails its
// checksum: its row stays as it is (a pending row is retried, see
// Outbox.Body) and the error names the file and the row.
type BodyDamagedError struct {
	Seq    int64
	File   string
	Offset int64
	Size   int64
	Reason string
}

func (e *BodyDamagedError) Error() string {
	return fmt.Sprintf("event body of outbox row %d is damaged: %s at offset %d, %d bytes: %s "+
		"(restore the file from a backup, or list and replay the row's event from its source)",
		e.Seq, e.File, e.Offset, e.Size, e.Reason)
}

// read returns the body ref points to, checked against its CRC-32C.
func (s *spool) read(seq int64, ref bodyRef) ([]byte, error) {
	path := s.path(ref.segment)
	damaged := func(reason string) error {
		return &BodyDamagedError{Seq: seq, File: path, Offset: ref.offset, Size: ref.size, Reason: reason}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, damaged("the segment file is missing")
	}
	if err != nil {
		return nil, fmt.Errorf("read event body of outbox row %d from %s: %w", seq, path, err)
	}
	defer f.Close()
	// Measure before allocating: a short file is reported, not read.
	if fi, err := f.Stat(); err == nil && fi.Size() < ref.offset+ref.size {
		return nil, damaged(fmt.Sprintf("the file ends after %d of its bytes (truncated)", max(0, fi.Size()-ref.offset)))
	}
	body := make([]byte, ref.size)
	n, err := f.ReadAt(body, ref.offset)
	if errors.Is(err, io.EOF) {
		return nil, damaged(fmt.Sprintf("the file ends after %d of its bytes (truncated)", n))
	}
	if err != nil {
		return nil, fmt.Errorf("read event body of outbox row %d from %s: %w", seq, path, err)
	}
	if got := crc32.Checksum(body, castagnoli); got != ref.crc {
		return nil, damaged(fmt.Sprintf("CRC-32C %08x, want %08x (the bytes changed on disk)", got, ref.crc))
	}
	return body, nil
}

// reclaimSegments deletes the segment files no row references and no
// writer holds (see the spool's comment); it returns how many it deleted.
func (db *DB) reclaimSegments(ctx context.Context) (int, error) {
	s := db.spool
	if s == nil || s.held() {
		return 0, nil
	}
	nums, err := s.segments()
	if err != nil {
		return 0, err
	}
	locked := map[int64]*os.File{}
	defer func() {
		for _, f := range locked {
			f.Close()
		}
	}()
	for _, num := range nums {
		f, err := os.Open(s.path(num))
		if err != nil {
			continue // gone meanwhile
		}
		if lockFile(f, false) != nil { // a writer holds it
			f.Close()
			continue
		}
		locked[num] = f
	}
	if len(locked) == 0 {
		return 0, nil
	}
	// Read the references only now: every transaction that wrote to a
	// locked segment has ended, so its references are committed.
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT segment FROM event_bodies WHERE segment IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("read body spool references: %w", err)
	}
	refs, err := scanAll(rows, "read body spool references", func(r rowScanner) (int64, error) {
		var n int64
		return n, r.Scan(&n)
	})
	if err != nil {
		return 0, err
	}
	for _, n := range refs {
		delete(locked, n)
	}
	removed := 0
	for num := range locked {
		if err := os.Remove(s.path(num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("delete unreferenced body spool segment: %w", err)
		}
		removed++
	}
	return removed, nil
}

// SpoolBytes is the size of the body spool's segment files (0 on
// PostgreSQL): with the database and its WAL, what the state directory
// holds.
func (db *DB) SpoolBytes() (int64, error) {
	if db.spool == nil {
		return 0, nil
	}
	nums, err := db.spool.segments()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range nums {
		if fi, err := os.Stat(db.spool.path(n)); err == nil {
			total += fi.Size()
		}
	}
	return total, nil
}
