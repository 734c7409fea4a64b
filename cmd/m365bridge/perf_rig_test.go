package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The performance rig: the simulator (throttled, as by default) and a
// verifying receiver run in the benchmark's process; what is measured runs
// as a child process of its own, so that its CPU time (rusage), peak RSS
// and disk writes are its alone:
//
//   - the bridge: the real binary, built with `go build` from this
//     package, running `serve` from a bridge.yaml with the defaults
//     (webhook concurrency, delta page size), signed in through the admin
//     API and the simulator's consent page as an operator would;
//   - the bare loop (bareloop_test.go): this test binary re-executed; it
//     pages the same delta endpoint with the same page size and POSTs each
//     message to the same receiver, with no storage.

const (
	perfTenant     = "contoso.onmicrosoft.com" // the configured tenant, which keys event ids
	perfAgent      = "agent@contoso.com"
	perfAdminToken = "perf-admin-token"
)

// perfCorpus is issue 17's mixed corpus: 10 KiB bodies, 15% of the
// messages with a 100 KiB attachment, 5% with a 1 MiB one.
func perfCorpus(n int) *m365sim.GenerateSpec {
	return &m365sim.GenerateSpec{Count: n, Folder: "Inbox", Size: 10 << 10,
		Attachments: []m365sim.AttachmentMix{{Percent: 15, Size: 100 << 10}, {Percent: 5, Size: 1 << 20}}}
}

// perfSim is the simulator with one shared mailbox per run, each seeded
// with the same corpus, so every run starts from a full Inbox.
type perfSim struct {
	srv *m365sim.Server
	// publics are the daemons' public listeners, one per run: each is a
	// redirect URI registered with the app, as an operator registers it.
	publics   []string
	closeOnce sync.Once

	mu      sync.Mutex
	moved   map[string]int // mailbox -> messages that left its Inbox
	onMoved func()         // the run's signal, nil between runs
}

func newPerfSim(tb testing.TB, mailboxes []string, perMailbox, daemons int) *perfSim {
	tb.Helper()
	ps := &perfSim{moved: map[string]int{}}
	seed := m365sim.DefaultSeed()
	seed.App.RedirectURIs = nil
	for range daemons {
		addr := freePort(tb)
		ps.publics = append(ps.publics, addr)
		seed.App.RedirectURIs = append(seed.App.RedirectURIs, "http://"+addr+"/oauth/callback")
	}
	seed.SharedMailboxes = seed.SharedMailboxes[:0]
	for _, mb := range mailboxes {
		sm := m365sim.SeedSharedMailbox{Address: mb, DisplayName: mb, FullAccess: []string{perfAgent}}
		if perMailbox > 0 {
			sm.Mail.Generate = perfCorpus(perMailbox)
		}
		seed.SharedMailboxes = append(seed.SharedMailboxes, sm)
	}
	srv, err := m365sim.StartServer(m365sim.Options{OnMove: ps.onMove}, seed)
	if err != nil {
		tb.Fatal(err)
	}
	ps.srv = srv
	tb.Cleanup(ps.close)
	return ps
}

// onMove is the simulator's Options.OnMove (under the sim's lock).
func (ps *perfSim) onMove(ev m365sim.MoveEvent) {
	if ev.From != "Inbox" {
		return
	}
	ps.mu.Lock()
	ps.moved[strings.ToLower(ev.Mailbox)]++
	f := ps.onMoved
	ps.mu.Unlock()
	if f != nil {
		f()
	}
}

// close stops the simulator (once; the cleanup calls it again).
func (ps *perfSim) close() { ps.closeOnce.Do(func() { ps.srv.Close() }) }

func (ps *perfSim) movedFrom(mailbox string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.moved[strings.ToLower(mailbox)]
}

// perfReceiver is the helpdesk: it verifies each signature, counts 2xx
// answers per event id and the bytes delivered, and notes when each id
// first arrived.
type perfReceiver struct {
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	want     map[string]bool      // event ids of the run's messages
	posts    map[string]int       // event id -> 2xx answers
	first    map[string]time.Time // event id -> first arrival
	bytes    int64                // bodies of the run's events
	others   int                  // events for no message of the run (channel events)
	bad      int                  // failed verification
	progress func()
}

