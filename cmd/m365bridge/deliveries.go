package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/m365bridge/m365bridge/bridge"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// outboxFlags are the flags deliveries and replay share: where the state is
// and which rows.
type outboxFlags struct {
	config, stateDir  string
	states            string
	channel, endpoint string
	ids               idListFlag
	since, until      string
}

// idListFlag collects a repeatable, comma-separated flag.
type idListFlag []string

func (l *idListFlag) String() string { return strings.Join(*l, ",") }
func (l *idListFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (o *outboxFlags) register(fs *flag.FlagSet, defaultStates string) {
	fs.StringVar(&o.config, "config", "bridge.yaml", "the configuration `file` (its state_dir holds the database)")
	fs.StringVar(&o.stateDir, "state-dir", "", "the state `directory`, instead of reading --config")
	fs.StringVar(&o.states, "state", defaultStates, "row `states`, comma separated: pending, delivered, dead, rejected")
	fs.StringVar(&o.channel, "channel", "", "only this `channel`")
	fs.StringVar(&o.endpoint, "endpoint", "", "only this webhook `endpoint`")
	fs.Var(&o.ids, "id", "only this event `id` (repeatable, or comma separated)")
	fs.StringVar(&o.since, "since", "", "only events enqueued at or after `T` (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	fs.StringVar(&o.until, "until", "", "only events enqueued before `T` (same forms as --since)")
}

// filter turns the flags into a deliver.Filter.
func (o *outboxFlags) filter(now time.Time) (deliver.Filter, error) {
	f := deliver.Filter{Channel: o.channel, Endpoint: o.endpoint, IDs: o.ids}
	for _, s := range strings.Split(o.states, ",") {
		switch st := deliver.State(strings.TrimSpace(s)); st {
		case "":
		case deliver.StatePending, deliver.StateDelivered, deliver.StateDead, deliver.StateRejected:
			f.States = append(f.States, st)
		default:
			return f, usageError{fmt.Sprintf("--state %q: want pending, delivered, dead or rejected", s)}
		}
	}
	var err error
	if f.Since, err = parseWhen(o.since, now); err != nil {
		return f, usageError{"--since: " + err.Error()}
	}
	if f.Until, err = parseWhen(o.until, now); err != nil {
		return f, usageError{"--until: " + err.Error()}
	}
	return f, nil
}

// parseWhen reads RFC 3339, a date (UTC midnight) or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-11-26T20:00:00Z), a date (2026-11-26) or a duration ago (24h)", s)
}

// openStore opens the state database named by --state-dir or --config.
func (o *outboxFlags) openStore(ctx context.Context) (*store.DB, error) {
	dir := o.stateDir
	if dir == "" {
		cfg, err := config.Load(o.config)
		if err != nil {
			return nil, fmt.Errorf("load %s (or pass --state-dir): %w", o.config, err)
		}
		dir = cfg.State
	}
	db, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return nil, fmt.Errorf("open state in %s: %w", dir, err)
	}
	return db, nil
}

func parseWebhookFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "m365bridge "), fs.Arg(0))}
	}
	return nil
}

