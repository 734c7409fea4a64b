package config

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Recipe delivers a webhook's events into a helpdesk's own REST API as an
// ordered list of templated steps, instead of one signed POST (see
// webhooks/recipe for the semantics, README "Delivering into a helpdesk's
// API" for the shipped recipes). The webhook's url is the API's base URL
// and its headers (the API token) go with every step.
type Recipe struct {
	// When filters the events this recipe delivers; an event it does not
	// match is acknowledged without any request, the reason recorded in
	// the outbox.
	When RecipeWhen `yaml:"when"`
	// SubjectPattern is a regular expression whose first group captures a
	// helpdesk ticket reference from the subject, such as
	// \[Ticket#(\d+)\]; the capture is the variable subject_ref.
	SubjectPattern string `yaml:"subject_pattern"`
	// Steps run in order; a step whose when does not match is passed over.
	Steps []RecipeStep `yaml:"steps"`
	// TicketMapRetention is how long the bridge remembers which ticket a
	// mail went to (default DefaultTicketMapRetention). A reply to an
	// older mail is still threaded when a lookup step finds its ticket in
	// the helpdesk, or when a newer mail of its conversation is known.
	TicketMapRetention time.Duration `yaml:"ticket_map_retention"`
}

// DefaultTicketMapRetention keeps a mail's ticket for about a year.
const DefaultTicketMapRetention = 400 * 24 * time.Hour

// RecipeStep is one request (or a skip) of a Recipe. Every text field
// but name and for_each is a Go text/template over the event and the
// variables extracted so far.
type RecipeStep struct {
	Name string     `yaml:"name"`
	When RecipeWhen `yaml:"when"`
	// ForEach repeats the step once per attachment: attachments (all),
	// files (not inline) or inline (inline parts, such as images with a
	// Content-ID). .Item is the attachment; extracted variables become
	// lists, one value per item.
	ForEach string `yaml:"for_each"`
	// Skip makes the step send nothing: the event is acknowledged with
	// this reason (recorded in the outbox) and no later step runs.
	Skip   string `yaml:"skip"`
	Method string `yaml:"method"`
	// URL is absolute, or relative to the webhook's url.
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
	// BodyAttachment sends the for_each attachment's bytes as the body
	// (fetched through the bridge's link when not inline in the event).
	BodyAttachment bool `yaml:"body_attachment"`
	// ContentType is the body's media type. multipart/form-data is built
	// by the bridge (with a fresh boundary) from the body, which must
	// then render a JSON object: field name → a value or a list of
	// values; a name starting with @ (such as "@attachments[]") → the
	// event's attachments, files or inline parts, one file part each.
	ContentType string `yaml:"content_type"`
	// Accept lists statuses besides 2xx that count as success with
	// nothing found (such as 404 for a lookup by id).
	Accept []int `yaml:"accept"`
	// Extract sets variables from the JSON answer: name → path, such as
	// tickets.0.id or 0.id; a path that finds nothing leaves the variable
	// as it was (a lookup that finds nothing keeps the ticket the map
	// knew).
	Extract map[string]string `yaml:"extract"`
	// Match sets a variable to "true" when any value at path in the
	// answer equals the rendered equals (or contains the rendered
	// contains); a path may use * for every element of a list. With each
	// and select, it picks from a list instead: the value at select of
	// the first element (of those at each) whose path matches.
	Match map[string]RecipeMatch `yaml:"match"`
}

// RecipeMatch is one RecipeStep.Match entry: exactly one of Equals and
// Contains.
type RecipeMatch struct {
	Path     string `yaml:"path"`
	Equals   string `yaml:"equals"`
	Contains string `yaml:"contains"`
	// Each is the path of a list's elements (such as * or tickets.*);
	// Path and Select are then read in each element.
	Each string `yaml:"each"`
	// Select (with each) is what the variable takes from the first
	// element that matches, such as id; without it, "true". Like
	// extract, a select that finds nothing leaves the variable as it was
	// (a plain match sets it to "").
	Select string `yaml:"select"`
}

// RecipeWhen is a filter on the event and the recipe's variables; every
// field given must hold (an empty filter takes everything). Lists match
// any of their entries, case-insensitively.
type RecipeWhen struct {
	Types         []string `yaml:"types"`
	Archive       *bool    `yaml:"archive"`
	AutoSubmitted *bool    `yaml:"auto_submitted"`
	Group         []string `yaml:"group"`
	Folder        []string `yaml:"folder"`
	// SenderDomain matches the customer's address domain (a subdomain
	// matches its parent: example.com takes mail.example.com).
	SenderDomain []string `yaml:"sender_domain"`
	// Set and Unset name variables that must be non-empty / empty, such
	// as ticket_id (the ticket this mail belongs to, once known).
	Set   []string `yaml:"set"`
	Unset []string `yaml:"unset"`
}

