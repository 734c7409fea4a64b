package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Env is what parsing may read from the outside world: environment
// variables and files (secret files, template files). Load uses OSEnv;
// tests inject their own.
type Env interface {
	LookupEnv(name string) (string, bool)
	ReadFile(path string) ([]byte, error)
}

// OSEnv reads the process environment and the file system.
type OSEnv struct{}

// LookupEnv is os.LookupEnv.
func (OSEnv) LookupEnv(name string) (string, bool) { return os.LookupEnv(name) }

// ReadFile is os.ReadFile.
func (OSEnv) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// MaxFileSize is the largest configuration file accepted.
const MaxFileSize = 1 << 20

// Load reads, decodes and validates the configuration file at path, with
// secrets resolved from the process environment and the file system. On
// any problem it returns a nil Config and an Errors listing every problem
// found, each with the file name and, where there is one, line:col.
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, Errors{err.(*Error)}
	}
	return Parse(data, path, OSEnv{})
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		e := &Error{File: path, Msg: "cannot read the file: " + reason(err), Err: err}
		if errors.Is(err, fs.ErrNotExist) {
			e.Msg = "no such file"
			e.Hint = "pass --config FILE, or start from the repository's commented bridge.yaml"
		}
		return nil, e
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read the file: " + reason(err), Err: err}
	}
	return data, nil
}

