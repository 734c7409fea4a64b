package recipe

import (
	"encoding/json"

	"github.com/m365bridge/m365bridge/config"
	"strconv"
	"strings"
)

// values returns every value at path in v (decoded JSON): dot-separated
// object keys, list indexes and * for every element of a list (or every
// value of an object). config.CheckJSONPath checks the syntax.
func values(v any, path string) []any {
	cur := []any{v}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			switch x := c.(type) {
			case map[string]any:
				if seg == "*" {
					for _, e := range x {
						next = append(next, e)
					}
				} else if e, ok := x[seg]; ok {
					next = append(next, e)
				}
			case []any:
				if seg == "*" {
					next = append(next, x...)
				} else if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(x) {
					next = append(next, x[i])
				}
			}
		}
		cur = next
	}
	return cur
}

// scalar renders a JSON scalar as text: strings as they are, whole numbers
// without exponent or fraction (ticket ids), bools as true/false; "" for
// null, objects and lists.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// extract is the first non-empty scalar at path, "" if none.
func extract(v any, path string) string {
	for _, x := range values(v, path) {
		if s := scalar(x); s != "" {
			return s
		}
	}
	return ""
}

// matchValue is what a match sets its variable to in the answer doc: with
// each, the value at select (or "true") of the first element at each whose
// path holds want; without, "true" when doc's path holds it; "" when
// nothing does. want is the rendered equals or contains; an empty want
// matches nothing.
func matchValue(doc any, m config.RecipeMatch, want string) string {
	holds := func(v any) bool {
		for _, x := range values(v, m.Path) {
			s := scalar(x)
			switch {
			case s == "" || want == "":
			case m.Contains != "" && strings.Contains(s, want), m.Contains == "" && s == want:
				return true
			}
		}
		return false
	}
	if m.Each == "" {
		if holds(doc) {
			return "true"
		}
		return ""
	}
	for _, el := range values(doc, m.Each) {
		if holds(el) {
			if m.Select == "" {
				return "true"
			}
			return extract(el, m.Select)
		}
	}
	return ""
}
