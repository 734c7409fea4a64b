package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// special decodes the schema's own value types (secrets, after_import,
// durations, times); it reports whether v was one of them.
func (d *decoder) special(n *yaml.Node, path string, v reflect.Value) bool {
	switch v.Type() {
	case secretType:
		d.secret(n, path, v)
	case afterImportType:
		d.afterImport(n, path, v)
	case durationType:
		d.durationValue(n, path, v)
	case timeType:
		d.timeValue(n, path, v)
	default:
		return false
	}
	return true
}

func (d *decoder) durationValue(n *yaml.Node, path string, v reflect.Value) {
	s, ok := d.scalar(n, path, "a duration such as 30s, 5m or 2h")
	if !ok {
		return
	}
	dur, err := parseDuration(s)
	if err != nil {
		d.add(n, path, fmt.Sprintf("invalid duration %q", s), "write a duration such as 30s, 5m, 2h or 7d")
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) timeValue(n *yaml.Node, path string, v reflect.Value) {
	s, ok := d.scalar(n, path, "an RFC 3339 time such as 2026-11-01T00:00:00Z")
	if !ok {
		return
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.add(n, path, fmt.Sprintf("invalid time %q", s), "write an RFC 3339 time with a zone, such as 2026-11-01T00:00:00Z")
		return
	}
	v.Set(reflect.ValueOf(tm))
}

func (d *decoder) stringValue(n *yaml.Node, path string, v reflect.Value) {
	s, ok := d.scalar(n, path, "a string")
	if !ok {
		return
	}
	if strings.Contains(s, "${") {
		d.add(n, path, "only secret fields take ${VAR} references", "secret fields are client_secret, admin.token, webhook secret/secrets and header values; write the value itself here")
		return
	}
	v.SetString(s)
}

func (d *decoder) boolValue(n *yaml.Node, path string, v reflect.Value) {
	if _, ok := d.scalar(n, path, "true or false"); !ok {
		return
	}
	var b bool
	if n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.add(n, path, fmt.Sprintf("%q is not true or false", n.Value), "write true or false")
		return
	}
	v.SetBool(b)
}

func (d *decoder) intValue(n *yaml.Node, path string, v reflect.Value) {
	if _, ok := d.scalar(n, path, "a whole number"); !ok {
		return
	}
	var i int64
	if n.Tag != "!!int" || n.Decode(&i) != nil {
		d.add(n, path, fmt.Sprintf("%q is not a whole number", n.Value), "write a number without quotes or units, such as 10485760")
		return
	}
	if v.OverflowInt(i) {
		d.add(n, path, fmt.Sprintf("%s is out of range", n.Value), "")
		return
	}
	v.SetInt(i)
}
