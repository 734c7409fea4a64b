package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree onto a Config by reflection over the yaml
// struct tags, strictly: unknown and duplicate keys, wrong kinds and
// unparsable values are collected as errors, never panics. It records the
// node of every path it visits so validation can point at line:col.
type decoder struct {
	file string
	dir  string
	env  Env
	errs Errors
	// pos maps a field path (channels[1].name) to its value node; keys maps
	// it to the key node, for errors about the key itself.
	pos  map[string]*yaml.Node
	keys map[string]*yaml.Node
	// set holds the paths given a non-null value; defaults fill the rest.
	set map[string]bool
	// budget bounds the nodes visited, so aliases cannot expand a small
	// file into an enormous walk.
	budget    int
	exhausted bool
}

// maxDepth bounds nesting (and alias cycles); the schema is far shallower.
const maxDepth = 16

// maxVisits bounds the number of nodes walked, aliases expanded.
const maxVisits = 200_000

// maxErrors stops collecting after this many errors.
const maxErrors = 100

var (
	secretType      = reflect.TypeFor[Secret]()
	afterImportType = reflect.TypeFor[AfterImport]()
	durationType    = reflect.TypeFor[time.Duration]()
	timeType        = reflect.TypeFor[time.Time]()
)

func newDecoder(file, dir string, env Env) *decoder {
	return &decoder{
		file:   file,
		dir:    dir,
		env:    env,
		pos:    map[string]*yaml.Node{},
		keys:   map[string]*yaml.Node{},
		set:    map[string]bool{},
		budget: maxVisits,
	}
}

// add records an error at node n (which may be nil).
func (d *decoder) add(n *yaml.Node, path, msg, hint string) {
	if len(d.errs) > maxErrors {
		return
	}
	e := &Error{File: d.file, Path: path, Msg: msg, Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	if len(d.errs) == maxErrors {
		e.Path, e.Msg, e.Hint = "", "too many errors; fix these and run check again", ""
	}
	d.errs = append(d.errs, e)
}

// exhaust reports, once, that the visit budget ran out.
func (d *decoder) exhaust(n *yaml.Node, path string) {
	if !d.exhausted {
		d.exhausted = true
		d.add(n, path, "the document expands to too many values (aliases repeated too often)", "write the values out instead of repeating aliases")
	}
}

// walk decodes n into v (addressable) at path.
func (d *decoder) walk(n *yaml.Node, path string, v reflect.Value, depth int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil && depth <= maxDepth {
		n = n.Alias
		depth++
	}
	if depth > maxDepth || n.Kind == yaml.AliasNode {
		d.add(n, path, "nesting is too deep (an alias that refers to itself?)", "")
		return
	}
	d.budget--
	if d.budget < 0 {
		d.exhaust(n, path)
		return
	}
	d.pos[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: the default applies
	}
	d.set[path] = true

	if d.special(n, path, v) {
		return
	}
	switch t := v.Type(); t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.set[path] = true
		d.pos[path] = n
		d.budget++ // the same node is visited again below
		d.walk(n, path, v.Elem(), depth+1)
	case reflect.Struct:
		d.structure(n, path, v, depth)
	case reflect.Slice:
		d.list(n, path, v, depth)
	case reflect.Map:
		d.mapping(n, path, v, depth)
	case reflect.String:
		d.stringValue(n, path, v)
	case reflect.Bool:
		d.boolValue(n, path, v)
	case reflect.Int, reflect.Int64:
		d.intValue(n, path, v)
	default:
		// A schema type this decoder does not know: a programming error,
		// reported rather than panicking.
		d.add(n, path, fmt.Sprintf("cannot decode into %s", t), "")
	}
}

// scalar returns n's text when n is a scalar, else records an error.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, fmt.Sprintf("expected %s, found %s", want, kindName(n)), "")
		return "", false
	}
	return n.Value, true
}

// field is one yaml key of a struct.
type field struct {
	key   string
	index int
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		out = append(out, field{key: tag, index: i})
	}
	return out
}

