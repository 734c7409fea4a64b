package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Limits of GET /api/deliveries.
const (
	defaultDeliveriesLimit = 100
	maxDeliveriesLimit     = 1000
)

var deliveryStates = []deliver.State{deliver.StatePending, deliver.StateDelivered, deliver.StateDead, deliver.StateRejected}

// parseStates reads a comma-separated state list (also repeated params).
func parseStates(values []string, allowed []deliver.State) ([]deliver.State, error) {
	var out []deliver.State
	for _, v := range values {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(allowed, deliver.State(s)) {
				return nil, fmt.Errorf("state %q is not one of %s", s, joinStates(allowed))
			}
			out = append(out, deliver.State(s))
		}
	}
	return out, nil
}

func joinStates(ss []deliver.State) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// apiDeliveries lists outbox rows (bodies left out), oldest first:
// ?state=dead,rejected&channel=&endpoint=&id=&since=&until=&limit= (default
// 100, at most 1000); id is repeatable or comma separated, since and until
// are RFC 3339 times of enqueueing.
func (a *Console) apiDeliveries(c echo.Context) error {
	q := c.QueryParams()
	states, err := parseStates(q["state"], deliveryStates)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "query parameter "+err.Error())
	}
	limit := defaultDeliveriesLimit
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxDeliveriesLimit {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", s, maxDeliveriesLimit))
		}
	}
	f := deliver.Filter{States: states, Channel: q.Get("channel"), Endpoint: q.Get("endpoint"), Limit: limit}
	for _, v := range q["id"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				f.IDs = append(f.IDs, id)
			}
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			if *t.to, err = time.Parse(time.RFC3339, v); err != nil {
				return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s: %q is not an RFC 3339 time such as 2026-11-26T20:00:00Z", t.name, v))
			}
		}
	}
	rows, err := a.db.Outbox().List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]DeliveryView, 0, len(rows))
	for _, r := range rows {
		out = append(out, NewDeliveryView(r))
	}
	return c.JSON(http.StatusOK, out)
}

// ReplayRequest is POST /api/replay's body: either IDs, or a selection by
// channel and/or endpoint within an optional created-at window. States
// defaults to dead and rejected (the only ones that can be replayed).
type ReplayRequest struct {
	IDs      []string  `json:"ids,omitempty"`
	Channel  string    `json:"channel,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"`
	States   []string  `json:"states,omitempty"`
}

// ReplayResponse says how many dead or rejected rows became pending again.
type ReplayResponse struct {
	Replayed int `json:"replayed"`
}

// maxReplayBody bounds POST /api/replay's JSON.
const maxReplayBody = 1 << 20

func (a *Console) apiReplay(c echo.Context) error {
	var req ReplayRequest
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, maxReplayBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest,
			`body: want JSON {"ids":["evt_…"]} or {"channel":"…","endpoint":"…","since":"RFC 3339","until":"RFC 3339","states":["dead","rejected"]}: `+err.Error())
	}
	f, err := req.filter()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	n, err := a.replay(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ReplayResponse{Replayed: n})
}

// filter validates the request: it must select something, so that an empty
// body cannot replay every dead letter by accident.
func (r ReplayRequest) filter() (deliver.Filter, error) {
	states, err := parseStates(r.States, []deliver.State{deliver.StateDead, deliver.StateRejected})
	if err != nil {
		return deliver.Filter{}, fmt.Errorf("states: %w (only dead and rejected events can be replayed)", err)
	}
	f := deliver.Filter{IDs: r.IDs, Channel: r.Channel, Endpoint: r.Endpoint, Since: r.Since, Until: r.Until, States: states}
	if len(f.IDs) == 0 && f.Channel == "" && f.Endpoint == "" && f.Since.IsZero() && f.Until.IsZero() {
		return f, errors.New(`say which events to replay: "ids", or "channel", "endpoint", "since" or "until"`)
	}
	if slices.Contains(f.IDs, "") {
		return f, errors.New("ids: an empty id")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, errors.New("since must be before until")
	}
	return f, nil
}

// replay makes matching dead and rejected rows pending again (same event
// ids) and wakes the dispatcher.
func (a *Console) replay(ctx context.Context, f deliver.Filter) (int, error) {
	n, err := a.db.Outbox().Replay(ctx, f, a.now())
	if err != nil {
		return 0, err
	}
	if n > 0 {
		a.log.Info("events replayed from the admin listener", "count", n)
		a.disp.Wake()
	}
	return n, nil
}

func (a *Console) apiEndpoints(c echo.Context) error {
	eps, err := a.endpointViews(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, eps)
}

// PauseRequest is POST /api/endpoints/:name/pause's optional body.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *Console) apiPause(c echo.Context) error {
	var req PauseRequest
	if c.Request().ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(c.Request().Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			return echo.NewHTTPError(http.StatusBadRequest, `body: want JSON {"reason":"…"} or nothing: `+err.Error())
		}
	}
	return a.setEndpointState(c, c.Param("name"), true, req.Reason)
}

func (a *Console) apiResume(c echo.Context) error {
	return a.setEndpointState(c, c.Param("name"), false, "")
}

// setEndpointState pauses or resumes a configured endpoint and answers its
// new view.
func (a *Console) setEndpointState(c echo.Context, name string, pause bool, reason string) error {
	if err := a.pauseResume(c.Request().Context(), name, pause, reason); err != nil {
		return err
	}
	eps, err := a.endpointViews(c.Request().Context())
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Name == name {
			return c.JSON(http.StatusOK, ep)
		}
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *Console) pauseResume(ctx context.Context, name string, pause bool, reason string) error {
	if !a.hasWebhook(name) {
		return echo.NewHTTPError(http.StatusNotFound, "no webhook "+name+" in bridge.yaml")
	}
	if pause {
		return a.disp.Pause(ctx, name, reason)
	}
	return a.disp.Resume(ctx, name)
}

func (a *Console) hasWebhook(name string) bool {
	for _, w := range a.config().Webhooks {
		if w.Name == name {
			return true
		}
	}
	return false
}
