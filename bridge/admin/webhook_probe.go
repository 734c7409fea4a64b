package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
)

// WebhookTestResult is what one webhook.test delivery observed: POST
// /api/endpoints/{name}/test answers it, `m365bridge deliveries test` and
// the status page's Send test button show it.
type WebhookTestResult struct {
	Endpoint string `json:"endpoint"`
	URL      string `json:"url"` // redacted like the status page's
	EventID  string `json:"event_id"`
	// OK is a 2xx answer. Outcome is how a real event would have fared:
	// delivered, transient (retried), permanent (rejected) or gone
	// (the endpoint would be disabled).
	OK      bool   `json:"ok"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status,omitempty"`
	// Response is the start of the receiver's answer (or the transport
	// error), at most deliver.ExcerptBytes.
	Response   string `json:"response,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// EndpointState is the endpoint's delivery state (active, paused,
	// disabled): a test is sent whatever it is.
	EndpointState deliver.EndpointState `json:"endpoint_state"`
	// Recipe: the webhook delivers through a recipe, and the test ran it
	// with a synthetic mail; Steps are its requests and answers, redacted.
	Recipe bool               `json:"recipe,omitempty"`
	Steps  []recipe.StepTrace `json:"steps,omitempty"`
}

// Summary is the result in one line for an operator.
func (r WebhookTestResult) Summary() string {
	answer := "no response"
	if r.Status != 0 {
		answer = fmt.Sprintf("HTTP %d", r.Status)
	}
	s := fmt.Sprintf("webhook %s answered %s in %d ms (%s) to webhook.test %s", r.Endpoint, answer, r.DurationMS, r.Outcome, r.EventID)
	if r.Recipe {
		s = fmt.Sprintf("the recipe of webhook %s ran %d requests with synthetic mail %s in %d ms (%s)", r.Endpoint, len(r.Steps), r.EventID, r.DurationMS, r.Outcome)
	}
	if r.Response != "" {
		s += ": " + r.Response
	}
	return s
}

// testWebhook signs a webhook.test event with the endpoint's secrets,
// renders it with its template and POSTs it once with its headers and
// timeout. It is not queued and not retried, so it never touches the
// outbox; it is sent even while the endpoint is paused or disabled, which
// is how an operator checks a fixed receiver before resuming.
func (a *Console) testWebhook(ctx context.Context, name, requestedBy string, opt RecipeTest) (WebhookTestResult, error) {
	var ep deliver.Endpoint
	found := false
	for _, e := range a.endpoints() {
		if e.Name == name {
			ep, found = e, true
		}
	}
	if !found {
		return WebhookTestResult{}, echo.NewHTTPError(http.StatusNotFound, "no webhook "+name+" in bridge.yaml")
	}
	now := a.now()
	id := webhooks.NewID("evt")
	ev, err := webhooks.NewEvent(webhooks.TypeWebhookTest, now, webhooks.TestData{ID: id, Version: webhooks.Version,
		Message: "test event from m365bridge (" + requestedBy + "); it carries no mail"})
	if err != nil {
		return WebhookTestResult{}, err
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return WebhookTestResult{}, err
	}
	out := WebhookTestResult{Endpoint: name, URL: deliver.RedactURL(ep.URL), EventID: id}
	if st, err := a.db.Outbox().Endpoint(ctx, name); err == nil {
		out.EndpointState = st.State
	}
	if ep.Recipe != nil {
		return a.testRecipe(ctx, ep, out, opt)
	}
	body, err := deliver.Render(ep, raw)
	if err != nil {
		out.Outcome, out.Response = deliver.Permanent.String(), "the endpoint's template cannot render webhook.test: "+err.Error()
		return out, nil
	}
	sender := deliver.NewSender(deliver.SenderOptions{HTTPClient: a.webhookHTTP, UserAgent: "m365bridge/" + a.version,
		Logger: a.log.With("component", "webhook_test"), Now: a.now})
	start := time.Now()
	res := sender.Send(ctx, ep, deliver.Message{ID: id, Type: webhooks.TypeWebhookTest, Body: body, Attempt: 1})
	out.DurationMS = time.Since(start).Milliseconds()
	out.OK, out.Outcome, out.Status, out.Response = res.Outcome == deliver.Delivered, res.Outcome.String(), res.Status, res.Excerpt
	a.log.Info("webhook.test sent", "endpoint", name, "event_id", id, "status", res.Status, "outcome", out.Outcome, "requested_by", requestedBy)
	return out, nil
}

// apiTestWebhook is POST /api/endpoints/{name}/test: send a webhook.test
// now and answer what the receiver said (200 whatever it said; 404 for a
// webhook that is not configured). A recipe webhook runs its recipe with a
// synthetic mail instead; the query's from, archive=1 and
// auto_submitted=1 shape that mail.
func (a *Console) apiTestWebhook(c echo.Context) error {
	q := c.QueryParams()
	opt := RecipeTest{From: q.Get("from"), Archive: q.Get("archive") == "1", AutoSubmitted: q.Get("auto_submitted") == "1"}
	res, err := a.testWebhook(c.Request().Context(), c.Param("name"), "requested through the admin API", opt)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
