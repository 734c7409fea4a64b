package send

// The send endpoint on the public listener:
//
//	POST /v1/channels/{name}/messages       send a reply (202 {id, status})
//	GET  /v1/channels/{name}/messages/{id}  its status
//
// Both are signed per Standard Webhooks with the channel's send secret
// (webhook-id, webhook-timestamp within 5 minutes, webhook-signature; a GET
// signs the empty body). POST needs an Idempotency-Key header: the same key
// with the same body answers the first result and sends nothing new.
//
// Neither the Idempotency-Key nor the URL is signed, so the webhook-id of
// every POST answered with a send row is remembered in the store
// (store.SendRequestRetention, a day, far beyond the 5 minutes a signature
// is valid): a captured request sent again under a new key is answered as
// the original and sends nothing; sent to another channel it is refused.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// sendTolerance is how far a request's webhook-timestamp may be from now.
const sendTolerance = 5 * time.Minute

// A webhook-id must be remembered for as long as a request signed with it
// can verify (sendTolerance either side of now); this does not compile
// otherwise.
const _ = uint64(store.SendRequestRetention - 2*sendTolerance - 1)

// IdempotencyKeyHeader names the header that makes a send request
// retryable without sending twice.
const IdempotencyKeyHeader = "Idempotency-Key"

// Status is the answer of the send endpoint: the request's id and
// where it stands (queued, sending, sent, failed), with the outcome's
// details once there is one.
type Status struct {
	ID                string    `json:"id"`
	Channel           string    `json:"channel"`
	Status            string    `json:"status"`
	IdempotencyKey    string    `json:"idempotency_key"`
	Attempts          int       `json:"attempts"`
	InternetMessageID string    `json:"internet_message_id,omitempty"`
	Code              string    `json:"code,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	Fix               string    `json:"fix,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	FinishedAt        time.Time `json:"finished_at,omitzero"`
}

func sendStatus(s store.Send) Status {
	return Status{ID: s.ID, Channel: s.Channel, Status: s.State, IdempotencyKey: s.IdempotencyKey, Attempts: s.Attempts,
		InternetMessageID: s.InternetMessageID, Code: s.Code, Reason: s.Reason, Fix: s.Fix, CreatedAt: s.CreatedAt, FinishedAt: s.FinishedAt}
}

// Mount adds the send routes to the public listener.
func (s *Service) Mount(e *echo.Echo) {
	e.POST("/v1/channels/:name/messages", s.apiSend)
	e.GET("/v1/channels/:name/messages/:id", s.apiSendStatus)
}

// sendChannel finds the channel and reads and verifies the signed body.
func (s *Service) sendChannel(c echo.Context, maxBody int64) (config.Channel, []byte, error) {
	name := c.Param("name")
	ch, ok := s.channel(name)
	if !ok {
		return ch, nil, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no channel %q in bridge.yaml", name))
	}
	if !ch.SendEnabled() {
		return ch, nil, echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("sending is not enabled for channel %q: add send: {secret: ...} to the channel in bridge.yaml", name))
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ch, nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes; attachments are limited to %d bytes in total (Exchange Online's default message size), base64-encoded in the JSON", maxBody, MaxAttachmentsTotal))
		}
		return ch, nil, echo.NewHTTPError(http.StatusBadRequest, "read request body: "+err.Error())
	}
	var secrets []string
	for _, s := range ch.Send.AllSecrets() {
		secrets = append(secrets, s.Value())
	}
	if err := webhooks.Verify(c.Request().Header, body, secrets, webhooks.WithTolerance(sendTolerance), webhooks.WithNow(s.now)); err != nil {
		msg := "signature check failed: " + err.Error()
		switch {
		case errors.Is(err, webhooks.ErrTimestampTooOld), errors.Is(err, webhooks.ErrTimestampTooNew):
			msg += "; sign each request, and each retry, with the current time (check the sender's clock)"
		case errors.Is(err, webhooks.ErrInvalidSignature):
			msg += "; sign webhook-id.webhook-timestamp.body (the exact bytes sent) with the channel's send secret"
		}
		return ch, nil, echo.NewHTTPError(http.StatusUnauthorized, msg)
	}
	return ch, body, nil
}

