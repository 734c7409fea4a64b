package bridge

// The send worker: one per daemon. It takes due send requests from the
// store and sends them through the channel's mailbox, at most Concurrency
// at a time (the Graph client holds each mailbox to 4 requests in flight).
//
// Sending is not idempotent at Graph, so every attempt is committed as
// 'sending' before the call. A row found in 'sending' (after a crash, a lost
// answer or a 5xx) is only sent again once the mailbox's Sent Items show no
// message with its X-M365Bridge-Send-Id header: kill -9 between acceptance
// and the answer from Graph still yields exactly one mail.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// SendOptions tune the send worker; the zero value of each field selects
// its default.
type SendOptions struct {
	// Poll is how often the store is looked at without a wake-up (default 5s).
	Poll time.Duration
	// Schedule is the wait after an attempt Graph did not process (429 or
	// 503 after the client's own retries, a token refused), by attempt
	// number; the last entry repeats. Default 30s, 2m, 10m, 30m, 1h, 2h.
	Schedule []time.Duration
	// MaxAttempts ends retrying: the request fails (default 8).
	MaxAttempts int
	// MaxAge ends retrying, also while the channel is not connected
	// (default 24h after acceptance).
	MaxAge time.Duration
	// Recheck is how long after an attempt whose outcome is unknown the
	// mailbox's Sent Items are searched before sending again (default 2m:
	// Exchange can take a moment to file the copy).
	Recheck time.Duration
	// Concurrency is the number of requests sent at once (default 4).
	Concurrency int
	// Hook, if set, is called at "accepted" (row committed, before the 202),
	// "before-graph" (attempt committed) and "after-graph" (Graph answered,
	// outcome not yet stored), with the send id. Crash tests block there.
	Hook func(stage, sendID string)
}

func (o *SendOptions) defaults() {
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if len(o.Schedule) == 0 {
		o.Schedule = []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.Recheck <= 0 {
		o.Recheck = 2 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
}

// sentSearchSlack widens the Sent Items search before an attempt's start,
// for clock differences between this host and Exchange.
const sentSearchSlack = 5 * time.Minute

// sendWorker sends accepted requests; see the file comment.
type sendWorker struct {
	d    *Daemon
	opts SendOptions
	log  *slog.Logger
	wake chan struct{}

	mu       sync.Mutex
	inflight map[string]bool
}

func newSendWorker(d *Daemon, opts SendOptions) *sendWorker {
	opts.defaults()
	return &sendWorker{d: d, opts: opts, log: d.log.With("component", "send"),
		wake: make(chan struct{}, 1), inflight: map[string]bool{}}
}

// Wake makes the worker look for due requests now.
func (w *sendWorker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *sendWorker) hook(stage, id string) {
	if w.opts.Hook != nil {
		w.opts.Hook(stage, id)
	}
}

// run sends due requests until ctx ends, then waits for those in flight
// (their Graph calls end with ctx; the rows stay 'sending' and are checked
// against Sent Items after a restart).
func (w *sendWorker) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, w.opts.Concurrency)
	for {
		now := w.d.opts.Now()
		due, err := w.d.db.DueSends(ctx, now, 50)
		if err != nil && ctx.Err() == nil {
			w.log.Error("list due send requests", "err", err)
		}
		for _, s := range due {
			w.mu.Lock()
			busy := w.inflight[s.ID]
			if !busy {
				w.inflight[s.ID] = true
			}
			w.mu.Unlock()
			if busy {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func(s store.Send) {
				defer wg.Done()
				w.process(ctx, s)
				w.mu.Lock()
				delete(w.inflight, s.ID)
				w.mu.Unlock()
				<-slots
				w.Wake()
			}(s)
		}
		wait := w.opts.Poll
		if next, ok, err := w.d.db.NextSendDue(ctx); err == nil && ok {
			wait = min(wait, max(next.Sub(w.d.opts.Now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendJob is one request being processed.
type sendJob struct {
	row     store.Send
	req     SendRequest
	ch      config.Channel
	mailbox graph.Mailbox
	account store.Account
	// original is the ledger row of the message answered, if known, and
	// target its immutable id (what Graph's reply action needs).
	original *store.LedgerEntry
	target   string
	log      *slog.Logger
}

// process takes one due row one step further.
func (w *sendWorker) process(ctx context.Context, row store.Send) {
	now := w.d.opts.Now()
	j := &sendJob{row: row, log: w.log.With("channel", row.Channel, "send_id", row.ID)}
	ch, ok := w.d.channel(row.Channel)
	if !ok {
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "channel_removed",
			Reason: "the channel " + row.Channel + " is no longer in bridge.yaml", Fix: "add the channel back and send again"})
		return
	}
	j.ch = ch
	if err := json.Unmarshal(row.Request, &j.req); err != nil {
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "bad_request",
			Reason: "the stored request cannot be read: " + err.Error(), Fix: "send the request again"})
		return
	}
	expired := now.Sub(row.CreatedAt) > w.opts.MaxAge
	st, err := w.d.db.ChannelState(ctx, row.Channel)
	mb, connected := graphMailbox(ch, st.Account)
	if err != nil || !connected || st.Account.ObjectID == "" {
		if expired {
			w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "not_connected",
				Reason: fmt.Sprintf("the channel was not connected within %s of the request", w.opts.MaxAge),
				Fix:    "connect the channel (m365bridge auth " + ch.Name + ") and send again"})
			return
		}
		w.retry(ctx, j, row.State, now.Add(w.opts.Poll*6), "channel not connected")
		return
	}
	j.mailbox, j.account = mb, st.Account
	j.target = w.replyTarget(ctx, j)
	client := w.d.graph.Mailbox(mb, w.d.auth.Source(ch.Name))

	if row.State == store.SendSending {
		// The last attempt may have gone out: look before sending again.
		m, err := client.FindSent(ctx, SendIDHeader, row.ID, row.AttemptStartedAt.Add(-sentSearchSlack))
		switch {
		case err != nil && expired:
			w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "unverified",
				Reason: "an attempt's outcome is unknown and Sent Items could not be searched: " + err.Error(),
				Fix:    "look in the mailbox's Sent Items for the message before sending it again"})
			return
		case err != nil:
			w.retry(ctx, j, store.SendSending, now.Add(w.delay(row.Attempts)), "search Sent Items: "+err.Error())
			return
		case m != nil:
			j.log.Info("an earlier attempt was sent; not sending again", "internet_message_id", m.InternetMessageID)
			w.finish(ctx, j, store.SendOutcome{State: store.SendSent, InternetMessageID: m.InternetMessageID})
			return
		}
		j.log.Info("an earlier attempt is not in Sent Items; sending again", "attempts", row.Attempts)
	}
	if row.Attempts >= w.opts.MaxAttempts || expired {
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "retries_exhausted",
			Reason: fmt.Sprintf("gave up after %d attempts: %s", row.Attempts, row.LastError),
			Fix:    "check the channel on the status page and send again"})
		return
	}
	w.attempt(ctx, j, client)
}

