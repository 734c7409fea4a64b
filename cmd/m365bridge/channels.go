package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
)

// runChannels lists every channel: sign-in state, reason and fix, account,
// token expiry, archive decision, counts and last sync. It asks the running
// daemon when there is one, else reads the state directory (never creating
// it). It never prints a token.
func runChannels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "inspect" {
		return runChannelsInspect(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("channels", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file` (its admin.listen finds a running daemon; else its state_dir is read)")
	stateDir := fs.String("state-dir", "", "read this state `directory` instead (no configuration needed)")
	asJSON := fs.Bool("json", false, "print JSON (the same as GET /api/channels)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("channels: unexpected argument %q", fs.Arg(0))}
	}
	rows, source, err := loadChannels(ctx, *path, *stateDir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	fmt.Fprintf(stdout, "(%s)\n", source)
	printChannels(stdout, rows, time.Now())
	return nil
}

// loadChannels reads the channels from the running daemon (GET
// /api/channels) or, when none answers or --state-dir is given, from the
// state directory. source says which, for the operator.
func loadChannels(ctx context.Context, path, stateDir string) ([]mailsync.ChannelInfo, string, error) {
	if stateDir != "" {
		db, err := openExistingStore(ctx, stateDir, "--state-dir")
		if err != nil {
			return nil, "", err
		}
		defer db.Close()
		rows, err := mailsync.ChannelInfos(ctx, db, nil, nil)
		return rows, "from the state directory " + stateDir, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, "", fmt.Errorf("%w\n(or pass --state-dir DIR to read a state directory without a configuration)", err)
	}
	var rows []mailsync.ChannelInfo
	status, err := adminCall(ctx, cfg, http.MethodGet, "/api/channels", nil, &rows)
	switch {
	case err == nil && status == http.StatusOK:
		return rows, "from the running daemon on " + cfg.Admin.Listen, nil
	case err == nil:
		return nil, "", fmt.Errorf("the daemon on admin.listen %s answered %d to GET /api/channels (is admin.token the daemon's?)", cfg.Admin.Listen, status)
	case !errors.Is(err, errNoDaemon):
		return nil, "", err
	}
	db, err := openExistingStore(ctx, cfg.State, "state_dir of "+path)
	if err != nil {
		return nil, "", fmt.Errorf("no daemon answered on admin.listen %s, and %w", cfg.Admin.Listen, err)
	}
	defer db.Close()
	names := make([]string, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		names = append(names, ch.Name)
	}
	rows, err = mailsync.ChannelInfos(ctx, db, names, nil)
	return rows, "no daemon on " + cfg.Admin.Listen + "; from the state directory " + cfg.State, err
}

func printChannels(w io.Writer, rows []mailsync.ChannelInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tSTATE\tMAILBOX\tACCOUNT\tTOKEN EXPIRES\tARCHIVE\tLAST SYNC\tIMPORTED\tAFTER IMPORT DONE")
	for _, c := range rows {
		m := c.Messages
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Name, c.State, dash(c.MailboxAddress), dash(c.Account.UPN),
			when(c.TokenExpiry, now), c.Archive.Short(), when(c.LastSyncAt, now),
			fmt.Sprintf("%d = %d archived + %d new + %d rejected", m.Imported, m.Archived, m.New, m.Rejected), m.PostDone)
	}
	tw.Flush()
	for _, c := range rows {
		if c.Archive.Reason != "" {
			fmt.Fprintf(w, "\n%s: archive %s\n  decided %s: %s\n", c.Name, c.Archive, when(c.Archive.DecidedAt, now), c.Archive.Reason)
		}
		if e := c.SyncError; e != nil {
			fmt.Fprintf(w, "\n%s: sync error", c.Name)
			if e.Code != "" {
				fmt.Fprintf(w, " (%s)", e.Code)
			}
			fmt.Fprintf(w, "\n  reason: %s\n", e.Reason)
			if e.Fix != "" {
				fmt.Fprintf(w, "  fix: %s\n", e.Fix)
			}
		}
		switch c.State {
		case store.ChannelNeedsConsent:
			fmt.Fprintf(w, "\n%s: not connected.\n  fix: m365bridge auth %s\n", c.Name, c.Name)
		case store.ChannelReauthRequired, store.ChannelError:
			fmt.Fprintf(w, "\n%s: %s", c.Name, c.State)
			if c.Code != "" {
				fmt.Fprintf(w, " (%s)", c.Code)
			}
			fmt.Fprintf(w, "\n  reason: %s\n", dash(c.Reason))
			if c.Fix != "" {
				fmt.Fprintf(w, "  fix: %s\n", c.Fix)
			}
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.UTC().Format("2006-01-02 15:04Z")
	if d := t.Sub(now).Round(time.Minute); d > 0 {
		s += " (in " + d.String() + ")"
	}
	return s
}
