package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/logging"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// daemonRig is the whole product on loopback: the simulator, the daemon
// with its listeners, store, runners and dispatcher, and a helpdesk
// receiver that verifies every signature.
type daemonRig struct {
	t      *testing.T
	sim    *m365sim.Server
	d      *Daemon
	cfg    *config.Config
	path   string // the bridge.yaml the daemon reloads
	yaml   string // its first content
	secret string
	logs   *lockedBuffer

	public   string // the daemon's public listener (the redirect URI's host)
	receiver string // the helpdesk receiver's address
	// stop ends the running daemon (idempotent); start runs it again.
	stop func()
	// beforeRun, if set, adjusts each daemon after Start and before Run.
	beforeRun func(*Daemon)
	// adjust, if set, changes the loaded configuration before each start
	// (tests shorten what bridge.yaml may not: poll intervals).
	adjust func(*config.Config)
	// opts, if set, adjusts the daemon's Options before each start.
	opts func(*Options)
	// sendOpts are the reply worker's settings.
	sendOpts send.Options
	// now, if set, is the daemon's clock (Options.Now).
	now func() time.Time

	mu     sync.Mutex
	events map[string]webhooks.Event // by webhook-id
	posts  int
	// arrived is signalled (without blocking) after each accepted event.
	arrived chan struct{}
}

// lockedBuffer collects a daemon's log lines for assertions.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// defaultRigChannels are the channels of newDaemonRig: a shared mailbox's
// Support folder in archive mode auto, and a user's inbox with mark_read.
const defaultRigChannels = `  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    folder: Inbox/Support
    group: Support L1
    poll_interval: 10s
    archive: {mode: auto}
  - name: sales
    mailbox: {type: user}
    group: Sales
    poll_interval: 10s
    after_import: mark_read
    archive: {mode: off}
`

// newDaemonRig is the whole product with defaultRigChannels, running until
// the test ends.
func newDaemonRig(t *testing.T, mutate func(seed *m365sim.Seed)) *daemonRig {
	t.Helper()
	return newDaemonRigChannels(t, mutate, defaultRigChannels)
}

// newDaemonRigChannels is newDaemonRig with the given channels list.
func newDaemonRigChannels(t *testing.T, mutate func(seed *m365sim.Seed), channels string) *daemonRig {
	t.Helper()
	rig := newRigBase(t, mutate)
	rig.writeConfig(channels)
	rig.start()
	t.Cleanup(func() { rig.stop() })
	return rig
}

// newRigBase starts the simulator (its app's redirect URI on a free
// public port) and a verifying receiver; writeConfig and start add the
// daemon.
func newRigBase(t *testing.T, mutate func(seed *m365sim.Seed)) *daemonRig {
	t.Helper()
	return newRigBaseOpts(t, m365sim.Options{}, mutate)
}

// newRigBaseOpts is newRigBase with the simulator's options.
func newRigBaseOpts(t *testing.T, simOpts m365sim.Options, mutate func(seed *m365sim.Seed)) *daemonRig {
	t.Helper()
	rig := &daemonRig{t: t, events: map[string]webhooks.Event{}, public: freeLoopback(t), logs: &lockedBuffer{}, arrived: make(chan struct{}, 1)}
	seed := m365sim.DefaultSeed()
	seed.App.RedirectURIs = []string{"http://" + rig.public + "/oauth/callback"}
	if mutate != nil {
		mutate(seed)
	}
	sim, err := m365sim.StartServer(simOpts, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	rig.sim = sim

	rig.secret, _ = webhooks.GenerateSecret()
	recv := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{rig.secret}}}
	recv.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		rig.posts++
		rig.events[d.ID] = d.Event
		select {
		case rig.arrived <- struct{}{}:
		default:
		}
		return nil
	}
	recvSrv := &http.Server{Handler: recv}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rig.receiver = ln.Addr().String()
	go recvSrv.Serve(ln)
	t.Cleanup(func() { recvSrv.Close() })
	return rig
}

// writeConfig writes the rig's bridge.yaml with the given channels list.
func (rig *daemonRig) writeConfig(channels string) {
	rig.t.Helper()
	dir := rig.t.TempDir()
	rig.yaml = fmt.Sprintf(`public_url: http://%[1]s
listen: %[1]s
admin: {listen: 127.0.0.1:0, token: admin-token}
state_dir: %[2]s
microsoft:
  client_id: %[3]s
  client_secret: %[4]s
  tenant: contoso.onmicrosoft.com
  login_url: %[5]s
  graph_url: %[5]s
webhooks:
  - name: helpdesk
    url: http://%[6]s/hooks
    secret: %[7]s
channels:
`, rig.public, filepath.Join(dir, "data"), m365sim.DefaultClientID, m365sim.DefaultClientSecret, rig.sim.URL, rig.receiver, rig.secret) + channels
	rig.path = filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(rig.path, []byte(rig.yaml), 0o600); err != nil {
		rig.t.Fatal(err)
	}
}

