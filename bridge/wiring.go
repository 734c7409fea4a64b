package bridge

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Endpoints turns bridge.yaml's webhooks into the dispatcher's endpoints,
// parsing request templates (from the file when one is named).
func Endpoints(cfg *config.Config) ([]deliver.Endpoint, error) {
	var eps []deliver.Endpoint
	for _, w := range cfg.Webhooks {
		ep := deliver.Endpoint{
			Name: w.Name, URL: w.URL, Types: w.Types, Timeout: w.Timeout,
			MaxAttempts: w.MaxAttempts, MaxAge: w.MaxAge, Schedule: w.Schedule,
			Concurrency: w.Concurrency, Retention: w.Retention,
		}
		for _, s := range w.AllSecrets() {
			ep.Secrets = append(ep.Secrets, s.Value())
		}
		if len(w.Headers) > 0 {
			ep.Headers = map[string]string{}
			for k, v := range w.Headers {
				ep.Headers[k] = v.Value()
			}
		}
		if t := w.Template; t != nil {
			body := t.Body
			if t.File != "" {
				b, err := os.ReadFile(t.File)
				if err != nil {
					return nil, fmt.Errorf("webhook %s: read template: %w", w.Name, err)
				}
				body = string(b)
			}
			tpl, err := deliver.ParseTemplate(w.Name, body)
			if err != nil {
				return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
			}
			ep.Template, ep.ContentType = tpl, t.ContentType
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// graphMailbox is how a channel's mailbox is addressed in Graph. A user
// mailbox is the signed-in account's own; its address (for event ids, the
// event's mailbox block and the per-mailbox request limit) is the account's
// sign-in name, known once the channel is connected.
func graphMailbox(ch config.Channel, account store.Account) (graph.Mailbox, bool) {
	if ch.Mailbox.Type == config.MailboxShared {
		return graph.Mailbox{Shared: true, Address: strings.ToLower(ch.Mailbox.Address)}, true
	}
	if account.UPN == "" {
		return graph.Mailbox{}, false
	}
	return graph.Mailbox{Address: strings.ToLower(account.UPN)}, true
}

// eventTenant keys event ids. It is the configured tenant, lower-cased: a
// value the operator chose and that does not depend on when a channel was
// connected, so ids stay the same across restarts (DESIGN.md invariant 3).
func eventTenant(cfg *config.Config) string { return strings.ToLower(cfg.MS.Tenant) }

// AuthFailed and AuthRestored implement entra.Notifier: the helpdesk hears
// of a channel that stopped (and started again) through the channel's own
// webhook, as channel.auth_failed and channel.auth_restored events.
func (d *Daemon) AuthFailed(ctx context.Context, channel, code, reason, fix string) {
	d.log.Error("channel needs re-authentication", "channel", channel, "aadsts", code, "reason", reason, "fix", fix)
	d.emitChannelEvent(ctx, webhooks.TypeChannelAuthFailed, channel, webhooks.ChannelData{State: store.ChannelReauthRequired, Code: code, Reason: reason, Fix: fix})
}

// AuthRestored implements entra.Notifier.
func (d *Daemon) AuthRestored(ctx context.Context, channel string) {
	d.log.Info("channel authenticated again", "channel", channel)
	d.emitChannelEvent(ctx, webhooks.TypeChannelAuthRestored, channel, webhooks.ChannelData{State: store.ChannelActive})
	d.wakeSupervisor(channel)
}

func (d *Daemon) emitChannelEvent(ctx context.Context, typ, channel string, data webhooks.ChannelData) {
	ch, ok := d.channel(channel)
	if !ok || ch.Webhook == "" {
		return
	}
	d.mu.Lock()
	eps := d.endpoints
	d.mu.Unlock()
	for _, ep := range eps {
		if ep.Name == ch.Webhook && !ep.Accepts(typ) {
			return
		}
	}
	data.ID = webhooks.NewID("evt")
	data.Version = webhooks.Version
	data.Channel = channel
	data.Mailbox = &webhooks.Mailbox{Type: ch.Mailbox.Type, Address: ch.Mailbox.Address}
	ev, err := webhooks.NewEvent(typ, d.opts.Now(), data)
	if err == nil {
		var body []byte
		if body, err = jsonMarshal(ev); err == nil {
			err = d.db.Enqueue(context.WithoutCancel(ctx), store.OutboxEvent{EventID: data.ID, Endpoint: ch.Webhook, Channel: channel, Type: typ, Body: body})
		}
	}
	if err != nil {
		d.log.Error("queue channel event", "channel", channel, "type", typ, "err", err)
		return
	}
	if d.disp != nil {
		d.disp.Wake()
	}
}

// webhookTakes is a runner's RunnerConfig.Takes: whether the named
// webhook, as currently configured (a reload may change it), takes events
// of a type. A webhook not (or no longer) configured takes everything:
// its rows wait in the outbox, as for an endpoint removed by a reload,
// rather than a passing mismatch filtering mail for good.
func (d *Daemon) webhookTakes(webhook string) func(typ string) bool {
	return func(typ string) bool {
		d.mu.Lock()
		eps := d.endpoints
		d.mu.Unlock()
		for _, ep := range eps {
			if ep.Name == webhook {
				return ep.Accepts(typ)
			}
		}
		return true
	}
}

func (d *Daemon) channel(name string) (config.Channel, bool) {
	for _, ch := range d.config().Channels {
		if ch.Name == name {
			return ch, true
		}
	}
	return config.Channel{}, false
}

// channelErrorCodes are the sync errors an operator must act on (a folder
// gone, access lost, a mailbox disabled); they reach the helpdesk as
// channel.error events. Passing trouble (throttling, a network blip) and
// sign-in problems (channel.auth_failed already) do not.
var channelErrorCodes = map[string]bool{
	"folder_not_found": true, "folder_ambiguous": true, "mailbox_not_found": true,
	"mailbox_not_enabled": true, "access_denied": true, "archive_cutoff_missing": true,
}

// syncResultNotifier returns a channel's RunnerConfig.OnSyncResult: it
// emits one channel.error when the channel enters an actionable error (or
// moves to another one), not one per failing round.
func (d *Daemon) syncResultNotifier(channel string) func(ctx context.Context, code, reason, fix string) {
	var last string // guarded by the runner: rounds are serialised
	return func(ctx context.Context, code, reason, fix string) {
		if !channelErrorCodes[code] {
			if code == "" {
				last = ""
			}
			return
		}
		if code == last {
			return
		}
		last = code
		d.emitChannelEvent(ctx, webhooks.TypeChannelError, channel, webhooks.ChannelData{State: "error", Code: code, Reason: reason, Fix: fix})
	}
}
