package m365sim

// OData query options for lists: $top, $skip, $select, $filter, $orderby,
// $count, $expand, with the limits and errors of B.3.

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

type filterClause struct {
	// extID and extValue: an Any() clause over single-value extended
	// properties (prop is then "singlevalueextendedproperties").
	extID, extValue string
	prop, op        string
	str             string
	t               time.Time
	b               bool
}

type orderClause struct {
	prop string
	desc bool
}

type listQuery struct {
	top, skip    int
	topSet       bool
	selectFields []string // nil: the default property set
	filter       []filterClause
	orderBy      []orderClause
	count        bool
	expand       expandOpts
}

type expandOpts struct {
	attachments      bool
	attachmentSelect []string
	// extPropID is the id of $expand=singleValueExtendedProperties($filter=id
	// eq '…'); "" when not asked.
	extPropID string
}

// reExpandExtProp is the one form GDC
// singlevaluelegacyextendedproperty-get.md documents for expanding an
// extended property: "$filter and eq operator on the id property … is
// currently the only way".
var reExpandExtProp = regexp.MustCompile(`(?i)^\$filter=\s*id\s+eq\s+'((?:[^']|'')*)'\s*$`)

var (
	reAnd    = regexp.MustCompile(`(?i)\s+and\s+`)
	reClause = regexp.MustCompile(`^\s*(\w+)\s+(eq|ne|ge|gt|le|lt)\s+(.+?)\s*$`)
)

// filterProps are the properties $filter accepts, by kind.
var filterProps = map[string]string{
	"receiveddatetime": "time", "sentdatetime": "time", "createddatetime": "time", "lastmodifieddatetime": "time",
	"isread": "bool", "hasattachments": "bool", "isdraft": "bool",
	"subject": "string", "displayname": "string", "importance": "string",
}

// parseListQuery reads the OData options; forFolders switches the
// selectable property set. The error message is Graph's text for a 400.
func parseListQuery(q url.Values, forFolders bool) (*listQuery, *graphError) {
	lq := &listQuery{top: 10}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			// The range is documented (B.3); the message text is the sim's own.
			return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRequest", fmt.Sprintf("The $top value %q is invalid: it must be an integer from 1 to 1000.", v)}
		}
		lq.top, lq.topSet = n, true
	}
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, badQuery("Invalid $skip value %q.", v)
		}
		lq.skip = n
	}
	if v := q.Get("$select"); v != "" {
		fields, gerr := parseSelect(v, forFolders)
		if gerr != nil {
			return nil, gerr
		}
		lq.selectFields = fields
	}
	if v := q.Get("$count"); v != "" {
		lq.count = strings.EqualFold(v, "true")
	}
	if v := q.Get("$filter"); v != "" {
		for _, part := range splitAnd(v) {
			c, gerr := parseFilterClause(part)
			if gerr != nil {
				return nil, gerr
			}
			lq.filter = append(lq.filter, c)
		}
	}
	if v := q.Get("$orderby"); v != "" {
		orderBy, gerr := parseOrderBy(v, lq.filter)
		if gerr != nil {
			return nil, gerr
		}
		lq.orderBy = orderBy
	}
	if v := q.Get("$expand"); v != "" {
		if gerr := parseExpand(v, &lq.expand); gerr != nil {
			return nil, gerr
		}
	}
	return lq, nil
}

// badQuery is a 400 BadRequest with Graph's text for a bad OData option.
func badQuery(format string, a ...any) *graphError {
	return &graphError{http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, a...)}
}