func newPerfReceiver(tb testing.TB) *perfReceiver {
	tb.Helper()
	secret, err := webhooks.GenerateSecret()
	if err != nil {
		tb.Fatal(err)
	}
	r := &perfReceiver{secret: secret}
	r.reset(nil, nil)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.srv.Close)
	return r
}

// reset starts a run: want are the event ids it must deliver; progress is
// called after each accepted delivery.
func (r *perfReceiver) reset(want map[string]bool, progress func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want, r.posts, r.first = want, map[string]int{}, map[string]time.Time{}
	r.bytes, r.others, r.bad, r.progress = 0, 0, 0, progress
}

func (r *perfReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := (webhooks.Verifier{Secrets: []string{r.secret}}).Verify(req.Header, body); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(webhooks.HeaderID)
	now := time.Now()
	r.mu.Lock()
	if r.want[id] {
		r.posts[id]++
		r.bytes += int64(len(body))
		if _, ok := r.first[id]; !ok {
			r.first[id] = now
		}
	} else {
		r.others++
	}
	progress := r.progress
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if progress != nil {
		progress()
	}
}

// tally is what the receiver saw of the run.
func (r *perfReceiver) tally() (distinct, duplicates, lost int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.want {
		switch n := r.posts[id]; {
		case n == 0:
			lost++
		default:
			distinct++
			duplicates += n - 1
		}
	}
	return distinct, duplicates, lost, r.bytes
}

func (r *perfReceiver) firstArrival(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.first[id]
	return t, ok
}

// childStats is what a finished child process cost.
type childStats struct {
	CPU         time.Duration // user + system
	DiskWritten int64         // bytes (rusage oublock: the kernel's write_bytes of /proc/<pid>/io)
}

func statsOf(ps *os.ProcessState) childStats {
	s := childStats{CPU: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		s.DiskWritten = ru.Oublock * 512
	}
	return s
}

// buildBridge builds the real binary into a directory the benchmark
// removes when it ends (the build cache makes a rebuild a link).
func buildBridge(tb testing.TB) string {
	tb.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			tb.Fatalf("build the bridge: no go command: %v", err)
		}
	}
	bin := filepath.Join(tb.TempDir(), "m365bridge")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("build the bridge: %v\n%s", err, out)
	}
	return bin
}

// bridgeChild is one daemon process.
type bridgeChild struct {
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
	state  string
	admin  string
	public string
}

// perfBridgeConfig is what a run's bridge.yaml varies.
type perfBridgeConfig struct {
	Mailbox      string // shared mailbox address; "" for {type: user}
	AfterImport  string
	PollInterval string // "" for the default
	StateBudget  string // state_budget_bytes; "" for the default
}

