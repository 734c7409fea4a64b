package m365sim

// The mail half of the control API (/_sim/...). Every endpoint mirrors a Go
// method; see /tmp/docs/sim-graph.md for curl examples.

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// registerGraphControl mounts the mail control endpoints; they are listed
// in the GET /_sim/ index with the Entra ones.
func (s *Sim) registerGraphControl(mux *http.ServeMux) {
	add := func(p, summary string, h http.HandlerFunc) { s.addControlRoute(mux, p, summary, h) }
	add("POST /_sim/mail/{mailbox}/messages", "deliver mail: raw MIME body (?folder=Inbox/Support&received=RFC3339) or JSON {subject,from,to,body,html,folder,received,attachments}", s.ctlInject)
	add("GET /_sim/mail/{mailbox}/messages", "list a folder's messages (?folder=Inbox/Support): ids, subject, isRead, from, headers", s.ctlMessages)
	add("PATCH /_sim/mail/{mailbox}/messages/{id}", `the user marks a message read {"isRead":true}`, s.ctlMessagePatch)
	add("POST /_sim/mail/{mailbox}/messages/{id}/move", `the user moves a message {"folder":"Archive"} (new rest id)`, s.ctlMessageMove)
	add("DELETE /_sim/mail/{mailbox}/messages/{id}", "the user deletes a message to Deleted Items (?hard=true: gone)", s.ctlMessageDelete)
	add("POST /_sim/mail/{mailbox}/folders", `create a folder {"path":"Inbox/Support"}`, s.ctlFolderCreate)
	add("PATCH /_sim/mail/{mailbox}/folders", `rename a folder {"path":"Inbox/Support","name":"Helpdesk"} (id kept)`, s.ctlFolderRename)
	add("PUT /_sim/mail/{mailbox}/enabled", `enable or disable REST access {"enabled":false} (404 MailboxNotEnabledForRESTAPI)`, s.ctlMailboxEnabled)
	add("POST /_sim/delta/expire", "expire every delta token (?mailbox=addr: of one mailbox): next use answers 410 syncStateNotFound", s.ctlDeltaExpire)
	add("PUT /_sim/delta/ttl", `delta-token lifetime {"ttl":"1h"} ("0s": forever)`, s.ctlDeltaTTL)
	add("PUT /_sim/delta/cache", `delta tokens kept per folder {"tokens":16} (0: no limit); older ones answer 410`, s.ctlDeltaCache)
	add("PUT /_sim/throttle", `switch throttling (on by default): {"enabled":true}, or {"enabled":false,"reason":"why"}`, s.ctlThrottle)
	add("GET /_sim/faults", "list fault rules", s.ctlFaults)
	add("POST /_sim/faults", `add a fault rule {"path","method","mailbox","rate","count","status","retryAfter","latency","drop","maxPageSize","emptyPage"}`, s.ctlFaultAdd)
	add("DELETE /_sim/faults", "remove every fault rule", s.ctlFaultsClear)
	add("GET /_sim/counters", "Graph request counters: requests, batches, batchInner, byKind, byMailbox, byMethod, byStatus, throttled, faults", s.handleCounters)
	add("DELETE /_sim/counters", "reset the Graph request counters", s.handleCounters)
	add("GET /_sim/subscriptions", "list the active change-notification subscriptions", s.ctlSubscriptions)
	add("POST /_sim/subscriptions/{id}/lifecycle", `send a lifecycle notification {"event":"reauthorizationRequired|subscriptionRemoved|missed"} (subscriptionRemoved deletes it)`, s.ctlLifecycle)
	add("POST /_sim/notifications/drop", `lose the next change notifications {"count":1}: never sent, no "missed" either`, s.ctlNotificationsDrop)
	add("POST /_sim/notifications/flush", "send the notifications whose resend is due on the sim clock", s.ctlNotificationsFlush)
}

func (s *Sim) ctlSubscriptions(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, map[string]any{"value": s.Subscriptions()})
}

func (s *Sim) ctlLifecycle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Event string `json:"event"`
	}
	if !decodeMailControl(w, r, &req) {
		return
	}
	if err := s.SendLifecycleEvent(r.PathValue("id"), req.Event); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlNotificationsDrop(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int `json:"count"`
	}
	if !decodeMailControl(w, r, &req) {
		return
	}
	if req.Count < 0 {
		writeControlError(w, http.StatusBadRequest, "count must be 0 or more")
		return
	}
	s.DropNotifications(req.Count)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlNotificationsFlush(w http.ResponseWriter, r *http.Request) {
	s.FlushNotifications()
	writeControlJSON(w, http.StatusOK, map[string]int{"pending": s.PendingNotifications()})
}

// controlStatus maps a control method's error to 404 (ErrNotFound) or 400.
func controlStatus(err error) int {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// decodeMailControl reads a JSON body strictly.
func decodeMailControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControlError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// ctlInject: POST /_sim/mail/{mailbox}/messages. A JSON body is a
// NewMessage; any other body is raw MIME, filed in ?folder= (default
// Inbox) with ?received= (RFC 3339, default now).
func (s *Sim) ctlInject(w http.ResponseWriter, r *http.Request) {
	var nm NewMessage
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if !decodeMailControl(w, r, &nm) {
			return
		}
	} else {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 160<<20))
		if err != nil || len(raw) == 0 {
			writeControlError(w, http.StatusBadRequest, "send the raw MIME message as the body, or JSON with Content-Type: application/json")
			return
		}
		nm.Raw = string(raw)
		nm.Folder = r.URL.Query().Get("folder")
		if v := r.URL.Query().Get("received"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeControlError(w, http.StatusBadRequest, "received must be RFC 3339, e.g. 2024-05-01T10:00:00Z")
				return
			}
			nm.Received = t
		}
	}
	mi, err := s.InjectMessage(r.PathValue("mailbox"), nm)
	if err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	writeControlJSON(w, http.StatusCreated, mi)
}