// parseFilterClause reads one clause of a $filter: a comparison of a
// property in filterProps with a literal of its kind, or an Any() lambda
// on an extended property.
func parseFilterClause(part string) (filterClause, *graphError) {
	if em := reExtFilter.FindStringSubmatch(part); em != nil {
		if em[1] != em[2] || em[1] != em[4] {
			return filterClause{}, badQuery("Invalid filter clause: the lambda variable %s is not the one used in %s", em[1], part)
		}
		return filterClause{prop: "singlevalueextendedproperties",
			extID: strings.ReplaceAll(em[3], "''", "'"), extValue: strings.ReplaceAll(em[5], "''", "'")}, nil
	}
	m := reClause.FindStringSubmatch(part)
	if m == nil {
		return filterClause{}, badQuery("Invalid filter clause: %s", part)
	}
	c := filterClause{prop: strings.ToLower(m[1]), op: strings.ToLower(m[2])}
	switch filterProps[c.prop] {
	case "time":
		t, err := time.Parse(time.RFC3339, strings.Trim(m[3], "'"))
		if err != nil {
			return filterClause{}, badQuery("Invalid filter clause: %q is not a DateTimeOffset such as 2024-01-01T00:00:00Z.", m[3])
		}
		c.t = t
	case "bool":
		switch strings.ToLower(m[3]) {
		case "true":
			c.b = true
		case "false":
		default:
			return filterClause{}, badQuery("Invalid filter clause: %q is not true or false.", m[3])
		}
		if c.op != "eq" && c.op != "ne" {
			return filterClause{}, badQuery("Invalid filter clause: %s supports only eq and ne.", m[1])
		}
	case "string":
		if len(m[3]) < 2 || m[3][0] != '\'' || m[3][len(m[3])-1] != '\'' {
			return filterClause{}, badQuery("Invalid filter clause: string literals are quoted: %s", part)
		}
		c.str = strings.ReplaceAll(m[3][1:len(m[3])-1], "''", "'")
		if c.op != "eq" && c.op != "ne" {
			return filterClause{}, badQuery("Invalid filter clause: %s supports only eq and ne.", m[1])
		}
	default:
		return filterClause{}, badQuery("Could not find a property named '%s' on type 'microsoft.graph.message'.", m[1])
	}
	return c, nil
}

// parseOrderBy reads a $orderby of properties in filterProps, each asc or
// desc, and checks it against the $filter clauses already read.
func parseOrderBy(v string, filter []filterClause) ([]orderClause, *graphError) {
	var orderBy []orderClause
	for _, part := range strings.Split(v, ",") {
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 {
			return nil, badQuery("Invalid $orderby clause: %s", part)
		}
		oc := orderClause{prop: strings.ToLower(f[0])}
		if len(f) == 2 {
			switch strings.ToLower(f[1]) {
			case "desc":
				oc.desc = true
			case "asc":
			default:
				return nil, badQuery("Invalid $orderby direction: %s", f[1])
			}
		}
		if _, ok := filterProps[oc.prop]; !ok {
			return nil, badQuery("Could not find a property named '%s' on type 'microsoft.graph.message'.", f[0])
		}
		orderBy = append(orderBy, oc)
	}
	// B.3: properties in $orderby must lead $filter, in the same order.
	if len(filter) > 0 {
		var seen []string
		for _, c := range filter {
			if !contains(seen, c.prop) {
				seen = append(seen, c.prop)
			}
		}
		for i, o := range orderBy {
			if i >= len(seen) || seen[i] != o.prop {
				return nil, &graphError{http.StatusBadRequest, "InefficientFilter", "The restriction or sort order is too complex for this operation."}
			}
		}
	}
	return orderBy, nil
}

// parseExpand reads a $expand into e: attachments (with an optional
// $select) or singleValueExtendedProperties($filter=id eq '…').
func parseExpand(v string, e *expandOpts) *graphError {
	for _, part := range splitTopLevel(v) {
		name, sub, _ := strings.Cut(part, "(")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "attachments":
			e.attachments = true
			sub = strings.TrimSuffix(sub, ")")
			if sel, ok := strings.CutPrefix(sub, "$select="); ok {
				e.attachmentSelect = strings.Split(sel, ",")
			}
		case "singlevalueextendedproperties":
			mm := reExpandExtProp.FindStringSubmatch(strings.TrimSuffix(sub, ")"))
			if mm == nil {
				return badQuery("Expand singleValueExtendedProperties with ($filter=id eq '{id}'): the only form Graph documents.")
			}
			e.extPropID = strings.ReplaceAll(mm[1], "''", "'")
		default:
			return badQuery("Parsing OData Select and Expand failed: Could not find a property named '%s'.", name)
		}
	}
	return nil
}

