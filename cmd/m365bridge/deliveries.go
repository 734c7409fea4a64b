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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/m365bridge/m365bridge/bridge/admin"
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

// openStore opens the state database named by --state-dir or --config. It
// never creates one: reading (or replaying in) a state directory that does
// not exist is an error that says where to point instead.
func (o *outboxFlags) openStore(ctx context.Context) (*store.DB, error) {
	dir, from := o.stateDir, "--state-dir"
	if dir == "" {
		cfg, err := config.Load(o.config)
		if err != nil {
			return nil, fmt.Errorf("load %s (or pass --state-dir): %w", o.config, err)
		}
		dir, from = cfg.State, "state_dir of "+o.config
	}
	return openExistingStore(ctx, dir, from)
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

// runDeliveries lists outbox rows: what is pending, what was delivered, and
// the dead letters (dead, rejected) an operator may replay.
func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "test" {
		return runDeliveriesTest(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("deliveries", stderr)
	var o outboxFlags
	o.register(fs, "pending,dead,rejected")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	limit := fs.Int("limit", 200, "show at most `N` rows (0: all)")
	pause := fs.String("pause", "", "pause deliveries to the `endpoint` (persisted; a running daemon stops within 30 s)")
	resume := fs.String("resume", "", "resume a paused or disabled (410 Gone) `endpoint`")
	if err := parseWebhookFlags(fs, args); err != nil {
		return err
	}
	f, err := o.filter(time.Now())
	if err != nil {
		return err
	}
	f.Limit = *limit
	// The store is opened only when no daemon answers (or --state-dir).
	var db *store.DB
	openDB := func() (*store.Outbox, error) {
		if db == nil {
			var err error
			if db, err = o.openStore(ctx); err != nil {
				return nil, err
			}
		}
		return db.Outbox(), nil
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	if err := changeEndpoints(ctx, stdout, o, *pause, *resume, openDB); err != nil {
		return err
	}
	var rows []deliver.Row
	var endpoints map[string]deliver.EndpointStatus
	viaDaemon := false
	if o.stateDir == "" {
		if cfg, err := config.Load(o.config); err == nil {
			if rows, endpoints, viaDaemon, err = deliveriesThroughDaemon(ctx, cfg, f); err != nil {
				return err
			}
		}
	}
	if !viaDaemon {
		q, err := openDB()
		if err != nil {
			return err
		}
		if rows, err = q.List(ctx, f); err != nil {
			return err
		}
		endpoints = map[string]deliver.EndpointStatus{}
		for _, r := range rows {
			if _, ok := endpoints[r.Endpoint]; !ok {
				if st, err := q.Endpoint(ctx, r.Endpoint); err == nil {
					endpoints[r.Endpoint] = st
				}
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			enc.Encode(admin.NewDeliveryView(r))
		}
		return nil
	}
	return printDeliveries(stdout, rows, endpoints, viaDaemon, o.states, f.Limit)
}

// changeEndpoints applies --pause and --resume: through the running daemon
// when one answers, else in the store.
func changeEndpoints(ctx context.Context, stdout io.Writer, o outboxFlags, pause, resume string, openDB func() (*store.Outbox, error)) error {
	for _, change := range []struct {
		name  string
		state deliver.EndpointState
		why   string
	}{{pause, deliver.EndpointPaused, "paused with m365bridge deliveries --pause"}, {resume, deliver.EndpointActive, "resumed with m365bridge deliveries --resume"}} {
		if change.name == "" {
			continue
		}
		if o.stateDir == "" && endpointThroughDaemon(ctx, o.config, change.name, change.state == deliver.EndpointPaused, change.why) {
			fmt.Fprintf(stdout, "endpoint %s is now %s (through the running daemon)\n\n", change.name, change.state)
			continue
		}
		q, err := openDB()
		if err != nil {
			return err
		}
		if err := q.SetEndpoint(ctx, change.name, change.state, change.why, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "endpoint %s is now %s; a running daemon follows within 30 s\n\n", change.name, change.state)
	}
	return nil
}

// printDeliveries is the table of `m365bridge deliveries`.
func printDeliveries(stdout io.Writer, rows []deliver.Row, endpoints map[string]deliver.EndpointStatus, viaDaemon bool, states string, limit int) error {
	if viaDaemon {
		fmt.Fprintf(stdout, "(from the running daemon)\n")
	}
	printEndpointStates(stdout, endpoints, rows)
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no deliveries in state %s\n", states)
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
	if limit > 0 && len(rows) == limit {
		fmt.Fprintf(stdout, "(first %d rows; use --limit 0 for all)\n", limit)
	}
	return nil
}

// printEndpointStates warns about paused or disabled endpoints among rows.
func printEndpointStates(w io.Writer, endpoints map[string]deliver.EndpointStatus, rows []deliver.Row) {
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Endpoint] {
			continue
		}
		seen[r.Endpoint] = true
		if st, ok := endpoints[r.Endpoint]; ok && st.State != deliver.EndpointActive && st.State != "" {
			fmt.Fprintf(w, "endpoint %s is %s since %s: %s\n\n", r.Endpoint, st.State, st.Since.UTC().Format(time.RFC3339), st.Reason)
		}
	}
}

// deliveriesThroughDaemon lists rows through a running daemon's admin API
// (GET /api/deliveries and /api/endpoints); ok is false when none answers.
// The API returns at most 1000 rows: --limit 0 gets that many.
func deliveriesThroughDaemon(ctx context.Context, cfg *config.Config, f deliver.Filter) (rows []deliver.Row, endpoints map[string]deliver.EndpointStatus, ok bool, err error) {
	v := url.Values{}
	var states []string
	for _, s := range f.States {
		states = append(states, string(s))
	}
	if len(states) > 0 {
		v.Set("state", strings.Join(states, ","))
	}
	for k, x := range map[string]string{"channel": f.Channel, "endpoint": f.Endpoint} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if len(f.IDs) > 0 {
		v.Set("id", strings.Join(f.IDs, ","))
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	v.Set("limit", fmt.Sprint(limit))
	var raw json.RawMessage
	status, err := adminCall(ctx, cfg, http.MethodGet, "/api/deliveries?"+v.Encode(), nil, &raw)
	switch {
	case errors.Is(err, errNoDaemon):
		return nil, nil, false, nil
	case err != nil:
		return nil, nil, true, err
	case status != http.StatusOK:
		var apiErr struct {
			Error string `json:"error"`
		}
		json.Unmarshal(raw, &apiErr)
		return nil, nil, true, fmt.Errorf("the running daemon refused the listing (%d): %s", status, apiErr.Error)
	}
	var views []admin.DeliveryView
	if err := json.Unmarshal(raw, &views); err != nil {
		return nil, nil, true, fmt.Errorf("GET /api/deliveries: %w", err)
	}
	for _, x := range views {
		rows = append(rows, x.Row())
	}
	var eps []struct {
		Name   string                `json:"name"`
		State  deliver.EndpointState `json:"state"`
		Reason string                `json:"reason"`
		Since  time.Time             `json:"since"`
	}
	endpoints = map[string]deliver.EndpointStatus{}
	if status, err := adminCall(ctx, cfg, http.MethodGet, "/api/endpoints", nil, &eps); err == nil && status == http.StatusOK {
		for _, e := range eps {
			endpoints[e.Name] = deliver.EndpointStatus{State: e.State, Reason: e.Reason, Since: e.Since}
		}
	}
	return rows, endpoints, true, nil
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
		in = admin.PauseRequest{Reason: why}
	}
	var out map[string]any
	status, err := adminCall(ctx, cfg, http.MethodPost, route, in, &out)
	return err == nil && status == http.StatusOK
}

// runDeliveriesTest asks the running daemon to send a webhook.test event to
// a webhook (POST /api/endpoints/{name}/test) and prints the receiver's
// answer; exit status 1 unless it was a 2xx.
func runDeliveriesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliveries test", stderr)
	path := fs.String("config", "bridge.yaml", "the configuration `file` (its admin.listen and admin.token reach the daemon)")
	from := fs.String("from", "", "a recipe webhook's synthetic mail comes from this `address` (default m365bridge-test@example.com)")
	archive := fs.Bool("archive", false, "a recipe webhook's synthetic mail is archived mail (mail.archived)")
	auto := fs.Bool("auto-submitted", false, "a recipe webhook's synthetic mail is an auto-reply")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"deliveries test: name exactly one WEBHOOK, e.g. m365bridge deliveries test helpdesk"}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	var out struct {
		admin.WebhookTestResult
		Error string `json:"error"`
	}
	q := url.Values{}
	if *from != "" {
		q.Set("from", *from)
	}
	if *archive {
		q.Set("archive", "1")
	}
	if *auto {
		q.Set("auto_submitted", "1")
	}
	target := "/api/endpoints/" + url.PathEscape(pos[0]) + "/test"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	status, err := adminCall(ctx, cfg, http.MethodPost, target, nil, &out)
	switch {
	case errors.Is(err, errNoDaemon):
		return fmt.Errorf("deliveries test sends through the running daemon, with the secrets and headers it loaded: %w", err)
	case err != nil:
		return err
	case status != http.StatusOK:
		return fmt.Errorf("the daemon refused the test (%d): %s", status, out.Error)
	}
	r := out.WebhookTestResult
	if r.Recipe {
		return printRecipeTest(stdout, stderr, r)
	}
	fmt.Fprintf(stdout, "webhook:  %s (%s, %s)\nevent:    webhook.test %s\n", r.Endpoint, r.URL, r.EndpointState, r.EventID)
	answer := "no response"
	if r.Status != 0 {
		answer = fmt.Sprintf("HTTP %d", r.Status)
	}
	fmt.Fprintf(stdout, "answer:   %s in %d ms (%s)\n", answer, r.DurationMS, r.Outcome)
	if r.Response != "" {
		fmt.Fprintf(stdout, "response: %s\n", r.Response)
	}
	if !r.OK {
		fmt.Fprintln(stderr, "the receiver did not accept the test event: fix the receiver (or the webhook's url, secret or headers) and try again")
		return exitError{code: 1}
	}
	return nil
}
