package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The kill rig: the simulator and a faulty helpdesk receiver run in the
// test process; the daemon runs in a child process (this test binary
// re-executed into `m365bridge serve -config FILE`) that the test kills
// with SIGKILL and starts again. One counter orders what the receiver
// acknowledged against what the simulator moved.

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

// Receiver answers, drawn per request.
const (
	answer2xx     = "204"
	answer500     = "500"
	answer503     = "503"
	answer429     = "429"
	answerTimeout = "timeout" // held until the bridge gave up
)

// killShares is the receiver's mix: the rest is 204. The webhook's timeout
// (killWebhookTimeout) ends a held request; 429 carries Retry-After: 1.
var killShares = []struct {
	answer string
	share  float64
}{{answer500, 0.05}, {answer503, 0.04}, {answer429, 0.002}, {answerTimeout, 0.01}}

const killWebhookTimeout = 250 * time.Millisecond

// killRequest is one request the receiver answered.
type killRequest struct {
	seq     int64 // on the shared counter; for a 2xx taken before the answer was written
	eventID string
	graphID string // the event's article.graph_id ("" for channel events)
	typ     string
	answer  string
	// gone: the sender had already hung up when the 2xx was numbered (its
	// timeout, or a kill, while this handler was still on its way under
	// load), so the bridge never read this answer. Such a 2xx neither
	// acknowledges the event nor counts as a send after the move.
	gone bool
}

type killRig struct {
	t      *testing.T
	n      int
	dest   string // the folder after_import puts mail in
	sim    *m365sim.Server
	recv   *httptest.Server
	config string // bridge.yaml path
	state  string // state_dir
	public string
	admin  string
	secret string
	env    []string // extra environment of the child (the recipe kill test's helpdesk secrets)

	seq atomic.Int64 // orders acknowledgements and moves

	mu       sync.Mutex
	rng      *rand.Rand
	requests []killRequest
	acked    map[string]int64 // event id -> seq of its first 2xx
	moved    map[string]int64 // immutable id -> seq when it first left killSource
	movedTo  map[string]string
	ids      map[string]bool // immutable ids of the injected messages

	// the running child
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	out    *syncBuffer // every child's output, for failure messages
}