// splitAnd splits a $filter on " and " outside parentheses and quotes, so
// an Any(ep: … and …) lambda stays one clause.
func splitAnd(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			quoted = !quoted
		case '(':
			if !quoted {
				depth++
			}
		case ')':
			if !quoted {
				depth--
			}
		case ' ', '\t':
			if quoted || depth > 0 {
				continue
			}
			if loc := reAnd.FindStringIndex(s[i:]); loc != nil && loc[0] == 0 {
				out = append(out, s[start:i])
				i += loc[1] - 1
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// splitTopLevel splits on commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func parseSelect(v string, forFolders bool) ([]string, *graphError) {
	known, typ := messageFieldSet, "message"
	if forFolders {
		known, typ = folderFieldSet, "mailFolder"
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		canon, ok := known[strings.ToLower(f)]
		if !ok {
			return nil, &graphError{http.StatusBadRequest, "RequestBroker--ParseUri", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.%s'.", f, typ)}
		}
		out = append(out, canon)
	}
	return out, nil
}

// matches applies the filter to a message.
func (lq *listQuery) matches(m *message) bool {
	for _, c := range lq.filter {
		var ok bool
		if c.extID != "" {
			if !matchExtProp(m, c.extID, c.extValue) {
				return false
			}
			continue
		}
		switch filterProps[c.prop] {
		case "time":
			ok = compareTime(messageTime(m, c.prop), c.op, c.t)
		case "bool":
			v := messageBool(m, c.prop)
			ok = (v == c.b) == (c.op == "eq")
		case "string":
			v := ""
			switch c.prop {
			case "subject":
				v = m.content.Subject
			case "importance":
				v = m.effectiveImportance()
			}
			ok = strings.EqualFold(v, c.str) == (c.op == "eq")
		}
		if !ok {
			return false
		}
	}
	return true
}

func compareTime(v time.Time, op string, t time.Time) bool {
	switch op {
	case "eq":
		return v.Equal(t)
	case "ne":
		return !v.Equal(t)
	case "ge":
		return !v.Before(t)
	case "gt":
		return v.After(t)
	case "le":
		return !v.After(t)
	case "lt":
		return v.Before(t)
	}
	return false
}

func messageTime(m *message, prop string) time.Time {
	switch prop {
	case "sentdatetime":
		return sentTime(m)
	case "createddatetime":
		return m.created
	case "lastmodifieddatetime":
		return m.modified
	}
	return m.received
}

func messageBool(m *message, prop string) bool {
	switch prop {
	case "hasattachments":
		return m.content.hasAttachments()
	case "isdraft":
		return m.isDraft
	}
	return m.isRead
}

// sortMessages applies $orderby (default receivedDateTime desc).
func (lq *listQuery) sortMessages(ms []*message) {
	order := lq.orderBy
	if len(order) == 0 {
		order = []orderClause{{prop: "receiveddatetime", desc: true}}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		for _, o := range order {
			c := compareMessages(ms[i], ms[j], o.prop)
			if c == 0 {
				continue
			}
			if o.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
}

func compareMessages(a, b *message, prop string) int {
	switch filterProps[prop] {
	case "time":
		return messageTime(a, prop).Compare(messageTime(b, prop))
	case "bool":
		x, y := messageBool(a, prop), messageBool(b, prop)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	if prop == "importance" {
		return strings.Compare(a.effectiveImportance(), b.effectiveImportance())
	}
	return strings.Compare(strings.ToLower(a.content.Subject), strings.ToLower(b.content.Subject))
}

// nextLink is the request URL with $skip advanced, or "" on the last page.
func nextLink(r *http.Request, skip, top, total int) string {
	if skip+top >= total {
		return ""
	}
	q := r.URL.Query()
	q.Set("$skip", strconv.Itoa(skip+top))
	return baseURL(r) + r.URL.Path + "?" + q.Encode()
}
