package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic; every failure is an Errors whose
// entries name the file and say something; every success is a Config with
// its channels and webhooks, that validates again in Go.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"../bridge.yaml", "testdata/valid.yaml", "testdata/three_mistakes.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env := baseEnv()
		env.files[filepath.Join("conf", "t.tmpl")] = "{{.}}"
		c, err := Parse(data, "conf/bridge.yaml", env)
		if err != nil {
			if c != nil {
				t.Fatal("both a Config and an error")
			}
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.File != "conf/bridge.yaml" || e.Msg == "" {
					t.Fatalf("incomplete error %#v", e)
				}
			}
			// The environment's secret values must not leak into errors
			// (unless the input itself spells them out, say as a key).
			for _, s := range []string{clientSecretValue, webhookSecret} {
				if strings.Contains(err.Error(), s) && !strings.Contains(string(data), s) {
					t.Fatalf("a secret in the error text: %v", err)
				}
			}
			return
		}
		if len(c.Channels) == 0 || len(c.Webhooks) == 0 || c.PublicURL == "" {
			t.Fatalf("valid config without channels, webhooks or public_url: %+v", c)
		}
		// A parsed Config passes the same rules when checked again in Go
		// (template files are not on disk, so skip those).
		for _, w := range c.Webhooks {
			if w.Template != nil && w.Template.File != "" {
				return
			}
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
	})
}
