package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// runSync is `m365bridge sync CHANNEL`: one sync round for a channel. With
// --dry-run it prints the events the round would queue (a summary line
// each, or the events as JSON lines with --json) and changes nothing: no
// ledger, outbox, cursor or archive decision, no mailbox action. Without it
// the round queues its events in the outbox, which a running `serve`
// delivers, and prints what it did.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sync", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file`")
	dry := fs.Bool("dry-run", false, "print the events a sync would send; change nothing")
	asJSON := fs.Bool("json", false, "with --dry-run: print each event as one JSON line")
	name, err := parseChannelArg(fs, args, "sync")
	if err != nil {
		return err
	}
	if *asJSON && !*dry {
		return usageError{"sync: --json needs --dry-run"}
	}
	if !*dry {
		// With a daemon running, its runner does the round: two processes
		// would only race for the same pages.
		if cfg, err := config.Load(*path); err == nil {
			var out struct {
				Error string `json:"error"`
			}
			status, err := adminCall(ctx, cfg, http.MethodPost, "/api/channels/"+url.PathEscape(name)+"/sync", nil, &out)
			switch {
			case err == nil && status == http.StatusAccepted:
				fmt.Fprintf(stdout, "%s: the running daemon syncs it now (its log and `m365bridge channels` show the result)\n", name)
				return nil
			case err == nil:
				return fmt.Errorf("the running daemon refused (%d): %s", status, out.Error)
			case !errors.Is(err, errNoDaemon):
				return err
			}
		}
	}
	sc, err := openSyncChannel(ctx, *path, name, stderr)
	if err != nil {
		return err
	}
	defer sc.Close()
	r := mailsync.NewRunner(mailsync.RunnerConfig{
		Channel: sc.ch, Tenant: sc.tenant, DB: sc.st.db, Graph: sc.mailbox,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if !*dry {
		st, err := r.SyncOnce(ctx)
		if err != nil {
			return explainGraphErr(name, err)
		}
		fmt.Fprintf(stdout, "%s: queued %d events (%d archived, %d new), %d rejected, %d already known, %d post-import actions done\n",
			name, st.Queued, st.Archived, st.New, st.Rejected, st.Known, st.PostDone)
		return nil
	}
	enc := json.NewEncoder(stdout)
	st, err := r.DryRun(ctx, func(ev *mailsync.QueuedEvent, e store.LedgerEntry) error {
		if *asJSON {
			if ev == nil {
				return enc.Encode(map[string]string{"rejected": e.MessageID, "reason": e.Reason})
			}
			_, err := stdout.Write(append(ev.Body, '\n'))
			return err
		}
		printDryRunLine(stdout, ev, e)
		return nil
	})
	if err != nil {
		return explainGraphErr(name, err)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "dry run: %d events would be sent (%d archived, %d new), %d rejected, %d already imported; nothing was changed\n",
			st.Archived+st.New, st.Archived, st.New, st.Rejected, st.Known)
	}
	return nil
}

// printDryRunLine is one event of a dry run: type, state, received time,
// sender and subject, and the event id.
func printDryRunLine(w io.Writer, ev *mailsync.QueuedEvent, e store.LedgerEntry) {
	if ev == nil {
		fmt.Fprintf(w, "REJECTED  %s  %s: %s\n", e.ReceivedAt.UTC().Format(time.RFC3339), e.MessageID, e.Reason)
		return
	}
	var env struct {
		Data webhooks.MailData `json:"data"`
	}
	err := json.Unmarshal(ev.Body, &env)
	d := env.Data
	if err != nil {
		fmt.Fprintf(w, "%s  %s (undecodable event: %v)\n", ev.Type, ev.ID, err)
		return
	}
	subject := strings.ReplaceAll(d.Ticket.Title, "\n", " ")
	if len(subject) > 60 {
		subject = subject[:57] + "..."
	}
	fmt.Fprintf(w, "%-13s  %-6s  %s  %-30s  %-60s  %s\n", ev.Type, d.Ticket.State,
		d.Article.ReceivedAt.UTC().Format(time.RFC3339), d.Ticket.Customer.Address, subject, ev.ID)
}
