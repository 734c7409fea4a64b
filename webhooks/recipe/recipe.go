// Package recipe delivers events into a helpdesk's own REST API: a recipe
// is an ordered list of templated HTTP steps (look up what an earlier run
// created, then create a ticket or add a reply, then follow-ups), each
// step's answer classified like a webhook delivery (2xx, retry with
// Retry-After, permanent). A Recipe is a deliver.Runner: the dispatcher
// runs it in place of one signed POST, and the event counts as delivered
// when its last applicable step succeeded.
//
// At-least-once without duplicates: a run may be cut anywhere (a crash, a
// lost answer) and is then run again from the first step. A recipe must
// therefore start with lookups that find what an interrupted run created
// (by the Message-ID or a marker the create step stored in the helpdesk)
// and guard its create and reply steps with when: {unset: [...]} on what
// the lookups found. The shipped recipes (webhooks/recipes/*.yaml) do.
//
// Ticket mapping: before the first step the recipe asks its TicketMap for
// the ticket of the mail (its own Message-ID, In-Reply-To, References,
// then the Graph conversation) into the variable ticket_id, and the
// configured subject pattern's capture into subject_ref. As soon as a step
// sets ticket_id, the mail's Message-ID is recorded against it, so replies
// thread and a re-run knows the ticket.
package recipe

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Options configures a Recipe. Zero fields take defaults.
type Options struct {
	// Tickets is the ticket map; nil: replies are threaded by lookup steps
	// only.
	Tickets deliver.TicketMap
	// HTTPClient sends the steps' requests and fetches attachment links;
	// redirects are never followed.
	HTTPClient *http.Client
	Logger     *slog.Logger
	UserAgent  string
	Now        func() time.Time
	// RetryAfterCap bounds an honoured Retry-After (default 1 h).
	RetryAfterCap time.Duration
	// MaxFetchBytes bounds an attachment fetched through its link
	// (default webhooks.MaxEventBytes).
	MaxFetchBytes int64
	// MaxAnswerBytes bounds the part of an answer read for extraction
	// (default 16 MiB).
	MaxAnswerBytes int64
	// AfterStep, when set, is called after each request step's success
	// and before its variables are recorded; an error ends the run as a
	// transient failure (tests use it to cut a run where a crash would).
	AfterStep func(step string) error
}

// Recipe is a compiled config.Recipe for one webhook.
type Recipe struct {
	webhook  string
	base     string
	when     config.RecipeWhen
	subject  *regexp.Regexp
	steps    []step
	opts     Options
	client   *http.Client
	log      *slog.Logger
	maxFetch int64

	retention time.Duration
	pruneMu   sync.Mutex
	pruned    time.Time // when the ticket map was last pruned
}

// pruneEvery is how often a recipe drops ticket map entries older than
// its retention (from a delivery, with the recipe's clock).
const pruneEvery = time.Hour

type step struct {
	config.RecipeStep
	url, body *template.Template
	headers   map[string]*template.Template
	equals    map[string]*template.Template
}

var _ deliver.Runner = (*Recipe)(nil)

// New compiles w's recipe (w.Recipe must be set); w.URL is the base of
// relative step URLs. Run config.Validate first: New reports the first
// problem only.
func New(w config.Webhook, opts Options) (*Recipe, error) {
	if w.Recipe == nil {
		return nil, fmt.Errorf("webhook %s has no recipe", w.Name)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "m365bridge"
	}
	if opts.MaxFetchBytes <= 0 {
		opts.MaxFetchBytes = webhooks.MaxEventBytes
	}
	if opts.MaxAnswerBytes <= 0 {
		opts.MaxAnswerBytes = 16 << 20
	}
	hc := &http.Client{}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := &Recipe{
		webhook: w.Name, base: w.URL, when: w.Recipe.When, opts: opts, client: hc,
		log: opts.Logger.With("component", "recipe", "endpoint", w.Name), maxFetch: opts.MaxFetchBytes,
		retention: cmp.Or(w.Recipe.TicketMapRetention, config.DefaultTicketMapRetention),
	}
	if p := w.Recipe.SubjectPattern; p != "" {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: subject_pattern: %w", w.Name, err)
		}
		r.subject = re
	}
	parse := func(name, text string) (*template.Template, error) {
		if text == "" {
			return nil, nil
		}
		t, err := template.New(name).Option("missingkey=zero").Funcs(stubFuncs()).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
		}
		return t, nil
	}
	for _, cs := range w.Recipe.Steps {
		s := step{RecipeStep: cs, headers: map[string]*template.Template{}, equals: map[string]*template.Template{}}
		var err error
		if s.url, err = parse(cs.Name+".url", cs.URL); err != nil {
			return nil, err
		}
		if s.body, err = parse(cs.Name+".body", cs.Body); err != nil {
			return nil, err
		}
		for k, v := range cs.Headers {
			if s.headers[k], err = parse(cs.Name+".headers."+k, v); err != nil {
				return nil, err
			}
		}
		for k, m := range cs.Match {
			if s.equals[k], err = parse(cs.Name+".match."+k, cmp.Or(m.Equals, m.Contains)); err != nil {
				return nil, err
			}
		}
		r.steps = append(r.steps, s)
	}
	return r, nil
}

