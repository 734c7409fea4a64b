package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// simOutput is an io.Writer safe to read while a command writes to it.
type simOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *simOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *simOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var simListening = regexp.MustCompile(`m365sim listening on (http://\S+)`)

// startSimCommand runs `m365bridge sim args...` until the test ends and
// returns its base URL and output.
func startSimCommand(t *testing.T, args ...string) (string, *simOutput, func() error) {
	t.Helper()
	base, stdout, _, stop := startSim(t, args...)
	return base, stdout, stop
}

func startSim(t *testing.T, args ...string) (string, *simOutput, *simOutput, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &simOutput{}, &simOutput{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"sim"}, args...), stdout, stderr) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("sim did not stop within 10s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := simListening.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stdout, stderr, stop
		}
		select {
		case err := <-done:
			t.Fatalf("sim exited early: %v; stderr: %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("sim printed no listening line; stdout: %s", stdout.String())
	return "", nil, nil, nil
}

func TestSimCommandServesDiscovery(t *testing.T) {
	base, stdout, stop := startSimCommand(t, "--listen", "127.0.0.1:0", "--auto-approve")
	for _, want := range []string{
		"Tenant:        contoso.onmicrosoft.com", "Client ID:     11111111-2222-3333-4444-555555555555",
		"Client secret: sim-demo-secret", "agent@contoso.com, sales@contoso.com", "Shared:        support@contoso.com",
		"login_url: " + base, "graph_url: " + base + "/v1.0", "curl -s -X POST " + base + "/_sim/tokens",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	resp, err := http.Get(base + "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != 200 || doc.Issuer != base+"/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/v2.0" {
		t.Errorf("discovery: status %d issuer %q", resp.StatusCode, doc.Issuer)
	}
	// --auto-approve: authorize redirects at once.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.Get(base + "/contoso.onmicrosoft.com/oauth2/v2.0/authorize?client_id=11111111-2222-3333-4444-555555555555&response_type=code&redirect_uri=http://127.0.0.1:8365/oauth/callback&scope=openid")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Errorf("authorize with --auto-approve: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
	if _, err := http.Get(base + "/_sim/clock"); err == nil {
		t.Error("sim still serving after cancel")
	}
}

func TestSimCommandSecretFromEnvironment(t *testing.T) {
	t.Setenv("M365_CLIENT_SECRET", "from-env-secret")
	_, stdout, stop := startSimCommand(t, "--listen", "127.0.0.1:0")
	if !strings.Contains(stdout.String(), "Client secret: from-env-secret") {
		t.Errorf("banner does not show the secret from M365_CLIENT_SECRET:\n%s", stdout.String())
	}
	stop()
}

func TestSimCommandSeedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.yaml")
	os.WriteFile(path, []byte(`tenant: {domains: [fabrikam.onmicrosoft.com]}
app: {client_id: 22222222-2222-3333-4444-555555555555, client_secret: s3cret, redirect_uris: ["http://127.0.0.1:9000/cb"]}
users: [{upn: ops@fabrikam.com, display_name: Fab Ops}]
`), 0o600)
	_, stdout, stop := startSimCommand(t, "--listen", "127.0.0.1:0", "--seed", path)
	for _, want := range []string{"Tenant:        fabrikam.onmicrosoft.com", "Client secret: s3cret", "Redirect URI:  http://127.0.0.1:9000/cb", "Users:         ops@fabrikam.com"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	stop()
}

func TestSimCommandErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("tenant: {domains: [x.example]}\nusers: [{upn: a@x.example, colour: blue}]\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"busy port", []string{"--listen", busy.Addr().String()}, "address already in use"},
		{"missing seed", []string{"--listen", "127.0.0.1:0", "--seed", filepath.Join(t.TempDir(), "none.yaml")}, "read seed"},
		{"unknown seed key", []string{"--listen", "127.0.0.1:0", "--seed", bad}, "colour"},
		{"stray argument", []string{"seed.yaml"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, append([]string{"sim"}, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestSimCommandSeedsMalformedEML: an eml_dir holding malformed messages
// (a broken header fold, an unclosed multipart, a 3-character base64 part)
// and an empty file does not stop `m365bridge sim`: the malformed ones are
// seeded as Exchange would convert them and logged, the empty one is
// logged and skipped, the sim serves, and the good message is there too.
func TestSimCommandSeedsMalformedEML(t *testing.T) {
	dir := t.TempDir()
	emls := filepath.Join(dir, "eml")
	os.Mkdir(emls, 0o700)
	os.WriteFile(filepath.Join(emls, "01-good.eml"), []byte("From: a@example.com\r\nSubject: good\r\n\r\nhello\r\n"), 0o600)
	os.WriteFile(filepath.Join(emls, "02-malformed.eml"), []byte("From: b@example.com\r\nSubject: broken\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nstill readable\r\n--b\r\nContent-Type: application/zip;\r\nname=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\nabc\r\n"), 0o600)
	os.WriteFile(filepath.Join(emls, "03-empty.eml"), nil, 0o600)
	seed := filepath.Join(dir, "seed.yaml")
	os.WriteFile(seed, []byte(`tenant: {domains: [fabrikam.onmicrosoft.com]}
users: [{upn: ops@fabrikam.com, mail: {eml_dir: `+emls+`}}]
`), 0o600)
	base, _, stderr, stop := startSim(t, "--listen", "127.0.0.1:0", "--seed", seed)
	// Seeding happens before the banner: the log is complete by now.
	for _, want := range []string{"eml malformed", "file=02-malformed.eml", "eml skipped", "file=03-empty.eml"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	resp, err := http.Get(base + "/_sim/mail/ops@fabrikam.com/messages?folder=Inbox")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Value []struct {
			Subject string `json:"subject"`
		} `json:"value"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	var subjects []string
	for _, m := range list.Value {
		subjects = append(subjects, m.Subject)
	}
	sort.Strings(subjects)
	if strings.Join(subjects, ",") != "broken,good" {
		t.Errorf("seeded subjects %q, want good and broken", subjects)
	}
	if err := stop(); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}
