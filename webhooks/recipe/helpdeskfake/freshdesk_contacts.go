// Freshdesk contacts: the requesters tickets point at.

package helpdeskfake

import (
	"encoding/json"
	"net/http"
	"strings"
)

// fdContact is a stored contact (a requester).
type fdContact struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ContactEmail returns the email of contact id, "" if none.
func (f *Freshdesk) ContactEmail(id int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.contact(id); c != nil {
		return c.Email
	}
	return ""
}

// contact returns contact id, nil if none. Caller holds f.mu.
func (f *Freshdesk) contact(id int) *fdContact {
	for _, c := range f.contacts {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// contactByEmail returns the contact with email (case-insensitive),
// creating it when create is set; nil if none. Caller holds f.mu.
func (f *Freshdesk) contactByEmail(email string, create bool) *fdContact {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, c := range f.contacts {
		if c.Email == email {
			return c
		}
	}
	if !create {
		return nil
	}
	c := &fdContact{ID: 1000 + len(f.contacts), Name: email, Email: email}
	f.contacts = append(f.contacts, c)
	return c
}

// listContacts: GET /api/v2/contacts?email=… ("List All Contacts",
// filter by email): a JSON list, empty when nobody has that address.
func (f *Freshdesk) listContacts(w http.ResponseWriter, r *http.Request) {
	out := []*fdContact{}
	if c := f.contactByEmail(r.URL.Query().Get("email"), false); c != nil {
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, out)
}

// createContact: POST /api/v2/contacts; 409 when the email is taken
// ("duplicate_value": "It should be a unique value").
func (f *Freshdesk) createContact(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name, Email string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.Contains(in.Email, "@") {
		fdInvalid(w, fdFieldError{"email", "It should be in the 'valid email address' format", "invalid_value"})
		return
	}
	if f.contactByEmail(in.Email, false) != nil {
		writeJSON(w, http.StatusConflict, map[string]any{"description": "Validation failed", "errors": []fdFieldError{{"email", "It should be a unique value", "duplicate_value"}}})
		return
	}
	c := f.contactByEmail(in.Email, true)
	if in.Name != "" {
		c.Name = in.Name
	}
	writeJSON(w, http.StatusCreated, c)
}