// RecipeBuiltinVars are the variables a recipe has before its first step:
// ticket_id (from the bridge's ticket map: the ticket of this mail or of
// one it answers, by In-Reply-To, References or the Graph conversation),
// subject_ref (SubjectPattern's capture) and parent_message_id (the
// In-Reply-To, else the last References entry: the mail this one answers,
// for a lookup when the map does not know it).
var RecipeBuiltinVars = []string{"ticket_id", "subject_ref", "parent_message_id"}

// RecipeFuncNames are the template helpers recipe steps have on top of
// TemplateFuncNames; webhooks/recipe implements them and a test keeps the
// two in step.
var RecipeFuncNames = []string{"attachment_b64", "marker", "cids_to_data", "cids_to_urls", "utc"}

// ForEachKinds are the values of RecipeStep.ForEach.
var ForEachKinds = []string{"attachments", "files", "inline"}

var recipeStepMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

var pathSegment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*|[0-9]+|\*)$`)

// CheckJSONPath reports what is wrong with a recipe JSON path: dot-separated
// object keys, list indexes and * (every element).
func CheckJSONPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	for _, seg := range strings.Split(p, ".") {
		if !pathSegment.MatchString(seg) {
			return fmt.Errorf("path %q: segment %q is not a key, an index or *", p, seg)
		}
	}
	return nil
}

// ParseRecipeTemplate checks a recipe step template's syntax, with every
// helper of TemplateFuncNames and RecipeFuncNames defined (as stubs).
func ParseRecipeTemplate(text string) (*template.Template, error) {
	funcs := template.FuncMap{}
	for _, n := range append(slices.Clone(TemplateFuncNames), RecipeFuncNames...) {
		funcs[n] = func(...any) any { return nil }
	}
	return template.New("step").Funcs(funcs).Parse(text)
}

// recipe checks a recipe: its filter, retention and subject pattern, then
// each step in order (a step may use the variables earlier steps set).
func (v *validator) recipe(p string, r *Recipe) {
	known := slices.Clone(RecipeBuiltinVars)
	v.recipeWhen(p+".when", r.When, nil)
	if r.TicketMapRetention < 0 {
		v.fail(p+".ticket_map_retention", "must not be negative", "such as 9600h (400 days); leave it out for the default")
	}
	if r.SubjectPattern != "" {
		re, err := regexp.Compile(r.SubjectPattern)
		switch {
		case err != nil:
			v.fail(p+".subject_pattern", fmt.Sprintf("not a regular expression: %v", err), `such as '\[Ticket#(\d+)\]' (single quotes in YAML)`)
		case re.NumSubexp() < 1:
			v.fail(p+".subject_pattern", "the pattern has no group to capture the ticket reference", `put the reference in parentheses: '\[Ticket#(\d+)\]'`)
		}
	}
	if len(r.Steps) == 0 {
		v.fail(p+".steps", "a recipe needs at least one step", "see the shipped recipes in webhooks/recipes/")
	}
	names := map[string]int{}
	for i := range r.Steps {
		s := &r.Steps[i]
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		v.name(sp+".name", s.Name, "step")
		if first, dup := names[s.Name]; dup && s.Name != "" {
			v.fail(sp+".name", fmt.Sprintf("duplicate step name %q", s.Name), fmt.Sprintf("steps[%d] has it already", first))
		}
		names[s.Name] = i
		known = v.recipeStep(sp, s, known)
	}
}

// recipeStep checks step s at path sp, where known are the variables set
// so far, and returns known with the variables s sets.
func (v *validator) recipeStep(sp string, s *RecipeStep, known []string) []string {
	v.recipeWhen(sp+".when", s.When, known)
	if s.ForEach != "" && !slices.Contains(ForEachKinds, s.ForEach) {
		v.fail(sp+".for_each", fmt.Sprintf("%q is not something to repeat over", s.ForEach), "one of "+quoteList(ForEachKinds))
	}
	if s.Skip != "" {
		if s.Method != "" || s.URL != "" || s.Body != "" || len(s.Extract) > 0 || len(s.Match) > 0 || s.ForEach != "" {
			v.fail(sp+".skip", "a skip step sends nothing: it takes only name, when and skip", "remove method, url, body, extract, match and for_each, or remove skip")
		}
		return known
	}
	v.recipeRequest(sp, s)
	for _, name := range sortedKeys(s.Extract) {
		v.recipeVar(sp+".extract."+name, name)
		if err := CheckJSONPath(s.Extract[name]); err != nil {
			v.fail(sp+".extract."+name, err.Error(), "such as tickets.0.id")
		}
		known = append(known, name)
	}
	for _, name := range sortedKeys(s.Match) {
		v.recipeMatch(sp+".match."+name, name, s.Match[name])
		known = append(known, name)
	}
	return known
}

// recipeRequest checks what step s sends: method, url, body, content
// type, headers and the non-2xx statuses it accepts.
func (v *validator) recipeRequest(sp string, s *RecipeStep) {
	if !slices.Contains(recipeStepMethods, s.Method) {
		v.fail(sp+".method", fmt.Sprintf("method %q is not one of %s", s.Method, strings.Join(recipeStepMethods, ", ")), "write it in capitals, such as POST")
	}
	if s.URL == "" {
		v.fail(sp+".url", "required, but not set", "absolute, or relative to the webhook's url, such as /api/v1/tickets")
	}
	v.recipeTemplate(sp+".url", s.URL)
	v.recipeTemplate(sp+".body", s.Body)
	if s.BodyAttachment && s.ForEach == "" {
		v.fail(sp+".body_attachment", "body_attachment sends the current attachment: it needs for_each", "add for_each: attachments")
	}
	if s.BodyAttachment && s.Body != "" {
		v.fail(sp+".body", "a step sends either body or body_attachment", "remove one")
	}
	if s.Body != "" && s.ContentType == "" {
		v.fail(sp+".content_type", "a step with a body needs content_type", "such as application/json")
	}
	for _, name := range sortedKeys(s.Headers) {
		hp := sp + ".headers." + name
		lower := strings.ToLower(name)
		switch {
		case !headerPattern.MatchString(name):
			v.fail(hp, fmt.Sprintf("%q is not a valid header name", name), "letters, digits and -")
		case lower == "content-type" || lower == "content-length" || lower == "host":
			v.fail(hp, fmt.Sprintf("header %s is set by the bridge", name), "use content_type for the body's type")
		case lower == "authorization":
			v.fail(hp, "credentials go in the webhook's headers, which take ${VAR} references", "move it to webhooks[].headers")
		}
		v.recipeTemplate(hp, s.Headers[name])
	}
	for j, st := range s.Accept {
		if st < 300 || st > 599 {
			v.fail(fmt.Sprintf("%s.accept[%d]", sp, j), fmt.Sprintf("%d is not a non-2xx HTTP status", st), "such as 404: a lookup by id that finds nothing")
		}
	}
}

// recipeMatch checks the match rule m of variable name at path mp.
func (v *validator) recipeMatch(mp, name string, m RecipeMatch) {
	v.recipeVar(mp, name)
	if err := CheckJSONPath(m.Path); err != nil {
		v.fail(mp+".path", err.Error(), "such as *.message_id")
	}
	switch {
	case m.Equals == "" && m.Contains == "":
		v.fail(mp+".equals", "required, but not set", "the value to look for, such as {{.Data.article.internet_message_id}} (or contains: a part of it)")
	case m.Equals != "" && m.Contains != "":
		v.fail(mp+".contains", "a match takes equals or contains, not both", "remove one")
	}
	v.recipeTemplate(mp+".equals", m.Equals)
	v.recipeTemplate(mp+".contains", m.Contains)
	for _, f := range []struct{ key, path string }{{"each", m.Each}, {"select", m.Select}} {
		if f.path == "" {
			continue
		}
		if err := CheckJSONPath(f.path); err != nil {
			v.fail(mp+"."+f.key, err.Error(), "such as * or tickets.* (each), id (select)")
		}
	}
	if m.Select != "" && m.Each == "" {
		v.fail(mp+".select", "select picks from the elements of a list: it needs each", "add each: the path of the list's elements, such as *")
	}
}

func (v *validator) recipeVar(path, name string) {
	if !namePattern.MatchString(name) || strings.Contains(name, "-") {
		v.fail(path, fmt.Sprintf("%q is not a variable name", name), "lower-case letters, digits and _, such as ticket_id")
	}
}

func (v *validator) recipeTemplate(path, text string) {
	if text == "" {
		return
	}
	if _, err := ParseRecipeTemplate(text); err != nil {
		v.fail(path, fmt.Sprintf("the template does not parse: %s", strings.TrimPrefix(err.Error(), "template: step:")), "see text/template syntax; the data is the event and .Vars")
	}
}

// recipeWhen checks a filter; known is the variables set/unset may name
// (nil: none, at recipe level).
func (v *validator) recipeWhen(p string, w RecipeWhen, known []string) {
	for i, t := range w.Types {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t") {
			v.fail(fmt.Sprintf("%s.types[%d]", p, i), fmt.Sprintf("%q is not an event type", t), "such as mail.received or mail.*")
		}
	}
	for i, d := range w.SenderDomain {
		if !domainPattern.MatchString(d) {
			v.fail(fmt.Sprintf("%s.sender_domain[%d]", p, i), fmt.Sprintf("%q is not a domain", d), "such as example.com")
		}
	}
	for _, set := range []struct {
		key   string
		names []string
	}{{"set", w.Set}, {"unset", w.Unset}} {
		for i, name := range set.names {
			path := fmt.Sprintf("%s.%s[%d]", p, set.key, i)
			switch {
			case known == nil:
				v.fail(path, "variables exist inside steps only", "move this condition to a step's when")
			case !slices.Contains(known, name):
				hint := "known here: " + quoteList(known)
				if s := suggest(name, known); s != "" {
					hint = fmt.Sprintf("did you mean %q? %s", s, hint)
				}
				v.fail(path, fmt.Sprintf("variable %q is not set by any earlier step", name), hint)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
