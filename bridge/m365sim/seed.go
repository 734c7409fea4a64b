package m365sim

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Seed describes a sim's starting directory and mail. It is what
// `m365bridge sim --seed FILE` reads (YAML); see testdata/seed.yaml.
type Seed struct {
	Tenant struct {
		ID                   string   `yaml:"id"`
		Domains              []string `yaml:"domains"`
		AdminConsentRequired bool     `yaml:"admin_consent_required"`
	} `yaml:"tenant"`
	App struct {
		ClientID     string   `yaml:"client_id"`
		ClientSecret string   `yaml:"client_secret"`
		MultiTenant  bool     `yaml:"multi_tenant"`
		RedirectURIs []string `yaml:"redirect_uris"`
		DisplayName  string   `yaml:"display_name"`
	} `yaml:"app"`
	Users []struct {
		ID          string   `yaml:"id"`
		UPN         string   `yaml:"upn"`
		DisplayName string   `yaml:"display_name"`
		Password    string   `yaml:"password"`
		NoMailbox   bool     `yaml:"no_mailbox"`
		Mail        MailSeed `yaml:"mail"`
	} `yaml:"users"`
	SharedMailboxes []struct {
		Address     string   `yaml:"address"`
		DisplayName string   `yaml:"display_name"`
		FullAccess  []string `yaml:"full_access"` // user UPNs
		SendAs      []string `yaml:"send_as"`     // user UPNs
		Disabled    bool     `yaml:"disabled"`
		Mail        MailSeed `yaml:"mail"`
	} `yaml:"shared_mailboxes"`
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
	return &seed, nil
}

// Apply adds the seed's tenant, app, users, mailboxes and mail to the sim.
// Missing ids and secrets are generated; the result says what was used.
func (s *Sim) Apply(seed *Seed) (*Seeded, error) {
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
		u := s.AddUser(User{ID: su.ID, TenantID: t.ID, UPN: su.UPN, DisplayName: su.DisplayName, Password: su.Password}, su.NoMailbox)
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