// attempt commits one attempt, calls Graph and stores what came of it.
func (w *sendWorker) attempt(ctx context.Context, j *sendJob, client *graph.MailboxClient) {
	msg, err := j.req.outgoing(j.row.ID)
	if err != nil {
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "bad_request", Reason: err.Error(), Fix: "send the request again"})
		return
	}
	target := j.target
	var from *graph.Recipient
	if j.mailbox.Shared {
		from = &graph.Recipient{EmailAddress: graph.EmailAddress{Address: j.ch.Mailbox.Address}}
	}
	attempt, started := j.row.Attempts+1, w.d.opts.Now()
	method := "sendMail"
	if target != "" {
		method = "reply"
	}
	if err := w.d.db.MarkSending(context.WithoutCancel(ctx), j.row.ID, attempt, method, started, started.Add(w.opts.Recheck)); err != nil {
		j.log.Error("commit send attempt", "err", err)
		return
	}
	j.row.Attempts, j.row.State = attempt, store.SendSending
	w.hook("before-graph", j.row.ID)
	if target != "" {
		err = client.Reply(ctx, target, msg, from)
		if errors.Is(err, graph.ErrItemNotFound) {
			// The original is gone (deleted, or moved out of reach):
			// nothing was sent, so send it as a new message.
			j.log.Warn("the answered message no longer exists; sending without Graph threading", "message_id", target)
			target, method = "", "sendMail"
		}
	}
	if target == "" {
		msg.InternetMessageHeaders = append(msg.InternetMessageHeaders, j.req.plainThreadHeaders()...)
		err = client.SendMailFrom(ctx, msg, from, true)
	}
	w.hook("after-graph", j.row.ID)
	now := w.d.opts.Now()
	if err == nil {
		imid := ""
		if m, ferr := client.FindSent(ctx, SendIDHeader, j.row.ID, started.Add(-sentSearchSlack)); ferr == nil && m != nil {
			imid = m.InternetMessageID
		}
		j.log.Info("mail sent", "method", method, "attempt", attempt)
		w.finish(ctx, j, store.SendOutcome{State: store.SendSent, InternetMessageID: imid})
		return
	}
	switch classifySendError(err) {
	case sendNotProcessed:
		j.log.Warn("Graph did not process the send; retrying later", "attempt", attempt, "err", err)
		w.retry(ctx, j, store.SendQueued, now.Add(w.delay(attempt)), err.Error())
	case sendUncertain:
		j.log.Warn("the send's outcome is unknown; Sent Items are checked before any new attempt", "attempt", attempt, "err", err)
		w.retry(ctx, j, store.SendSending, started.Add(w.opts.Recheck), err.Error())
	default:
		code, reason, fix := sendGuidance(err, j.ch, j.account)
		j.log.Error("send failed", "code", code, "reason", reason, "fix", fix)
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: code, Reason: reason, Fix: fix, LastError: err.Error()})
	}
}

