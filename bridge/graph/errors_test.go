package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"10", 10 * time.Second, true},
		{" 3 ", 3 * time.Second, true},
		{"0", 0, true},
		{"2.128", 2128 * time.Millisecond, true},
		{"0.5", 500 * time.Millisecond, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Thu, 26 Nov 2026 20:00:30 GMT", 30 * time.Second, true},
		{"Thursday, 26-Nov-26 20:00:05 GMT", 5 * time.Second, true}, // RFC 850
		{"Thu Nov 26 20:00:07 2026", 7 * time.Second, true},         // ANSI C
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},      // in the past: retry now
		{"", 0, false},
		{"soon", 0, false},
		{"-5", 0, false},
		{"NaN", 0, false},
		{"+Inf", 0, false},
		{"1e30", time.Duration(1<<63 - 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func envelope(code, msg, innerKey string) []byte {
	return fmt.Appendf(nil, `{"error":{"code":%q,"message":%q,%q:{"date":"2024-07-15T14:30:00","request-id":"req-1","client-request-id":"cli-1","code":"inner"}}}`, code, msg, innerKey)
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		code      string
		kind      string
		want      error
		temporary bool
	}{
		{"folder not found", 404, "ErrorFolderNotFound", kindFolder, ErrFolderNotFound, false},
		{"item not found on a folder", 404, "ErrorItemNotFound", kindFolder, ErrFolderNotFound, false},
		{"item not found on delta", 404, "ErrorItemNotFound", kindDelta, ErrFolderNotFound, false},
		{"malformed folder id", 400, "ErrorInvalidIdMalformed", kindFolder, ErrFolderNotFound, false},
		{"item not found on a message", 404, "ErrorItemNotFound", kindMessage, ErrItemNotFound, false},
		{"generic itemNotFound", 404, "itemNotFound", kindMessage, ErrItemNotFound, false},
		{"invalid user", 404, "ErrorInvalidUser", kindFolder, ErrMailboxNotFound, false},
		{"resource not found", 404, "ResourceNotFound", kindFolder, ErrMailboxNotFound, false},
		{"mailbox not enabled", 404, "MailboxNotEnabledForRESTAPI", kindFolder, ErrMailboxNotEnabled, false},
		{"access denied", 403, "ErrorAccessDenied", kindFolder, ErrAccessDenied, false},
		{"directory denied", 403, "Authorization_RequestDenied", kindFolder, ErrAccessDenied, false},
		{"send as denied", 403, "ErrorSendAsDenied", kindMessage, ErrSendAsDenied, false},
		{"unauthorized", 401, "InvalidAuthenticationToken", kindDelta, ErrUnauthorized, false},
		{"gone", 410, "", kindDelta, ErrSyncStateNotFound, false},
		{"sync state", 400, "syncStateNotFound", kindDelta, ErrSyncStateNotFound, false},
		{"resync", 400, "resyncRequired", kindDelta, ErrSyncStateNotFound, false},
		{"invalid sync state data", 400, "InvalidSyncStateData", kindDelta, ErrSyncStateNotFound, false},
		{"throttled", 429, "TooManyRequests", kindMessage, ErrThrottled, true},
		{"app throttled", 429, "ApplicationThrottled", kindMessage, ErrThrottled, true},
		{"unavailable", 503, "serviceNotAvailable", kindMessage, nil, true},
		{"gateway timeout", 504, "", kindDelta, nil, true},
		{"bad filter", 400, "InefficientFilter", kindList, nil, false},
		{"request too large", 413, "RequestEntityTooLarge", kindSend, ErrRequestTooLarge, false},
	}
	for _, tt := range tests {
		for _, innerKey := range []string{"innerError", "innererror"} {
			t.Run(tt.name+"/"+innerKey, func(t *testing.T) {
				ge := parseError(tt.status, http.Header{}, envelope(tt.code, "msg", innerKey))
				ge.Kind = tt.kind
				if tt.code == "" {
					ge = parseError(tt.status, http.Header{}, []byte("<html>gateway</html>"))
					ge.Kind = tt.kind
				}
				var err error = fmt.Errorf("wrapped: %w", ge)
				for _, s := range allSentinels {
					if got, want := errors.Is(err, s), s == tt.want; got != want {
						t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
					}
				}
				if got := ge.Temporary(); got != tt.temporary {
					t.Errorf("Temporary() = %v, want %v", got, tt.temporary)
				}
				if tt.code != "" && ge.RequestID != "req-1" {
					t.Errorf("RequestID = %q, want req-1 from %s", ge.RequestID, innerKey)
				}
			})
		}
	}
}

var allSentinels = []error{ErrFolderNotFound, ErrFolderAmbiguous, ErrMailboxNotFound, ErrMailboxNotEnabled,
	ErrAccessDenied, ErrSendAsDenied, ErrUnauthorized, ErrSyncStateNotFound, ErrItemNotFound, ErrThrottled,
	ErrTooLarge, ErrRequestTooLarge, ErrForeignLink}

func TestParseErrorNonJSON(t *testing.T) {
	h := http.Header{}
	h.Set("request-id", "hdr-req")
	ge := parseError(502, h, []byte("  <html>\n<body>Bad gateway</body></html>\xff"))
	if ge.Code != "" || ge.RequestID != "hdr-req" {
		t.Errorf("code %q request id %q, want empty code and hdr-req", ge.Code, ge.RequestID)
	}
	if got, want := ge.Message, "<html> <body>Bad gateway</body></html>"; got != want {
		t.Errorf("Message = %q, want %q", got, want)
	}
	ge = parseError(500, h, nil)
	if got, want := ge.Message, "Internal Server Error"; got != want {
		t.Errorf("empty body Message = %q, want %q", got, want)
	}
}

func TestExplain(t *testing.T) {
	for _, s := range allSentinels {
		reason, fix := Explain(fmt.Errorf("sync: %w", s))
		if reason == "" || fix == "" {
			t.Errorf("Explain(%v) = %q, %q; want both reason and fix", s, reason, fix)
		}
	}
	reason, fix := Explain(&Error{Status: 503, Method: "GET", Path: "/v1.0/me"})
	if !strings.Contains(reason, "temporarily") || fix == "" {
		t.Errorf("Explain(503) = %q, %q", reason, fix)
	}
	reason, fix = Explain(errors.New("something else"))
	if reason != "something else" || fix != "" {
		t.Errorf("Explain(unknown) = %q, %q", reason, fix)
	}
	if r, f := Explain(nil); r != "" || f != "" {
		t.Errorf("Explain(nil) = %q, %q", r, f)
	}
}

func TestErrorMessage(t *testing.T) {
	ge := parseError(404, http.Header{}, envelope("ErrorItemNotFound", "The specified object was not found in the store.", "innerError"))
	ge.Method, ge.Path = "GET", "/v1.0/me/messages/AAA"
	got := ge.Error()
	want := "graph GET /v1.0/me/messages/AAA: 404 ErrorItemNotFound: The specified object was not found in the store. (request-id req-1, client-request-id cli-1, date 2024-07-15T14:30:00)"
	if got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
}

// TestParseErrorDocumentedEmptyCode decodes the error envelopes of
// Microsoft's example batch response (testdata/graphdocs/README.md): the one
// with "code": "" must keep its message, request-id, client-request-id and
// date, as the one with a code does.
func TestParseErrorDocumentedEmptyCode(t *testing.T) {
	b, err := os.ReadFile("testdata/graphdocs/batch-response-empty-code.json")
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Responses []batchReply `json:"responses"`
	}
	if err := json.Unmarshal(b, &batch); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ code, msg, date string }{
		"2": {"", "You do not have the required permissions to access this item.", "2025-02-13T10:17:05"},
		"3": {"Authorization_RequestDenied", "Insufficient privileges to complete the operation.", "2025-02-13T10:17:06"},
	}
	for _, r := range batch.Responses {
		h := http.Header{}
		for k, v := range r.Headers {
			h.Set(k, v)
		}
		ge := parseError(r.Status, h, r.Body)
		w := want[r.ID]
		if ge.Code != w.code || ge.Message != w.msg || ge.Date != w.date ||
			ge.RequestID != "93b6f17e-c05d-4f45-ad2a-6665c708d8a0" || ge.ClientRequestID != "e70c5c1b-8b47-68c0-3171-3d22f5e0bd54" {
			t.Errorf("response %s: %+v", r.ID, ge)
		}
		if !errors.Is(ge, ErrAccessDenied) {
			t.Errorf("response %s: %v does not match ErrAccessDenied", r.ID, ge)
		}
		if !strings.Contains(ge.Error(), "request-id 93b6f17e-c05d-4f45-ad2a-6665c708d8a0") {
			t.Errorf("response %s: Error() = %q lacks the request-id", r.ID, ge.Error())
		}
	}
}

