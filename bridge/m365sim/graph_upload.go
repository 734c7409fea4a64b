package m365sim

// Attachments added to a draft: one POST for a small file, an upload
// session for a large one (GDC concepts/outlook-large-attachments.md and
// api-reference/v1.0/api/attachment-createuploadsession.md):
//
//   - POST /messages/{id}/attachments/createUploadSession
//     {"AttachmentItem": {attachmentType, name, size, contentType, isInline,
//     contentId}} → 201 {uploadUrl, expirationDateTime,
//     nextExpectedRanges: ["0-"]}. A file under 3 MB is refused with
//     ErrorAttachmentSizeShouldNotBeLessThanMinimumSize (ibid., "Errors");
//     over 150 MB too ("files up to 150 MB").
//   - PUT {uploadUrl} with Content-Range: bytes {start}-{end}/{total} and
//     the bytes, without an Authorization header (the URL is
//     pre-authenticated; "Do not specify an Authorization request header").
//     200 {@odata.context, ExpirationDateTime, nextExpectedRanges: ["{next}"]}
//     (the capital E as the docs' sample answer has it) until the
//     last byte, then 201 Created with a Location header naming the
//     attachment and no body. "You must upload bytes in a file in order."
//   - DELETE {uploadUrl} cancels the session: 204.
//
// Where the docs are silent the sim chooses, and says so: a PUT with an
// Authorization header is refused (400), so a client that would send its
// Graph token to the upload host fails here; a range that starts past the
// next expected byte is 416 with nextExpectedRanges; a range that repeats
// bytes already received is accepted from the next expected byte on (a
// client resuming after a lost answer); a chunk over 4,000,000 bytes is 413
// (the docs: "up to 4 MB each time").

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// uploadPathPrefix is where upload URLs point, after the docs' shape
// https://outlook.office.com/api/v2.0/Users('…')/Messages('…')/AttachmentSessions('…')?authtoken=….
const uploadPathPrefix = "/outlook/api/v2.0/"

const (
	// minUploadBytes is the docs' "3 MB" below which createUploadSession is
	// refused, read as the size whose base64 still fits one POST under the
	// 4,000,000-byte request limit, so every size has one way in.
	minUploadBytes = 2_999_000
	// maxUploadBytes is the docs' 150 MB.
	maxUploadBytes = 150_000_000
	// uploadSessionTTL is how long an upload URL stays valid; the docs show
	// an expirationDateTime but no lifetime, so this is the sim's choice.
	uploadSessionTTL = time.Hour
)

type uploadSession struct {
	id, token   string
	mb          *Mailbox
	messageID   string // immutable id
	name, ctype string
	contentID   string
	inline      bool
	size        int64
	buf         []byte
	expires     time.Time
}