// apiSend is POST /v1/channels/{name}/messages.
func (s *Service) apiSend(c echo.Context) error {
	ctx := c.Request().Context()
	ch, body, err := s.sendChannel(c, MaxBodyBytes)
	if err != nil {
		return err
	}
	key := c.Request().Header.Get(IdempotencyKeyHeader)
	switch {
	case key == "":
		return echo.NewHTTPError(http.StatusBadRequest, "the Idempotency-Key header is required: a unique value per message (such as the helpdesk's article id), reused when the request is retried")
	case len(key) > maxIdempotencyKey:
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the Idempotency-Key header is %d bytes; at most %d", len(key), maxIdempotencyKey))
	}
	req, err := decodeSendRequest(body)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			return echo.NewHTTPError(re.status, re.msg)
		}
		return err
	}
	requestID := c.Request().Header.Get(webhooks.HeaderID) // present: the signature verified
	if len(requestID) > maxRequestID {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the webhook-id header is %d bytes; at most %d", len(requestID), maxRequestID))
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	// A signed request answered before (whatever its Idempotency-Key) is
	// answered as then; then the idempotency key.
	if prev, err := s.db.SendByRequestID(ctx, requestID); err == nil {
		return s.seenRequest(c, ch.Name, requestID, prev, hash)
	} else if !errors.Is(err, store.ErrNoSend) {
		return err
	}
	if prev, err := s.db.SendByKey(ctx, ch.Name, key); err == nil {
		if prev.RequestHash == hash {
			// A retry under the row's own key: remember its webhook-id too,
			// or its capture could be replayed under a new key.
			if err := s.db.RememberSendRequest(ctx, requestID, prev.ID); err != nil {
				return err
			}
		}
		return s.replayed(c, prev, hash)
	} else if !errors.Is(err, store.ErrNoSend) {
		return err
	}
	if err := s.acceptable(ctx, ch, req); err != nil {
		return err
	}
	stored, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode send request: %w", err)
	}
	row, created, err := s.db.InsertSend(ctx, store.Send{ID: webhooks.NewID("snd"), Channel: ch.Name, IdempotencyKey: key,
		RequestHash: hash, Request: stored}, requestID)
	switch {
	case errors.Is(err, store.ErrRequestIDReused):
		return s.seenRequest(c, ch.Name, requestID, row, hash)
	case errors.Is(err, store.ErrIdempotencyConflict) || (err == nil && !created):
		return s.replayed(c, row, hash)
	case err != nil:
		return err
	}
	s.log.Info("send request accepted", "channel", ch.Name, "send_id", row.ID, "recipients", len(req.To)+len(req.Cc)+len(req.Bcc))
	if s.worker != nil {
		s.worker.hook("accepted", row.ID)
		s.worker.Wake()
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/channels/"+ch.Name+"/messages/"+row.ID)
	return c.JSON(http.StatusAccepted, sendStatus(row))
}

// acceptable refuses a request the channel cannot take now: the channel
// is not connected (409), or it names a reply target it never imported
// (422).
func (s *Service) acceptable(ctx context.Context, ch config.Channel, req Request) error {
	st, err := s.db.ChannelState(ctx, ch.Name)
	if err != nil {
		return err
	}
	if st.Account.ObjectID == "" {
		return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("channel %q is not connected (state %s): connect it with `m365bridge auth %s` or the status page, then send again", ch.Name, st.State, ch.Name))
	}
	if req.ReplyToEventID != "" {
		if _, err := s.db.LedgerByEventID(ctx, ch.Name, req.ReplyToEventID); errors.Is(err, store.ErrNoLedgerEntry) {
			return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("reply_to_event_id %q: channel %q imported no message with this event id", req.ReplyToEventID, ch.Name))
		} else if err != nil {
			return err
		}
	}
	return nil
}

// replayed answers a request whose Idempotency-Key was seen before: the
// original result when the body is the same, 422 otherwise.
func (s *Service) replayed(c echo.Context, prev store.Send, hash string) error {
	if prev.RequestHash != hash {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("Idempotency-Key %q was used for request %s with a different body; use a new key for a new message", prev.IdempotencyKey, prev.ID))
	}
	c.Response().Header().Set("Idempotent-Replayed", "true")
	c.Response().Header().Set(echo.HeaderLocation, "/v1/channels/"+prev.Channel+"/messages/"+prev.ID)
	return c.JSON(http.StatusAccepted, sendStatus(prev))
}

// seenRequest answers a request whose webhook-id was answered before with
// send row prev: as prev's own retry would be (same status and body) when
// it is the same request on the same channel, sending nothing new; 409 when
// it is sent to another channel (the URL is not signed); 422 when the
// sender reused the id for another body.
func (s *Service) seenRequest(c echo.Context, channel, requestID string, prev store.Send, hash string) error {
	switch {
	case prev.Channel != channel:
		s.log.Warn("send request refused: its webhook-id was accepted for another channel", "channel", channel, "send_id", prev.ID, "accepted_channel", prev.Channel)
		return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("this signed request (webhook-id %q) was already accepted for channel %s; a request goes through one channel: sign each request with a new webhook-id", requestID, prev.Channel))
	case prev.RequestHash != hash:
		return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("webhook-id %q was used for request %s with a different body; sign each new request with a new webhook-id", requestID, prev.ID))
	}
	if key := c.Request().Header.Get(IdempotencyKeyHeader); key != prev.IdempotencyKey {
		s.log.Warn("signed send request replayed under another Idempotency-Key; answered as the original, nothing sent", "channel", channel, "send_id", prev.ID)
	}
	return s.replayed(c, prev, hash)
}

// apiSendStatus is GET /v1/channels/{name}/messages/{id}.
func (s *Service) apiSendStatus(c echo.Context) error {
	ch, _, err := s.sendChannel(c, 1<<10)
	if err != nil {
		return err
	}
	row, err := s.db.SendByID(c.Request().Context(), ch.Name, c.Param("id"))
	if errors.Is(err, store.ErrNoSend) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("channel %q has no send request %q", ch.Name, c.Param("id")))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sendStatus(row))
}
