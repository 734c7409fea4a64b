package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clearSampleEnv makes the sample's ${VAR:-default} references take their
// defaults whatever the environment of the test run.
func clearSampleEnv(t *testing.T) {
	for _, v := range []string{"M365BRIDGE_ADMIN_TOKEN", "M365_CLIENT_SECRET", "HELPDESK_WEBHOOK_SECRET"} {
		t.Setenv(v, "")
	}
}

// TestCheckSampleConfig: `m365bridge check --config bridge.yaml` on the
// repository's sample exits 0 and prints the redirect URI (issue 2,
// acceptance 2).
func TestCheckSampleConfig(t *testing.T) {
	clearSampleEnv(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"check", "--config", "../../bridge.yaml"}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"Redirect URI (Web platform): http://127.0.0.1:8365/oauth/callback\n",
		"support -> webhook helpdesk",
		"shared support@contoso.com",
		"Inbox/Support",
		"sales -> webhook helpdesk",
		"user (the account that signs in)",
		"mark_read",
		"on, mail before 2026-11-01T00:00:00Z as closed",
		"helpdesk  http://127.0.0.1:8367/hooks/m365  1 secret",
		"admin   127.0.0.1:8366",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"demo-admin-token", "sim-demo-secret", "whsec_"} {
		if strings.Contains(out+stderr.String(), secret) {
			t.Errorf("output shows the secret %q", secret)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestCheckThreeMistakes: every error, one per line, sorted by line, then a
// count; exit status 1. The whole stderr is pinned in config/testdata.
func TestCheckThreeMistakes(t *testing.T) {
	t.Setenv("M365_CLIENT_SECRET", "x")
	t.Setenv("HELPDESK_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	const path = "../../config/testdata/three_mistakes.yaml"
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exitError{1}", err)
	}
	golden, err := os.ReadFile("../../config/testdata/three_mistakes.golden")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file names the file three_mistakes.yaml.
	want := strings.ReplaceAll(string(golden), "three_mistakes.yaml:", path+":") + path + ": 3 errors\n"
	if got := stderr.String(); got != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %s", stdout.String())
	}
}

func TestCheckFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"MissingFile", []string{"--config", filepath.Join(dir, "nope.yaml")}, 1, "nope.yaml: no such file"},
		{"EmptyFile", []string{"--config", write("empty.yaml", "")}, 1, "empty.yaml: the file is empty"},
		{"Tabs", []string{"--config", write("tabs.yaml", "microsoft:\n\tclient_id: x\n")}, 1, "tabs.yaml:2:1: tabs are not allowed in YAML indentation; use spaces"},
		{"SyntaxError", []string{"--config", write("syntax.yaml", "public_url: x\nlisten: [\n")}, 1, "syntax.yaml:2:1: invalid YAML"},
		{"NotAMapping", []string{"--config", write("list.yaml", "- a\n")}, 1, "the top level must be a mapping"},
		{"ExtraArgument", []string{"bridge.yaml"}, 2, "unexpected argument"},
		{"UnknownFlag", []string{"--nope"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, tt.args...), &stdout, &stderr)
			if got := exitCode(err, &stderr); got != tt.code {
				t.Errorf("exit code %d, want %d", got, tt.code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestCheckWarnings(t *testing.T) {
	clearSampleEnv(t)
	b, err := os.ReadFile("../../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "  token: ${M365BRIDGE_ADMIN_TOKEN:-demo-admin-token}\n", "", 1)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, want := stderr.String(), "warning: "+path+":"; !strings.HasPrefix(got, want) || !strings.Contains(got, "loopback clients only") {
		t.Errorf("stderr = %q, want a loopback-only warning", got)
	}
	if !strings.Contains(stdout.String(), "loopback clients only (no token)") {
		t.Errorf("summary does not say the admin listener is loopback-only:\n%s", stdout.String())
	}
}
