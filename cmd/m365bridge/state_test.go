package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
)

// TestChannelsThroughRunningDaemon is issue 12 item 13 with the real
// wiring: `serve` runs from its config file; an operator elsewhere has a
// copy whose state_dir does not exist (another working directory). While
// the daemon runs, `channels` asks it (archive decision included); once it
// stopped, `channels` says where it looked and creates nothing; with
// --state-dir it reads the daemon's state directly.
func TestChannelsThroughRunningDaemon(t *testing.T) {
	public, admin := freeAddr(t), freeAddr(t)
	path := writeServeConfig(t, public, admin)
	yml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	daemonState := filepath.Join(filepath.Dir(path), "data")
	elsewhere := filepath.Join(t.TempDir(), "data")
	copyPath := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(copyPath, []byte(strings.Replace(string(yml), daemonState, elsewhere, 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sout, serr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, &sout, &serr) }()
	waitHTTP(t, "http://"+public+"/healthz", done)

	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"channels", "--config", copyPath}, &out, &errOut); err != nil {
		t.Fatalf("channels through the daemon: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"from the running daemon on " + admin, "support", "needs_consent", "undecided", "m365bridge auth support"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("channels output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"channels", "--config", copyPath, "--json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var rows []mailsync.ChannelInfo
	if err := json.Unmarshal([]byte(out.String()), &rows); err != nil || len(rows) != 1 || rows[0].Archive.Mode != mailsync.ArchiveUndecided {
		t.Errorf("channels --json = %v %s, want one channel with archive mode undecided", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"deliveries", "--config", copyPath, "--since", "24h", "--state", "pending,delivered,dead,rejected"}, &out, &errOut); err != nil {
		t.Fatalf("deliveries through the daemon: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "(from the running daemon)") || !strings.Contains(out.String(), "no deliveries in state") {
		t.Errorf("deliveries output:\n%s", out.String())
	}
	if _, err := os.Stat(elsewhere); !os.IsNotExist(err) {
		t.Errorf("channels or deliveries created %s: %v", elsewhere, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	out.Reset()
	err = run(context.Background(), []string{"channels", "--config", copyPath}, &out, &errOut)
	if !errors.Is(err, errNoState) || !strings.Contains(err.Error(), "--state-dir") || exitCode(err, &errOut) != 1 {
		t.Errorf("channels without daemon or state: err = %v, want errNoState naming --state-dir, exit 1", err)
	}
	if _, err := os.Stat(elsewhere); !os.IsNotExist(err) {
		t.Errorf("channels created %s: %v", elsewhere, err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"channels", "--state-dir", daemonState}, &out, &errOut); err != nil {
		t.Fatalf("channels --state-dir: %v", err)
	}
	if !strings.Contains(out.String(), "from the state directory "+daemonState) || !strings.Contains(out.String(), "support") {
		t.Errorf("channels --state-dir output:\n%s", out.String())
	}
}

// TestReadsNeverCreateState: deliveries, replay and channels on a state
// directory that does not exist fail with the fix and leave no directory.
func TestReadsNeverCreateState(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"deliveries", "--state-dir", missing},
		{"replay", "--state-dir", missing, "--channel", "support"},
		{"channels", "--state-dir", missing},
		{"channels"}, // ./bridge.yaml missing: an error, no ./data
	} {
		var out, errOut strings.Builder
		err := run(context.Background(), args, &out, &errOut)
		if err == nil {
			t.Errorf("%v: no error", args)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Errorf("%v created %s", args, missing)
		}
		if _, err := os.Stat("data"); !os.IsNotExist(err) {
			t.Errorf("%v created ./data", args)
		}
	}
}

// TestKeysRotateNeedsState: rotating the keys of a state directory that
// does not exist is an error, not a new directory with a new key.
func TestKeysRotateNeedsState(t *testing.T) {
	path := sampleInTempDir(t)
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"keys", "rotate", "--config", path}, &out, &errOut)
	if !errors.Is(err, errNoState) {
		t.Errorf("keys rotate without state: %v, want errNoState", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "data")); !os.IsNotExist(err) {
		t.Errorf("keys rotate created the state directory: %v", err)
	}
}