// structure decodes a mapping onto a struct.
func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value, depth int) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, fmt.Sprintf("expected a mapping of keys, found %s", kindName(n)), "")
		return
	}
	fields := fieldsOf(v.Type())
	names := make([]string, len(fields))
	byKey := make(map[string]field, len(fields))
	for i, f := range fields {
		names[i] = f.key
		byKey[f.key] = f
	}
	seen := map[string]*yaml.Node{}
	for _, p := range d.pairs(n, path, depth) {
		k, val := p[0], p[1]
		key := k.Value
		sub := joinPath(path, key)
		if first, dup := seen[key]; dup && k != first {
			d.add(k, sub, fmt.Sprintf("duplicate key %q (first at line %d)", key, first.Line), "give each key once")
			continue
		}
		seen[key] = k
		f, ok := byKey[key]
		if !ok {
			d.add(k, sub, fmt.Sprintf("unknown key %q", key), unknownKeyHint(key, names))
			continue
		}
		d.keys[sub] = k
		fv := v.Field(f.index)
		fv.Set(reflect.Zero(fv.Type())) // a later key replaces a merged one whole
		d.walk(val, sub, fv, depth+1)
	}
}

// unknownKeyHint suggests what an unknown key was meant to be: a key that
// belongs elsewhere (often a wrong indentation), a near miss at this level,
// or the list of valid keys.
func unknownKeyHint(key string, here []string) string {
	if parents := schemaKeys()[key]; len(parents) > 0 {
		return fmt.Sprintf("%s belongs under %s; check the indentation", key, strings.Join(parents, " or "))
	}
	if s := suggest(key, here); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "valid keys here: " + strings.Join(here, ", ")
}

// schemaKeys maps every key of the schema to the places it belongs
// (microsoft, channels[].mailbox, ...).
var schemaKeys = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	var visit func(t reflect.Type, at string, depth int)
	visit = func(t reflect.Type, at string, depth int) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				at += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == secretType || t == timeType || t == afterImportType || depth > 4 {
			return
		}
		for _, f := range fieldsOf(t) {
			place := at
			if place == "" {
				place = "the top level"
			}
			out[f.key] = append(out[f.key], place)
			visit(t.Field(f.index).Type, joinPath(at, f.key), depth+1)
		}
	}
	visit(reflect.TypeFor[Config](), "", 0)
	return out
})

// pairs returns a mapping's key/value pairs with YAML merge keys (<<: *x)
// expanded: merged pairs first, so the mapping's own keys override them.
// Keys that are not plain scalars are reported and skipped.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) [][2]*yaml.Node {
	var merged, own [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(k, path, fmt.Sprintf("a key must be a plain name, found %s", kindName(k)), "")
			continue
		}
		if k.Tag == "!!merge" && depth < maxDepth {
			merged = append(merged, d.mergeSources(val, path, depth)...)
			continue
		}
		own = append(own, [2]*yaml.Node{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	// The mapping's own keys override merged ones; among merge sources the
	// first to give a key wins (YAML merge semantics).
	have := make(map[string]bool, len(own))
	for _, p := range own {
		have[p[0].Value] = true
	}
	var out [][2]*yaml.Node
	for _, p := range merged {
		if !have[p[0].Value] {
			have[p[0].Value] = true
			out = append(out, p)
		}
	}
	return append(out, own...)
}

// mergeSources returns the pairs of the mapping(s) a merge key refers to.
func (d *decoder) mergeSources(val *yaml.Node, path string, depth int) [][2]*yaml.Node {
	deref := func(x *yaml.Node) *yaml.Node {
		for i := 0; x.Kind == yaml.AliasNode && x.Alias != nil && i < maxDepth; i++ {
			x = x.Alias
		}
		return x
	}
	val = deref(val)
	var sources []*yaml.Node
	switch val.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{val}
	case yaml.SequenceNode:
		for _, s := range val.Content {
			sources = append(sources, deref(s))
		}
	}
	var out [][2]*yaml.Node
	for _, s := range sources {
		d.budget -= len(s.Content)/2 + 1
		if d.budget < 0 {
			d.exhaust(s, path)
			return out
		}
		if s.Kind != yaml.MappingNode {
			d.add(s, path, "a merge key (<<) must refer to a mapping", "write <<: *anchor where the anchor is a mapping")
			continue
		}
		out = append(out, d.pairs(s, path, depth+1)...)
	}
	return out
}

