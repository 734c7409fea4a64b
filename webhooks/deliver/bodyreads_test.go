package deliver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// countingQueue counts the rows DueMeta hands out and the bodies read.
type countingQueue struct {
	*store.Outbox
	mu       sync.Mutex
	handed   int
	bodyRead map[int64]int
}

func (q *countingQueue) DueMeta(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool, skip []int64) ([]deliver.Row, error) {
	rows, err := q.Outbox.DueMeta(ctx, endpoint, now, limit, ordered, skip)
	q.mu.Lock()
	q.handed += len(rows)
	q.mu.Unlock()
	return rows, err
}

func (q *countingQueue) Body(ctx context.Context, seq int64) ([]byte, error) {
	q.mu.Lock()
	q.bodyRead[seq]++
	q.mu.Unlock()
	return q.Outbox.Body(ctx, seq)
}

// Issue 17: with several deliveries in flight the dispatcher asked the
// outbox for the rows in flight as well as for the free slots and read
// every body of them each time (about five reads per body at concurrency
// 4). Now it asks for the free slots only, leaving the rows in flight out,
// and reads a body once per attempt, for the row it sends.
func TestDispatcherReadsEachBodyOncePerAttempt(t *testing.T) {
	h := newHarness(t, deliver.Endpoint{Concurrency: 4})
	const n = 12
	var ids []string
	for i := range n {
		id := fmt.Sprintf("msg_%02d", i)
		ids = append(ids, id)
		h.enqueue(id, fmt.Sprintf("c%d", i%3))
	}
	q := &countingQueue{Outbox: h.q, bodyRead: map[int64]int{}}
	d, err := deliver.New(q, []deliver.Endpoint{h.ep}, deliver.Options{Now: h.clock.Now, After: h.clock.After})
	if err != nil {
		t.Fatal(err)
	}
	h.d, h.lanes = d, newLanes()
	deliver.SetLaneSignal(d, h.lanes.signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.runUntil("all delivered", h.allIn(deliver.StateDelivered, ids...))
	cancel()
	<-done
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.handed != n {
		t.Errorf("DueMeta handed out %d rows for %d single-attempt deliveries, want %d: rows are read that are not sent", q.handed, n, n)
	}
	if len(q.bodyRead) != n {
		t.Errorf("bodies of %d rows read, want %d", len(q.bodyRead), n)
	}
	for seq, reads := range q.bodyRead {
		if reads != 1 {
			t.Errorf("row %d: body read %d times for one attempt, want once", seq, reads)
		}
	}
}
