package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store/storetest"
)

// BenchmarkPostgresThreeDaemons: 200 mailboxes spread by Assign over three
// daemons (three connection pools) on one PostgreSQL database; each
// iteration commits, for every mailbox, one delta page of 10 messages
// (ledger rows, outbox events with bodies, the cursor) under the channel's
// lease, as the runners do, four pages in flight per daemon. It reports
// messages per second and PostgreSQL round trips per message (BEGIN and
// COMMIT included). The store's share only: no Graph, no delivery.
//
//	go test -run '^$' -bench PostgresThreeDaemons -benchtime 5x ./bridge/store
func BenchmarkPostgresThreeDaemons(b *testing.B) {
	dsn := storetest.Postgres(b)
	ctx := context.Background()
	channels := names("mailbox-", 200)
	members := names("daemon-", 3)
	owner := Assign(channels, members)
	dbs := map[string]*DB{}
	leases := map[string]Lease{}
	for _, m := range members {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.RequireLeases(true)
		dbs[m] = db
	}
	for _, ch := range channels {
		l, err := dbs[owner[ch]].AcquireLease(ctx, ch, owner[ch], time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		leases[ch] = l
	}
	const perPage = 10
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var trips0 int64
	for _, db := range dbs {
		trips0 += db.RoundTrips()
	}
	b.ResetTimer()
	start := time.Now()
	for it := range b.N {
		var wg sync.WaitGroup
		errs := make(chan error, len(members))
		for _, m := range members {
			work := make(chan string)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					db := dbs[m]
					for ch := range work {
						lctx := WithLease(ctx, leases[ch])
						err := db.Tx(lctx, func(tx *sql.Tx) error {
							for k := range perPage {
								id := fmt.Sprintf("%s-%d-%d", ch, it, k)
								if _, err := db.InsertLedgerTx(lctx, tx, LedgerEntry{Channel: ch, MessageID: id, EventID: "evt_" + id,
									State: LedgerQueued, Kind: KindNew}); err != nil {
									return err
								}
								if err := db.EnqueueTx(lctx, tx, OutboxEvent{EventID: "evt_" + id, Endpoint: "helpdesk", Channel: ch,
									Type: "mail.received", Body: body}); err != nil {
									return err
								}
							}
							return db.AdvanceCursorTx(lctx, tx, ch, fmt.Sprintf("cursor-%d", it), PageCounts{Seen: perPage, New: perPage}, false)
						})
						if err != nil {
							select {
							case errs <- err:
							default:
							}
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(work)
				for _, ch := range channels {
					if owner[ch] == m {
						work <- ch
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var trips int64
	for _, db := range dbs {
		trips += db.RoundTrips()
	}
	msgs := float64(b.N * len(channels) * perPage)
	b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(trips-trips0)/msgs, "trips/msg")
}
