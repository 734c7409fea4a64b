package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
)

// RecipeTest chooses the synthetic mail `deliveries test` sends through a
// recipe webhook.
type RecipeTest struct {
	// From is the synthetic customer's address (the helpdesk may mail it
	// a receipt); default m365bridge-test@example.com, which reaches
	// nobody.
	From string
	// Archive sends it as archived mail (mail.archived), AutoSubmitted as
	// an auto-reply: the recipe's other paths.
	Archive, AutoSubmitted bool
}

// testRecipe runs ep's recipe once, end to end against the helpdesk, with a
// synthetic mail of the first channel that names the webhook, and records
// every request and answer (redacted) in out.Steps. Like the webhook.test
// event it is not queued and not retried; the helpdesk keeps what the
// recipe created (a ticket for the synthetic customer), and the ticket map
// remembers its synthetic Message-ID.
func (a *Console) testRecipe(ctx context.Context, ep deliver.Endpoint, out WebhookTestResult, opt RecipeTest) (WebhookTestResult, error) {
	now := a.now()
	row, err := syntheticMail(a.config(), ep.Name, now, opt)
	if err != nil {
		return out, err
	}
	out.EventID, out.Recipe = row.EventID, true
	trace := recipe.WithTrace(ctx, func(s recipe.StepTrace) { out.Steps = append(out.Steps, s) })
	start := time.Now()
	res := ep.Recipe.Run(trace, ep.WithDefaults(), row, 1)
	out.DurationMS = time.Since(start).Milliseconds()
	out.OK, out.Outcome, out.Status, out.Response = res.Outcome == deliver.Delivered, res.Outcome.String(), res.Status, res.Excerpt
	a.log.Info("recipe test run", "endpoint", ep.Name, "event_id", row.EventID, "steps", len(out.Steps), "outcome", out.Outcome)
	return out, nil
}

// syntheticMail is a mail event like a sync produces, for the first channel
// that delivers to webhook (a made-up channel when none does): a text body
// and one small attachment.
func syntheticMail(cfg *config.Config, webhook string, now time.Time, opt RecipeTest) (deliver.Row, error) {
	ch := config.Channel{Name: "test", Mailbox: config.Mailbox{Type: config.MailboxShared, Address: "support@example.com"}}
	for _, c := range cfg.Channels {
		if c.Webhook == webhook {
			ch = c
			break
		}
	}
	from := opt.From
	if from == "" {
		from = "m365bridge-test@example.com"
	}
	id := webhooks.NewID("evt")
	typ, state := webhooks.TypeMailReceived, "new"
	if opt.Archive {
		typ, state = webhooks.TypeMailArchived, ch.Archive.State
		if state == "" {
			state = config.DefaultArchiveState
		}
	}
	file := []byte("m365bridge deliveries test: this file checks that attachments arrive.\n")
	msgID := "<" + id + "@m365bridge.test>"
	a := webhooks.Article{InternetMessageID: msgID, ConversationID: "m365bridge-test-" + id, GraphID: "test-" + id,
		From: webhooks.Address{Name: "m365bridge test", Address: from}, To: []webhooks.Address{{Address: ch.Mailbox.Address}},
		Subject: "m365bridge deliveries test " + now.UTC().Format(time.RFC3339), SentAt: now, ReceivedAt: now, BodyType: "text",
		BodyText:      "A test mail sent by `m365bridge deliveries test` to check the recipe of webhook " + webhook + ". It can be deleted.",
		AutoSubmitted: opt.AutoSubmitted,
		Attachments: []webhooks.Attachment{{Filename: "m365bridge-test.txt", ContentType: "text/plain", Size: int64(len(file)),
			Included: true, ContentBase64: base64.StdEncoding.EncodeToString(file)}}}
	d := webhooks.MailData{ID: id, Version: webhooks.Version, Channel: ch.Name,
		Mailbox: webhooks.Mailbox{Type: ch.Mailbox.Type, Address: strings.ToLower(ch.Mailbox.Address)},
		Folder:  ch.Folder, Group: ch.Group, Archive: opt.Archive,
		Ticket: webhooks.Ticket{Title: a.Subject, State: state, CreatedAt: now, Customer: webhooks.Address{Address: from},
			SuppressAutomations: opt.Archive},
		Article: a}
	ev, err := webhooks.NewEvent(typ, now, d)
	if err != nil {
		return deliver.Row{}, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return deliver.Row{}, err
	}
	return deliver.Row{EventID: id, Endpoint: webhook, Channel: ch.Name, Type: typ, Body: body, CreatedAt: now}, nil
}
