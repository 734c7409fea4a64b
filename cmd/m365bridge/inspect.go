package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// runChannelsInspect is `m365bridge channels inspect CHANNEL`: what the
// channel's first sync would do (the seed's archive dialog, in a terminal):
// how many messages the folder holds, the oldest and newest, and how many
// would be imported as archived and as new under the channel's archive
// settings. It reads the mailbox with the channel's stored sign-in and
// writes nothing.
func runChannelsInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("channels inspect", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file`")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	name, err := parseChannelArg(fs, args, "channels inspect")
	if err != nil {
		return err
	}
	sc, err := openSyncChannel(ctx, *path, name, stderr)
	if err != nil {
		return err
	}
	defer sc.Close()
	in, err := mailsync.Inspect(ctx, sc.mailbox, sc.mailbox, sc.st.db, sc.ch, time.Now())
	if err != nil {
		return explainGraphErr(name, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	printInspection(stdout, in)
	return nil
}

// printInspection renders an Inspection for a terminal.
func printInspection(w io.Writer, in mailsync.Inspection) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "Channel:   %s (%s)\n", in.Channel, in.Mailbox)
	fmt.Fprintf(w, "Folder:    %s\n", in.Folder)
	fmt.Fprintf(w, "Messages:  %d\n", in.Messages)
	fmt.Fprintf(w, "Oldest:    %s\n", ts(in.Oldest))
	fmt.Fprintf(w, "Newest:    %s\n", ts(in.Newest))
	decided := "what the first sync would decide"
	if in.Recorded {
		decided = "recorded at the first sync"
	}
	mode := "off: every message is imported as new"
	if in.Decision.Mode == store.ArchiveDecidedOn {
		mode = "on, cut-off " + ts(in.Decision.Cutoff)
	}
	fmt.Fprintf(w, "Archive:   %s (archive.mode %s; %s)\n", mode, in.ArchiveSetting, decided)
	if in.Decision.Reason != "" {
		fmt.Fprintf(w, "           %s\n", in.Decision.Reason)
	}
	fmt.Fprintf(w, "Would import: %d archived (state %s, created at their original time, no automations), %d new (state new)\n",
		in.WouldArchive, in.ArchiveState, in.WouldNew)
	fmt.Fprintf(w, "Already in the ledger: %d\n", in.Imported)
	if in.Decision.Mode != store.ArchiveDecidedOn && in.Messages > 0 {
		fmt.Fprintln(w, "\nWarning: with archive mode off, old mail arrives as new tickets and senders may get auto-replies.")
	}
}

// parseChannelArg parses flags and the single CHANNEL argument.
func parseChannelArg(fs interface {
	Parse([]string) error
	NArg() int
	Arg(int) string
	Args() []string
}, args []string, cmd string) (string, error) {
	// Accept flags after the channel name too (`inspect support --json`).
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			if (a == "--config" || a == "-config") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	if err := fs.Parse(flags); err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError{fmt.Sprintf("%s takes exactly one CHANNEL argument, got %d", cmd, len(pos))}
	}
	return pos[0], nil
}

// syncChannel is one configured channel with its state and a Graph handle
// using the channel's stored sign-in.
type syncChannel struct {
	st      *authState
	ch      config.Channel
	mailbox *graph.MailboxClient
	tenant  string
}

func (s *syncChannel) Close() error { return s.st.Close() }

// openSyncChannel loads the configuration and state and prepares Graph
// access for channel name; the channel must be connected.
func openSyncChannel(ctx context.Context, path, name string, stderr io.Writer) (*syncChannel, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(cfg.Channels, func(c config.Channel) bool { return c.Name == name }) {
		return nil, fmt.Errorf("no channel %q in %s", name, path)
	}
	// A read must not create the state directory (and a new key): without
	// one, the channel was never connected.
	if err := stateExists(cfg.State, "state_dir of "+path); err != nil {
		return nil, fmt.Errorf("%w\nIf this is the daemon's configuration, channel %s was never connected: run `m365bridge auth %s` while the daemon runs", err, name, name)
	}
	st, err := openAuthState(ctx, path, stderr)
	if err != nil {
		return nil, err
	}
	var ch *config.Channel
	for i := range st.cfg.Channels {
		if st.cfg.Channels[i].Name == name {
			ch = &st.cfg.Channels[i]
		}
	}
	if ch == nil {
		st.Close()
		return nil, fmt.Errorf("no channel %q in %s", name, path)
	}
	cs, err := st.db.ChannelState(ctx, name)
	if err != nil {
		st.Close()
		return nil, err
	}
	if cs.State != store.ChannelActive {
		st.Close()
		return nil, fmt.Errorf("channel %s is %s, not connected: run `m365bridge auth %s` first", name, cs.State, name)
	}
	addr := ch.Mailbox.Address
	if addr == "" {
		addr = cs.Account.UPN
		ch.Mailbox.Address = addr
	}
	client := &graph.Client{BaseURL: st.cfg.MS.GraphURL, HTTP: &http.Client{}, Logger: cliLogger(stderr)}
	mb := client.Mailbox(graph.Mailbox{Shared: ch.Mailbox.Type == config.MailboxShared, Address: addr}, st.manager.Source(name))
	// Event ids are keyed by the configured tenant, as the daemon keys them
	// (bridge/wiring.go): the same message must get the same id from both.
	tenant := st.cfg.MS.Tenant
	return &syncChannel{st: st, ch: *ch, mailbox: mb, tenant: tenant}, nil
}

// explainGraphErr adds the operator guidance of a Graph error.
func explainGraphErr(channel string, err error) error {
	reason, fix := graph.Explain(err)
	if fix == "" {
		return fmt.Errorf("channel %s: %w", channel, err)
	}
	return fmt.Errorf("channel %s: %s\n  fix: %s", channel, reason, fix)
}
