package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// BenchmarkDeliver measures deliveries per second from a durable outbox on
// a file database to a loopback receiver that verifies every signature:
// per delivery, one committed attempt, one signed POST, one committed
// acknowledgement.
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), store.FileName))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var got atomic.Int64
			all := make(chan struct{})
			n := int64(b.N)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				if err := webhooks.Verify(r.Header, body, []string{testSecret}); err != nil {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(http.StatusNoContent)
				if got.Add(1) == n {
					close(all)
				}
			}))
			defer srv.Close()
			var events []store.OutboxEvent
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("msg_bench%07d", i)
				ev, _ := webhooks.NewEvent(webhooks.TypeWebhookTest, time.Now(), webhooks.TestData{ID: id, Version: 1, Message: "benchmark"})
				body, _ := json.Marshal(ev)
				events = append(events, store.OutboxEvent{EventID: id, Endpoint: "bench", Channel: fmt.Sprintf("c%d", i%8), Type: ev.Type, Body: body})
			}
			if err := db.Enqueue(ctx, events...); err != nil {
				b.Fatal(err)
			}
			d, err := deliver.New(db.Outbox(), []deliver.Endpoint{{Name: "bench", URL: srv.URL, Secrets: []string{testSecret}, Concurrency: conc}}, deliver.Options{})
			if err != nil {
				b.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- d.Run(runCtx) }()
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("only %d of %d delivered", got.Load(), n)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
