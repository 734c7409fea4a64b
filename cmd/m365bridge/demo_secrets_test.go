package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/config"
)

// realTenantSample is the repository's bridge.yaml as a new user edits it
// for a real tenant: the two simulator lines removed, the demo's secrets
// (their ${VAR:-default} fallbacks) still in place, its state directory in
// a temporary one.
func realTenantSample(t *testing.T) string {
	t.Helper()
	clearSampleEnv(t)
	b, err := os.ReadFile("../../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "  login_url:") || strings.HasPrefix(l, "  graph_url:") {
			continue
		}
		lines = append(lines, l)
	}
	dir := t.TempDir()
	yml := strings.Replace(strings.Join(lines, "\n"), "state_dir: ./data", "state_dir: "+filepath.Join(dir, "data"), 1)
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckWarnsDemoSecretsForRealTenant: check still passes (exit 0) but
// names each of the three demo secrets with its fix, without showing them.
func TestCheckWarnsDemoSecretsForRealTenant(t *testing.T) {
	path := realTenantSample(t)
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	warn := stderr.String()
	for _, want := range []string{"microsoft.client_secret: still the demo's published secret", "admin.token: still the demo's published secret",
		"webhooks[0].secret: still the demo's published secret", "M365_CLIENT_SECRET", "M365BRIDGE_ADMIN_TOKEN", "HELPDESK_WEBHOOK_SECRET", "refuses to start"} {
		if !strings.Contains(warn, want) {
			t.Errorf("check's warnings lack %q:\n%s", want, warn)
		}
	}
	for _, secret := range []string{config.DemoAdminToken, config.DemoClientSecret, config.DemoWebhookSecret} {
		if strings.Contains(stdout.String()+warn, secret) {
			t.Errorf("output shows the secret %q", secret)
		}
	}
}

// TestServeRefusesDemoSecretsForRealTenant: serve exits 1 before it opens
// a listener or the state directory, naming what to set.
func TestServeRefusesDemoSecretsForRealTenant(t *testing.T) {
	path := realTenantSample(t)
	var stdout, stderr strings.Builder
	// Cancelled: a serve that does not refuse stops at once instead of
	// running the daemon for the rest of the test run.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := run(ctx, []string{"serve", "--config", path}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	for _, want := range []string{"refusing to start", "https://login.microsoftonline.com", "microsoft.client_secret", "admin.token", "webhooks[0].secret"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve's error lacks %q:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "data")); !os.IsNotExist(err) {
		t.Errorf("serve created its state directory before refusing: %v", err)
	}
}

// TestCheckQuietWithOwnSecrets: with the three variables set,
// the same file passes check without the warning.
func TestCheckQuietWithOwnSecrets(t *testing.T) {
	path := realTenantSample(t)
	t.Setenv("M365_CLIENT_SECRET", "a-real-looking-secret")
	t.Setenv("M365BRIDGE_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
	t.Setenv("HELPDESK_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 || strings.Contains(stderr.String(), "demo") {
		t.Errorf("exit %d, stderr %s; want 0 without a demo warning", code, stderr.String())
	}
}
