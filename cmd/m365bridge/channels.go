package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// runChannels lists every channel's auth state: state, reason and fix,
// account, token expiry and last refresh. It never prints a token.
func runChannels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "inspect" {
		return runChannelsInspect(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("channels", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file`")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("channels: unexpected argument %q", fs.Arg(0))}
	}
	st, err := openAuthState(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	all, err := st.db.ChannelStates(ctx)
	if err != nil {
		return err
	}
	configured := map[string]bool{}
	for _, ch := range st.cfg.Channels {
		configured[ch.Name] = true
	}
	syncs, err := st.db.SyncStates(ctx)
	if err != nil {
		return err
	}
	bySync := map[string]store.SyncState{}
	for _, s := range syncs {
		bySync[s.Channel] = s
	}
	rows := []channelRow{}
	for _, c := range all {
		if configured[c.Name] {
			row := channelRow{ChannelStatus: c}
			if s, ok := bySync[c.Name]; ok {
				row.Sync = &s
			}
			rows = append(rows, row)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	printChannels(stdout, rows, time.Now())
	return nil
}

// channelRow is one channel: its sign-in state and, once it synced, its
// sync state (folder, archive decision, counts, last error).
type channelRow struct {
	store.ChannelStatus
	Sync *store.SyncState `json:"sync,omitempty"`
}

func printChannels(w io.Writer, rows []channelRow, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tSTATE\tMAILBOX\tACCOUNT\tTOKEN EXPIRES\tLAST REFRESH\tARCHIVE\tLAST SYNC\tIMPORTED")
	for _, c := range rows {
		archive, last, imported := "-", "-", "-"
		if s := c.Sync; s != nil {
			archive = archiveText(*s)
			last = when(s.LastSyncAt, now)
			imported = fmt.Sprintf("%d archived, %d new, %d rejected", s.Archived, s.New, s.Rejected)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.State, dash(c.MailboxAddress), dash(c.Account.UPN),
			when(c.TokenExpiry, now), when(c.LastRefresh, now), archive, last, imported)
	}
	tw.Flush()
	for _, c := range rows {
		if s := c.Sync; s != nil && s.ArchiveReason != "" {
			fmt.Fprintf(w, "\n%s: archive %s\n  decided: %s\n", c.Name, archiveText(*s), s.ArchiveReason)
		}
		if s := c.Sync; s != nil && s.ErrorReason != "" {
			fmt.Fprintf(w, "\n%s: sync error", c.Name)
			if s.ErrorCode != "" {
				fmt.Fprintf(w, " (%s)", s.ErrorCode)
			}
			fmt.Fprintf(w, "\n  reason: %s\n", s.ErrorReason)
			if s.ErrorFix != "" {
				fmt.Fprintf(w, "  fix: %s\n", s.ErrorFix)
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

// archiveText is the archive decision in force: on with its cut-off, off,
// or not decided yet (before the first sync).
func archiveText(s store.SyncState) string {
	switch {
	case s.ArchiveMode == "":
		return "undecided"
	case s.ArchiveCutoff.IsZero():
		return s.ArchiveMode
	default:
		return s.ArchiveMode + " before " + s.ArchiveCutoff.UTC().Format(time.RFC3339)
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
