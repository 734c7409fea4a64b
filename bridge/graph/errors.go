package graph

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Sentinels callers branch on with errors.Is. A *Error matches at most one of
// them (see (*Error).Is); resolution errors (*FolderError) match
// ErrFolderNotFound or ErrFolderAmbiguous.
var (
	// ErrFolderNotFound: the folder does not exist (any more), or a path
	// segment names no folder. The caller re-resolves the path or reports it.
	ErrFolderNotFound = errors.New("graph: folder not found")
	// ErrFolderAmbiguous: a folder path segment matches more than one folder.
	ErrFolderAmbiguous = errors.New("graph: folder path is ambiguous")
	// ErrMailboxNotFound: the mailbox address is unknown to the tenant.
	ErrMailboxNotFound = errors.New("graph: mailbox not found")
	// ErrMailboxNotEnabled: the mailbox exists but Graph cannot reach it
	// (no Exchange Online licence, soft-deleted, or hosted on-premises).
	ErrMailboxNotEnabled = errors.New("graph: mailbox not enabled for REST API")
	// ErrAccessDenied: the signed-in user or the token lacks rights on the
	// mailbox (no Full Access on a shared mailbox, a missing Mail.* scope).
	ErrAccessDenied = errors.New("graph: access denied")
	// ErrSendAsDenied: the user may not send as the mailbox.
	ErrSendAsDenied = errors.New("graph: send as denied")
	// ErrUnauthorized: the access token was refused (expired, revoked,
	// malformed) even after one refresh.
	ErrUnauthorized = errors.New("graph: unauthorized")
	// ErrSyncStateNotFound: the delta cursor is no longer valid; the caller
	// must start a full resync.
	ErrSyncStateNotFound = errors.New("graph: delta sync state not found")
	// ErrItemNotFound: the message (or attachment) does not exist.
	ErrItemNotFound = errors.New("graph: item not found")
	// ErrThrottled: Graph kept answering 429 after every bounded retry.
	ErrThrottled = errors.New("graph: throttled")
	// ErrTooLarge: a body exceeded the caller's size cap.
	ErrTooLarge = errors.New("graph: content too large")
	// ErrRequestTooLarge: the request body is over Graph's 4 MB limit per
	// REST request (413, or refused before sending); retrying cannot help.
	ErrRequestTooLarge = errors.New("graph: request larger than Graph's 4 MB limit")
	// ErrForeignLink: a nextLink or deltaLink points away from the Graph
	// host; it is refused so the token is never sent elsewhere.
	ErrForeignLink = errors.New("graph: link points outside the Graph host")
)

// Error is a Graph API error: the HTTP status plus the error envelope
// {"error":{"code","message","innerError":{"request-id",...}}}.
type Error struct {
	Status    int
	Code      string // e.g. ErrorItemNotFound; empty when the body was not an envelope
	InnerCode string // innerError.code, when present
	Message   string
	// RequestID, ClientRequestID, Date and Diagnostic are what Microsoft
	// support asks for (GDC concepts/errors.md: innerError "date",
	// "request-id", "client-request-id"; the x-ms-ags-diagnostic header).
	// Each comes from the envelope's innerError when there, else the
	// response headers; ClientRequestID falls back to the one this client sent.
	RequestID       string
	ClientRequestID string
	Date            string // innerError.date, else the Date header
	Diagnostic      string // x-ms-ags-diagnostic header (JSON, as sent)
	// RetryAfter is the server's Retry-After, if it sent one (uncapped).
	RetryAfter time.Duration
	// Location is the Location header of a 410 Gone (a fresh delta URL).
	Location string
	// Method and Path say which request failed (path without query string).
	Method, Path string
	// Kind is what the request was about: "folder", "message", "delta",
	// "attachment", "mime", "batch", "mailbox". It decides whether a 404
	// ErrorItemNotFound means ErrFolderNotFound or ErrItemNotFound.
	Kind string
}

// Error describes the failure without secrets: status, code, message and the
// request id an operator can hand to Microsoft support.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %s %s: %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	var ids []string
	for _, kv := range [][2]string{{"request-id", e.RequestID}, {"client-request-id", e.ClientRequestID},
		{"date", e.Date}, {"x-ms-ags-diagnostic", e.Diagnostic}} {
		if kv[1] != "" {
			ids = append(ids, kv[0]+" "+kv[1])
		}
	}
	if len(ids) > 0 {
		b.WriteString(" (" + strings.Join(ids, ", ") + ")")
	}
	return b.String()
}