// list decodes a sequence onto a slice.
func (d *decoder) list(n *yaml.Node, path string, v reflect.Value, depth int) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if strings.HasSuffix(path, ".secrets") {
			hint = "secrets is a list (secrets: [whsec_..., whsec_...]); use secret: for a single value"
		}
		d.add(n, path, fmt.Sprintf("expected a list, found %s", kindName(n)), hint)
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.walk(item, fmt.Sprintf("%s[%d]", path, i), out.Index(i), depth+1)
	}
	v.Set(out)
}

// mapping decodes a mapping onto a map with string keys.
func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value, depth int) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, fmt.Sprintf("expected a mapping, found %s", kindName(n)), "")
		return
	}
	out := reflect.MakeMap(v.Type())
	seen := map[string]*yaml.Node{}
	for _, p := range d.pairs(n, path, depth) {
		k, val := p[0], p[1]
		sub := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.add(k, sub, fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, first.Line), "give each key once")
			continue
		}
		seen[k.Value] = k
		d.keys[sub] = k
		ev := reflect.New(v.Type().Elem()).Elem()
		d.walk(val, sub, ev, depth+1)
		out.SetMapIndex(reflect.ValueOf(k.Value), ev)
	}
	v.Set(out)
}

// secret resolves a secret field. Error texts never include the value.
func (d *decoder) secret(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		hint := ""
		if strings.HasSuffix(path, ".secret") {
			hint = "secret takes one value; during rotation list several under secrets:"
		}
		d.add(n, path, fmt.Sprintf("expected a single string, found %s", kindName(n)), hint)
		return
	}
	s, err := resolveSecret(n.Value, d.dir, d.env)
	if err != nil {
		re := err.(*refError)
		d.add(n, path, re.msg, re.hint)
		return
	}
	v.Set(reflect.ValueOf(s))
}

// afterImport parses keep | mark_read | delete | move:<folder>, and the
// mapping form {move: <folder>} that `move: Folder` (with a space) yields.
func (d *decoder) afterImport(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 && n.Content[0].Value == "move" && n.Content[1].Kind == yaml.ScalarNode {
		f := n.Content[1].Value
		if strings.Contains(f, "${") {
			d.add(n.Content[1], path, "only secret fields take ${VAR} references", "write the folder path itself")
			return
		}
		v.Set(reflect.ValueOf(AfterImport{Action: ActionMove, Folder: strings.TrimSpace(f)}))
		return
	}
	s, ok := d.scalar(n, path, "keep, mark_read, delete or move:<folder>")
	if !ok {
		return
	}
	if strings.Contains(s, "${") {
		d.add(n, path, "only secret fields take ${VAR} references", "write keep, mark_read, delete or move:<folder>")
		return
	}
	a, err := ParseAfterImport(s)
	if err != nil {
		hint := "write keep, mark_read, delete or move:<folder path>"
		if sg := suggest(s, []string{ActionKeep, ActionMarkRead, ActionDelete}); sg != "" {
			hint = fmt.Sprintf("did you mean %q?", sg)
		}
		d.add(n, path, err.Error(), hint)
		return
	}
	v.Set(reflect.ValueOf(a))
}

// ParseAfterImport parses the YAML form of an after_import action: keep,
// mark_read, delete or move:<folder path>. An empty move folder parses (as
// Action move, Folder ""); Validate reports it.
func ParseAfterImport(s string) (AfterImport, error) {
	s = strings.TrimSpace(s)
	switch s {
	case ActionKeep, ActionMarkRead, ActionDelete:
		return AfterImport{Action: s}, nil
	}
	if f, ok := strings.CutPrefix(s, ActionMove+":"); ok {
		return AfterImport{Action: ActionMove, Folder: strings.TrimSpace(f)}, nil
	}
	if s == ActionMove {
		return AfterImport{Action: ActionMove}, nil
	}
	return AfterImport{}, fmt.Errorf("unknown after_import action %q", s)
}

// parseDuration is time.ParseDuration plus a leading whole number of days
// ("7d", "1d12h"). Negative durations are rejected.
func parseDuration(s string) (time.Duration, error) {
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days, s = n, s[i+1:]
		if s == "" {
			s = "0s"
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	total := d + time.Duration(days)*24*time.Hour
	if total < d {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return total, nil
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}
