package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// preferTextBody asks Graph for the body's text rendition; it goes with the
// immutable-id preference in the same Prefer header. Graph returns body and
// uniqueBody in HTML unless this is sent, and echoes Preference-Applied when
// it honours it (GDC api/message-get.md, "Request headers" and example 3).
const preferTextBody = `outlook.body-content-type="text"`

// TextBodiesOf reads the text rendition of several messages' bodies
// through $batch (20 messages per request): GET /messages/{id}?$select=body
// with Prefer: outlook.body-content-type="text". For a message written as
// plain text that is the text as written, which the HTML rendition (the
// default, and what Delta returns) cannot give back: Exchange's HTML of a
// text body loses repeated spaces and indentation to HTML's whitespace
// rules. It returns the bodies by id and, separately, the messages whose
// fetch failed (gone: ErrItemNotFound). A body Graph still sent as HTML
// (the preference not honoured) is left out, so the caller keeps what it
// had. err is non-nil only when a whole $batch call failed.
func (m *MailboxClient) TextBodiesOf(ctx context.Context, messageIDs []string) (bodies map[string]*ItemBody, failed map[string]error, err error) {
	bodies, failed = map[string]*ItemBody{}, map[string]error{}
	var reqs []BatchRequest
	var order []string
	asked := map[string]bool{}
	for _, id := range messageIDs {
		if asked[id] {
			continue
		}
		asked[id] = true
		if strings.TrimSpace(id) == "" {
			failed[id] = fmt.Errorf("get text body: empty message id")
			continue
		}
		reqs = append(reqs, BatchRequest{ID: strconv.Itoa(len(reqs)), Method: http.MethodGet,
			Path:    "/messages/" + url.PathEscape(id) + "?$select=body",
			Headers: map[string]string{"Prefer": preferImmutableID + ", " + preferTextBody}})
		order = append(order, id)
	}
	if len(reqs) == 0 {
		return bodies, failed, nil
	}
	resps, berr := m.Batch(ctx, reqs)
	if resps == nil {
		for _, id := range order {
			failed[id] = fmt.Errorf("get text body: %w", berr)
		}
		return bodies, failed, fmt.Errorf("get text bodies: %w", berr)
	}
	for i, r := range resps {
		id := order[i]
		if r.Err != nil {
			failed[id] = fmt.Errorf("get text body of message %q: %w", id, r.Err)
			continue
		}
		var msg struct {
			Body *ItemBody `json:"body"`
		}
		if err := json.Unmarshal(r.Body, &msg); err != nil {
			failed[id] = fmt.Errorf("decode text body of message %q: %w", id, err)
			continue
		}
		if msg.Body != nil && strings.EqualFold(msg.Body.ContentType, "text") {
			bodies[id] = msg.Body
		}
	}
	if berr != nil {
		return bodies, failed, fmt.Errorf("get text bodies: %w", berr)
	}
	return bodies, failed, nil
}
