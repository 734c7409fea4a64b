package config

import (
	"io/fs"
	"os"
	"strings"
	"testing"
)

// testEnv is an Env with fixed variables and files.
type testEnv struct {
	vars  map[string]string
	files map[string]string
}

func (e testEnv) LookupEnv(name string) (string, bool) {
	v, ok := e.vars[name]
	return v, ok
}

func (e testEnv) ReadFile(path string) ([]byte, error) {
	if v, ok := e.files[path]; ok {
		return []byte(v), nil
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

// Secret values used by the tests; none may ever appear in error text.
const (
	clientSecretValue = "client-SECRET-value-7f3a"
	webhookSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// baseEnv resolves the references in testdata/valid.yaml.
func baseEnv() testEnv {
	return testEnv{vars: map[string]string{
		"M365_CLIENT_SECRET":      clientSecretValue,
		"HELPDESK_WEBHOOK_SECRET": webhookSecret,
	}, files: map[string]string{}}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// asErrors returns the Errors inside err, failing the test when it is not one.
func asErrors(t *testing.T, err error) Errors {
	t.Helper()
	es, ok := err.(Errors)
	if !ok {
		t.Fatalf("error is %T (%v), want config.Errors", err, err)
	}
	return es
}

// lineOf returns the 1-based line of the first occurrence of sub in doc.
func lineOf(t *testing.T, doc, sub string) int {
	t.Helper()
	i := strings.Index(doc, sub)
	if i < 0 {
		t.Fatalf("%q not in document", sub)
	}
	return strings.Count(doc[:i], "\n") + 1
}