// data is what a step's templates see: the event like a webhook template
// (.ID, .Type, .Timestamp, .Data, .Event), the variables so far (.Vars)
// and, in a for_each step, the attachment (.Item) and its index (.Index).
type data struct {
	ID        string
	Type      string
	Timestamp time.Time
	Data      map[string]any
	Event     string
	Vars      map[string]any
	Item      map[string]any
	Index     int
}

// run is one Run's state.
type run struct {
	r        *Recipe
	ctx      context.Context
	ep       deliver.Endpoint
	row      deliver.Row
	d        data
	mail     *webhooks.MailData
	recorded string // the ticket id recorded for the mail's Message-ID
	log      []string
}

// Run delivers row: it resolves the mail's ticket, then runs every step
// whose filter matches, in order. The row is delivered when the last of
// them succeeded and at least one wrote to the helpdesk (a request other
// than GET) or a skip step said why nothing is written; an event that no
// writing step takes is rejected with what to add, never acknowledged
// silently. It implements deliver.Runner.
func (r *Recipe) Run(ctx context.Context, ep deliver.Endpoint, row deliver.Row, attempt int) deliver.Result {
	var env struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(row.Body, &env); err != nil {
		return permanent(fmt.Errorf("decode event: %w", err))
	}
	r.prune(ctx)
	ru := &run{r: r, ctx: ctx, ep: ep.WithDefaults(), row: row}
	id, _ := env.Data["id"].(string)
	ru.d = data{ID: id, Type: env.Type, Timestamp: env.Timestamp, Data: env.Data, Event: string(row.Body), Vars: map[string]any{}}
	if env.Type == webhooks.TypeMailReceived || env.Type == webhooks.TypeMailArchived {
		var md webhooks.MailData
		if err := decodeData(row.Body, &md); err != nil {
			return permanent(fmt.Errorf("decode mail event: %w", err))
		}
		ru.mail = &md
	}
	f := factsOf(env.Type, ru.mail)
	if !match(r.when, f, nil) {
		return ru.done(0, "not for this recipe (recipe.when): acknowledged without a request")
	}
	if res, ok := ru.resolve(); !ok {
		return res
	}
	ran := false
	status := 0
	for _, s := range r.steps {
		if !match(s.When, f, ru.d.Vars) {
			continue
		}
		if s.Skip != "" {
			// A skip after a lookup found the mail stored (a re-run after
			// a crash) still records its ticket, which may have come from
			// the map (a reply's parent) rather than from a step.
			if res, ok := ru.record(); !ok {
				return res
			}
			return ru.done(status, "step "+s.Name+": "+s.Skip)
		}
		res, ok := ru.step(s)
		if !ok {
			return res
		}
		// Only a request that writes counts as delivering: a recipe that
		// merely looked something up has not put the mail anywhere.
		ran = ran || s.Method != http.MethodGet
		status = res.Status
	}
	if !ran {
		return permanent(fmt.Errorf("no step of the recipe applies to this %s event (archive=%t, auto_submitted=%t, ticket known=%t): add a step or a skip for it, then replay it",
			env.Type, f.archive, f.autoSubmitted, !empty(ru.d.Vars["ticket_id"])))
	}
	if res, ok := ru.record(); !ok {
		return res
	}
	return ru.done(status, "")
}

