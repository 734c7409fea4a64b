package send

// The send worker: one per daemon. It takes due send requests from the
// store and sends them through the channel's mailbox, at most Concurrency
// at a time (the Graph client holds each mailbox to 4 requests in flight).
//
// Sending is not idempotent at Graph, so every attempt is committed before
// any call. An attempt creates a draft tagged with the send id in a MAPI
// named property (PropertyID), attaches the files (upload sessions for
// large ones), records that the draft is complete, and sends the draft by
// id. Any later attempt first looks for the tag: in Sent Items, the mail
// went out (done); in Drafts, complete, it was not sent (send that draft);
// in Drafts, unfinished, it is deleted and built again; nowhere although it
// was complete, Exchange took it and has not filed the copy yet, so the
// worker waits (Filing) and never sends again. Internet headers cannot
// serve: Exchange keeps none on the Sent Items copy. kill -9 anywhere
// between acceptance and Graph's answer still yields exactly one mail.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// sendWorker sends accepted requests; see the file comment.
type sendWorker struct {
	s    *Service
	opts Options
	log  *slog.Logger
	wake chan struct{}

	mu       sync.Mutex
	inflight map[string]bool
}

func newSendWorker(s *Service, opts Options) *sendWorker {
	opts.defaults()
	return &sendWorker{s: s, opts: opts, log: s.log,
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
		now := w.s.now()
		due, err := w.s.db.DueSends(ctx, now, 50)
		if err != nil && ctx.Err() == nil {
			w.log.Error("list due send requests", "err", err)
		}
		skipped := false
		for _, s := range due {
			jctx := ctx
			if w.s.owner != nil {
				var mine bool
				if jctx, mine = w.s.owner(ctx, s.Channel); !mine {
					skipped = true // another daemon owns the channel, and sends its requests
					continue
				}
			}
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
				w.process(jctx, s)
				w.mu.Lock()
				delete(w.inflight, s.ID)
				w.mu.Unlock()
				<-slots
				w.Wake()
			}(s)
		}
		wait := w.opts.Poll
		// A due row left to its channel's owner is due still: poll, not spin.
		if next, ok, err := w.s.db.NextSendDue(ctx); err == nil && ok && !(skipped && !next.After(now)) {
			wait = min(wait, max(next.Sub(w.s.now()), 10*time.Millisecond))
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
	req     Request
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
	now := w.s.now()
	j := &sendJob{row: row, log: w.log.With("channel", row.Channel, "send_id", row.ID)}
	ch, ok := w.s.channel(row.Channel)
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
	st, err := w.s.db.ChannelState(ctx, row.Channel)
	var mb graph.Mailbox
	var client *graph.MailboxClient
	connected := false
	if err == nil {
		mb, client, connected = w.s.mailbox(ch, st.Account)
	}
	if !connected {
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

	draftID := ""
	if row.Attempts > 0 {
		var done bool
		if draftID, done = w.resume(ctx, j, client, now, expired); done {
			return
		}
	}
	if row.Attempts >= w.opts.MaxAttempts || expired {
		if draftID != "" {
			// The request fails: its unsent draft must not be sent later
			// by someone who finds it in Drafts.
			if err := client.DeleteDraft(ctx, draftID); err != nil {
				j.log.Warn("delete the failed request's draft", "err", err)
			}
		}
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "retries_exhausted",
			Reason: fmt.Sprintf("gave up after %d attempts: %s", row.Attempts, row.LastError),
			Fix:    "check the channel on the status page and send again"})
		return
	}
	w.attempt(ctx, j, client, draftID)
}

