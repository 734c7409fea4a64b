package event

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestAttachmentLinkCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := now
	l := NewAttachmentLinks([]byte("0123456789abcdef0123456789abcdef"), "https://bridge.example.com/", func() time.Time { return clock })
	u, exp := l.For("support", time.Hour, now)("AAMk/1+=", "AAMkAtt-1", "Bericht März.pdf")
	if !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires %s", exp)
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Path != AttachmentLinkPath || parsed.Host != "bridge.example.com" {
		t.Fatalf("url %q: %v", u, err)
	}
	got, err := l.Check(parsed.Query())
	if err != nil || got.Message != "AAMk/1+=" || got.Name != "Bericht März.pdf" || got.Channel != "support" {
		t.Fatalf("check: %+v %v", got, err)
	}
	other := NewAttachmentLinks([]byte("fedcba9876543210fedcba9876543210"), "https://bridge.example.com", func() time.Time { return clock })
	if _, err := other.Check(parsed.Query()); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("another key's link: %v, want ErrLinkInvalid", err)
	}
	clock = exp.Add(-time.Second)
	if _, err := l.Check(parsed.Query()); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	clock = exp
	if _, err := l.Check(parsed.Query()); !errors.Is(err, ErrLinkExpired) {
		t.Errorf("at expiry: %v, want ErrLinkExpired", err)
	}
}