// deliveryJSON is one row in --json output (the event body is left out).
type deliveryJSON struct {
	Seq           int64      `json:"seq"`
	EventID       string     `json:"event_id"`
	Endpoint      string     `json:"endpoint"`
	Channel       string     `json:"channel"`
	Type          string     `json:"type"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// runDeliveries lists outbox rows: what is pending, what was delivered, and
// the dead letters (dead, rejected) an operator may replay.
func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliveries", stderr)
	var o outboxFlags
	o.register(fs, "pending,dead,rejected")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	limit := fs.Int("limit", 200, "show at most `N` rows (0: all)")
	pause := fs.String("pause", "", "pause deliveries to the `endpoint` (persisted; a running daemon stops within 30 s)")
	resume := fs.String("resume", "", "resume a paused or disabled (410 Gone) `endpoint`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: m365bridge deliveries [--config FILE | --state-dir DIR] [--state S,…] [--channel C] [--endpoint E] [--id ID] [--since T] [--until T] [--json] [--pause E | --resume E]\n\nLists webhook outbox rows, oldest first: pending deliveries and dead letters by default.\n--pause and --resume change an endpoint's state first (--resume re-enables one disabled by 410 Gone).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseWebhookFlags(fs, args); err != nil {
		return err
	}
	f, err := o.filter(time.Now())
	if err != nil {
		return err
	}
	f.Limit = *limit
	db, err := o.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	q := db.Outbox()
	for _, change := range []struct {
		name  string
		state deliver.EndpointState
		why   string
	}{{*pause, deliver.EndpointPaused, "paused with m365bridge deliveries --pause"}, {*resume, deliver.EndpointActive, "resumed with m365bridge deliveries --resume"}} {
		if change.name == "" {
			continue
		}
		if o.stateDir == "" && endpointThroughDaemon(ctx, o.config, change.name, change.state == deliver.EndpointPaused, change.why) {
			fmt.Fprintf(stdout, "endpoint %s is now %s (through the running daemon)\n\n", change.name, change.state)
			continue
		}
		if err := q.SetEndpoint(ctx, change.name, change.state, change.why, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "endpoint %s is now %s; a running daemon follows within 30 s\n\n", change.name, change.state)
	}
	rows, err := q.List(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			enc.Encode(deliveryJSON{
				Seq: r.Seq, EventID: r.EventID, Endpoint: r.Endpoint, Channel: r.Channel, Type: r.Type, State: string(r.State),
				Attempts: r.Attempts, CreatedAt: r.CreatedAt, LastStatus: r.LastStatus, LastError: deliver.RedactText(r.LastError),
				NextAttemptAt: timePtr(pendingOnly(r)), LastAttemptAt: timePtr(r.LastAttemptAt), DeliveredAt: timePtr(r.DeliveredAt),
			})
		}
		return nil
	}
	printEndpointStates(ctx, stdout, q, rows)
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no deliveries in state %s\n", o.states)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTATE\tENDPOINT\tCHANNEL\tTYPE\tEVENT ID\tATTEMPTS\tSTATUS\tWHEN\tLAST ERROR")
	for _, r := range rows {
		when := "enqueued " + r.CreatedAt.UTC().Format(time.RFC3339)
		switch {
		case r.State == deliver.StatePending && r.Attempts > 0:
			when = "next " + r.NextAttemptAt.UTC().Format(time.RFC3339)
		case r.State == deliver.StateDelivered:
			when = "delivered " + r.DeliveredAt.UTC().Format(time.RFC3339)
		case r.State == deliver.StateDead || r.State == deliver.StateRejected:
			when = "last try " + r.LastAttemptAt.UTC().Format(time.RFC3339)
		}
		status := "-"
		if r.LastStatus != 0 {
			status = fmt.Sprint(r.LastStatus)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Seq, r.State, r.Endpoint, orDash(r.Channel), r.Type, r.EventID,
			r.Attempts, status, when, squeezeLine(deliver.RedactText(r.LastError), 80))
	}
	tw.Flush()
	if f.Limit > 0 && len(rows) == f.Limit {
		fmt.Fprintf(stdout, "(first %d rows; use --limit 0 for all)\n", f.Limit)
	}
	return nil
}

func pendingOnly(r deliver.Row) time.Time {
	if r.State != deliver.StatePending {
		return time.Time{}
	}
	return r.NextAttemptAt
}

// printEndpointStates warns about paused or disabled endpoints among rows.
func printEndpointStates(ctx context.Context, w io.Writer, q *store.Outbox, rows []deliver.Row) {
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Endpoint] {
			continue
		}
		seen[r.Endpoint] = true
		if st, err := q.Endpoint(ctx, r.Endpoint); err == nil && st.State != deliver.EndpointActive {
			fmt.Fprintf(w, "endpoint %s is %s since %s: %s\n\n", r.Endpoint, st.State, st.Since.UTC().Format(time.RFC3339), st.Reason)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func squeezeLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// endpointThroughDaemon pauses or resumes an endpoint through a running
// daemon's admin API, which acts at once; false when no daemon took it.
func endpointThroughDaemon(ctx context.Context, path, name string, pause bool, why string) bool {
	cfg, err := config.Load(path)
	if err != nil {
		return false
	}
	route := "/api/endpoints/" + url.PathEscape(name) + "/resume"
	var in any
	if pause {
		route = "/api/endpoints/" + url.PathEscape(name) + "/pause"
		in = bridge.PauseRequest{Reason: why}
	}
	var out map[string]any
	status, err := adminCall(ctx, cfg, http.MethodPost, route, in, &out)
	return err == nil && status == http.StatusOK
}
