package recipe

import (
	"encoding/json"
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

// matches reports whether any scalar at path equals want.
func matches(v any, path, want string) bool {
	for _, x := range values(v, path) {
		if s := scalar(x); s != "" && s == want {
			return true
		}
	}
	return false
}
