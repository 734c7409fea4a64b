package store

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkOutboxBytesWritten measures the store's write amplification
// for the life of an event: enqueue with its ledger row in page
// transactions of 100, one attempt and the acknowledgement. It prints the
// bytes this process wrote (write(2) calls, wchar of /proc/self/io: WAL,
// checkpoints, database file and, on SQLite, the body spool's segments)
// per event and per body byte, and the database file's and the spool's
// size after; M365BRIDGE_BENCH_STATE_BUDGET=<bytes> sets
// the state budget (none by default: every body kept). All events are
// enqueued before any is delivered, so the file holds them all at once
// whatever the budget: the budget shows here as the writes trims cost.
// Run:
//
//	go test ./bridge/store -run '^$' -bench BenchmarkOutboxBytesWritten -benchtime 1x
func BenchmarkOutboxBytesWritten(b *testing.B) {
	const events, bodyBytes = 2000, 64 << 10 // base64 bodies, as attachments travel
	raw := make([]byte, bodyBytes*3/4)
	rand.Read(raw)
	body := []byte(`{"type":"mail.received","data":{"attachment":"` + base64.StdEncoding.EncodeToString(raw) + `"}}`)
	for range b.N {
		ctx := context.Background()
		dir := b.TempDir()
		db, err := Open(ctx, filepath.Join(dir, FileName))
		if err != nil {
			b.Fatal(err)
		}
		if err := db.EnsureChannels(ctx, []string{"c"}); err != nil {
			b.Fatal(err)
		}
		budget := int64(-1)
		if v := os.Getenv("M365BRIDGE_BENCH_STATE_BUDGET"); v != "" {
			if budget, err = strconv.ParseInt(v, 10, 64); err != nil || budget < 0 {
				b.Fatalf("M365BRIDGE_BENCH_STATE_BUDGET=%q: want bytes, such as 16777216", v)
			}
		}
		db.SetBodyBudget(budget)
		before, ok := procWchar()
		if !ok {
			b.Skip("/proc/self/io is not readable here")
		}
		start := time.Now()
		for page := 0; page < events/100; page++ {
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				for i := range 100 {
					id := fmt.Sprintf("ev-%d-%d", page, i)
					if _, err := db.InsertLedgerTx(ctx, tx, LedgerEntry{Channel: "c", MessageID: id, EventID: id,
						State: LedgerQueued, Kind: KindNew}); err != nil {
						return err
					}
					if err := db.EnqueueTx(ctx, tx, OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: "c",
						Type: "mail.received", Body: body}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		q := db.Outbox()
		for {
			due, err := q.Due(ctx, "helpdesk", db.Now().Add(time.Hour), 100, false)
			if err != nil {
				b.Fatal(err)
			}
			if len(due) == 0 {
				break
			}
			for _, r := range due {
				now := db.Now()
				if err := q.MarkAttempt(ctx, r.Seq, 1, now, now.Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
				if err := q.MarkDelivered(ctx, r.Seq, 200, now); err != nil {
					b.Fatal(err)
				}
			}
		}
		spooled, err := db.SpoolBytes()
		if err != nil {
			b.Fatal(err)
		}
		db.Close() // the final checkpoint counts too
		elapsed := time.Since(start)
		after, _ := procWchar()
		written := after - before
		var size int64 // the database file after (Close checkpointed and removed the WAL)
		if fi, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
			size = fi.Size()
		}
		fmt.Printf("outbox write amplification: %d events of %d body bytes: wrote %.0f MiB, %.0f KiB per event, %.2f bytes per body byte, %.2f s; database file %.0f MiB, body spool %.0f MiB after (state budget %d bytes, -1: none)\n",
			events, len(body), float64(written)/(1<<20), float64(written)/events/1024,
			float64(written)/float64(events*len(body)), elapsed.Seconds(), float64(size)/(1<<20), float64(spooled)/(1<<20), budget)
		b.ReportMetric(float64(written)/events, "B-written/event")
	}
}

// procWchar reads wchar (bytes passed to write calls) of /proc/self/io.
func procWchar() (int64, bool) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