// resume looks for what an earlier attempt left (DESIGN.md invariant 10):
// a sent copy ends the request, a complete draft is sent as it is, an
// unfinished one is deleted, a draft that left Drafts without a Sent Items
// copy is awaited and never sent again. done means the request was
// finished or rescheduled; otherwise draftID, when set, is the draft to
// send.
func (w *sendWorker) resume(ctx context.Context, j *sendJob, client *graph.MailboxClient, now time.Time, expired bool) (draftID string, done bool) {
	// An earlier attempt may have sent the mail, or left a draft: look
	// by the send property (Exchange keeps it; it keeps no internet
	// headers on the Sent Items copy) before anything is sent again.
	found, where, err := w.lookup(ctx, client, j.row.ID)
	switch {
	case err != nil && expired:
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "unverified",
			Reason: "an earlier attempt's outcome is unknown and the mailbox could not be searched: " + err.Error(),
			Fix:    "look in the mailbox's Sent Items for the message before sending it again"})
		return "", true
	case err != nil:
		w.retry(ctx, j, j.row.State, now.Add(w.delay(j.row.Attempts)), "search Sent Items and Drafts: "+err.Error())
		return "", true
	case where == "sentitems":
		j.log.Info("an earlier attempt was sent; not sending again", "internet_message_id", found.InternetMessageID)
		w.finish(ctx, j, store.SendOutcome{State: store.SendSent, InternetMessageID: found.InternetMessageID})
		return "", true
	case where == "drafts" && j.row.Method == methodSend:
		// Complete, and still a draft: Exchange did not take it.
		draftID = found.ID
		j.log.Info("an earlier attempt's draft was not sent; sending it", "attempts", j.row.Attempts)
	case where == "drafts":
		// The attempt stopped while building the draft: it may lack an
		// attachment. It was never sent; start again from a new one.
		if err := client.DeleteDraft(ctx, found.ID); err != nil {
			w.retry(ctx, j, j.row.State, now.Add(w.delay(j.row.Attempts)), "delete an unfinished draft: "+err.Error())
			return "", true
		}
	case j.row.Method == methodSend:
		// The complete draft left Drafts and no copy is in Sent Items
		// yet: Exchange took it and files the copy later. Wait for it;
		// never send again.
		if now.Before(j.row.AttemptStartedAt.Add(w.opts.Filing)) {
			j.log.Info("the draft was sent; waiting for its Sent Items copy", "attempts", j.row.Attempts)
			w.retry(ctx, j, store.SendSending, now.Add(w.opts.Recheck), "sent; waiting for the Sent Items copy")
			w.hook("await-filing", j.row.ID)
			return "", true
		}
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "unverified",
			Reason: fmt.Sprintf("the draft left Drafts (so Exchange most likely sent it) but no copy reached Sent Items within %s", w.opts.Filing),
			Fix:    "look in the mailbox's Sent Items (and Outbox) before sending the message again"})
		return "", true
	default:
		j.log.Info("an earlier attempt left no draft and no sent mail; sending again", "attempts", j.row.Attempts)
	}
	return draftID, false
}

// Send methods stored with an attempt (store.Send.Method): the draft is
// being built, or it is complete and its send was (or is about to be)
// called.
const (
	methodDraft = "draft"
	methodSend  = "send"
)

// lookup finds the message tagged with the send id: in Sent Items (sent),
// else in Drafts (not sent). where is "sentitems", "drafts" or "".
func (w *sendWorker) lookup(ctx context.Context, client *graph.MailboxClient, id string) (*graph.Draft, string, error) {
	for _, folder := range []string{"sentitems", "drafts"} {
		m, err := client.FindByProperty(ctx, folder, PropertyID, id)
		if err != nil || m != nil {
			return m, folder, err
		}
	}
	return nil, "", nil
}

// attempt commits one attempt, builds the draft (unless draftID is an
// earlier complete one), sends it by id and stores what came of it.
func (w *sendWorker) attempt(ctx context.Context, j *sendJob, client *graph.MailboxClient, draftID string) {
	msg, err := j.req.outgoing(j.row.ID)
	if err != nil {
		w.finish(ctx, j, store.SendOutcome{State: store.SendFailed, Code: "bad_request", Reason: err.Error(), Fix: "send the request again"})
		return
	}
	var from *graph.Recipient
	if j.mailbox.Shared {
		from = &graph.Recipient{EmailAddress: graph.EmailAddress{Address: j.ch.Mailbox.Address}}
	}
	attempt, started := j.row.Attempts+1, w.s.now()
	method := methodDraft
	if draftID != "" {
		method = methodSend
	}
	if err := w.s.db.MarkSending(context.WithoutCancel(ctx), j.row.ID, attempt, method, started, started.Add(w.opts.Recheck)); err != nil {
		j.log.Error("commit send attempt", "err", err)
		return
	}
	j.row.Attempts, j.row.State = attempt, store.SendSending
	w.hook("before-graph", j.row.ID)
	imid := ""
	if draftID == "" {
		d, err := w.buildDraft(ctx, j, client, msg, from)
		if err != nil {
			w.failed(ctx, j, client, d.ID, err, attempt, started, false)
			return
		}
		draftID, imid = d.ID, d.InternetMessageID
		// The draft is complete: from now on an attempt that finds it in
		// Drafts sends it, and one that finds it nowhere waits for Sent Items.
		if err := w.s.db.MarkSending(context.WithoutCancel(ctx), j.row.ID, attempt, methodSend, started, started.Add(w.opts.Recheck)); err != nil {
			j.log.Error("commit the complete draft", "err", err)
			return
		}
		w.hook("draft-complete", j.row.ID)
	}
	err = client.SendDraft(ctx, draftID)
	w.hook("after-graph", j.row.ID)
	if err == nil {
		j.log.Info("mail sent", "attempt", attempt, "attachments", len(msg.Attachments))
		w.finish(ctx, j, store.SendOutcome{State: store.SendSent, InternetMessageID: imid})
		return
	}
	w.failed(ctx, j, client, draftID, err, attempt, started, true)
}

