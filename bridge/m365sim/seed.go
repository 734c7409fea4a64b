package m365sim

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Seed describes a sim's starting directory and mail. It is what
// `m365bridge sim --seed FILE` reads (YAML); testdata/seed.yaml is the
// documented example and DefaultSeed the built-in one.
type Seed struct {
	Tenant          SeedTenant          `yaml:"tenant"`
	App             SeedApp             `yaml:"app"`
	Users           []SeedUser          `yaml:"users"`
	SharedMailboxes []SeedSharedMailbox `yaml:"shared_mailboxes"`
}

// SeedTenant is the seed's one tenant. An empty ID is generated.
type SeedTenant struct {
	ID                   string   `yaml:"id"`
	Domains              []string `yaml:"domains"`
	AdminConsentRequired bool     `yaml:"admin_consent_required"`
}

// SeedApp is the seed's app registration, a confidential web client. An
// empty ClientID or ClientSecret is generated.
type SeedApp struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	MultiTenant  bool     `yaml:"multi_tenant"`
	RedirectURIs []string `yaml:"redirect_uris"`
	DisplayName  string   `yaml:"display_name"`
}

// SeedUser is a directory user; unless NoMailbox, it owns a mailbox at its
// UPN.
type SeedUser struct {
	ID          string   `yaml:"id"`
	UPN         string   `yaml:"upn"`
	DisplayName string   `yaml:"display_name"`
	Password    string   `yaml:"password"`
	NoMailbox   bool     `yaml:"no_mailbox"`
	MFARequired bool     `yaml:"mfa_required"`
	Disabled    bool     `yaml:"disabled"`
	Mail        MailSeed `yaml:"mail"`
}

// SeedSharedMailbox is a shared mailbox and who may use it.
type SeedSharedMailbox struct {
	Address     string   `yaml:"address"`
	DisplayName string   `yaml:"display_name"`
	FullAccess  []string `yaml:"full_access"` // user UPNs
	SendAs      []string `yaml:"send_as"`     // user UPNs
	Disabled    bool     `yaml:"disabled"`
	Mail        MailSeed `yaml:"mail"`
}

// Default seed values, matching the repository's sample bridge.yaml.
const (
	DefaultTenantDomain = "contoso.onmicrosoft.com"
	DefaultClientID     = "11111111-2222-3333-4444-555555555555"
	DefaultClientSecret = "sim-demo-secret"
	DefaultRedirectURI  = "http://127.0.0.1:8365/oauth/callback"
)

// DefaultSeed returns a fresh copy of the built-in seed: tenant
// contoso.onmicrosoft.com (also contoso.com), app DefaultClientID with secret
// DefaultClientSecret and redirect URI DefaultRedirectURI, users
// agent@contoso.com (Alex Agent) and sales@contoso.com, and the shared mailbox
// support@contoso.com on which agent has Full Access and Send As. Callers may
// modify the copy (for example the redirect URI) before applying it.
func DefaultSeed() *Seed {
	return &Seed{
		Tenant: SeedTenant{
			ID:      "8eaef023-2b34-4da1-9baa-8bc8c9d6a490",
			Domains: []string{DefaultTenantDomain, "contoso.com"},
		},
		App: SeedApp{
			ClientID:     DefaultClientID,
			ClientSecret: DefaultClientSecret,
			RedirectURIs: []string{DefaultRedirectURI},
			DisplayName:  "m365bridge",
		},
		Users: []SeedUser{
			{ID: "a9f0c1d2-0000-4000-8000-00000000a9e7", UPN: "agent@contoso.com", DisplayName: "Alex Agent", Password: "agent"},
			{ID: "5a1e5000-0000-4000-8000-0000000005a1", UPN: "sales@contoso.com", DisplayName: "Sam Sales", Password: "sales"},
		},
		SharedMailboxes: []SeedSharedMailbox{
			{Address: "support@contoso.com", DisplayName: "Contoso Support",
				FullAccess: []string{"agent@contoso.com"}, SendAs: []string{"agent@contoso.com"}},
		},
	}
}

// LoadSeedFile reads a seed file, strictly: an unknown key is an error.
func LoadSeedFile(path string) (*Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	var seed Seed
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&seed); err != nil {
		return nil, fmt.Errorf("parse seed %s: %w", path, err)
	}
	if err := seed.validate(); err != nil {
		return nil, fmt.Errorf("check seed %s: %w", path, err)
	}
	return &seed, nil
}