// LogAttrs are the identifiers Microsoft support asks for, as slog
// attributes for a log line about e: request-id, client-request-id, date
// and x-ms-ags-diagnostic (empty ones left out), plus status and code.
func (e *Error) LogAttrs() []any {
	attrs := []any{slog.Int("status", e.Status), slog.String("code", e.Code)}
	for _, kv := range [][2]string{{"request_id", e.RequestID}, {"client_request_id", e.ClientRequestID},
		{"date", e.Date}, {"ags_diagnostic", e.Diagnostic}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	return attrs
}

// Temporary reports whether retrying the same request later can succeed:
// throttling (429), server errors (500, 502, 503, 504) and 509.
func (e *Error) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout, 509:
		return true
	}
	return false
}

// Is matches e against the package's sentinels by status and code, never by
// message text.
func (e *Error) Is(target error) bool {
	return target != nil && e.sentinel() == target
}

func (e *Error) sentinel() error {
	code := strings.ToLower(e.Code)
	inner := strings.ToLower(e.InnerCode)
	switch {
	case e.Status == http.StatusGone, code == "syncstatenotfound", code == "resyncrequired",
		code == "invalidsyncstatedata", code == "errorinvalidsyncstatedata", inner == "syncstatenotfound",
		inner == "resyncrequired":
		return ErrSyncStateNotFound
	case code == "mailboxnotenabledforrestapi":
		return ErrMailboxNotEnabled
	case code == "errorinvaliduser", code == "resourcenotfound", code == "errornonexistentmailbox":
		return ErrMailboxNotFound
	case code == "errorsendasdenied":
		return ErrSendAsDenied
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusForbidden, code == "erroraccessdenied", code == "accessdenied":
		return ErrAccessDenied
	case e.Status == http.StatusTooManyRequests:
		return ErrThrottled
	case e.Status == http.StatusRequestEntityTooLarge:
		return ErrRequestTooLarge
	case code == "errorfoldernotfound":
		return ErrFolderNotFound
	case code == "erroritemnotfound", code == "itemnotfound", code == "errorinvalididmalformed",
		e.Status == http.StatusNotFound && code == "":
		if e.Kind == kindFolder || e.Kind == kindDelta {
			return ErrFolderNotFound
		}
		return ErrItemNotFound
	}
	return nil
}

// ParseError is the *Error of a non-2xx Graph response, for a caller
// that made the request itself (entra's mailbox probe, which runs before a
// channel's token source exists): one reading of Graph's error envelope.
func ParseError(status int, h http.Header, body []byte) *Error { return parseError(status, h, body) }