// ctlMessages: GET /_sim/mail/{mailbox}/messages?folder=Inbox/Support.
func (s *Sim) ctlMessages(w http.ResponseWriter, r *http.Request) {
	folder := r.URL.Query().Get("folder")
	if folder == "" {
		folder = "Inbox"
	}
	if _, err := s.FolderID(r.PathValue("mailbox"), folder); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	list := s.Messages(r.PathValue("mailbox"), folder)
	if list == nil {
		list = []MessageInfo{}
	}
	writeControlJSON(w, http.StatusOK, map[string]any{"value": list})
}

// ctlMessagePatch: PATCH .../messages/{id} {"isRead":true}.
func (s *Sim) ctlMessagePatch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IsRead *bool `json:"isRead"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if body.IsRead == nil {
		writeControlError(w, http.StatusBadRequest, `body must be {"isRead": true|false}`)
		return
	}
	if err := s.SetRead(r.PathValue("mailbox"), r.PathValue("id"), *body.IsRead); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlMessageMove: POST .../messages/{id}/move {"folder":"Archive"}.
func (s *Sim) ctlMessageMove(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Folder string `json:"folder"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	mi, err := s.MoveMessage(r.PathValue("mailbox"), r.PathValue("id"), body.Folder)
	if err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	writeControlJSON(w, http.StatusOK, mi)
}

// ctlMessageDelete: DELETE .../messages/{id}[?hard=true].
func (s *Sim) ctlMessageDelete(w http.ResponseWriter, r *http.Request) {
	hard := r.URL.Query().Get("hard") == "true"
	if err := s.DeleteMessage(r.PathValue("mailbox"), r.PathValue("id"), hard); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlFolderCreate: POST .../folders {"path":"Inbox/Support"}.
func (s *Sim) ctlFolderCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Path string `json:"path"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	id, err := s.CreateFolder(r.PathValue("mailbox"), body.Path)
	if err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	writeControlJSON(w, http.StatusCreated, map[string]string{"id": id, "path": body.Path})
}

// ctlFolderRename: PATCH .../folders {"path":"Inbox/Support","name":"Helpdesk"}.
func (s *Sim) ctlFolderRename(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Path string `json:"path"`
		Name string `json:"name"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if err := s.RenameFolder(r.PathValue("mailbox"), body.Path, body.Name); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlMailboxEnabled: PUT .../enabled {"enabled":false}.
func (s *Sim) ctlMailboxEnabled(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if body.Enabled == nil {
		writeControlError(w, http.StatusBadRequest, `body must be {"enabled": true|false}`)
		return
	}
	if err := s.SetMailboxEnabled(r.PathValue("mailbox"), *body.Enabled); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlDeltaExpire: POST /_sim/delta/expire[?mailbox=addr].
func (s *Sim) ctlDeltaExpire(w http.ResponseWriter, r *http.Request) {
	if err := s.ExpireDeltaTokens(r.URL.Query().Get("mailbox")); err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlDeltaTTL: PUT /_sim/delta/ttl {"ttl":"1h"} ("0s": never expire).
func (s *Sim) ctlDeltaTTL(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TTL string `json:"ttl"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	d, err := time.ParseDuration(body.TTL)
	if err != nil || d < 0 {
		writeControlError(w, http.StatusBadRequest, "ttl must be a Go duration such as 30m or 0s")
		return
	}
	s.SetDeltaTokenTTL(d)
	w.WriteHeader(http.StatusNoContent)
}

// ctlDeltaCache: PUT /_sim/delta/cache {"tokens":16} (0: no limit).
func (s *Sim) ctlDeltaCache(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tokens *int `json:"tokens"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if body.Tokens == nil || *body.Tokens < 0 {
		writeControlError(w, http.StatusBadRequest, "tokens must be a number of tokens, 0 or more")
		return
	}
	s.SetDeltaTokenCache(*body.Tokens)
	w.WriteHeader(http.StatusNoContent)
}

// ctlThrottle: PUT /_sim/throttle {"enabled":false,"reason":"..."}; off
// needs a reason.
func (s *Sim) ctlThrottle(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Enabled *bool  `json:"enabled"`
		Reason  string `json:"reason"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if body.Enabled == nil {
		writeControlError(w, http.StatusBadRequest, `"enabled" is required: true, or false with a "reason"`)
		return
	}
	if err := s.SetThrottle(*body.Enabled, body.Reason); err != nil {
		writeControlError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) ctlFaults(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, map[string]any{"value": s.Faults()})
}

// ctlFaultAdd: POST /_sim/faults with a FaultRule; latency is a Go
// duration string ("250ms").
func (s *Sim) ctlFaultAdd(w http.ResponseWriter, r *http.Request) {
	var body struct {
		FaultRule
		Latency string `json:"latency"`
	}
	if !decodeMailControl(w, r, &body) {
		return
	}
	if body.Latency != "" {
		d, err := time.ParseDuration(body.Latency)
		if err != nil || d < 0 {
			writeControlError(w, http.StatusBadRequest, "latency must be a Go duration such as 250ms")
			return
		}
		body.FaultRule.Latency = d
	}
	id, err := s.AddFault(body.FaultRule)
	if err != nil {
		writeControlError(w, controlStatus(err), err.Error())
		return
	}
	writeControlJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Sim) ctlFaultsClear(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}
