package bridge

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
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

// mailboxClient is a connected channel's mailbox and its Graph client,
// which takes tokens from the channel's token source; ok is false while the
// channel is not connected (no signed-in account yet).
func (d *Daemon) mailboxClient(ch config.Channel, account store.Account) (graph.Mailbox, *graph.MailboxClient, bool) {
	mb, ok := graphMailbox(ch, account)
	if !ok || account.ObjectID == "" {
		return graph.Mailbox{}, nil, false
	}
	return mb, d.graph.Mailbox(mb, d.auth.Source(ch.Name)), true
}

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
	if !d.webhookTakes(ch.Webhook)(typ) {
		return
	}
	data.ID = webhooks.NewID("evt")
	data.Version = webhooks.Version
	data.Channel = channel
	data.Mailbox = &webhooks.Mailbox{Type: ch.Mailbox.Type, Address: ch.Mailbox.Address}
	if _, ok := store.LeaseFrom(ctx); !ok {
		// A notice from the consent callback or the token manager, on
		// whichever daemon they ran: no channel's sync (store.Unfenced).
		ctx = store.Unfenced(ctx)
	}
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
		for _, ep := range d.currentEndpoints() {
			if ep.Name == webhook {
				return ep.Accepts(typ)
			}
		}
		return true
	}
}

// currentEndpoints are the webhook endpoints in force (a reload replaces
// them).
func (d *Daemon) currentEndpoints() []deliver.Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.endpoints
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
// gone, access lost, a mailbox disabled): a move from one to another is
// told again. Other sync errors (throttling, Graph unavailable, the
// network) are passing: the channel keeps retrying at each poll, and the
// helpdesk hears channel.error once when it starts and channel.restored
// once when a round works again.
var channelErrorCodes = map[string]bool{
	"folder_not_found": true, "folder_ambiguous": true, "mailbox_not_found": true,
	"mailbox_not_enabled": true, "access_denied": true, "archive_cutoff_missing": true,
}

// authSyncCodes are the sync errors caused by the channel's sign-in; the
// token source tells the helpdesk about those (channel.auth_failed, or
// channel.error and channel.restored for Entra being unavailable), so the
// sync side stays silent.
var authSyncCodes = map[string]bool{entra.CodeUnavailable: true, mailsync.CodeReauthRequired: true}

// syncTold reports whether a recorded sync outcome is an error the
// helpdesk was told about (channel.error).
func syncTold(st store.SyncState) bool {
	return st.Status == store.SyncError && st.ErrorCode != "" && !authSyncCodes[st.ErrorCode]
}

// syncResultNotifier returns a channel's RunnerConfig.OnSyncResult: one
// channel.error when the channel enters a sync error (or moves to another
// actionable one), one channel.restored when a round works again, not one
// per failing round. It judges from the outcome the round replaced in the
// store, so a restart in the middle of an outage repeats nothing.
func (d *Daemon) syncResultNotifier(channel string) func(ctx context.Context, prev store.SyncState, code, reason, fix string) {
	return func(ctx context.Context, prev store.SyncState, code, reason, fix string) {
		told := syncTold(prev)
		switch {
		case code == "":
			if told {
				d.log.Info("channel syncs again", "channel", channel, "after", prev.ErrorCode)
				d.emitChannelEvent(ctx, webhooks.TypeChannelRestored, channel, webhooks.ChannelData{
					State: store.ChannelActive, Code: prev.ErrorCode, Reason: "The channel syncs again."})
			}
		case authSyncCodes[code]:
		case told && (code == prev.ErrorCode || !channelErrorCodes[code] && !channelErrorCodes[prev.ErrorCode]):
			// The same error, or one passing trouble after another: the
			// helpdesk already knows.
		default:
			d.emitChannelEvent(ctx, webhooks.TypeChannelError, channel, webhooks.ChannelData{State: "error", Code: code, Reason: reason, Fix: fix})
		}
	}
}

// Unavailable implements entra.Notifier: an active channel's token refresh
// failed for a reason that may pass. The channel keeps polling; the
// helpdesk hears channel.error once.
func (d *Daemon) Unavailable(ctx context.Context, channel, code, reason, fix string) {
	d.log.Warn("channel cannot refresh its token; retrying at each poll", "channel", channel, "code", code, "reason", reason)
	d.emitChannelEvent(ctx, webhooks.TypeChannelError, channel, webhooks.ChannelData{State: store.ChannelError, Code: code, Reason: reason, Fix: fix})
}

// Available implements entra.Notifier: a channel in state error refreshed
// its token again; the helpdesk hears channel.restored once.
func (d *Daemon) Available(ctx context.Context, channel string) {
	d.log.Info("channel token refresh works again", "channel", channel)
	d.emitChannelEvent(ctx, webhooks.TypeChannelRestored, channel, webhooks.ChannelData{
		State: store.ChannelActive, Code: entra.CodeUnavailable, Reason: "Entra ID answers again; the channel resumed."})
	if r, ok := d.Runner(channel); ok {
		r.SyncNow()
	}
}

// channelNames are the configured channels' names, in bridge.yaml order.
func channelNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		names = append(names, ch.Name)
	}
	return names
}