// buildDraft creates the tagged draft (a reply draft when the answered
// message is known), fills it in and attaches the files.
func (w *sendWorker) buildDraft(ctx context.Context, j *sendJob, client *graph.MailboxClient, msg graph.OutgoingMessage, from *graph.Recipient) (graph.Draft, error) {
	props := []graph.ExtendedProperty{{ID: PropertyID, Value: j.row.ID}}
	atts := msg.Attachments
	var d graph.Draft
	var err error
	if j.target != "" {
		d, err = client.CreateReplyDraft(ctx, j.target, props)
		if errors.Is(err, graph.ErrItemNotFound) {
			// The original is gone (deleted, or moved out of reach):
			// send it as a new message.
			j.log.Warn("the answered message no longer exists; sending without Graph threading", "message_id", j.target)
			j.target, err = "", nil
		} else if err == nil {
			reply := msg
			reply.InternetMessageHeaders = nil // settable only when a message is created
			if err = client.UpdateDraft(ctx, d.ID, reply, from); err != nil {
				return d, err
			}
		}
	}
	if j.target == "" && err == nil {
		msg.InternetMessageHeaders = append(msg.InternetMessageHeaders, j.req.plainThreadHeaders()...)
		d, err = client.CreateDraft(ctx, msg, from, props)
	}
	if err != nil {
		return d, err
	}
	for _, a := range atts {
		if err := client.AddAttachment(ctx, d.ID, a); err != nil {
			return d, err
		}
	}
	return d, nil
}

// failed stores a failed step: sending reports whether the send call
// itself failed (the mail may then have gone out). A permanent failure
// deletes the request's draft (draftID, if one was made), so nobody sends
// it later from Drafts.
func (w *sendWorker) failed(ctx context.Context, j *sendJob, client *graph.MailboxClient, draftID string, err error, attempt int, started time.Time, sending bool) {
	now := w.s.now()
	kind := classifySendError(err)
	if !sending && kind == sendUncertain {
		// Nothing was sent while the draft was built; the next attempt
		// finds an unfinished draft and starts it again.
		kind = sendNotProcessed
	}
	switch kind {
	case sendNotProcessed:
		j.log.Warn("Graph did not send the message; retrying later", "attempt", attempt, "err", err)
		w.retry(ctx, j, store.SendQueued, now.Add(w.delay(attempt)), err.Error())
	case sendUncertain:
		j.log.Warn("the send's outcome is unknown; Sent Items and Drafts are searched before any new attempt", "attempt", attempt, "err", err)
		w.retry(ctx, j, store.SendSending, started.Add(w.opts.Recheck), err.Error())
	default:
		code, reason, fix := sendGuidance(err, j.ch, j.account)
		j.log.Error("send failed", "code", code, "reason", reason, "fix", fix)
		if draftID != "" {
			if derr := client.DeleteDraft(ctx, draftID); derr != nil {
				j.log.Warn("delete the failed request's draft", "err", derr)
			}
		}
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
		e, err = w.s.db.LedgerByEventID(ctx, j.row.Channel, j.req.ReplyToEventID)
	case j.req.InReplyTo != "":
		e, err = w.s.db.LedgerByInternetMessageID(ctx, j.row.Channel, j.req.InReplyTo)
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
	return backoff.Schedule(w.opts.Schedule, attempt)
}

func (w *sendWorker) retry(ctx context.Context, j *sendJob, state string, next time.Time, lastErr string) {
	if err := w.s.db.RetrySend(context.WithoutCancel(ctx), j.row.ID, state, next, lastErr); err != nil {
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
	if err := w.s.db.FinishSend(ctx, j.row.ID, o, events...); err != nil {
		j.log.Error("store send outcome", "state", o.State, "err", err)
		return
	}
	if len(events) > 0 && w.s.wake != nil {
		w.s.wake()
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
	if w.s.takes != nil && !w.s.takes(j.ch.Webhook, typ) {
		return store.OutboxEvent{}, false, nil
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
	ev, err := webhooks.NewEvent(typ, w.s.now(), data)
	if err != nil {
		return store.OutboxEvent{}, false, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.OutboxEvent{}, false, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return store.OutboxEvent{EventID: data.ID, Endpoint: j.ch.Webhook, Channel: j.ch.Name, Type: typ, Body: body}, true, nil
}
