package recipe

import (
	"strings"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// facts are what a filter looks at in an event.
type facts struct {
	typ           string
	mail          bool // mail.received or mail.archived: the fields below are set
	archive       bool
	autoSubmitted bool
	group         string
	folder        string
	senderDomain  string
}

func factsOf(typ string, d *webhooks.MailData) facts {
	f := facts{typ: typ}
	if d == nil {
		return f
	}
	f.mail = true
	f.archive, f.autoSubmitted = d.Archive, d.Article.AutoSubmitted
	f.group, f.folder = d.Group, d.Folder
	addr := d.Ticket.Customer.Address
	if addr == "" {
		addr = d.Article.From.Address
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		f.senderDomain = strings.ToLower(addr[i+1:])
	}
	return f
}

// match reports whether w takes an event with facts f and variables vars.
// A condition on a mail field never matches an event that is not a mail.
func match(w config.RecipeWhen, f facts, vars map[string]any) bool {
	if len(w.Types) > 0 && !webhooks.TypeFilterTakes(w.Types, f.typ) {
		return false
	}
	mailOnly := w.Archive != nil || w.AutoSubmitted != nil || len(w.Group) > 0 || len(w.Folder) > 0 || len(w.SenderDomain) > 0
	if mailOnly && !f.mail {
		return false
	}
	if w.Archive != nil && *w.Archive != f.archive {
		return false
	}
	if w.AutoSubmitted != nil && *w.AutoSubmitted != f.autoSubmitted {
		return false
	}
	if len(w.Group) > 0 && !anyFold(w.Group, f.group) {
		return false
	}
	if len(w.Folder) > 0 && !anyFold(w.Folder, f.folder) {
		return false
	}
	if len(w.SenderDomain) > 0 && !domainIn(w.SenderDomain, f.senderDomain) {
		return false
	}
	for _, name := range w.Set {
		if empty(vars[name]) {
			return false
		}
	}
	for _, name := range w.Unset {
		if !empty(vars[name]) {
			return false
		}
	}
	return true
}

func anyFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// domainIn: example.com takes example.com and any subdomain of it.
func domainIn(list []string, d string) bool {
	if d == "" {
		return false
	}
	for _, x := range list {
		x = strings.ToLower(x)
		if d == x || strings.HasSuffix(d, "."+x) {
			return true
		}
	}
	return false
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}
