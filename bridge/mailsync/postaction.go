package mailsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// deletedItemsFolder is where after_import: delete moves mail: the
// well-known Deleted Items folder, from which a user can restore it. The
// bridge never deletes permanently.
const deletedItemsFolder = "deleteditems"

// PostActions runs the after_import action for every delivered message of
// the channel that is due, and returns how many completed. It is what
// SyncOnce does after paging; call it alone when the dispatcher reports
// acknowledgements. Only ledger rows in state delivered are touched
// (DESIGN.md invariant 1).
func (r *Runner) PostActions(ctx context.Context) (Stats, error) {
	stats, _, err := r.lockedPostActions(ctx, false)
	return stats, err
}

// lockedPostActions is postActions under the round lock, its stats added to
// the runner's totals.
func (r *Runner) lockedPostActions(ctx context.Context, fullOnly bool) (Stats, int, error) {
	r.round.Lock()
	defer r.round.Unlock()
	stats, waiting, err := r.postActions(ctx, fullOnly)
	// Outside a round, nothing else adds them to the runner's totals
	// (SyncOnce adds its own round's).
	r.mu.Lock()
	r.status.Totals.add(stats)
	r.mu.Unlock()
	return stats, waiting, err
}

// postActions runs the due post-import actions. With fullOnly (Run on an
// acknowledgement) it takes only whole $batch calls (graph.MaxBatchSize
// messages each) and returns how many due messages it left waiting for
// more; Run moves those on its deadline (PostActionWait). Without, it takes
// every due message. Keep sends nothing to Graph, so it never waits.
func (r *Runner) postActions(ctx context.Context, fullOnly bool) (Stats, int, error) {
	var stats Stats
	if r.ch.AfterImport.Action == config.ActionKeep {
		fullOnly = false
	}
	// Rows that fail are re-scheduled in the future, so each pass sees new
	// rows only; the bound guards against a store that does not move them.
	for pass := 0; pass < 10_000; pass++ {
		due, err := r.cfg.DB.DeliveredDue(ctx, r.ch.Name, r.cfg.Now(), postActionChunk)
		if err != nil {
			return stats, 0, err
		}
		last := len(due) < postActionChunk
		waiting := 0
		if fullOnly {
			waiting = len(due) % graph.MaxBatchSize
			due = due[:len(due)-waiting]
		}
		if len(due) == 0 {
			return stats, waiting, nil
		}
		ids := make([]string, len(due))
		attempts := make(map[string]int, len(due))
		for i, e := range due {
			ids[i] = e.MessageID
			attempts[e.MessageID] = e.PostActionAttempts
		}
		outcome, err := r.runAction(ctx, ids)
		if err != nil {
			return stats, 0, err
		}
		results := make([]store.PostActionResult, 0, len(ids))
		now := r.cfg.Now()
		for _, id := range ids {
			res := store.PostActionResult{MessageID: id, Err: outcome[id]}
			if res.Err != nil && errors.Is(res.Err, graph.ErrItemNotFound) {
				res.Err = nil // already gone: nothing left to do
			}
			if res.Err != nil && errors.Is(res.Err, graph.ErrFolderNotFound) {
				r.mu.Lock()
				r.moveDest = "" // resolve the destination again next time
				r.mu.Unlock()
			}
			if res.Err != nil {
				res.RetryAt = now.Add(postActionDelay(attempts[id] + 1))
				stats.PostFailed++
				r.log.Warn("post-import action failed; will retry", "message_id", id,
					"action", r.ch.AfterImport.String(), "retry_at", res.RetryAt, "err", res.Err)
			} else {
				stats.PostDone++
			}
			results = append(results, res)
		}
		if err := r.cfg.DB.RecordPostActions(ctx, r.ch.Name, results); err != nil {
			return stats, 0, err
		}
		if last {
			return stats, waiting, nil
		}
	}
	return stats, 0, nil
}

// runAction applies the channel's after_import action to ids and returns
// each id's outcome (missing or nil = done). An error means the action
// cannot run at all (the move destination does not exist).
func (r *Runner) runAction(ctx context.Context, ids []string) (map[string]error, error) {
	switch r.ch.AfterImport.Action {
	case config.ActionKeep, "":
		return nil, nil
	case config.ActionMarkRead:
		return r.cfg.Graph.MarkRead(ctx, ids), nil
	case config.ActionDelete:
		return r.cfg.Graph.Move(ctx, ids, deletedItemsFolder), nil
	case config.ActionMove:
		dest, err := r.moveDestination(ctx)
		if err != nil {
			return nil, err
		}
		return r.cfg.Graph.Move(ctx, ids, dest), nil
	}
	return nil, fmt.Errorf("after_import: unknown action %q (want keep, mark_read, delete or move:<folder>)", r.ch.AfterImport.Action)
}

// moveDestination resolves (once) the folder of after_import move:<folder>.
func (r *Runner) moveDestination(ctx context.Context) (string, error) {
	r.mu.Lock()
	dest := r.moveDest
	r.mu.Unlock()
	if dest != "" {
		return dest, nil
	}
	f, err := r.cfg.Graph.ResolveFolder(ctx, r.ch.AfterImport.Folder)
	if err != nil {
		return "", fmt.Errorf("resolve after_import move folder %q: %w", r.ch.AfterImport.Folder, err)
	}
	r.mu.Lock()
	r.moveDest = f.ID
	r.mu.Unlock()
	return f.ID, nil
}

// postActionDelay is the retry delay after attempts failed post-actions:
// 30 s doubling, capped at an hour.
func postActionDelay(attempts int) time.Duration {
	return backoff.Exponential(30*time.Second, maxPostActionDelay, attempts)
}
