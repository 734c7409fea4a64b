package m365sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeedFileExample(t *testing.T) {
	seed, err := LoadSeedFile(filepath.Join("testdata", "seed.yaml"))
	if err != nil {
		t.Fatalf("LoadSeedFile: %v", err)
	}
	s := New(Options{})
	got, err := s.Apply(seed)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got.TenantID != "8eaef023-2b34-4da1-9baa-8bc8c9d6a490" || got.TenantDomain != "contoso.onmicrosoft.com" ||
		got.ClientID != DefaultClientID || got.ClientSecret != DefaultClientSecret {
		t.Errorf("Seeded = %+v", got)
	}
	if strings.Join(got.Users, ",") != "agent@contoso.com,sales@contoso.com,auditor@contoso.com" || strings.Join(got.Mailboxes, ",") != "support@contoso.com" {
		t.Errorf("users %v mailboxes %v", got.Users, got.Mailboxes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mailboxByID[s.userByUPNLocked("auditor@contoso.com").ID] != nil {
		t.Error("no_mailbox user got a mailbox")
	}
	sup := s.mailboxes["support@contoso.com"]
	agent := s.userByUPNLocked("agent@contoso.com")
	if sup == nil || !sup.Shared || !sup.Enabled || !sup.FullAccess[agent.ID] || !sup.SendAs[agent.ID] {
		t.Errorf("support mailbox = %+v, want shared, enabled, agent with Full Access and Send As", sup)
	}
	if agent.ID != "a9f0c1d2-0000-4000-8000-00000000a9e7" || agent.DisplayName != "Alex Agent" {
		t.Errorf("agent = %+v", agent)
	}
}

func TestDefaultSeed(t *testing.T) {
	srv, err := StartServer(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sd := srv.Seeded
	if sd.TenantDomain != "contoso.onmicrosoft.com" || sd.ClientID != "11111111-2222-3333-4444-555555555555" ||
		sd.ClientSecret != "sim-demo-secret" || strings.Join(sd.Users, ",") != "agent@contoso.com,sales@contoso.com" ||
		strings.Join(sd.Mailboxes, ",") != "support@contoso.com" {
		t.Errorf("Seeded = %+v", sd)
	}
	if got := srv.Sim.RedirectURIs(sd.ClientID); len(got) != 1 || got[0] != "http://127.0.0.1:8365/oauth/callback" {
		t.Errorf("redirect URIs = %v", got)
	}
	// Each call is a fresh copy.
	a := DefaultSeed()
	a.App.RedirectURIs[0] = "http://changed"
	if DefaultSeed().App.RedirectURIs[0] != DefaultRedirectURI {
		t.Error("DefaultSeed shares state between calls")
	}
}

func TestSeedValidation(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "tenant: {domains: [a.example], colour: red}\n", "colour"},
		{"no domain", "tenant: {}\n", "tenant.domains"},
		{"bad upn", "tenant: {domains: [a.example]}\nusers: [{upn: alex}]\n", "users[0].upn"},
		{"duplicate upn", "tenant: {domains: [a.example]}\nusers: [{upn: a@a.example}, {upn: A@a.example}]\n", "appears twice"},
		{"shared address of a user", "tenant: {domains: [a.example]}\nusers: [{upn: a@a.example}]\nshared_mailboxes: [{address: a@a.example}]\n", "already a user's mailbox"},
		{"delegate not a user", "tenant: {domains: [a.example]}\nshared_mailboxes: [{address: s@a.example, full_access: [x@a.example]}]\n", "not one of the seed's users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSeedFile(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
