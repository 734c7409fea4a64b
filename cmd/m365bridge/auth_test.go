package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleInTempDir copies the sample bridge.yaml into a temporary directory,
// so its state_dir (./data) lands there.
func sampleInTempDir(t *testing.T) string {
	t.Helper()
	clearSampleEnv(t)
	t.Setenv("M365BRIDGE_KEY", "")
	t.Setenv("M365BRIDGE_KEY_OLD", "")
	b, err := os.ReadFile("../../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The admin listener moves to a free port, so commands that look for a
	// running daemon find none, whatever runs on this machine's default port.
	b = []byte(strings.Replace(string(b), "listen: 127.0.0.1:8366", "listen: "+freeAddr(t), 1))
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return exitCode(err, &stderr), stdout.String(), stderr.String()
}

func TestAuthChannelsKeysCommands(t *testing.T) {
	cfg := sampleInTempDir(t)

	code, out, errOut := runCLI(t, "auth", "--config", cfg, "support")
	if code != 0 {
		t.Fatalf("auth: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"/oauth2/v2.0/authorize?", "code_challenge_method=S256", "state=", "prompt=select_account", "Full Access to support@contoso.com"} {
		if !strings.Contains(out, want) {
			t.Fatalf("auth output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "back it up") {
		t.Fatalf("no warning about the new key file:\n%s", errOut)
	}
	if st, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data", "m365bridge.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}

	if code, _, errOut := runCLI(t, "auth", "--config", cfg, "nope"); code != 2 {
		t.Fatalf("auth unknown channel: exit %d, want 2\n%s", code, errOut)
	}
	if code, _, _ := runCLI(t, "auth", "--config", cfg, "support", "--reauth"); code != 0 {
		t.Fatalf("auth --reauth after the channel name: exit %d", code)
	}

	code, out, errOut = runCLI(t, "channels", "--config", cfg)
	if code != 0 {
		t.Fatalf("channels: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"CHANNEL", "support", "needs_consent", "fix: m365bridge auth support"} {
		if !strings.Contains(out, want) {
			t.Fatalf("channels output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "channels", "--config", cfg, "--json")
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) == 0 || rows[0]["state"] != "needs_consent" {
		t.Fatalf("channels --json: exit %d\n%s", code, out)
	}

	code, out, errOut = runCLI(t, "keys", "rotate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Re-encrypted") {
		t.Fatalf("keys rotate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "keys", "generate")
	if code != 0 || len(strings.TrimSpace(out)) != 44 {
		t.Fatalf("keys generate: exit %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "keys"); code != 2 {
		t.Fatalf("keys without subcommand: exit %d, want 2", code)
	}
}