// reason is an OS error without the path it repeats.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes and validates a configuration held in memory. filename
// names it in errors and anchors relative file: and template paths (its
// directory); env resolves ${VAR} and file: references in secret fields.
// Parse is pure: it neither logs nor touches globals. On success every
// absent field holds its default (see SetDefaults); on failure it returns a
// nil Config and an Errors with every problem found.
func Parse(data []byte, filename string, env Env) (*Config, error) {
	root, ferr := parseDocument(data, filename)
	if ferr != nil {
		return nil, Errors{ferr}
	}
	d := newDecoder(filename, filepath.Dir(filename), env)
	var c Config
	d.walk(root, "", reflect.ValueOf(&c).Elem(), 0)
	c.setDefaults(func(path string) bool { return d.set[path] })
	c.resolvePaths(d.dir)
	v := &validator{file: filename, at: d.at, env: env}
	v.config(&c)
	errs := append(d.errs, followUps(d.errs, v.errs)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	sortErrors(v.warns)
	c.warnings = v.warns
	return &c, nil
}

// followUps returns the validation errors that are not mere consequences
// of a decoding error at the same path or above it (an unresolvable secret
// is not also "required"; an unparsable duration not also "too short").
func followUps(decoded, validated Errors) Errors {
	bad := map[string]bool{}
	for _, e := range decoded {
		bad[e.Path] = true
	}
	var out Errors
	for _, e := range validated {
		p, skip := e.Path, false
		for p != "" && !skip {
			skip = bad[p]
			p = parentPath(p)
		}
		if !skip {
			out = append(out, e)
		}
	}
	return out
}

// resolvePaths makes state_dir and template files relative to the config
// file's directory rather than the working directory.
func (c *Config) resolvePaths(dir string) {
	if c.State != "" && !filepath.IsAbs(c.State) {
		c.State = filepath.Join(dir, c.State)
	}
	for _, w := range c.Webhooks {
		if w.Template != nil && w.Template.File != "" && !filepath.IsAbs(w.Template.File) {
			w.Template.File = filepath.Join(dir, w.Template.File)
		}
	}
}

// at returns the position of path's node. A path absent from the file (a
// missing field) points at the key of its nearest ancestor that is present.
func (d *decoder) at(path string) (int, int) {
	if n, ok := d.pos[path]; ok && n != nil {
		return n.Line, n.Column
	}
	for path != "" {
		path = parentPath(path)
		if k, ok := d.keys[path]; ok {
			return k.Line, k.Column
		}
		if n, ok := d.pos[path]; ok && n != nil {
			return n.Line, n.Column
		}
	}
	return 0, 0
}

// parentPath strips the last .key or [i] of a field path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseDocument turns the file's bytes into its top-level mapping node, or
// one clear error about the file as a whole.
func parseDocument(data []byte, filename string) (root *yaml.Node, err *Error) {
	fail := func(line int, msg, hint string) *Error {
		e := &Error{File: filename, Line: line, Msg: msg, Hint: hint}
		if line > 0 {
			e.Col = 1
		}
		return e
	}
	if len(data) > MaxFileSize {
		return nil, fail(0, fmt.Sprintf("the file is larger than %d bytes", MaxFileSize), "")
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	derr := decodeNode(dec, &doc)
	if derr == io.EOF || (derr == nil && (doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0))) {
		return nil, fail(0, "the file is empty", "start from the repository's commented bridge.yaml")
	}
	if derr != nil {
		return nil, syntaxError(data, filename, derr)
	}
	var extra yaml.Node
	if derr := decodeNode(dec, &extra); derr != io.EOF {
		if derr != nil {
			return nil, syntaxError(data, filename, derr)
		}
		return nil, fail(extra.Line, "the file holds more than one YAML document", "remove the second --- and what follows it, or merge it into the first")
	}
	root = &doc
	if root.Kind == yaml.DocumentNode {
		root = root.Content[0]
	}
	for i := 0; root.Kind == yaml.AliasNode && root.Alias != nil && i < maxDepth; i++ {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		e := fail(root.Line, fmt.Sprintf("the top level must be a mapping of keys (public_url:, microsoft:, channels: ...), found %s", kindName(root)), "")
		e.Col = root.Column
		return nil, e
	}
	return root, nil
}

// decodeNode decodes one document, turning a panic inside the YAML library
// into an error: bad input must never crash the caller.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

// syntaxError makes one clear error of a YAML syntax error: the line (found
// by re-parsing prefixes when the library does not say), and tabs named as
// the cause when a tab indents a line.
func syntaxError(data []byte, filename string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// The library often reports the line where the enclosing block starts;
	// the first line at which the file stops parsing is more useful.
	if l := firstFailingLine(data, msg); l > 0 {
		line = l
	}
	if tab := tabIndentedLine(data, line); tab > 0 {
		return &Error{File: filename, Line: tab, Col: 1,
			Msg:  "tabs are not allowed in YAML indentation; use spaces",
			Hint: "configure your editor to insert spaces in .yaml files"}
	}
	e := &Error{File: filename, Line: line, Msg: "invalid YAML: " + msg}
	if line > 0 {
		e.Col = 1
	}
	switch {
	case line > 0 && bytes.Contains(lineAt(data, line), []byte("${")):
		e.Hint = "inside { } or [ ], quote a reference: token: '${VAR}'"
	case strings.Contains(msg, "mapping values are not allowed"):
		e.Hint = `quote a value that contains ": ", or indent a nested mapping under its key`
	}
	return e
}

// firstFailingLine finds the first line at which parsing fails with the same
// message, by binary search over prefixes of the file (a prefix that fails
// is assumed to keep failing as it grows); 0 when not found.
func firstFailingLine(data []byte, msg string) int {
	ends := []int{}
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(end int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:end]))
		for {
			var n yaml.Node
			err := decodeNode(dec, &n)
			if err == nil {
				continue
			}
			return err != io.EOF && strings.HasSuffix(err.Error(), msg)
		}
	}
	i := sort.Search(len(ends), func(i int) bool { return fails(ends[i]) })
	if i == len(ends) {
		return 0
	}
	return i + 1
}

// lineAt returns the 1-based line n of data (empty if there is none).
func lineAt(data []byte, n int) []byte {
	lines := bytes.Split(data, []byte("\n"))
	if n < 1 || n > len(lines) {
		return nil
	}
	return lines[n-1]
}

// tabIndentedLine returns the first line, up to and including limit (any
// line when limit is 0), whose indentation contains a tab; 0 if none.
func tabIndentedLine(data []byte, limit int) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if limit > 0 && i+1 > limit {
			break
		}
		indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}
