package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The daemon rig: what the daemon-level reliability tests share (the
// import kill test, the recipe kill test, the three-daemon failover test).
// The simulator and the helpdesk run in the test process; each daemon is a
// child process, this test binary re-executed into `m365bridge serve
// -config FILE` (TestKillNineDaemon), on a bridge.yaml written by
// writeConfig. The test starts it, kills it with SIGKILL, pauses it with
// SIGSTOP, and starts it again.

// killDaemonEnv names the configuration file when the test binary is
// re-executed as the daemon (TestKillNineDaemon).
const killDaemonEnv = "M365BRIDGE_KILL_DAEMON_CONFIG"

const (
	killMailbox = "support@contoso.com"
	killSource  = "Inbox/Support"
	// killTenant is the configured tenant, which keys event ids.
	killTenant     = "contoso.onmicrosoft.com"
	killAdminToken = "kill-admin-token"
)

// TestKillNineDaemon is the daemon the rigs kill: this test binary
// re-executed into the code path of `m365bridge serve -config FILE`. It
// runs only with killDaemonEnv set, until it is killed or its standard
// input closes (the parent test is gone).
func TestKillNineDaemon(t *testing.T) {
	path := os.Getenv(killDaemonEnv)
	if path == "" {
		t.Skip("the daemon process of TestKillNineDuringImport")
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	if err := run(context.Background(), []string{"serve", "-config", path}, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// startRigSim starts the simulator with seed (DefaultSeed when nil), whose
// app's redirect URI is the daemons' public_url on public.
func startRigSim(t testing.TB, public string, opts m365sim.Options, seed *m365sim.Seed) *m365sim.Server {
	t.Helper()
	if seed == nil {
		seed = m365sim.DefaultSeed()
	}
	seed.App.RedirectURIs = []string{"http://" + public + "/oauth/callback"}
	sim, err := m365sim.StartServer(opts, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// daemonProc is one daemon of a rig: its addresses, its bridge.yaml and
// environment, and the child process while it runs.
type daemonProc struct {
	t       testing.TB
	name    string // "A", "B", … in a rig of several; "" when alone
	public  string // its listen address: /readyz, the OAuth callback
	admin   string
	config  string      // its bridge.yaml
	state   string      // its state_dir
	secrets []string    // the rig's secrets, bridge.yaml's ${…}, in the child's environment
	env     []string    // more of the child's environment (a helpdesk's credentials, the database)
	out     *syncBuffer // every run's output, for failure messages
	// instance is its instance id (its lease owner id), from /healthz once
	// ready.
	instance string

	cmd    *exec.Cmd // nil when not running
	stdin  io.WriteCloser
	exited chan struct{}
}

func newDaemonProc(t testing.TB, name string) *daemonProc {
	return &daemonProc{t: t, name: name, public: freeAddr(t), admin: freeAddr(t), out: &syncBuffer{}}
}

// rigSecrets is the environment the daemons' bridge.yaml reads its secrets
// from, as bridge.yaml advises.
func rigSecrets(sim *m365sim.Server, webhookSecret string) []string {
	return []string{"KILL_ADMIN_TOKEN=" + killAdminToken, "KILL_CLIENT_SECRET=" + sim.Seeded.ClientSecret,
		"KILL_WEBHOOK_SECRET=" + webhookSecret}
}

// rigConfig is what a rig puts in a daemon's bridge.yaml beyond the part
// they share (addresses, the simulator as Microsoft, the secrets).
type rigConfig struct {
	publicURL string          // public_url's host, "" for the daemon's own listener
	state     string          // the state: value, "" for SQLite in state_dir
	log       string          // the log level
	sim       *m365sim.Server // login_url, and graph_url unless graphURL is set
	graphURL  string
	microsoft string // more lines under microsoft:, unindented
	webhooks  string // the list's items, as YAML lines indented by two
	channels  string
}

// writeConfig writes d's bridge.yaml to path, with state_dir stateDir.
func (d *daemonProc) writeConfig(path, stateDir string, c rigConfig) {
	d.t.Helper()
	d.config, d.state = path, stateDir
	publicURL, graphURL := cmp.Or(c.publicURL, d.public), cmp.Or(c.graphURL, c.sim.URL)
	var b strings.Builder
	fmt.Fprintf(&b, "public_url: http://%s\nlisten: %s\nadmin: {listen: %s, token: '${KILL_ADMIN_TOKEN}'}\nstate_dir: %s\n",
		publicURL, d.public, d.admin, stateDir)
	if c.state != "" {
		fmt.Fprintf(&b, "state: %s\n", c.state)
	}
	fmt.Fprintf(&b, `log: {level: %s}
microsoft:
  client_id: %s
  client_secret: ${KILL_CLIENT_SECRET}
  tenant: %s
  login_url: %s
  graph_url: %s
`, c.log, c.sim.Seeded.ClientID, killTenant, c.sim.URL, graphURL)
	if c.microsoft != "" {
		b.WriteString(indentLines(strings.TrimRight(c.microsoft, "\n"), "  ") + "\n")
	}
	b.WriteString("webhooks:\n" + strings.TrimRight(c.webhooks, "\n") + "\nchannels:\n" + strings.TrimRight(c.channels, "\n") + "\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// helpdeskHook is a signed webhook named helpdesk to url/hooks, its secret
// from the environment, as an item of webhooks:.
func helpdeskHook(url string, timeout time.Duration, schedule string, maxAttempts int) string {
	return fmt.Sprintf(`  - name: helpdesk
    url: %s/hooks
    secret: ${KILL_WEBHOOK_SECRET}
    timeout: %s
    schedule: %s
    max_attempts: %d
`, url, timeout, schedule, maxAttempts)
}

func indentLines(s, pre string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}

// who names d in failure messages.
func (d *daemonProc) who() string {
	if d.name == "" {
		return "the daemon"
	}
	return "daemon " + d.name
}

// start runs d as a child process and waits until its /readyz answers
// 200, then reads its instance id.
func (d *daemonProc) start() {
	t := d.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineDaemon$")
	cmd.Env = append(append(append(os.Environ(), killDaemonEnv+"="+d.config), d.secrets...), d.env...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	// The child ends when this pipe closes: if the test process dies, no
	// daemon is left behind.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.cmd, d.stdin, d.exited = cmd, stdin, exited
	t.Cleanup(d.kill)

	// Pacing: a child process can only be asked over HTTP whether it is
	// up; readiness takes about a second.
	d.waitUntil(5*time.Millisecond, 2*time.Minute, func() bool {
		resp, err := http.Get("http://" + d.public + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return d.who() + " never became ready" })
	d.instance = healthzInstance(t, d.public)
}

// waitUntil polls cond every `every` while d runs, failing the test when d
// exits, or with stuck's words when limit (a safety net, far above the
// normal wait) passes.
func (d *daemonProc) waitUntil(every, limit time.Duration, cond func() bool, stuck func() string) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s\n%s", stuck(), d.tail())
		}
		select {
		case <-d.exited:
			d.t.Fatalf("%s exited by itself\n%s", d.who(), d.tail())
		case <-time.After(every):
		}
	}
}

// kill ends the running child with SIGKILL (continued first if paused: a
// stopped process cannot die of SIGKILL until continued on some systems)
// and waits until it is gone.
func (d *daemonProc) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Kill()
	<-d.exited
	d.stdin.Close()
	d.cmd = nil
}

// signal sends sig (SIGSTOP, SIGCONT) to the running child.
func (d *daemonProc) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("%v to %s: %v", sig, d.who(), err)
	}
}

// consent signs channel in the way an operator does: d's admin API hands
// out the consent URL, the simulator's sign-in approves it as the agent,
// and its redirect to public_url lands on callback (d itself when nil, or
// another replica behind the load balancer: the OAuth state and PKCE
// verifier are in the shared database), which stores the tokens.
func (d *daemonProc) consent(channel string, callback *daemonProc) {
	t := d.t
	t.Helper()
	if callback == nil {
		callback = d
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.admin+"/api/channels/"+channel+"/auth", nil)
	req.Header.Set("Authorization", "Bearer "+killAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || got.URL == "" {
		t.Fatalf("start consent of %s on %s: %d %+v", channel, d.who(), resp.StatusCode, got)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(got.URL + "&sim_auto=1&login_hint=agent@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent of %s: %d, Location %q", channel, resp.StatusCode, resp.Header.Get("Location"))
	}
	loc.Host = callback.public
	resp, err = http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent of %s started on %s, callback on %s: %d %.300s", channel, d.who(), callback.who(), resp.StatusCode, page)
	}
}

// healthzInstance is the instance id a daemon's /healthz reports.
func healthzInstance(t testing.TB, addr string) string {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ Instance string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Instance == "" {
		t.Fatalf("healthz of %s: instance %q, %v", addr, h.Instance, err)
	}
	return h.Instance
}

// openState opens d's SQLite store (in WAL mode it takes a second
// process); the caller closes it.
func (d *daemonProc) openState(ctx context.Context) *store.DB {
	d.t.Helper()
	db, err := store.Open(ctx, filepath.Join(d.state, store.FileName))
	if err != nil {
		d.t.Fatal(err)
	}
	return db
}

// ledger reads the ledger counts of channel from d's store, and how many
// rows are done.
func (d *daemonProc) ledger(ctx context.Context, channel string) (int, map[string]int) {
	d.t.Helper()
	db := d.openState(ctx)
	defer db.Close()
	c, err := db.LedgerCounts(ctx, channel)
	if err != nil {
		d.t.Fatal(err)
	}
	return c[store.LedgerDone], c
}

// checkNoRaceOrPanic fails the test if the children reported a data race
// or a panic.
func (d *daemonProc) checkNoRaceOrPanic() {
	if out := d.out.String(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
		d.t.Errorf("%s reported a race or a panic:\n%s", d.who(), d.tail())
	}
}

// tail is the end of d's output, for failure messages.
func (d *daemonProc) tail() string {
	s := d.out.String()
	if len(s) > 6000 {
		s = "…" + s[len(s)-6000:]
	}
	return s
}

// readHook reads one webhook request as a helpdesk does: it checks the
// signature with secret, decodes the event, and for a mail event checks
// that data.id is the event id header. ok is false when the sender went
// away or the request was refused (the test fails for a bad one).
func readHook(t testing.TB, w http.ResponseWriter, r *http.Request, secret string) (ev webhooks.Event, md webhooks.MailData, id string, ok bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return ev, md, "", false // the sender went away (its timeout, or a kill)
	}
	if err := (webhooks.Verifier{Secrets: []string{secret}}).Verify(r.Header, body); err != nil {
		t.Errorf("receiver: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return ev, md, "", false
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Errorf("receiver: decode event: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return ev, md, "", false
	}
	id = r.Header.Get(webhooks.HeaderID)
	if strings.HasPrefix(ev.Type, "mail.") {
		if err := json.Unmarshal(ev.Data, &md); err != nil || md.ID != id {
			t.Errorf("receiver: event %s: data.id %q, err %v", id, md.ID, err)
		}
	}
	return ev, md, id, true
}
