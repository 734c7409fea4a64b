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
