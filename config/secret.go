package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// Secret references. Only fields of type Secret take them:
//
//	${VAR}            the environment variable VAR, which must be set
//	${VAR:-default}   VAR, or default when VAR is unset or empty
//	$${               a literal "${"
//	file:/path        the file's contents, minus one trailing newline;
//	                  a relative path is relative to the config file
//
// References may be embedded (`Bearer ${API_TOKEN}`); file: must be the
// whole value.

// refError is a problem resolving a secret reference. Its text names the
// variable or file, never the value or any part of the literal around it.
type refError struct {
	msg, hint string
}

func (e *refError) Error() string { return e.msg }

// resolveSecret turns the YAML text of a secret field into a Secret,
// reading the environment and files through env. dir is the config file's
// directory, for relative file: paths.
func resolveSecret(raw, dir string, env Env) (Secret, error) {
	if rest, ok := strings.CutPrefix(raw, "file:"); ok {
		return readSecretFile(strings.TrimSpace(rest), dir, env)
	}
	if !strings.Contains(raw, "${") {
		return Secret{value: raw, Ref: "literal"}, nil
	}
	var (
		out  strings.Builder
		refs []string
	)
	for i := 0; i < len(raw); {
		if strings.HasPrefix(raw[i:], "$${") {
			out.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(raw[i:], "${") {
			out.WriteByte(raw[i])
			i++
			continue
		}
		end := strings.IndexByte(raw[i:], '}')
		if end < 0 {
			return Secret{}, &refError{
				msg:  "unclosed ${ in a secret reference",
				hint: "write ${VAR} or ${VAR:-default}; use $${ for a literal ${",
			}
		}
		inner := raw[i+2 : i+end]
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validEnvName(name) {
			return Secret{}, &refError{
				msg:  "malformed ${...} reference: the variable name must be letters, digits and _ (not starting with a digit)",
				hint: "write ${VAR} or ${VAR:-default}; use $${ for a literal ${",
			}
		}
		v, set := env.LookupEnv(name)
		switch {
		case set && v != "":
			out.WriteString(v)
			refs = append(refs, "${"+name+"}")
		case hasDef:
			out.WriteString(def)
			refs = append(refs, "${"+name+"} (default)")
		case set:
			// Set but empty, with no default: an empty value, which the
			// field's own validation reports if it matters.
			refs = append(refs, "${"+name+"} (empty)")
		default:
			return Secret{}, &refError{
				msg:  fmt.Sprintf("environment variable %s is not set", name),
				hint: fmt.Sprintf("export %s, or give a default: ${%s:-value}", name, name),
			}
		}
		i += end + 1
	}
	ref := strings.Join(refs, " ")
	if ref == "" {
		ref = "literal" // only escaped $${
	}
	return Secret{value: out.String(), Ref: ref}, nil
}

// readSecretFile reads a file: reference.
func readSecretFile(path, dir string, env Env) (Secret, error) {
	if path == "" {
		return Secret{}, &refError{msg: "file: reference without a path", hint: "write file:/path/to/secret"}
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := env.ReadFile(path)
	if err != nil {
		reason := "cannot be read"
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			reason = "does not exist"
		case errors.Is(err, fs.ErrPermission):
			reason = "is not readable (permission denied)"
		case errors.As(err, &pe):
			reason = "cannot be read: " + pe.Err.Error()
		}
		return Secret{}, &refError{
			msg:  fmt.Sprintf("secret file %s %s", path, reason),
			hint: "file: paths are relative to the config file's directory",
		}
	}
	v := string(b)
	v = strings.TrimSuffix(v, "\n")
	v = strings.TrimSuffix(v, "\r")
	return Secret{value: v, Ref: "file:" + path}, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
