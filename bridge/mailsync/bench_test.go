package mailsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// The sync benchmarks run the bridge (runners, a SQLite file, the real
// dispatcher, real HTTP on loopback) and a verifying receiver in this
// process and the simulator in a child process (the test binary run again),
// so that peak RSS measures the bridge, not the simulated mailboxes. One
// command runs everything and prints one JSON line per scenario:
//
//	go test ./bridge -run '^$' -bench BenchmarkSync -benchtime 1x
//
// They are opt-in: `go test` alone does not run them.

// benchScenario is one benchmark setup.
type benchScenario struct {
	Name        string
	Mailboxes   int
	PerMailbox  int
	AfterImport config.AfterImport
	// NoThrottle, when set, is why the scenario runs the simulator without
	// Graph's throttling (m365sim.Options.NoThrottle).
	NoThrottle string
	// Attachments, when set, replaces the mixed sizes (15% with 100 KiB,
	// 5% with 1 MiB).
	Attachments []m365sim.AttachmentMix
}

// BenchResult is the JSON line a scenario prints.
type BenchResult struct {
	Scenario         string  `json:"scenario"`
	Messages         int     `json:"messages"`
	Seconds          float64 `json:"seconds"`
	MsgsPerSec       float64 `json:"msgs_per_sec"`
	GraphRequests    int     `json:"graph_requests"`
	GraphReqPerMsg   float64 `json:"graph_requests_per_msg"`
	GraphThrottled   int     `json:"graph_429"`
	WebhookPosts     int     `json:"webhook_posts"`
	DistinctEventIDs int     `json:"distinct_event_ids"`
	Lost             int     `json:"lost"`
	Duplicates       int     `json:"duplicates"`
	// PeakRSSMiB is the bridge's process (runners, SQLite, dispatcher and
	// the receiver); the simulator runs in a child process of its own,
	// SimPeakRSSMiB, so its mailboxes do not count against the bridge.
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	SimPeakRSSMiB float64 `json:"sim_peak_rss_mib"`
	// PeakHeapMiB is the largest live-and-unswept Go heap (heap objects)
	// seen while the scenario ran, sampled every 20 ms from runtime/metrics
	// (no stop-the-world): what the byte budget bounds, without SQLite's
	// C memory.
	PeakHeapMiB float64 `json:"peak_heap_mib"`
	// MemoryBudgetMiB is the runners' shared byte budget (RunnerConfig.Memory).
	MemoryBudgetMiB float64 `json:"memory_budget_mib"`
}

func BenchmarkSync2kKeep(b *testing.B) {
	runBench(b, benchScenario{Name: "2k-keep", Mailboxes: 1, PerMailbox: 2000, AfterImport: config.AfterImport{Action: config.ActionKeep}})
}

func BenchmarkSync10kKeep(b *testing.B) {
	runBench(b, benchScenario{Name: "10k-keep", Mailboxes: 1, PerMailbox: 10000, AfterImport: config.AfterImport{Action: config.ActionKeep}})
}

func BenchmarkSync10kDelete(b *testing.B) {
	runBench(b, benchScenario{Name: "10k-delete", Mailboxes: 1, PerMailbox: 10000, AfterImport: config.AfterImport{Action: config.ActionDelete}})
}

// BenchmarkSync40kKeep is the 10k scenario four times over, to show memory
// does not grow with the import size (issue 17: peak within 10% of 10k).
// Opt-in, it takes long: M365BRIDGE_BENCH_40K=1.
func BenchmarkSync40kKeep(b *testing.B) {
	if os.Getenv("M365BRIDGE_BENCH_40K") == "" {
		b.Skip("opt-in: set M365BRIDGE_BENCH_40K=1")
	}
	runBench(b, benchScenario{Name: "40k-keep", Mailboxes: 1, PerMailbox: 40000, AfterImport: config.AfterImport{Action: config.ActionKeep}})
}