// TestErrorKeepsSupportIdentifiers: an error that comes over the wire keeps
// request-id, client-request-id, date and x-ms-ags-diagnostic in Error() and
// in the attributes of the retry log line.
func TestErrorKeepsSupportIdentifiers(t *testing.T) {
	const diag = `{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"003","RoleInstance":"AM1PEPF0000A1B2"}}`
	var logBuf strings.Builder
	calls := 0
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("request-id", "hdr-req")
		w.Header().Set("x-ms-ags-diagnostic", diag)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"serviceNotAvailable","message":"try later","innerError":{"date":"2026-11-26T20:00:00","request-id":"env-req"}}}`)
	})
	c.MaxRetries = 1
	c.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	mb := c.Mailbox(Mailbox{}, staticToken("t"))
	_, err := mb.GetMessage(context.Background(), "AAA", nil, false)
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if ge.RequestID != "env-req" || ge.Date != "2026-11-26T20:00:00" || ge.Diagnostic != diag || ge.ClientRequestID == "" {
		t.Errorf("error = %+v", ge)
	}
	for _, s := range []string{"request-id env-req", "client-request-id " + ge.ClientRequestID, "date 2026-11-26T20:00:00", "x-ms-ags-diagnostic " + diag} {
		if !strings.Contains(ge.Error(), s) {
			t.Errorf("Error() = %q lacks %q", ge.Error(), s)
		}
	}
	for _, s := range []string{"request_id=env-req", "client_request_id=", "date=2026-11-26T20:00:00", "ags_diagnostic="} {
		if !strings.Contains(logBuf.String(), s) {
			t.Errorf("retry log line lacks %q:\n%s", s, logBuf.String())
		}
	}
}
