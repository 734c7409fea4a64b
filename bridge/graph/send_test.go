package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

func to(addr string) []Recipient { return []Recipient{{EmailAddress: EmailAddress{Address: addr}}} }

func TestSendMailRetriesOnlyUnprocessed(t *testing.T) {
	tests := []struct {
		name      string
		first     func(w http.ResponseWriter, r *http.Request)
		wantCalls int32
		wantErr   bool
	}{
		{"429 is retried", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			writeEnvelope(w, 429, "TooManyRequests")
		}, 2, false},
		{"503 is retried", func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 503, "serviceNotAvailable") }, 2, false},
		{"500 may have sent", func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 500, "generalException") }, 1, true},
		{"504 may have sent", func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 504, "") }, 1, true},
		{"dropped connection may have sent", func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					tt.first(w, r)
					return
				}
				var body struct {
					Message         OutgoingMessage `json:"message"`
					SaveToSentItems bool            `json:"saveToSentItems"`
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !body.SaveToSentItems || body.Message.Subject != "hi" {
					writeEnvelope(w, 400, "ErrorInvalidRequest")
					return
				}
				w.WriteHeader(http.StatusAccepted)
			})
			mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
			err := mc.SendMail(context.Background(), OutgoingMessage{Subject: "hi", ToRecipients: to("c@example.com")}, true)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("attempts = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestSendMailRejectsBadInput(t *testing.T) {
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request expected") })
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	many := make([]Recipient, 501)
	for _, tt := range []struct {
		name string
		msg  OutgoingMessage
		want string
	}{
		{"no recipients", OutgoingMessage{Subject: "x"}, "no recipients"},
		{"too many", OutgoingMessage{ToRecipients: many}, "at most 500"},
		{"standard header", OutgoingMessage{ToRecipients: to("a@b"), InternetMessageHeaders: []Header{{Name: "In-Reply-To", Value: "<x@y>"}}}, "X- headers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := mc.SendMail(context.Background(), tt.msg, true); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSimSendMail(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	ctx := context.Background()
	msg := OutgoingMessage{
		Subject: "Re: printer", Body: &ItemBody{ContentType: "html", Content: "<p>fixed</p>"},
		ToRecipients:           to("sales@contoso.com"),
		InternetMessageHeaders: []Header{{Name: "X-Ticket", Value: "42"}},
		Attachments:            []Attachment{{Name: "log.txt", ContentType: "text/plain", ContentBytes: []byte("log")}},
	}
	shared := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	if err := shared.SendMail(ctx, msg, true); err != nil {
		t.Fatal(err)
	}
	got := srv.Sim.Messages("sales@contoso.com", "Inbox")
	if len(got) != 1 || got[0].Subject != "Re: printer" || !strings.EqualFold(got[0].From, support) {
		t.Fatalf("sales inbox = %+v", got)
	}
	if sent := srv.Sim.Messages(support, "Sent Items"); len(sent) != 1 {
		t.Errorf("support Sent Items holds %d messages, want 1", len(sent))
	}

	// Sam Sales has no Send As on the shared mailbox.
	denied := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, "sales@contoso.com"))
	err := denied.SendMail(ctx, msg, false)
	if !errors.Is(err, ErrSendAsDenied) {
		t.Errorf("err = %v, want ErrSendAsDenied", err)
	}
}

// TestSendStaysWithinGraphLimits: what Graph would refuse (over 4 MB encoded,
// more than 5 custom headers) is refused before any request, with an error
// that says what to fix; a 413 from Graph itself is ErrRequestTooLarge too.
func TestSendStaysWithinGraphLimits(t *testing.T) {
	var calls atomic.Int32
	status := http.StatusAccepted
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if status != http.StatusAccepted {
			writeEnvelope(w, status, "RequestEntityTooLarge")
			return
		}
		w.WriteHeader(status)
	})
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	att := func(n int) Attachment {
		return Attachment{Name: "a.bin", ContentType: "application/octet-stream", ContentBytes: make([]byte, n)}
	}
	var six []Header
	for i := range 6 {
		six = append(six, Header{Name: "X-H" + string(rune('0'+i)), Value: "v"})
	}
	tests := []struct {
		name    string
		msg     OutgoingMessage
		wantErr error
		wantIn  string
	}{
		{"two attachments under 3 MB each, 4 MB encoded", OutgoingMessage{Subject: "s", ToRecipients: to("c@example.com"),
			Attachments: []Attachment{att(1_600_000), att(1_600_000)}}, ErrRequestTooLarge, "at most 4000000"},
		{"one 2.9 MB attachment", OutgoingMessage{Subject: "s", ToRecipients: to("c@example.com"),
			Attachments: []Attachment{att(2_900_000)}}, nil, ""},
		{"six custom headers", OutgoingMessage{Subject: "s", ToRecipients: to("c@example.com"), InternetMessageHeaders: six}, nil, "at most 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			err := mc.SendMail(context.Background(), tt.msg, true)
			switch {
			case tt.wantIn == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantIn != "" && (err == nil || !strings.Contains(err.Error(), tt.wantIn)):
				t.Fatalf("err = %v, want one saying %q", err, tt.wantIn)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if sent := calls.Load() - before; (tt.wantIn == "") != (sent == 1) {
				t.Errorf("%d requests sent", sent)
			}
		})
	}
	status = http.StatusRequestEntityTooLarge
	err := mc.SendMail(context.Background(), OutgoingMessage{Subject: "s", ToRecipients: to("c@example.com")}, true)
	if !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("413: err = %v, want ErrRequestTooLarge", err)
	}
	if reason, fix := Explain(err); !strings.Contains(reason, "4 MB") || !strings.Contains(fix, "smaller attachments") {
		t.Errorf("Explain(413) = %q, %q", reason, fix)
	}
}