// BenchmarkSync40MiBAttachments imports 12 mails each carrying a 40 MiB
// file (listed by size, over the inline limit, but read for its sha256):
// their pages must wait for the byte budget instead of peaking at GBs.
func BenchmarkSync40MiBAttachments(b *testing.B) {
	runBench(b, benchScenario{Name: "12x40MiB", Mailboxes: 3, PerMailbox: 4, AfterImport: config.AfterImport{Action: config.ActionKeep},
		Attachments: []m365sim.AttachmentMix{{Percent: 100, Size: 40 << 20, ContentType: "application/octet-stream"}}})
}

func BenchmarkSync50x200Throttled(b *testing.B) {
	runBench(b, benchScenario{Name: "50x200-throttled", Mailboxes: 50, PerMailbox: 200, AfterImport: config.AfterImport{Action: config.ActionKeep}})
}

func runBench(b *testing.B, sc benchScenario) {
	for range b.N {
		res, err := RunSyncBench(context.Background(), b.TempDir(), sc)
		if err != nil {
			b.Fatal(err)
		}
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
		if res.Lost != 0 || res.Duplicates != 0 {
			b.Errorf("lost %d, duplicates %d", res.Lost, res.Duplicates)
		}
		// Invariant 6: the bridge keeps within Outlook's limits, so a
		// throttled sim never has to answer 429.
		if sc.NoThrottle == "" && res.GraphThrottled != 0 {
			b.Errorf("the simulator answered %d throttling 429s: the bridge went over Outlook's limits", res.GraphThrottled)
		}
	}
}

// benchReceiver counts verified deliveries without keeping bodies.
type benchReceiver struct {
	mu    sync.Mutex
	posts int
	ids   map[string]int
	done  chan struct{}
	want  int
}