// replyTarget is the immutable id of the message answered, from the event
// id or else the In-Reply-To Message-ID, when the channel imported it.
func (w *sendWorker) replyTarget(ctx context.Context, j *sendJob) string {
	var e store.LedgerEntry
	var err error
	switch {
	case j.req.ReplyToEventID != "":
		e, err = w.d.db.LedgerByEventID(ctx, j.row.Channel, j.req.ReplyToEventID)
	case j.req.InReplyTo != "":
		e, err = w.d.db.LedgerByInternetMessageID(ctx, j.row.Channel, j.req.InReplyTo)
	default:
		return ""
	}
	if err != nil {
		if !errors.Is(err, store.ErrNoLedgerEntry) {
			j.log.Warn("look up the answered message", "err", err)
		}
		return ""
	}
	j.original = &e
	return e.MessageID
}

func (w *sendWorker) delay(attempt int) time.Duration {
	return w.opts.Schedule[min(max(attempt-1, 0), len(w.opts.Schedule)-1)]
}

func (w *sendWorker) retry(ctx context.Context, j *sendJob, state string, next time.Time, lastErr string) {
	if err := w.d.db.RetrySend(context.WithoutCancel(ctx), j.row.ID, state, next, lastErr); err != nil {
		j.log.Error("reschedule send", "err", err)
	}
}

// finish stores the outcome with its mail.sent or mail.send_failed event.
func (w *sendWorker) finish(ctx context.Context, j *sendJob, o store.SendOutcome) {
	ctx = context.WithoutCancel(ctx)
	var events []store.OutboxEvent
	if ev, ok, err := w.outcomeEvent(j, o); err != nil {
		j.log.Error("build send outcome event", "err", err)
	} else if ok {
		events = append(events, ev)
	}
	if err := w.d.db.FinishSend(ctx, j.row.ID, o, events...); err != nil {
		j.log.Error("store send outcome", "state", o.State, "err", err)
		return
	}
	if len(events) > 0 && w.d.disp != nil {
		w.d.disp.Wake()
	}
}

func (w *sendWorker) outcomeEvent(j *sendJob, o store.SendOutcome) (store.OutboxEvent, bool, error) {
	typ := webhooks.TypeMailSent
	if o.State == store.SendFailed {
		typ = webhooks.TypeMailSendFailed
	}
	if j.ch.Name == "" || j.ch.Webhook == "" {
		return store.OutboxEvent{}, false, nil
	}
	w.d.mu.Lock()
	eps := w.d.endpoints
	w.d.mu.Unlock()
	for _, ep := range eps {
		if ep.Name == j.ch.Webhook && !ep.Accepts(typ) {
			return store.OutboxEvent{}, false, nil
		}
	}
	addr := j.mailbox.Address
	if addr == "" {
		addr = j.ch.Mailbox.Address
	}
	data := webhooks.SendData{ID: webhooks.NewID("evt"), Version: webhooks.Version, Channel: j.ch.Name,
		Mailbox:   webhooks.Mailbox{Type: j.ch.Mailbox.Type, Address: addr},
		RequestID: j.row.ID, InternetMessageID: o.InternetMessageID, Subject: j.req.Subject,
		ReplyToEventID: j.req.ReplyToEventID, Attempts: j.row.Attempts, Code: o.Code, Reason: o.Reason, Fix: o.Fix}
	data.InReplyTo = j.req.InReplyTo
	if j.original != nil && j.original.InternetMessageID != "" {
		data.InReplyTo = j.original.InternetMessageID
	}
	for _, a := range j.req.To {
		data.To = append(data.To, webhooks.Address{Name: a.Name, Address: a.Address})
	}
	ev, err := webhooks.NewEvent(typ, w.d.opts.Now(), data)
	if err != nil {
		return store.OutboxEvent{}, false, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.OutboxEvent{}, false, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return store.OutboxEvent{EventID: data.ID, Endpoint: j.ch.Webhook, Channel: j.ch.Name, Type: typ, Body: body}, true, nil
}

// sendErrorKind is what an error from a send call means for the request.
type sendErrorKind int

const (
	// sendPermanent: Graph refused the message; retrying cannot help.
	sendPermanent sendErrorKind = iota
	// sendNotProcessed: Graph said it did not process the request (429,
	// 503, a refused token), or the token could not be had: send again.
	sendNotProcessed
	// sendUncertain: the mail may have gone out (a transport error, another
	// 5xx, the daemon stopping mid-call): search Sent Items first.
	sendUncertain
)

func classifySendError(err error) sendErrorKind {
	if errors.Is(err, entra.ErrReauthRequired) {
		return sendNotProcessed
	}
	var ge *graph.Error
	if !errors.As(err, &ge) {
		return sendUncertain
	}
	switch {
	case ge.Status == http.StatusTooManyRequests, ge.Status == http.StatusServiceUnavailable,
		ge.Status == http.StatusUnauthorized:
		return sendNotProcessed
	case ge.Status >= 500:
		return sendUncertain
	}
	return sendPermanent
}
