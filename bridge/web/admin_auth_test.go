package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestAdminAuthClient(t *testing.T) {
	a := newAdminAuth(Options{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}})
	for _, tt := range []struct {
		name, remote string
		xff          []string
		client, peer string
	}{
		{"untrusted peer ignores XFF", "192.0.2.7:4000", []string{"203.0.113.9"}, "192.0.2.7", "192.0.2.7"},
		{"trusted peer without XFF", "127.0.0.1:4000", nil, "127.0.0.1", "127.0.0.1"},
		{"trusted peer names the client", "127.0.0.1:4000", []string{"203.0.113.9"}, "203.0.113.9", "127.0.0.1"},
		{"rightmost untrusted wins over a spoofed left", "127.0.0.1:4000", []string{"192.0.2.1, 203.0.113.9, 10.1.2.3"}, "203.0.113.9", "127.0.0.1"},
		{"repeated headers are one list", "127.0.0.1:4000", []string{"192.0.2.1", "203.0.113.9"}, "203.0.113.9", "127.0.0.1"},
		{"all hops trusted: the leftmost", "127.0.0.1:4000", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9", "127.0.0.1"},
		{"a malformed hop stops the walk", "127.0.0.1:4000", []string{"203.0.113.9, junk, 10.1.2.3"}, "10.1.2.3", "127.0.0.1"},
		{"IPv6 peer and client", "[fd00::1]:4000", []string{"2001:db8::5"}, "2001:db8::5", "fd00::1"},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:4000", []string{"203.0.113.9"}, "203.0.113.9", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			client, peer := a.Client(r)
			if client.String() != tt.client || peer.String() != tt.peer {
				t.Errorf("got client %s peer %s, want %s %s", client, peer, tt.client, tt.peer)
			}
		})
	}
}

func TestAdminAuthHostAllowed(t *testing.T) {
	a := newAdminAuth(Options{AdminAddr: "127.0.0.2:8366", AdminHosts: []string{"Bridge-Admin.internal"}})
	for host, want := range map[string]bool{
		"127.0.0.1:8366": true, "127.0.0.2": true, "[::1]:8366": true, "[::1]": true, "localhost:8366": true,
		"LocalHost.:8366": true, "bridge-admin.internal:8366": true, "bridge-admin.internal.": true,
		"rebind.evil.example:8366": false, "192.0.2.1:8366": false, "": false, "localhost.evil.example": false,
		"127.0.0.1.evil.example:8366": false,
	} {
		if got := a.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	// The CLI dials admin.listen as written, 0.0.0.0 included.
	for addr, host := range map[string]string{"0.0.0.0:8366": "0.0.0.0:8366", "[::]:8366": "[::]:8366"} {
		if !newAdminAuth(Options{AdminAddr: addr}).hostAllowed(host) {
			t.Errorf("Host %s refused by a listener on %s", host, addr)
		}
	}
}

// TestAdminAuthLimit runs the failure window on an injected clock; IPv6
// clients in one /64 share a limit.
func TestAdminAuthLimit(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a := newAdminAuth(Options{AdminToken: "s3cret", Now: func() time.Time { return now }})
	req := func(remote string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/login", nil)
		r.RemoteAddr = remote
		return r
	}
	for i := range MaxSignInFailures {
		if err := a.checkToken(req("[2001:db8::1]:1"), "wrong", "test"); err != ErrWrongToken {
			t.Fatalf("failure %d: %v", i, err)
		}
		now = now.Add(time.Second)
	}
	err := a.checkToken(req("[2001:db8::ffff]:1"), "s3cret", "test")
	te, ok := err.(*ThrottledError)
	if !ok || te.RetryAfter != SignInWindow-MaxSignInFailures*time.Second {
		t.Fatalf("the right token from the same /64 after %d failures: %v, want a ThrottledError for the rest of the window", MaxSignInFailures, err)
	}
	if got := RetryAfter(&ThrottledError{RetryAfter: 1500 * time.Millisecond}); got != "2" {
		t.Errorf("Retry-After of 1.5s = %q, want 2", got)
	}
	if err := a.checkToken(req("[2001:db8:0:1::1]:1"), "s3cret", "test"); err != nil {
		t.Errorf("another /64: %v", err)
	}
	now = now.Add(SignInWindow)
	if err := a.checkToken(req("[2001:db8::1]:1"), "s3cret", "test"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}