// RunSyncBench runs one scenario to completion: every message delivered
// and, for delete and move, its post-import action done.
func RunSyncBench(ctx context.Context, dir string, sc benchScenario) (BenchResult, error) {
	res := BenchResult{Scenario: sc.Name, Messages: sc.Mailboxes * sc.PerMailbox}
	sim, err := startBenchSim(ctx, sc)
	if err != nil {
		return res, err
	}
	defer sim.Close()
	addrs := sim.Mailboxes
	db, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return res, err
	}
	defer db.Close()

	secret, _ := webhooks.GenerateSecret()
	rcv := &benchReceiver{ids: map[string]int{}, done: make(chan struct{}), want: res.Messages}
	handler := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{secret}}, Remember: 1}
	handler.OnEvent = func(_ context.Context, d *webhooks.Delivery) error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		rcv.posts++
		rcv.ids[d.ID]++
		if len(rcv.ids) == rcv.want && rcv.ids[d.ID] == 1 {
			close(rcv.done)
		}
		return nil
	}
	hs := httptest.NewServer(handler)
	defer hs.Close()

	quiet := slog.New(slog.DiscardHandler)
	byName := map[string]*Runner{}
	queue := db.OutboxWith(LedgerHooks(db, func(ch string) { byName[ch].Notify() }))
	disp, err := deliver.New(queue, []deliver.Endpoint{{Name: "helpdesk", URL: hs.URL, Secrets: []string{secret}, Concurrency: 4}},
		deliver.Options{Logger: quiet, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return res, err
	}
	client := &graph.Client{BaseURL: sim.URL, Logger: quiet}
	runners := make([]*Runner, len(addrs))
	pageSlots := semaphore.NewWeighted(DefaultPagesInFlight) // one limit for all runners, as in the daemon
	// M365BRIDGE_BENCH_MEMORY_BUDGET (bytes) overrides the default budget,
	// e.g. 1099511627776 to measure without one (pages bounded by count only).
	memory := membudget.New(DefaultMemoryBudget) // one budget for all runners, as in the daemon
	if v, err := strconv.ParseInt(os.Getenv("M365BRIDGE_BENCH_MEMORY_BUDGET"), 10, 64); err == nil && v > 0 {
		memory = membudget.New(v)
	}
	res.MemoryBudgetMiB = float64(memory.Limit()) / (1 << 20)
	for i, addr := range addrs {
		ch := testChannel(fmt.Sprintf("ch%02d", i), config.MailboxShared, addr, "Inbox/Support")
		ch.AfterImport = sc.AfterImport
		runners[i] = NewRunner(RunnerConfig{Channel: ch, Tenant: sim.Tenant, DB: db, Logger: quiet, Wake: disp.Wake,
			Graph: client.Mailbox(graph.Mailbox{Shared: true, Address: addr},
				graph.TokenFunc(func(context.Context) (string, error) { return sim.Token, nil })),
			Auth: func(context.Context) (bool, error) { return true, nil }, PageSize: 100, PageSlots: pageSlots, Memory: memory})
		byName[ch.Name] = runners[i]
	}
	if _, err := sim.counters(ctx, http.MethodDelete); err != nil {
		return res, err
	}
	resetPeakRSS()
	runtime.GC()
	heap := sampleHeap()
	defer heap.stop()

	start := time.Now()
	dctx, stopDispatch := context.WithCancel(ctx)
	dispDone := make(chan struct{})
	go func() { defer close(dispDone); disp.Run(dctx) }()
	defer func() { stopDispatch(); <-dispDone }()

	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		g.Go(func() error {
			// Page the whole folder (retrying a round that gave up), then run
			// post-actions until every row is done.
			for {
				if _, err := r.SyncOnce(gctx); err == nil {
					break
				} else if gctx.Err() != nil {
					return err
				}
			}
			if sc.AfterImport.Action == config.ActionKeep {
				return nil
			}
			for {
				select {
				case <-gctx.Done():
					return gctx.Err()
				case <-r.notify:
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := r.PostActions(gctx); err != nil {
					return err
				}
				c, err := db.LedgerCounts(gctx, r.ch.Name)
				if err != nil {
					return err
				}
				if c[store.LedgerDone] == sc.PerMailbox {
					return nil
				}
			}
		})
	}
	// A safety net, not a measure: 10 minutes per 10,000 messages (the 40k
	// scenario hit a flat 10 minutes with 27,126 delivered on a loaded host).
	timeout := time.After(max(1, time.Duration(res.Messages+9999)/10000) * 10 * time.Minute)
	select {
	case <-rcv.done:
	case <-timeout:
		return res, fmt.Errorf("scenario %s: timed out with %d of %d delivered", sc.Name, len(rcv.ids), rcv.want)
	}
	if sc.AfterImport.Action == config.ActionKeep {
		// Mark the delivered rows done, as the runner's next round would.
		for _, r := range runners {
			if _, err := r.PostActions(ctx); err != nil {
				return res, err
			}
		}
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	c, err := sim.counters(ctx, http.MethodGet)
	if err != nil {
		return res, err
	}
	rcv.mu.Lock()
	res.WebhookPosts, res.DistinctEventIDs = rcv.posts, len(rcv.ids)
	rcv.mu.Unlock()
	res.Lost = res.Messages - res.DistinctEventIDs
	res.Duplicates = res.WebhookPosts - res.DistinctEventIDs
	res.GraphRequests, res.GraphThrottled = c.Requests, c.Throttled
	res.GraphReqPerMsg = round3(float64(c.Requests) / float64(res.Messages))
	res.MsgsPerSec = round3(float64(res.Messages) / res.Seconds)
	res.Seconds = round3(res.Seconds)
	res.PeakRSSMiB = peakRSSMiB()
	res.PeakHeapMiB = round3(float64(heap.stop()) / (1 << 20))
	res.SimPeakRSSMiB = procPeakRSSMiB(sim.cmd.Process.Pid)
	return res, nil
}

// heapSampler records the peak of the Go heap's objects while it runs.
type heapSampler struct {
	quit chan struct{}
	done chan uint64
	peak uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{quit: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-h.quit:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// stop ends the sampling (once) and returns the peak in bytes.
func (h *heapSampler) stop() uint64 {
	select {
	case <-h.quit:
		return h.peak
	default:
	}
	close(h.quit)
	h.peak = <-h.done
	return h.peak
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// resetPeakRSS resets the kernel's high-water mark (Linux; ignored
// elsewhere) so the figure covers the scenario only.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB reads VmHWM from /proc/self/status; 0 where unavailable.
func peakRSSMiB() float64 { return readHWM("/proc/self/status") }

// procPeakRSSMiB is peakRSSMiB of another process.
func procPeakRSSMiB(pid int) float64 { return readHWM(fmt.Sprintf("/proc/%d/status", pid)) }

func readHWM(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return round3(kb / 1024)
		}
	}
	return 0
}

// benchSimEnv carries a scenario to the simulator child (JSON).
const benchSimEnv = "M365BRIDGE_BENCH_SIM"

// benchSim is the simulator child: its URL, tenant, an access token for the
// agent, and the shared mailboxes it generated.
type benchSim struct {
	URL       string   `json:"url"`
	Tenant    string   `json:"tenant"`
	Token     string   `json:"token"`
	Mailboxes []string `json:"mailboxes"`
	cmd       *exec.Cmd
	stdin     io.Closer
}

func (s *benchSim) Close() {
	s.stdin.Close() // the child exits when its stdin closes
	s.cmd.Wait()
}

// counters reads (GET) or resets (DELETE) the simulator's Graph counters.
func (s *benchSim) counters(ctx context.Context, method string) (m365sim.Counters, error) {
	var c m365sim.Counters
	req, err := http.NewRequestWithContext(ctx, method, s.URL+"/_sim/counters", nil)
	if err != nil {
		return c, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, fmt.Errorf("sim counters: %w", err)
	}
	defer res.Body.Close()
	if method == http.MethodGet {
		err = json.NewDecoder(res.Body).Decode(&c)
	}
	return c, err
}

// startBenchSim runs the simulator for sc in a child process and waits for
// its first line (the benchSim JSON).
func startBenchSim(ctx context.Context, sc benchScenario) (*benchSim, error) {
	spec, _ := json.Marshal(sc)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBenchSimChild$")
	cmd.Env = append(os.Environ(), benchSimEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	s := &benchSim{cmd: cmd, stdin: stdin}
	if err := json.Unmarshal(line, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("start simulator: %q: %w", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return s, nil
}

// TestBenchSimChild is the simulator process of the sync benchmarks; it
// runs only when started by startBenchSim.
func TestBenchSimChild(t *testing.T) {
	raw := os.Getenv(benchSimEnv)
	if raw == "" {
		t.Skip("runs only as the simulator child of the sync benchmarks")
	}
	var sc benchScenario
	if err := json.Unmarshal([]byte(raw), &sc); err != nil {
		t.Fatal(err)
	}
	seed := m365sim.DefaultSeed()
	spec := &m365sim.GenerateSpec{Count: sc.PerMailbox, Folder: "Inbox/Support", Size: 10 << 10,
		Attachments: []m365sim.AttachmentMix{{Percent: 15, Size: 100 << 10}, {Percent: 5, Size: 1 << 20}}}
	if sc.Attachments != nil {
		spec.Attachments = sc.Attachments
	}
	out := benchSim{}
	seed.SharedMailboxes = seed.SharedMailboxes[:0]
	for i := range sc.Mailboxes {
		addr := fmt.Sprintf("support%02d@contoso.com", i)
		out.Mailboxes = append(out.Mailboxes, addr)
		seed.SharedMailboxes = append(seed.SharedMailboxes, m365sim.SeedSharedMailbox{Address: addr,
			DisplayName: "Support " + strconv.Itoa(i), FullAccess: []string{simAgent}, Mail: m365sim.MailSeed{Generate: spec}})
	}
	srv, err := m365sim.StartServer(m365sim.Options{NoThrottle: sc.NoThrottle}, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tok, err := srv.Sim.IssueTokens(simAgent, m365sim.DefaultClientID, "offline_access Mail.ReadWrite Mail.ReadWrite.Shared")
	if err != nil {
		t.Fatal(err)
	}
	out.URL, out.Tenant, out.Token = srv.URL, srv.Seeded.TenantID, tok.AccessToken
	line, _ := json.Marshal(out)
	os.Stdout.Write(append(line, '\n'))
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or exits
}