// prune drops the ticket map's entries older than the retention, at most
// once per pruneEvery. A failure is logged and retried an interval later;
// it never fails a delivery.
func (r *Recipe) prune(ctx context.Context) {
	if r.opts.Tickets == nil {
		return
	}
	r.pruneMu.Lock()
	defer r.pruneMu.Unlock()
	now := r.opts.Now()
	if !r.pruned.IsZero() && now.Sub(r.pruned) < pruneEvery {
		return
	}
	r.pruned = now
	n, err := r.opts.Tickets.ForgetTickets(ctx, r.webhook, now.Add(-r.retention))
	switch {
	case err != nil && ctx.Err() == nil:
		r.log.Warn("prune the ticket map", "err", err)
	case n > 0:
		r.log.Info("ticket map pruned", "forgotten", n, "retention", r.retention)
	}
}

// decodeData decodes an envelope's data into v.
func decodeData(body []byte, v any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	return json.Unmarshal(env.Data, v)
}

// resolve sets ticket_id from the ticket map and subject_ref from the
// subject.
func (ru *run) resolve() (deliver.Result, bool) {
	md := ru.mail
	if md == nil {
		return deliver.Result{}, true
	}
	a := md.Article
	if p := a.InReplyTo; p != "" {
		ru.d.Vars["parent_message_id"] = p
	} else if n := len(a.References); n > 0 {
		ru.d.Vars["parent_message_id"] = a.References[n-1]
	}
	if ru.r.subject != nil {
		if m := ru.r.subject.FindStringSubmatch(a.Subject); len(m) > 1 {
			ru.d.Vars["subject_ref"] = m[1]
		}
	}
	if ru.r.opts.Tickets == nil {
		return deliver.Result{}, true
	}
	ids := []string{a.InternetMessageID, a.InReplyTo}
	for i := len(a.References) - 1; i >= 0; i-- { // nearest ancestor last in References
		ids = append(ids, a.References[i])
	}
	tid, err := ru.r.opts.Tickets.FindTicket(ru.ctx, ru.r.webhook, md.Channel, ids, a.ConversationID)
	if err != nil {
		return transient(fmt.Errorf("read the ticket map: %w", err)), false
	}
	if tid != "" {
		ru.d.Vars["ticket_id"] = tid
		ru.log = append(ru.log, "ticket "+tid+" from the ticket map")
	}
	return deliver.Result{}, true
}

// record stores the mail's ticket once known.
func (ru *run) record() (deliver.Result, bool) {
	tid, _ := ru.d.Vars["ticket_id"].(string)
	md := ru.mail
	if ru.r.opts.Tickets == nil || md == nil || tid == "" || tid == ru.recorded || md.Article.InternetMessageID == "" {
		return deliver.Result{}, true
	}
	err := ru.r.opts.Tickets.RecordTicket(ru.ctx, deliver.TicketLink{
		Webhook: ru.r.webhook, Channel: md.Channel, MessageID: md.Article.InternetMessageID,
		ConversationID: md.Article.ConversationID, TicketID: tid, EventID: md.ID, RecordedAt: ru.r.opts.Now(),
	})
	if err != nil {
		return transient(fmt.Errorf("record the ticket map: %w", err)), false
	}
	ru.recorded = tid
	return deliver.Result{}, true
}

// done ends the run as delivered; note (when not empty) is recorded as the
// row's excerpt.
func (ru *run) done(status int, note string) deliver.Result {
	parts := ru.log
	if tid, _ := ru.d.Vars["ticket_id"].(string); tid != "" {
		parts = append(parts, "ticket "+tid)
	}
	if note != "" {
		parts = append(parts, note)
	}
	return deliver.Result{Outcome: deliver.Delivered, Status: status, Excerpt: deliver.RedactText(clip(strings.Join(parts, "; ")))}
}

func resolveURL(base, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("empty url")
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	if u.IsAbs() {
		return ref, nil
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(ref, "/"), nil
}

func permanent(err error) deliver.Result {
	return deliver.Result{Outcome: deliver.Permanent, Excerpt: deliver.RedactText(clip(err.Error())), Err: err}
}

func transient(err error) deliver.Result {
	return deliver.Result{Outcome: deliver.Transient, Excerpt: deliver.RedactText(clip(err.Error())), Err: err}
}

func clip(s string) string {
	if len(s) <= deliver.ExcerptBytes {
		return s
	}
	return strings.ToValidUTF8(s[:deliver.ExcerptBytes], "") + "…"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
