package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
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

	mu     sync.Mutex
	events map[string]webhooks.Event // by webhook-id
	posts  int
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

func newDaemonRig(t *testing.T, mutate func(seed *m365sim.Seed)) *daemonRig {
	t.Helper()
	public := freeLoopback(t)
	seed := m365sim.DefaultSeed()
	seed.App.RedirectURIs = []string{"http://" + public + "/oauth/callback"}
	if mutate != nil {
		mutate(seed)
	}
	sim, err := m365sim.StartServer(m365sim.Options{}, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	rig := &daemonRig{t: t, sim: sim, events: map[string]webhooks.Event{}}
	rig.secret, _ = webhooks.GenerateSecret()
	recv := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{rig.secret}}}
	recv.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		rig.posts++
		rig.events[d.ID] = d.Event
		return nil
	}
	recvSrv := &http.Server{Handler: recv}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go recvSrv.Serve(ln)
	t.Cleanup(func() { recvSrv.Close() })

	dir := t.TempDir()
	yml := fmt.Sprintf(`public_url: http://%[1]s
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
  - name: support
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
`, public, filepath.Join(dir, "data"), m365sim.DefaultClientID, m365sim.DefaultClientSecret, sim.URL, ln.Addr(), rig.secret)
	path := filepath.Join(dir, "bridge.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rig.cfg, rig.path, rig.yaml = cfg, path, yml
	rig.logs = &lockedBuffer{}
	rig.d = New(cfg, Options{Version: "test", SupervisorPoll: 20 * time.Millisecond, ConfigPath: path,
		Logger:     slog.New(slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: redact})),
		Dispatcher: deliver.Options{PollInterval: 50 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	if err := rig.d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rig.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		rig.d.Close(sctx)
	})
	return rig
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

func (rig *daemonRig) waitEvents(n int) map[string]webhooks.Event {
	rig.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rig.mu.Lock()
		got := len(rig.events)
		snapshot := make(map[string]webhooks.Event, got)
		for k, v := range rig.events {
			snapshot[k] = v
		}
		rig.mu.Unlock()
		if got >= n {
			return snapshot
		}
		if time.Now().After(deadline) {
			rig.t.Fatalf("received %d events, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemonConnectSyncDeliver(t *testing.T) {
	rig := newDaemonRig(t, nil)
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
		time.Sleep(20 * time.Millisecond)
	}

	// Live pickup: a new message in the shared folder arrives as new.
	if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{Folder: "Inbox/Support", Subject: "printer on fire", From: "erin@example.com", Body: "Help"}); err != nil {
		t.Fatal(err)
	}
	r, ok := rig.d.Runner("support")
	if !ok {
		t.Fatal("support runner not running")
	}
	r.Notify()
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