// validate reports the first thing in the seed that Apply could not honour.
func (seed *Seed) validate() error {
	if len(seed.Tenant.Domains) == 0 {
		return fmt.Errorf("tenant.domains: at least one domain is required, e.g. contoso.onmicrosoft.com")
	}
	upns := map[string]bool{}
	for i, u := range seed.Users {
		if !strings.Contains(u.UPN, "@") {
			return fmt.Errorf("users[%d].upn: %q is not an address like agent@contoso.com", i, u.UPN)
		}
		if upns[strings.ToLower(u.UPN)] {
			return fmt.Errorf("users[%d].upn: %q appears twice", i, u.UPN)
		}
		upns[strings.ToLower(u.UPN)] = true
	}
	for i, m := range seed.SharedMailboxes {
		if !strings.Contains(m.Address, "@") {
			return fmt.Errorf("shared_mailboxes[%d].address: %q is not an address like support@contoso.com", i, m.Address)
		}
		if upns[strings.ToLower(m.Address)] {
			return fmt.Errorf("shared_mailboxes[%d].address: %q is already a user's mailbox", i, m.Address)
		}
		for _, upn := range append(append([]string(nil), m.FullAccess...), m.SendAs...) {
			if !upns[strings.ToLower(upn)] {
				return fmt.Errorf("shared_mailboxes[%d]: delegate %q is not one of the seed's users", i, upn)
			}
		}
	}
	return nil
}

// Apply adds the seed's tenant, app, users, mailboxes and mail to the sim.
// Missing ids and secrets are generated; the result says what was used.
func (s *Sim) Apply(seed *Seed) (*Seeded, error) {
	if err := seed.validate(); err != nil {
		return nil, fmt.Errorf("apply seed: %w", err)
	}
	t := s.AddTenant(Tenant{ID: seed.Tenant.ID, Domains: seed.Tenant.Domains, AdminConsentRequired: seed.Tenant.AdminConsentRequired})
	secret := seed.App.ClientSecret
	if secret == "" {
		secret = randomToken(20)
	}
	a := s.AddApp(App{
		ClientID: seed.App.ClientID, TenantID: t.ID, MultiTenant: seed.App.MultiTenant,
		RedirectURIs: seed.App.RedirectURIs, DisplayName: seed.App.DisplayName,
		Secrets: []*ClientSecret{{ID: newGUID(), Value: secret}},
	})
	out := &Seeded{TenantID: t.ID, ClientID: a.ClientID, ClientSecret: secret}
	if len(t.Domains) > 0 {
		out.TenantDomain = t.Domains[0]
	}
	for _, su := range seed.Users {
		u := s.AddUser(User{
			ID: su.ID, TenantID: t.ID, UPN: su.UPN, DisplayName: su.DisplayName, Password: su.Password,
			MFARequired: su.MFARequired, Disabled: su.Disabled,
		}, su.NoMailbox)
		out.Users = append(out.Users, u.UPN)
		if !su.NoMailbox {
			s.mu.Lock()
			err := s.seedMailLocked(s.mailboxByID[u.ID], su.Mail)
			s.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("seed mail for %s: %w", u.UPN, err)
			}
		}
	}
	for _, sm := range seed.SharedMailboxes {
		mb := s.AddSharedMailbox(sm.Address, sm.DisplayName)
		out.Mailboxes = append(out.Mailboxes, mb.Address)
		for _, upn := range sm.FullAccess {
			if err := s.Delegate(sm.Address, upn, true, contains(sm.SendAs, upn)); err != nil {
				return nil, fmt.Errorf("shared mailbox %s: %w", sm.Address, err)
			}
		}
		for _, upn := range sm.SendAs {
			if !contains(sm.FullAccess, upn) {
				if err := s.Delegate(sm.Address, upn, false, true); err != nil {
					return nil, fmt.Errorf("shared mailbox %s: %w", sm.Address, err)
				}
			}
		}
		s.mu.Lock()
		mb.Enabled = !sm.Disabled
		err := s.seedMailLocked(mb, sm.Mail)
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("seed mail for %s: %w", sm.Address, err)
		}
	}
	return out, nil
}

// Seeded reports what Apply created, for printing and for tests.
type Seeded struct {
	TenantID     string
	TenantDomain string
	ClientID     string
	ClientSecret string
	Users        []string
	Mailboxes    []string // shared mailboxes
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
