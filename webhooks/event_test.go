package webhooks

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

func TestEventID(t *testing.T) {
	a := EventID("contoso.onmicrosoft.com", "support@contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A")
	if b := EventID("contoso.onmicrosoft.com", "support@contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"); a != b {
		t.Errorf("same inputs gave %s and %s", a, b)
	}
	if b := EventID("CONTOSO.onmicrosoft.com", "Support@Contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"); a != b {
		t.Errorf("case of tenant or mailbox changed the id: %s and %s", a, b)
	}
	// Parts are length-prefixed: moving a character between them is another id.
	if b := EventID("contoso.onmicrosoft.co", "msupport@contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"); a == b {
		t.Errorf("different inputs gave the same id %s", a)
	}
	if b := EventID("contoso.onmicrosoft.com", "support@contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0a"); a == b {
		t.Errorf("immutable ids differing in case gave the same id %s", a)
	}
	if !regexp.MustCompile(`^msg_[a-z2-7]{26}$`).MatchString(a) {
		t.Errorf("id %q is not msg_ + 26 base32 characters", a)
	}
}

// TestEventIDPinned: an event id must never change across upgrades (the
// helpdesk deduplicates on it), so these are literal values computed once,
// not EventID compared with itself. A failure here means every mail already
// delivered would come back as a new ticket after a re-sync: do not update
// the expected values, restore the derivation.
func TestEventIDPinned(t *testing.T) {
	tests := []struct{ tenant, mailbox, immutableID, want string }{
		{"contoso.onmicrosoft.com", "support@contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A", "msg_tczmgr25e3ndtgirrubst7iu6y"},
		{"8eaef023-2b34-4da1-9baa-8bc8c9d6a490", "sales@contoso.com", "AAMkAGI2TG93AAA=", "msg_oqmdo5sejv5ae6c23hvioock5y"},
		{"Contoso.OnMicrosoft.com", "Support@Contoso.com", "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A", "msg_tczmgr25e3ndtgirrubst7iu6y"},
		{"", "", "", "msg_lkr5jfvqfy3qmzi4chb3zhowbi"},
		{"fabrikam.com", "zoë@fabrikam.com", "AAMkADk0ZjU3LWM5NGEtNDkxMy1iMzM1LTdmZGJlNzVmMGU2NwBGAAAAAAD=", "msg_nrimnj4p5oihp7n7j3kftzj6j4"},
	}
	for _, tt := range tests {
		if got := EventID(tt.tenant, tt.mailbox, tt.immutableID); got != tt.want {
			t.Errorf("EventID(%q, %q, %q) = %q, want %q", tt.tenant, tt.mailbox, tt.immutableID, got, tt.want)
		}
	}
}

func TestNewEventRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.FixedZone("CET", 3600))
	ev, err := NewEvent(TypeWebhookTest, at, TestData{ID: "evt_1", Version: Version, Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeWebhookTest || !got.Timestamp.Equal(at) || got.ID() != "evt_1" {
		t.Errorf("round trip = %+v (id %q), want type %s at %s id evt_1", got, got.ID(), TypeWebhookTest, at)
	}
	if _, err := NewEvent("", at, nil); err == nil {
		t.Error("NewEvent with empty type: no error")
	}
}
