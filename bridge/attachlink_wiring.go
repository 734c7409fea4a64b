package bridge

import (
	"context"
	"fmt"

	"github.com/m365bridge/m365bridge/bridge/attachlink"
	"github.com/m365bridge/m365bridge/bridge/graph"
)

// attachLinkEnv is what the public listener's attachment links need: the
// daemon's link keys and a channel's mailbox client.
func (d *Daemon) attachLinkEnv() attachlink.Env {
	return attachlink.Env{Links: d.links, Log: d.log, Mailbox: func(ctx context.Context, name string) (*graph.MailboxClient, error) {
		ch, ok := d.channel(name)
		if !ok {
			return nil, attachlink.ErrNotConfigured
		}
		st, err := d.db.ChannelState(ctx, ch.Name)
		if err != nil {
			return nil, fmt.Errorf("read channel state: %w", err)
		}
		_, client, ok := d.mailboxClient(ch, st.Account)
		if !ok || st.Account.ObjectID == "" {
			return nil, attachlink.ErrNotConnected
		}
		return client, nil
	}}
}