// newKillRig starts the simulator (short-lived access tokens, so the
// daemon refreshes during the run), the receiver, injects n messages and
// writes bridge.yaml with afterImport.
func newKillRig(t *testing.T, n int, afterImport, dest string, seed uint64) *killRig {
	t.Helper()
	rig := &killRig{t: t, n: n, dest: dest, public: freeAddr(t), admin: freeAddr(t), out: &syncBuffer{},
		rng: rand.New(rand.NewPCG(seed, 11)), acked: map[string]int64{}, moved: map[string]int64{},
		movedTo: map[string]string{}, ids: map[string]bool{}}
	simSeed := m365sim.DefaultSeed()
	simSeed.App.RedirectURIs = []string{"http://" + rig.public + "/oauth/callback"}
	sim, err := m365sim.StartServer(m365sim.Options{AccessTokenTTL: 4 * time.Second, OnMove: rig.onMove}, simSeed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	rig.sim = sim
	if dest != "Deleted Items" {
		if _, err := sim.Sim.CreateFolder(killMailbox, dest); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		mi, err := sim.Sim.InjectMessage(killMailbox, m365sim.NewMessage{Folder: killSource,
			Subject: fmt.Sprintf("kill %d", i), From: fmt.Sprintf("c%d@example.com", i%7), Body: "body"})
		if err != nil {
			t.Fatal(err)
		}
		rig.ids[mi.ImmutableID] = true
	}

	rig.secret, _ = webhooks.GenerateSecret()
	rig.recv = httptest.NewServer(http.HandlerFunc(rig.receive))
	t.Cleanup(rig.recv.Close)

	dir := t.TempDir()
	rig.state = filepath.Join(dir, "data")
	rig.config = filepath.Join(dir, "bridge.yaml")
	// Secrets come from the environment (start sets it), as bridge.yaml advises.
	yml := fmt.Sprintf(`public_url: http://%[1]s
listen: %[1]s
admin: {listen: %[2]s, token: '${KILL_ADMIN_TOKEN}'}
state_dir: %[3]s
log: {level: warn}
microsoft:
  client_id: %[4]s
  client_secret: ${KILL_CLIENT_SECRET}
  tenant: %[5]s
  login_url: %[6]s
  graph_url: %[6]s
  refresh_margin: 2s
webhooks:
  - name: helpdesk
    url: %[7]s/hooks
    secret: ${KILL_WEBHOOK_SECRET}
    timeout: %[8]s
    schedule: [25ms]
    max_attempts: 30
channels:
  - name: support
    mailbox: {type: shared, address: %[9]s}
    folder: %[10]s
    group: Support
    poll_interval: 10s
    after_import: %[11]s
`, rig.public, rig.admin, rig.state, sim.Seeded.ClientID, killTenant, sim.URL, rig.recv.URL,
		killWebhookTimeout, killMailbox, killSource, afterImport)
	if err := os.WriteFile(rig.config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return rig
}

// onMove is the simulator's Options.OnMove: it runs under the sim's lock,
// before the Graph request that moved the message is answered.
func (rig *killRig) onMove(ev m365sim.MoveEvent) {
	if !strings.EqualFold(ev.Mailbox, killMailbox) || ev.From != killSource {
		return
	}
	seq := rig.seq.Add(1)
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if _, ok := rig.moved[ev.ImmutableID]; !ok {
		rig.moved[ev.ImmutableID] = seq
		rig.movedTo[ev.ImmutableID] = ev.To
	}
}

// receive is the helpdesk: it verifies the signature, then answers with a
// drawn fault or 204, and records the request.
func (rig *killRig) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the sender went away (timeout or kill)
	}
	if err := (webhooks.Verifier{Secrets: []string{rig.secret}}).Verify(r.Header, body); err != nil {
		rig.t.Errorf("receiver: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev webhooks.Event
	var md webhooks.MailData
	if err := json.Unmarshal(body, &ev); err != nil {
		rig.t.Errorf("receiver: decode event: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(webhooks.HeaderID)
	if strings.HasPrefix(ev.Type, "mail.") {
		if err := json.Unmarshal(ev.Data, &md); err != nil || md.ID != id {
			rig.t.Errorf("receiver: event %s: data.id %q, err %v", id, md.ID, err)
		}
	}
	rig.mu.Lock()
	x, answer := rig.rng.Float64(), answer2xx
	for _, s := range killShares {
		if x < s.share {
			answer = s.answer
			break
		}
		x -= s.share
	}
	req := killRequest{eventID: id, graphID: md.Article.GraphID, typ: ev.Type, answer: answer}
	if answer == answer2xx {
		// Taken before the answer is written: a move the bridge makes
		// after reading it gets a higher number.
		req.seq = rig.seq.Add(1)
		req.gone = r.Context().Err() != nil
		if _, ok := rig.acked[id]; !ok && !req.gone {
			rig.acked[id] = req.seq
		}
		rig.requests = append(rig.requests, req)
	}
	rig.mu.Unlock()
	switch answer {
	case answer2xx:
		w.WriteHeader(http.StatusNoContent)
		return
	case answer500:
		http.Error(w, "helpdesk database unavailable", http.StatusInternalServerError)
	case answer503:
		http.Error(w, "helpdesk restarting", http.StatusServiceUnavailable)
	case answer429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case answerTimeout:
		select {
		case <-r.Context().Done(): // the bridge's timeout, or its death
		case <-time.After(time.Minute):
			rig.t.Errorf("receiver: the bridge held a request for a minute with a %s timeout", killWebhookTimeout)
			http.Error(w, "held too long", http.StatusServiceUnavailable)
		}
	}
	req.seq = rig.seq.Add(1)
	rig.mu.Lock()
	rig.requests = append(rig.requests, req)
	rig.mu.Unlock()
}

// start runs the daemon as a child process and waits until its /readyz
// answers 200.
func (rig *killRig) start() {
	t := rig.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineDaemon$")
	cmd.Env = append(os.Environ(), killDaemonEnv+"="+rig.config, "KILL_ADMIN_TOKEN="+killAdminToken,
		"KILL_CLIENT_SECRET="+rig.sim.Seeded.ClientSecret, "KILL_WEBHOOK_SECRET="+rig.secret)
	cmd.Env = append(cmd.Env, rig.env...)
	cmd.Stdout, cmd.Stderr = rig.out, rig.out
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
	rig.cmd, rig.stdin, rig.exited = cmd, stdin, exited
	t.Cleanup(rig.kill)

	deadline := time.Now().Add(2 * time.Minute) // a safety net: readiness takes well under a second
	for {
		select {
		case <-exited:
			t.Fatalf("the daemon exited before it was ready\n%s", rig.tail())
		default:
		}
		if resp, err := http.Get("http://" + rig.public + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never became ready\n%s", rig.tail())
		}
		time.Sleep(5 * time.Millisecond) // pacing: a child process can only be asked over HTTP whether it is up; the deadline is the safety net
	}
}

// kill sends SIGKILL to the running child and waits until it is gone.
func (rig *killRig) kill() {
	if rig.cmd == nil {
		return
	}
	rig.cmd.Process.Kill()
	<-rig.exited
	rig.stdin.Close()
	rig.cmd = nil
}

// connect signs the channel in the way an operator does: the admin API
// hands out the consent URL, the simulator's sign-in approves it as the
// agent, and the daemon's callback stores the tokens.
func (rig *killRig) connect() {
	t := rig.t
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+rig.admin+"/api/channels/support/auth", nil)
	req.Header.Set("Authorization", "Bearer "+killAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || got.URL == "" {
		t.Fatalf("start consent: %d %+v", resp.StatusCode, got)
	}
	resp, err = http.Get(got.URL + "&sim_auto=1&login_hint=agent@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent callback: %d %.300s", resp.StatusCode, page)
	}
}

// progress is what the test can see of the import: messages whose event
// got a 2xx, and messages that left the folder.
func (rig *killRig) progress() (acked, moved int) {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	for id := range rig.ids {
		if _, ok := rig.acked[rig.eventID(id)]; ok {
			acked++
		}
		if _, ok := rig.moved[id]; ok {
			moved++
		}
	}
	return acked, moved
}

func (rig *killRig) eventID(immutableID string) string {
	return webhooks.EventID(killTenant, killMailbox, immutableID)
}

// checkNothingMovedEarly fails the test for every message that left its
// folder while its event had no 2xx, or whose first 2xx came after the
// move. It looks at the mailbox itself as well as at the recorded moves.
func (rig *killRig) checkNothingMovedEarly(when string) {
	t := rig.t
	t.Helper()
	inFolder := map[string]bool{}
	for _, mi := range rig.sim.Sim.Messages(killMailbox, killSource) {
		inFolder[mi.ImmutableID] = true
	}
	rig.mu.Lock()
	defer rig.mu.Unlock()
	var bad []string
	for id := range rig.ids {
		ackSeq, acked := rig.acked[rig.eventID(id)]
		moveSeq, moved := rig.moved[id]
		switch {
		case !inFolder[id] && !acked:
			bad = append(bad, fmt.Sprintf("%s left %s (to %q) and its event never got a 2xx", id, killSource, rig.movedTo[id]))
		case moved && acked && ackSeq > moveSeq:
			bad = append(bad, fmt.Sprintf("%s left %s at #%d, its event's first 2xx came later at #%d", id, killSource, moveSeq, ackSeq))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: %d messages left the folder before the receiver acknowledged them, e.g.\n  %s\ndaemon output:\n%s",
			when, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n  "), rig.tail())
	}
}

// ledgerDone opens the daemon's store (SQLite in WAL mode takes a second
// process) and reports how many ledger rows are done, and the counts.
func (rig *killRig) ledgerDone(ctx context.Context) (int, map[string]int, error) {
	db, err := store.Open(ctx, filepath.Join(rig.state, store.FileName))
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	c, err := db.LedgerCounts(ctx, "support")
	if err != nil {
		return 0, nil, err
	}
	return c[store.LedgerDone], c, nil
}

// tail is the end of the children's output, for failure messages.
func (rig *killRig) tail() string {
	s := rig.out.String()
	if len(s) > 6000 {
		s = "…" + s[len(s)-6000:]
	}
	return s
}