// start runs a daemon on the rig's configuration and state; after stop it
// is a restart on the same state.
func (rig *daemonRig) start() {
	t := rig.t
	t.Helper()
	cfg, err := config.Load(rig.path)
	if err != nil {
		t.Fatal(err)
	}
	if rig.adjust != nil {
		rig.adjust(cfg)
	}
	rig.cfg = cfg
	logger, err := logging.NewLogger(rig.logs, "debug", "text")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Version: "test", Now: rig.now, SupervisorPoll: 20 * time.Millisecond, ConfigPath: rig.path,
		Logger:     logger,
		Dispatcher: deliver.Options{PollInterval: 50 * time.Millisecond}, Send: rig.sendOpts}
	if rig.opts != nil {
		rig.opts(&opts)
	}
	d := New(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	if rig.beforeRun != nil {
		rig.beforeRun(d)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	rig.d = d
	stopped := false
	rig.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		d.Close(sctx)
	}
}

// snapshot copies the events received so far, by webhook-id.
func (rig *daemonRig) snapshot() map[string]webhooks.Event {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	out := make(map[string]webhooks.Event, len(rig.events))
	for k, v := range rig.events {
		out[k] = v
	}
	return out
}

// connect runs consent for a channel the way an operator does: the admin
// API hands out the URL, the browser (here an http.Client following
// redirects, with the sim's auto-approve) signs in as upn, and the daemon's
// callback page reports the result.
func (rig *daemonRig) connect(channel, upn string) string {
	rig.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+rig.d.AdminAddr()+"/api/channels/"+channel+"/auth", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rig.t.Fatal(err)
	}
	var got struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got.URL == "" {
		rig.t.Fatalf("start auth: %d %+v", resp.StatusCode, got)
	}
	resp, err = http.Get(got.URL + "&sim_auto=1&login_hint=" + upn)
	if err != nil {
		rig.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, page)
}

// waitEvents waits until the receiver accepted n events, re-checking on
// each arrival; the 30 s deadline is a safety net.
func (rig *daemonRig) waitEvents(n int) map[string]webhooks.Event {
	rig.t.Helper()
	return rig.waitEventsUntil(fmt.Sprintf("%d events", n), func(m map[string]webhooks.Event) bool { return len(m) >= n })
}

// waitEventsUntil waits until the events received so far satisfy done,
// re-checking on each arrival; the 30 s deadline is a safety net.
func (rig *daemonRig) waitEventsUntil(what string, done func(map[string]webhooks.Event) bool) map[string]webhooks.Event {
	rig.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		snapshot := rig.snapshot()
		if done(snapshot) {
			return snapshot
		}
		select {
		case <-rig.arrived:
		case <-deadline.C:
			rig.t.Fatalf("waited 30 s for %s; received %d events", what, len(snapshot))
		}
	}
}

func TestDaemonConnectSyncDeliver(t *testing.T) {
	// Polls a day apart: after the first rounds, only "Sync now" can bring
	// the live mail below within the test's 30 s safety net.
	rig := newDaemonRigChannels(t, nil, strings.ReplaceAll(defaultRigChannels, "poll_interval: 10s", "poll_interval: 24h"))
	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	for i := range 3 {
		if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{
			Folder: "Inbox/Support", Subject: fmt.Sprintf("old question %d", i), From: "Carol Customer <carol@example.com>",
			Body: "Hello", Received: old.Add(time.Duration(i) * time.Minute),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rig.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{Subject: "quote please", From: "dave@example.com", Body: "Hi"}); err != nil {
		t.Fatal(err)
	}

	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("support consent page: %.300s", page)
	}
	if page := rig.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("sales consent page: %.300s", page)
	}

	events := rig.waitEvents(4)
	var archived, received int
	for id, ev := range events {
		var md webhooks.MailData
		if err := json.Unmarshal(ev.Data, &md); err != nil {
			t.Fatal(err)
		}
		if md.ID != id {
			t.Errorf("data.id %q != webhook-id %q", md.ID, id)
		}
		switch md.Channel {
		case "support":
			archived++
			if ev.Type != webhooks.TypeMailArchived || !md.Archive || md.Ticket.State != "closed" || md.Group != "Support L1" {
				t.Errorf("support event: type %s archive %v state %q group %q, want an archived closed ticket for Support L1", ev.Type, md.Archive, md.Ticket.State, md.Group)
			}
		case "sales":
			received++
			if ev.Type != webhooks.TypeMailReceived || md.Mailbox.Address != "sales@contoso.com" {
				t.Errorf("sales event: type %s mailbox %+v", ev.Type, md.Mailbox)
			}
		}
	}
	if archived != 3 || received != 1 {
		t.Errorf("archived %d, received %d; want 3 and 1", archived, received)
	}

	// mark_read runs only after the acknowledgement: wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := rig.sim.Sim.Messages("sales@contoso.com", "Inbox")
		if len(msgs) == 1 && msgs[0].IsRead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sales message never marked read: %+v", msgs)
		}
		time.Sleep(20 * time.Millisecond) // pacing: the simulator's mailbox is what tells, and it cannot push; the deadline is the safety net
	}

	// Live pickup: a new message in the shared folder arrives as new.
	if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Support", Subject: "printer on fire", From: "erin@example.com", Body: "Help"}); err != nil {
		t.Fatal(err)
	}
	// "Sync now" through the admin API: the mail arrives, a day before the
	// next poll.
	req, _ := http.NewRequest(http.MethodPost, "http://"+rig.d.AdminAddr()+"/api/channels/support/sync", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("sync now = %d, want 202", resp.StatusCode)
	}
	events = rig.waitEvents(5)
	var fresh int
	for _, ev := range events {
		if ev.Type == webhooks.TypeMailReceived {
			var md webhooks.MailData
			json.Unmarshal(ev.Data, &md)
			if md.Channel == "support" && md.Ticket.State == "new" {
				fresh++
			}
		}
	}
	if fresh != 1 {
		t.Errorf("live pickup: %d new support events, want 1", fresh)
	}
}