// handleCreateUploadSession answers POST …/attachments/createUploadSession.
func (s *Sim) handleCreateUploadSession(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var body struct {
		AttachmentItem *struct {
			AttachmentType string `json:"attachmentType"`
			Name           string `json:"name"`
			Size           int64  `json:"size"`
			ContentType    string `json:"contentType"`
			IsInline       bool   `json:"isInline"`
			ContentID      string `json:"contentId"`
		} `json:"AttachmentItem"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	ai := body.AttachmentItem
	switch {
	case ai == nil || ai.Name == "":
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "AttachmentItem with a name and a size is required.")
		return
	case ai.AttachmentType != "" && !strings.EqualFold(ai.AttachmentType, "file"):
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "Only file attachments can be uploaded in a session.")
		return
	case ai.Size < minUploadBytes:
		writeGraphError(w, r, http.StatusBadRequest, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
			"Attachment size should not be less than 3 MB; attach smaller files with a POST on the attachments of the message.")
		return
	case ai.Size > maxUploadBytes:
		writeGraphError(w, r, http.StatusBadRequest, "ErrorAttachmentSizeShouldNotBeMoreThanMaximumSize", "Attachments are limited to 150 MB.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.lookupMessage(w, r)
	if m == nil {
		return
	}
	now := s.now()
	us := &uploadSession{id: c.d.newID("AAMkADUpl"), token: newGUID() + newGUID(), mb: c.mb, messageID: m.immutableID,
		name: ai.Name, ctype: ai.ContentType, contentID: ai.ContentID, inline: ai.IsInline, size: ai.Size, expires: now.Add(uploadSessionTTL)}
	if us.ctype == "" {
		us.ctype = "application/octet-stream"
	}
	s.graph.uploads[us.id] = us
	u := baseURL(r) + uploadPathPrefix + "Users('" + c.mb.ID + "')/Messages('" + url.PathEscape(c.messageID(m)) + "')/AttachmentSessions('" + us.id + "')?authtoken=" + us.token
	writeJSON(w, http.StatusCreated, jobj{{"@odata.context", c.base + "/$metadata#microsoft.graph.uploadSession"},
		{"uploadUrl", u}, {"expirationDateTime", graphTime(us.expires)}, {"nextExpectedRanges", []string{"0-"}}})
}

// serveUpload answers PUT and DELETE on an upload URL.
func (s *Sim) serveUpload(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadSessionID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.graph.uploads[id]
	if us == nil || r.URL.Query().Get("authtoken") != us.token {
		writeGraphError(w, r, http.StatusNotFound, "ErrorItemNotFound", "No such upload session, or its authtoken does not match.")
		return
	}
	now := s.now()
	if now.After(us.expires) {
		delete(s.graph.uploads, id)
		writeGraphError(w, r, http.StatusNotFound, "ErrorItemNotFound", "The upload session expired.")
		return
	}
	switch r.Method {
	case http.MethodDelete:
		delete(s.graph.uploads, id)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPut:
	default:
		writeGraphError(w, r, http.StatusMethodNotAllowed, "ErrorInvalidRequest", "An upload URL takes PUT or DELETE.")
		return
	}
	start, end, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok || total != us.size || end < start || end >= total {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest",
			fmt.Sprintf("Content-Range must be 'bytes {start}-{end}/%d' within the file.", us.size))
		return
	}
	if end-start+1 > maxRequestBytes || r.ContentLength > maxRequestBytes {
		writeTooLarge(w, r)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || int64(len(data)) != end-start+1 {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "The body must hold exactly the bytes of its Content-Range.")
		return
	}
	next := int64(len(us.buf))
	if start > next {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, http.StatusRequestedRangeNotSatisfiable, jobj{{"error", jobj{{"code", "InvalidRange"},
			{"message", fmt.Sprintf("Upload bytes in order: the next expected byte is %d.", next)}}},
			{"nextExpectedRanges", []string{strconv.FormatInt(next, 10)}}})
		return
	}
	if end >= next {
		us.buf = append(us.buf, data[next-start:]...)
	}
	if int64(len(us.buf)) < us.size {
		// As GDC concepts/outlook-large-attachments.md shows the answer to
		// "First upload to the message": an Outlook v2.0 @odata.context,
		// "ExpirationDateTime" spelt with a capital E, nextExpectedRanges.
		writeJSON(w, http.StatusOK, jobj{
			{"@odata.context", baseURL(r) + uploadPathPrefix + "$metadata#Users('" + url.PathEscape(us.mb.ID) + "')/Messages('" + url.PathEscape(us.messageID) + "')/AttachmentSessions/$entity"},
			{"ExpirationDateTime", graphTime(us.expires)},
			{"nextExpectedRanges", []string{strconv.FormatInt(int64(len(us.buf)), 10)}}})
		return
	}
	s.finishUploadLocked(w, r, id, us, now)
}

// uploadSessionID is the session id in an upload URL's path; a path that
// names none is answered 404, an Authorization header 400, and ok is false.
func uploadSessionID(w http.ResponseWriter, r *http.Request) (id string, ok bool) {
	path := r.URL.Path
	i := strings.Index(path, "/AttachmentSessions('")
	if i < 0 || !strings.HasSuffix(path, "')") {
		writeGraphError(w, r, http.StatusNotFound, "ErrorItemNotFound", "No such upload session.")
		return "", false
	}
	id = path[i+len("/AttachmentSessions('") : len(path)-2]
	if r.Header.Get("Authorization") != "" {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest",
			"Do not send an Authorization header to an upload URL: it is pre-authenticated (the sim refuses it).")
		return "", false
	}
	return id, true
}

// finishUploadLocked ends session id, whose bytes have all arrived: it
// adds the attachment to its message and answers 201 with its Location.
func (s *Sim) finishUploadLocked(w http.ResponseWriter, r *http.Request, id string, us *uploadSession, now time.Time) {
	delete(s.graph.uploads, id)
	m := us.mb.data.find(us.messageID)
	if m == nil {
		writeGraphError(w, r, http.StatusNotFound, "ErrorItemNotFound", msgItemNotFound)
		return
	}
	buf := us.buf
	i, gerr := addAttachmentLocked(us.mb.data, m, outAttachment{Name: us.name, ContentType: us.ctype, ContentID: us.contentID,
		Inline: us.inline, Data: func() []byte { return buf }}, now)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	w.Header().Set("Location", baseURL(r)+uploadPathPrefix+"Users('"+us.mb.ID+"')/Messages('"+url.PathEscape(us.messageID)+"')/Attachments('"+attachmentID(m, i)+"')")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// parseContentRange reads "bytes {start}-{end}/{total}".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	a, b, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	return start, end, total, err1 == nil && err2 == nil && err3 == nil && start >= 0
}

// addAttachmentLocked adds a file attachment to a draft by rebuilding its
// MIME, and returns its index.
func addAttachmentLocked(d *mailData, m *message, a outAttachment, now time.Time) (int, *graphError) {
	if !m.isDraft {
		return 0, &graphError{http.StatusBadRequest, "ErrorInvalidPropertyUpdateSentMessage", "Update is not allowed for this type of item."}
	}
	o := draftMail(m)
	o.Attachments = append(o.Attachments, a)
	raw := buildMIME(o)
	content, err := parseMIME(raw)
	if err != nil {
		return 0, &graphError{http.StatusInternalServerError, "generalException", err.Error()}
	}
	m.content, m.raw = content, func() []byte { return raw }
	d.touch(m, now)
	return len(content.Attachments) - 1, nil
}

// handleAttachmentCreate answers POST /messages/{id}/attachments with a
// fileAttachment (GDC api-reference/v1.0/api/message-post-attachments.md):
// 201 with the attachment. The whole request is held to the 4 MB limit, so
// this is for files under 3 MB.
func (s *Sim) handleAttachmentCreate(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var body struct {
		ODataType    string `json:"@odata.type"`
		Name         string `json:"name"`
		ContentType  string `json:"contentType"`
		ContentBytes string `json:"contentBytes"`
		IsInline     bool   `json:"isInline"`
		ContentID    string `json:"contentId"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	if !strings.EqualFold(body.ODataType, "#microsoft.graph.fileAttachment") || body.Name == "" {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "Give a #microsoft.graph.fileAttachment with a name.")
		return
	}
	data, err := base64.StdEncoding.DecodeString(body.ContentBytes)
	if err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "Attachment '"+body.Name+"' has contentBytes that are not base64.")
		return
	}
	if body.ContentType == "" {
		body.ContentType = "application/octet-stream"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.lookupMessage(w, r)
	if m == nil {
		return
	}
	i, gerr := addAttachmentLocked(c.d, m, outAttachment{Name: body.Name, ContentType: body.ContentType, ContentID: body.ContentID,
		Inline: body.IsInline, Data: func() []byte { return data }}, s.now())
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	// The whole attachment, contentBytes included, as the page's example
	// answers (the sim returned a fixed subset: fixed); $select narrows it.
	var fields []string
	if sel := r.URL.Query().Get("$select"); sel != "" {
		fields = strings.Split(sel, ",")
	}
	writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.base + "/$metadata#users('" + c.mb.ID + "')/messages('" + c.messageID(m) + "')/attachments/$entity"}},
		c.attachmentJSON(m, i, fields, false)...))
}
