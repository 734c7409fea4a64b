package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// runReplay puts dead or rejected deliveries back in the queue, keeping
// their event ids, so receivers can deduplicate.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	var o outboxFlags
	o.register(fs, "dead,rejected")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: m365bridge replay [--config FILE | --state-dir DIR] (--id ID… | --channel C | --since T [--until T]) [--state dead,rejected] [--endpoint E]\n\nRe-delivers dead or rejected events with their original ids and a fresh retry schedule.\nA running daemon picks them up within its poll interval (30 s).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseWebhookFlags(fs, args); err != nil {
		return err
	}
	if len(o.ids) == 0 && o.channel == "" && o.since == "" {
		return usageError{"replay: say what to replay with --id, --channel or --since"}
	}
	now := time.Now()
	f, err := o.filter(now)
	if err != nil {
		return err
	}
	db, err := o.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Outbox().Replay(ctx, f, now)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "nothing to replay: no %s deliveries match\n", o.states)
		return nil
	}
	fmt.Fprintf(stdout, "replayed %d event(s) with their original ids; they are due now\n", n)
	return nil
}