// TestDaemonChannelErrorEvent: when a channel loses access to its mailbox
// the helpdesk hears it once, as channel.error with the fix, not once per
// failing round; after access returns and is lost again, it hears again.
func TestDaemonChannelErrorEvent(t *testing.T) {
	rig := newDaemonRig(t, nil)
	if _, err := rig.sim.Sim.CreateFolder("support@contoso.com", "Inbox/Support"); err != nil {
		t.Fatal(err)
	}
	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.200s", page)
	}
	var r *mailsync.Runner
	// 10 ms pacing of a look at the daemon's runners (started by its
	// supervisor, which has no hook for tests); the deadline is the safety net.
	for deadline := time.Now().Add(20 * time.Second); r == nil; time.Sleep(10 * time.Millisecond) {
		if r, _ = rig.d.Runner("support"); r == nil && time.Now().After(deadline) {
			t.Fatal("support never started")
		}
	}
	ctx := context.Background()
	if _, err := r.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	channelErrors := func() []webhooks.ChannelData {
		var out []webhooks.ChannelData
		for _, ev := range rig.snapshot() {
			if ev.Type == webhooks.TypeChannelError {
				var cd webhooks.ChannelData
				json.Unmarshal(ev.Data, &cd)
				out = append(out, cd)
			}
		}
		return out
	}
	waitErrors := func(n int) []webhooks.ChannelData {
		t.Helper()
		rig.waitEventsUntil(fmt.Sprintf("%d channel.error events", n), func(map[string]webhooks.Event) bool { return len(channelErrors()) >= n })
		return channelErrors()
	}

	// The delegate loses Full Access: two failing rounds, one event.
	rig.sim.Sim.Delegate("support@contoso.com", "agent@contoso.com", false, false)
	for range 2 {
		if _, err := r.SyncOnce(ctx); err == nil {
			t.Fatal("a round without Full Access succeeded")
		}
	}
	// The event is queued before the round returns: exactly one, not two.
	queued := func() int {
		rows, err := rig.d.DB().Outbox().List(ctx, deliver.Filter{Channel: "support"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, row := range rows {
			if row.Type == webhooks.TypeChannelError {
				n++
			}
		}
		return n
	}
	if n := queued(); n != 1 {
		t.Errorf("%d channel.error events queued after two failing rounds, want 1", n)
	}
	got := waitErrors(1)
	if cd := got[0]; cd.Channel != "support" || cd.Code != "access_denied" || cd.Fix == "" || cd.State != "error" {
		t.Errorf("channel.error = %+v, want support access_denied with a fix", cd)
	}

	// Access comes back, then goes again: a second event.
	rig.sim.Sim.Delegate("support@contoso.com", "agent@contoso.com", true, true)
	if _, err := r.SyncOnce(ctx); err != nil {
		t.Fatalf("round after access returned: %v", err)
	}
	rig.sim.Sim.Delegate("support@contoso.com", "agent@contoso.com", false, false)
	r.SyncOnce(ctx)
	if n := queued(); n != 2 {
		t.Errorf("%d channel.error events queued, want 2", n)
	}
	waitErrors(2)
}
