// Package send is the reply path: the signed send endpoint the helpdesk
// posts replies to, and the worker that sends each accepted request through
// the channel's mailbox at most once (DESIGN.md invariant 10).
package send

import (
	"context"
	"log/slog"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// Env is what the send service takes from the daemon. Every field but
// Takes and Wake is required.
type Env struct {
	DB  *store.DB
	Log *slog.Logger
	Now func() time.Time
	// Channel is a channel as currently configured (a reload may remove it).
	Channel func(name string) (config.Channel, bool)
	// Mailbox is a connected channel's mailbox and its Graph client; ok is
	// false while the channel is not connected (no account yet).
	Mailbox func(ch config.Channel, account store.Account) (mb graph.Mailbox, client *graph.MailboxClient, ok bool)
	// Takes reports whether a webhook takes events of a type (its
	// configured event filter); nil takes everything.
	Takes func(webhook, typ string) bool
	// Wake tells the webhook dispatcher an outcome event was queued.
	Wake func()
	// Owner, when set, is the context for a channel's writes on this
	// daemon (carrying the channel's lease when several daemons share the
	// database), and false while another daemon owns the channel: the
	// worker then leaves the channel's requests to their owner. Nil: every
	// channel is this daemon's.
	Owner func(ctx context.Context, channel string) (context.Context, bool)
}

// Service is the send endpoint and its worker: New, Mount, then Run.
type Service struct {
	db      *store.DB
	log     *slog.Logger
	now     func() time.Time
	channel func(string) (config.Channel, bool)
	mailbox func(config.Channel, store.Account) (graph.Mailbox, *graph.MailboxClient, bool)
	takes   func(webhook, typ string) bool
	wake    func()
	owner   func(context.Context, string) (context.Context, bool)
	worker  *sendWorker
}

// New prepares the service; opts tune the worker.
func New(env Env, opts Options) *Service {
	s := &Service{db: env.DB, log: env.Log.With("component", "send"), now: env.Now, channel: env.Channel,
		mailbox: env.Mailbox, takes: env.Takes, wake: env.Wake, owner: env.Owner}
	s.worker = newSendWorker(s, opts)
	return s
}

// Run sends due requests until ctx ends, then waits for those in flight.
func (s *Service) Run(ctx context.Context) error { return s.worker.run(ctx) }
