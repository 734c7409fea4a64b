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

// where builds the WHERE clause of f on table alias o.
func outboxWhere(f deliver.Filter) (string, []any) {
	var conds []string
	var args []any
	if len(f.IDs) > 0 {
		conds = append(conds, "o.event_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.IDs)), ",")+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.States) > 0 {
		conds = append(conds, "o.state IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.States)), ",")+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.Endpoint != "" {
		conds = append(conds, "o.endpoint = ?")
		args = append(args, f.Endpoint)
	}
	if f.Channel != "" {
		conds = append(conds, "o.channel = ?")
		args = append(args, f.Channel)
	}
	if !f.Since.IsZero() {
		conds = append(conds, "o.created_at >= ?")
		args = append(args, timeText(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "o.created_at < ?")
		args = append(args, timeText(f.Until))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// List implements deliver.Queue: rows matching f in enqueue order.
func (q *Outbox) List(ctx context.Context, f deliver.Filter) ([]deliver.Row, error) {
	read := readNone
	if f.WithBody {
		read = readBody
	}
	from := outboxColumns + read.from()
	where, args := outboxWhere(f)
	query := `SELECT ` + from + where + ` ORDER BY o.seq`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := q.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return q.db.scanOutbox(rows, read)
}

// Counts returns how many rows each (endpoint, state) holds.
func (q *Outbox) Counts(ctx context.Context) (map[string]map[deliver.State]int, error) {
	rows, err := q.db.read.QueryContext(ctx, `SELECT endpoint, state, COUNT(*) FROM outbox GROUP BY endpoint, state`)
	if err != nil {
		return nil, fmt.Errorf("count outbox rows: %w", err)
	}
	defer rows.Close()
	out := map[string]map[deliver.State]int{}
	for rows.Next() {
		var ep, st string
		var n int
		if err := rows.Scan(&ep, &st, &n); err != nil {
			return nil, fmt.Errorf("count outbox rows: %w", err)
		}
		if out[ep] == nil {
			out[ep] = map[deliver.State]int{}
		}
		out[ep][deliver.State(st)] = n
	}
	return out, rows.Err()
}

// Replay implements deliver.Queue. States other than dead and rejected are
// refused: a pending row is already on its way and a delivered one was
// acknowledged (re-sending it would be a deliberate duplicate).
func (q *Outbox) Replay(ctx context.Context, f deliver.Filter, now time.Time) (int, error) {
	if len(f.States) == 0 {
		f.States = []deliver.State{deliver.StateDead, deliver.StateRejected}
	}
	for _, s := range f.States {
		if s != deliver.StateDead && s != deliver.StateRejected {
			return 0, fmt.Errorf("replay: state %q cannot be replayed, only dead and rejected", s)
		}
	}
	where, args := outboxWhere(f)
	t := timeText(now)
	res, err := q.db.write.ExecContext(ctx, `UPDATE outbox AS o SET state = 'pending', attempts = 0, next_attempt_at = ?,
		replayed_at = ?, last_error = '', last_status = 0`+where, append([]any{t, t}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("replay outbox rows: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Retire implements deliver.Queue: delivered rows past retention go, their
// bodies with them (ON DELETE CASCADE); then, when the stored bodies exceed
// the budget (DB.SetBodyBudget), the bodies of the oldest delivered rows
// (TrimBodies); then the spool segments no row references any more.
func (q *Outbox) Retire(ctx context.Context, endpoint string, before time.Time) (int, error) {
	res, err := q.db.write.ExecContext(ctx, `DELETE FROM outbox WHERE endpoint = ? AND state = 'delivered' AND delivered_at < ?`,
		endpoint, timeText(before))
	if err != nil {
		return 0, fmt.Errorf("retire delivered outbox rows: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, _, err := q.db.TrimBodies(ctx, q.db.bodyBudget.Load()); err != nil {
		return int(n), err
	}
	if n > 0 { // the retired rows' spool segments, once none is referenced
		if err := q.db.tidySpool(ctx); err != nil {
			return int(n), err
		}
	}
	return int(n), nil
}

// Endpoint implements deliver.Queue.
func (q *Outbox) Endpoint(ctx context.Context, endpoint string) (deliver.EndpointStatus, error) {
	var st, reason, changed string
	err := q.db.read.QueryRowContext(ctx, `SELECT state, reason, changed_at FROM webhook_endpoints WHERE name = ?`, endpoint).
		Scan(&st, &reason, &changed)
	if errors.Is(err, sql.ErrNoRows) {
		return deliver.EndpointStatus{State: deliver.EndpointActive}, nil
	}
	if err != nil {
		return deliver.EndpointStatus{}, fmt.Errorf("read endpoint %s state: %w", endpoint, err)
	}
	since, err := parseTime(changed)
	if err != nil {
		return deliver.EndpointStatus{}, fmt.Errorf("read endpoint %s state: %w", endpoint, err)
	}
	return deliver.EndpointStatus{State: deliver.EndpointState(st), Reason: reason, Since: since}, nil
}

// SetEndpoint implements deliver.Queue.
func (q *Outbox) SetEndpoint(ctx context.Context, endpoint string, state deliver.EndpointState, reason string, at time.Time) error {
	_, err := q.db.write.ExecContext(ctx, `INSERT INTO webhook_endpoints (name, state, reason, changed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET state = excluded.state, reason = excluded.reason, changed_at = excluded.changed_at`,
		endpoint, string(state), capText(reason, outboxErrorBytes), timeText(at))
	if err != nil {
		return fmt.Errorf("set endpoint %s %s: %w", endpoint, state, err)
	}
	return nil
}