// startBridge writes bridge.yaml into dir, runs bin (buildBridge), starts the daemon, waits for
// /readyz and signs the channel in.
func startBridge(tb testing.TB, bin string, ps *perfSim, rcv *perfReceiver, dir string, cfg perfBridgeConfig, env ...string) *bridgeChild {
	tb.Helper()
	if len(ps.publics) == 0 {
		tb.Fatal("perf rig: no registered redirect URI left for another daemon")
	}
	bc := &bridgeChild{out: &syncBuffer{}, state: filepath.Join(dir, "data"), admin: freePort(tb), public: ps.publics[0]}
	ps.publics = ps.publics[1:]
	mailbox := "{type: user}"
	if cfg.Mailbox != "" {
		mailbox = "{type: shared, address: " + cfg.Mailbox + "}"
	}
	poll := ""
	if cfg.PollInterval != "" {
		poll = "    poll_interval: " + cfg.PollInterval + "\n"
	}
	budget := ""
	if cfg.StateBudget != "" {
		budget = "state_budget_bytes: " + cfg.StateBudget + "\n"
	}
	yml := budget + fmt.Sprintf(`public_url: http://%[1]s
listen: %[1]s
admin: {listen: %[2]s, token: '${PERF_ADMIN_TOKEN}'}
state_dir: %[3]s
log: {level: warn}
microsoft:
  client_id: %[4]s
  client_secret: ${PERF_CLIENT_SECRET}
  tenant: %[5]s
  login_url: %[6]s
  graph_url: %[6]s
webhooks:
  - name: helpdesk
    url: %[7]s/hooks
    secret: ${PERF_WEBHOOK_SECRET}
channels:
  - name: perf
    mailbox: %[8]s
    group: Support
    after_import: %[9]s
%[10]s`, bc.public, bc.admin, bc.state, ps.srv.Seeded.ClientID, perfTenant, ps.srv.URL, rcv.srv.URL,
		mailbox, cfg.AfterImport, poll)
	config := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	bc.cmd = exec.Command(bin, "serve", "-config", config)
	bc.cmd.Env = append(os.Environ(), append(env, "PERF_ADMIN_TOKEN="+perfAdminToken,
		"PERF_CLIENT_SECRET="+ps.srv.Seeded.ClientSecret, "PERF_WEBHOOK_SECRET="+rcv.secret)...)
	bc.cmd.Stdout, bc.cmd.Stderr = bc.out, bc.out
	// The daemon dies with the benchmark, should the benchmark die first.
	bc.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := bc.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	bc.exited = make(chan struct{})
	go func() { bc.cmd.Wait(); close(bc.exited) }()
	tb.Cleanup(func() {
		select {
		case <-bc.exited:
		default:
			bc.cmd.Process.Kill()
			<-bc.exited
		}
	})
	bc.waitReady(tb)
	bc.connect(tb)
	return bc
}

func (bc *bridgeChild) waitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a safety net: readiness takes well under a second
	for {
		select {
		case <-bc.exited:
			tb.Fatalf("the daemon exited before it was ready\n%s", bc.out)
		default:
		}
		if resp, err := http.Get("http://" + bc.public + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the daemon never became ready\n%s", bc.out)
		}
		time.Sleep(5 * time.Millisecond) // pacing: a child process can only be asked over HTTP whether it is up
	}
}

// connect signs the channel in as an operator does: the admin API hands
// out the consent URL, the simulator approves it as the agent, the
// daemon's callback stores the tokens.
func (bc *bridgeChild) connect(tb testing.TB) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+bc.admin+"/api/channels/perf/auth", nil)
	req.Header.Set("Authorization", "Bearer "+perfAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	var got struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || got.URL == "" {
		tb.Fatalf("start consent: %d %+v\n%s", resp.StatusCode, got, bc.out)
	}
	resp, err = http.Get(got.URL + "&sim_auto=1&login_hint=" + perfAgent)
	if err != nil {
		tb.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("consent callback: %d %.300s", resp.StatusCode, page)
	}
}

// stop ends the daemon with SIGTERM (a clean shutdown: profiles are
// written then) and returns what it cost.
func (bc *bridgeChild) stop(tb testing.TB) childStats {
	tb.Helper()
	bc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-bc.exited:
	case <-time.After(2 * time.Minute): // a safety net: shutdown is bounded far below
		bc.cmd.Process.Kill()
		<-bc.exited
		tb.Fatalf("the daemon did not stop on SIGTERM\n%s", bc.out)
	}
	return statsOf(bc.cmd.ProcessState)
}

// dirSize is the disk space a directory's files take (allocated blocks).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// procIO reads one field of /proc/<pid>/io (0 where unavailable).
func procIO(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// procHWM reads VmHWM, the peak resident set, of /proc/<pid>/status in
// bytes (0 where unavailable).
func procHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// envInt reads a positive integer from the environment, def when unset.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// waitFor blocks until cond holds, re-checking on each signal on ch; the
// timeout is a safety net.
func waitFor(ctx context.Context, ch <-chan struct{}, cond func() bool) error {
	for !cond() {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// kick is a non-blocking signal on a channel of capacity 1.
func kick(ch chan struct{}) func() {
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
