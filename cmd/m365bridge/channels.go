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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: m365bridge channels [--config FILE] [--json]\n       m365bridge channels inspect [--config FILE] CHANNEL\n\nLists each channel's connection state, the account it uses and what to do when it needs attention.\n`inspect` shows what a first sync of CHANNEL would do: message count, oldest and newest, archived vs new.\n\nFlags:")
		fs.PrintDefaults()
	}
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
	var rows []store.ChannelStatus
	for _, c := range all {
		if configured[c.Name] {
			rows = append(rows, c)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []store.ChannelStatus{}
		}
		return enc.Encode(rows)
	}
	printChannels(stdout, rows, time.Now())
	return nil
}

func printChannels(w io.Writer, rows []store.ChannelStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tSTATE\tMAILBOX\tACCOUNT\tTOKEN EXPIRES\tLAST REFRESH")
	for _, c := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.State, dash(c.MailboxAddress), dash(c.Account.UPN),
			when(c.TokenExpiry, now), when(c.LastRefresh, now))
	}
	tw.Flush()
	for _, c := range rows {
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
