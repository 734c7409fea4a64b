package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TicketLink is one row of the ticket map (migrations/0008_tickets.sql).
type TicketLink = deliver.TicketLink

// Tickets is the ticket map over db: the deliver.TicketMap that delivery
// recipes (webhooks/recipe) use.
type Tickets struct{ db *DB }

var _ deliver.TicketMap = (*Tickets)(nil)

// Tickets returns the ticket map.
func (db *DB) Tickets() *Tickets { return &Tickets{db: db} }

// maxTicketKeys bounds the message ids of one lookup (a References header
// can be long; the nearest ancestors come last and are kept).
const maxTicketKeys = 50

// FindTicket returns the ticket of the first of messageIDs the map knows
// (callers order them nearest ancestor first), else the ticket most
// recently recorded for conversationID, else "". Empty ids are ignored.
func (t *Tickets) FindTicket(ctx context.Context, webhook, channel string, messageIDs []string, conversationID string) (string, error) {
	var ids []string
	for _, id := range messageIDs {
		if id != "" && len(ids) < maxTicketKeys {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		args := []any{webhook, channel}
		for _, id := range ids {
			args = append(args, id)
		}
		rows, err := t.db.read.QueryContext(ctx, `SELECT message_id, ticket_id FROM tickets
			WHERE webhook = ? AND channel = ? AND message_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
		if err != nil {
			return "", fmt.Errorf("find ticket by message id: %w", err)
		}
		found := map[string]string{}
		for rows.Next() {
			var mid, tid string
			if err := rows.Scan(&mid, &tid); err != nil {
				rows.Close()
				return "", fmt.Errorf("find ticket by message id: %w", err)
			}
			found[mid] = tid
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return "", fmt.Errorf("find ticket by message id: %w", err)
		}
		for _, id := range ids {
			if tid, ok := found[id]; ok {
				return tid, nil
			}
		}
	}
	if conversationID == "" {
		return "", nil
	}
	var tid string
	err := t.db.read.QueryRowContext(ctx, `SELECT ticket_id FROM tickets
		WHERE webhook = ? AND channel = ? AND conversation_id = ?
		ORDER BY recorded_at DESC LIMIT 1`, webhook, channel, conversationID).Scan(&tid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find ticket by conversation: %w", err)
	}
	return tid, nil
}

// RecordTicket stores l (replacing the ticket of an already known message
// id: the helpdesk's latest answer wins). It commits before it returns.
func (t *Tickets) RecordTicket(ctx context.Context, l TicketLink) error {
	if l.Webhook == "" || l.Channel == "" || l.MessageID == "" || l.TicketID == "" {
		return fmt.Errorf("record ticket: webhook, channel, message id and ticket id are required")
	}
	_, err := t.db.write.ExecContext(ctx, `INSERT INTO tickets
		(webhook, channel, message_id, conversation_id, ticket_id, event_id, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (webhook, channel, message_id) DO UPDATE SET
			ticket_id = excluded.ticket_id, conversation_id = excluded.conversation_id,
			event_id = excluded.event_id, recorded_at = excluded.recorded_at`,
		l.Webhook, l.Channel, l.MessageID, l.ConversationID, l.TicketID, l.EventID, timeText(l.RecordedAt))
	if err != nil {
		return fmt.Errorf("record ticket: %w", err)
	}
	return nil
}

// ForgetTickets deletes webhook's rows recorded before before (the
// retention of the ticket map: webhooks[].recipe.ticket_map_retention).
// A thread that goes on keeps its ticket: each new mail records a fresh
// row for its own Message-ID and the conversation.
func (t *Tickets) ForgetTickets(ctx context.Context, webhook string, before time.Time) (int64, error) {
	res, err := t.db.write.ExecContext(ctx, `DELETE FROM tickets WHERE webhook = ? AND recorded_at < ?`, webhook, timeText(before))
	if err != nil {
		return 0, fmt.Errorf("forget tickets: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget tickets: %w", err)
	}
	return n, nil
}