// parseError builds an *Error from a non-2xx response. It decodes the
// envelope whenever there is an "error" object, even with an empty "code"
// (GDC concepts/json-batching.md, the 403 of request "2" in the example
// batch response, has "code": "" with a message and an innerError), accepts
// both spellings of the inner error ("innerError" on the wire, "innererror"
// in the docs), and a body that is not JSON at all. A property of an
// unexpected type is skipped, not fatal: the rest of the envelope is kept.
func parseError(status int, h http.Header, body []byte) *Error {
	e := &Error{Status: status, RequestID: h.Get("request-id"), ClientRequestID: h.Get("client-request-id"),
		Date: h.Get("Date"), Diagnostic: h.Get("x-ms-ags-diagnostic"), Location: h.Get("Location")}
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = jsonString(env.Error["code"])
		e.Message = jsonString(env.Error["message"])
		raw := env.Error["innerError"]
		if len(raw) == 0 {
			raw = env.Error["innererror"]
		}
		var inner map[string]json.RawMessage
		if len(raw) > 0 && json.Unmarshal(raw, &inner) == nil {
			e.InnerCode = jsonString(inner["code"])
			if v := jsonString(inner["request-id"]); v != "" {
				e.RequestID = v
			}
			if v := jsonString(inner["client-request-id"]); v != "" {
				e.ClientRequestID = v
			}
			if v := jsonString(inner["date"]); v != "" {
				e.Date = v
			}
		}
		if e.Message == "" && e.Code == "" {
			e.Message = http.StatusText(status)
		}
		return e
	}
	e.Message = snippet(body)
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// jsonString returns raw as a string when it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// snippet returns the start of a non-envelope body for an error message:
// valid UTF-8, one line, at most 200 bytes.
func snippet(b []byte) string {
	const max = 200
	if len(b) > max {
		b = b[:max]
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
}

// Explain turns an error from this package into what an operator reads in
// `m365bridge channels` and the logs: the reason in plain words and the fix.
// For an error it does not recognise it returns err.Error() and an empty fix.
func Explain(err error) (reason, fix string) {
	if err == nil {
		return "", ""
	}
	switch {
	case errors.Is(err, ErrFolderAmbiguous):
		return "the folder path matches more than one folder: " + err.Error(),
			"rename one of the folders in Outlook, or make the channel's folder path unique"
	case errors.Is(err, ErrFolderNotFound):
		return "the channel's folder does not exist in the mailbox (deleted, renamed or moved): " + err.Error(),
			"restore the folder in Outlook or correct the channel's folder path in bridge.yaml"
	case errors.Is(err, ErrMailboxNotFound):
		return "Microsoft 365 does not know the mailbox address",
			"check the channel's mailbox address (typos, a renamed or deleted mailbox)"
	case errors.Is(err, ErrMailboxNotEnabled):
		return "the mailbox cannot be reached through Microsoft Graph (no Exchange Online licence, soft-deleted, or hosted on-premises)",
			"give the mailbox an Exchange Online licence or move it to Exchange Online; a shared mailbox must exist in Exchange Online"
	case errors.Is(err, ErrSendAsDenied):
		return "the signed-in user may not send as this mailbox",
			"grant the user Send As (or Send on Behalf) on the mailbox in the Exchange admin center"
	case errors.Is(err, ErrAccessDenied):
		return "the signed-in user has no access to the mailbox, or the consent lacks the Mail.ReadWrite.Shared permission",
			"grant the user Full Access on the shared mailbox in the Exchange admin center (it can take up to an hour to apply), or sign in again to re-consent"
	case errors.Is(err, ErrUnauthorized):
		return "Microsoft Graph rejected the access token even after a refresh",
			"sign in again for this channel (the consent may have been revoked or the password changed)"
	case errors.Is(err, ErrSyncStateNotFound):
		return "the stored delta cursor expired on the Microsoft side",
			"none: the bridge runs a full resync and its ledger drops what was already delivered"
	case errors.Is(err, ErrThrottled):
		return "Microsoft Graph is throttling requests to this mailbox",
			"none usually: the bridge waits as told; if it persists, lengthen poll_interval or check other apps using the same mailbox"
	case errors.Is(err, ErrItemNotFound):
		return "the message no longer exists in the mailbox (moved or deleted by someone else)",
			"none: it is skipped"
	case errors.Is(err, ErrTooLarge):
		return "the content is larger than the configured limit: " + err.Error(),
			"raise the channel's size limit or handle the message by hand in Outlook"
	case errors.Is(err, ErrRequestTooLarge):
		return "the request is larger than Microsoft Graph accepts (4 MB per request, attachments counted base64-encoded, so about 3 MB of attachments in total): " + err.Error(),
			"send fewer or smaller attachments (under about 3 MB together), or share large files as a link"
	case errors.Is(err, ErrForeignLink):
		return "Microsoft Graph returned a paging link to another host: " + err.Error(),
			"check graph_url in bridge.yaml matches the Graph endpoint in use"
	}
	var ge *Error
	if errors.As(err, &ge) && ge.Temporary() {
		return "Microsoft Graph is temporarily unavailable: " + ge.Error(),
			"none: the bridge retries; check https://status.cloud.microsoft if it lasts"
	}
	return err.Error(), ""
}

// ExplainSend is Explain for a send that failed: Graph's code (empty when
// it gave none), the reason and the operator's fix, for a send through
// mailbox as the signed-in user who, in the bridge's channel. Codes are
// matched, never messages. Exchange's submission codes
// (ErrorQuotaExceeded, ErrorMessageSizeExceeded, ErrorSubmissionQuotaExceeded,
// ErrorMessageSubmissionBlocked, ErrorExceededMessageLimit) are EWS response
// codes Graph passes through.
func ExplainSend(err error, mailbox, who, channel string) (code, reason, fix string) {
	var ge *Error
	if errors.As(err, &ge) {
		code = ge.Code
	}
	switch strings.ToLower(code) {
	case "errorinvalidrecipients", "errorinvalidrecipient":
		return code, "Exchange refused a recipient: " + ge.Message, "correct the recipient addresses and send again"
	case "errorrecipientlimitexceeded", "errorexceededmessagelimit":
		return code, "the message has more recipients than Exchange allows: " + ge.Message,
			"send to at most 500 recipients in to, cc and bcc together (the tenant may set a lower limit)"
	case "errorquotaexceeded", "quotalimitreached", "errorquotaexceededonsave":
		return code, "the mailbox " + mailbox + " is over its storage quota, so the sent copy cannot be saved",
			"free space in the mailbox (Sent Items counts) or raise its quota in the Exchange admin center"
	case "errormessagesizeexceeded":
		return code, "the message is larger than the mailbox's maximum send size",
			"send smaller attachments (or a link), or raise the mailbox's MaxSendSize in the Exchange admin center"
	case "errorsubmissionquotaexceeded", "errormessagesubmissionblocked":
		return code, "Exchange Online refused to submit the message: the account reached Microsoft's sending limits or is blocked from sending",
			"check Restricted entities in the Microsoft 365 Defender portal; use this channel for replies only, never for bulk or notification mail"
	}
	switch {
	case errors.Is(err, ErrSendAsDenied):
		return cmp.Or(code, "ErrorSendAsDenied"), who + " may not send as " + mailbox,
			"grant Send As to the signed-in user " + who + " on the shared mailbox " + mailbox +
				" in the Exchange admin center (Recipients > Mailboxes > " + mailbox + " > Delegation > Send as), or with" +
				" Add-RecipientPermission " + mailbox + " -AccessRights SendAs -Trustee " + who + "; it can take up to an hour to apply"
	case errors.Is(err, ErrAccessDenied):
		return cmp.Or(code, "ErrorAccessDenied"), "Microsoft Graph denied sending as " + mailbox + " (the consent lacks Mail.Send or Mail.Send.Shared, or the user lost access)",
			"sign in again for the channel (m365bridge auth " + channel + ") so Mail.Send and Mail.Send.Shared are consented, and check the user's rights on the mailbox"
	}
	reason, fix = Explain(err)
	if fix == "" {
		fix = "check the request and send it again"
	}
	return code, reason, fix
}

// ExplainMailboxAccess says why Graph refused to read a mailbox's inbox
// with a fresh token (the consent's access probe: status and Graph error
// code) and what the operator should fix. An empty fix means "nothing to
// fix in Microsoft 365: try again" (Graph unavailable or throttling); the
// caller adds how to start again.
func ExplainMailboxAccess(status int, code string, shared bool, address string) (reason, fix string) {
	switch {
	case code == "ErrorInvalidUser":
		return "Wrong shared mailbox address: Microsoft 365 has no mailbox " + address + ".",
			"Correct mailbox.address of this channel in bridge.yaml, restart, and start again."
	case code == "ErrorAccessDenied" && shared:
		return "This user lacks Full Access to the mailbox " + address + ".",
			"In the Exchange admin center (Recipients > Mailboxes > " + address + " > Mailbox delegation) add the user under Read and manage (Full Access) and Send as, wait for it to apply (up to an hour), then start again."
	case code == "ErrorAccessDenied":
		return "Microsoft Graph denied access to the mailbox: a mail permission is missing from the consent.",
			"Add the delegated Mail.* permissions to the app registration, then start again and accept them."
	case code == "MailboxNotEnabledForRESTAPI":
		return "The mailbox is inactive, soft-deleted or hosted on-premises, or the user has no Exchange Online licence.",
			"Give the user an Exchange Online licence (or grant access to an active cloud mailbox), then start again."
	case code == "ErrorItemNotFound" || code == "ResourceNotFound":
		return "The mailbox was not found or is not provisioned yet, or the user lacks delegation permissions for it.",
			"Check the delegation (Full Access) and that the mailbox exists in Exchange Online, then start again."
	case status >= 500 || status == http.StatusTooManyRequests:
		return "Microsoft Graph is unavailable or throttling right now.", ""
	default:
		return "Microsoft Graph refused to read the mailbox.",
			"Check the app's delegated Mail.* permissions and the mailbox address, then start again."
	}
}
