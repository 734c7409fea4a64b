package notify_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/notify"
)

// How the daemon wires change notifications: one Manager, its Handler on
// the public listener, one Add per channel once its folder id is known,
// Run next to the runners, and a wake-up channel per runner that its poll
// loop also selects on.
func ExampleManager() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := map[string]chan notify.Reason{"support": make(chan notify.Reason, 1)}
	m, err := notify.NewManager(notify.Options{
		PublicURL: "https://bridge.example.com",
		Wake: func(channel string, why notify.Reason) {
			select { // never block the handler: one pending wake-up is enough
			case wake[channel] <- why:
			default:
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	public := http.NewServeMux()
	public.Handle(notify.Path, m.Handler())

	gc := &graph.Client{}
	mc := gc.Mailbox(graph.Mailbox{Address: "agent@contoso.com"}, graph.TokenFunc(func(context.Context) (string, error) { return "token", nil }))
	m.Add(notify.Channel{Name: "support", Graph: mc, FolderID: "AAMkAD…"})
	go m.Run(ctx)
	defer m.Close(context.Background())

	// In the runner: poll adaptively, or at once when woken.
	policy := notify.PollPolicy{Fast: 10 * time.Second, Slow: time.Minute}
	lastNewMail := time.Now()
	select {
	case <-wake["support"]:
	case <-time.After(policy.Interval(time.Since(lastNewMail), m.Subscribed("support"))):
	case <-ctx.Done():
	}
}
