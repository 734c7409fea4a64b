package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// runReplay puts dead or rejected deliveries back in the queue, keeping
// their event ids, so receivers can deduplicate.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	var o outboxFlags
	o.register(fs, "dead,rejected")
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
	// A running daemon replays and wakes its dispatcher at once; without
	// one, the rows are replayed in the store for the next start.
	if o.stateDir == "" {
		if n, done, err := replayThroughDaemon(ctx, o.config, f, stdout); done || err != nil {
			if err == nil {
				printReplayed(stdout, n, o.states)
			}
			return err
		}
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
	printReplayed(stdout, n, o.states)
	return nil
}

func printReplayed(w io.Writer, n int, states string) {
	if n == 0 {
		fmt.Fprintf(w, "nothing to replay: no %s deliveries match\n", states)
		return
	}
	fmt.Fprintf(w, "replayed %d event(s) with their original ids; they are due now\n", n)
}

// replayThroughDaemon asks a running daemon to replay (POST /api/replay).
// done is false when no daemon answers: the caller replays in the store.
func replayThroughDaemon(ctx context.Context, path string, f deliver.Filter, stdout io.Writer) (n int, done bool, err error) {
	cfg, err := config.Load(path)
	if err != nil {
		return 0, false, nil // openStore reports a bad configuration
	}
	req := admin.ReplayRequest{IDs: f.IDs, Channel: f.Channel, Endpoint: f.Endpoint, Since: f.Since, Until: f.Until}
	for _, s := range f.States {
		req.States = append(req.States, string(s))
	}
	var out struct {
		admin.ReplayResponse
		Error string `json:"error"`
	}
	status, err := adminCall(ctx, cfg, http.MethodPost, "/api/replay", req, &out)
	switch {
	case errors.Is(err, errNoDaemon):
		return 0, false, nil
	case err != nil:
		return 0, true, err
	case status != http.StatusOK:
		return 0, true, fmt.Errorf("the running daemon refused the replay (%d): %s", status, out.Error)
	}
	fmt.Fprintln(stdout, "(through the running daemon, which delivers them at once)")
	return out.Replayed, true, nil
}
