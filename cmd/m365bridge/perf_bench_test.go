package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Issue 17's benchmarks (perf_rig_test.go has the rig):
//
//	go test ./cmd/m365bridge -run '^$' -bench BenchmarkImportVsBareLoop -timeout 30m
//	go test ./cmd/m365bridge -run '^$' -bench BenchmarkNewMailLatency -timeout 30m
//
// Environment:
//
//	M365BRIDGE_BENCH_ROUNDS=2          alternations of bridge and bare loop per scenario
//	M365BRIDGE_BENCH_40K=1             adds the 40,000-message scenario
//	M365BRIDGE_BENCH_N=200             every scenario with this many messages (a smoke run)
//	M365BRIDGE_BENCH_PROFILE_DIR=DIR   CPU and peak-heap profiles of each bridge run
//	M365BRIDGE_BENCH_BRIDGE_ENV="GOGC=200 GOMEMLIMIT=128MiB"   more environment for the bridge child only
//	M365BRIDGE_BENCH_POLL=10s          the latency scenario's poll_interval (default: the daemon's)
//	M365BRIDGE_BENCH_LATENCY_MAILS=50  mails injected in the latency scenario
//	M365BRIDGE_BENCH_LATENCY_SPAN=3m   over how long they are injected
//	M365BRIDGE_BENCH_LATENCY_MAILBOX=user   or shared

// importScenario is one import of the mixed corpus.
type importScenario struct {
	name   string
	n      int
	delete bool
}

// importRun is what one child process did in one run.
type importRun struct {
	bridge      bool
	wall        time.Duration
	cost        childStats
	requests    int // Graph requests on the wire ($batch once)
	throttled   int // 429s the simulator answered for throttling
	lost, dups  int
	delivered   int64 // bytes of the run's events the receiver accepted
	stateBytes  int64 // state_dir after the bridge stopped
	procWritten int64 // /proc/<pid>/io write_bytes when the import was done
	// peakRSS is VmHWM of /proc/<pid>/status when the import was done:
	// rusage's maxrss of a child started by fork+exec from a big parent
	// keeps the parent's RSS at the fork (Linux carries the old mm's
	// high-water mark over exec), so it would count the simulator.
	peakRSS int64
	// startup is, for the bridge, the time to /readyz and the consent.
	startup time.Duration
}

// BenchmarkImportVsBareLoop imports the mixed corpus with the bridge and
// with the bare loop (bareloop_test.go), alternating, on the same
// simulator and receiver, and reports medians over the rounds: the wall
// time ratio bridge/bare, CPU seconds per 1,000 messages of each child,
// their peak RSS, the bridge's Graph requests per message, 429s, lost and
// duplicate deliveries, disk bytes written against bytes delivered and the
// state directory's size at the end.
func BenchmarkImportVsBareLoop(b *testing.B) {
	bin := buildBridge(b)
	scenarios := []importScenario{{"2k-keep", 2000, false}, {"10k-delete", 10000, true}}
	if os.Getenv("M365BRIDGE_BENCH_40K") != "" {
		scenarios = append(scenarios, importScenario{"40k-keep", 40000, false})
	}
	rounds := envInt(b, "M365BRIDGE_BENCH_ROUNDS", 2)
	if n := envInt(b, "M365BRIDGE_BENCH_N", 0); n > 0 {
		for i := range scenarios {
			scenarios[i].n = n // a quick look at the rig, not a figure
		}
	}
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				runImportRounds(b, bin, sc, rounds)
			}
		})
	}
}

func runImportRounds(b *testing.B, bin string, sc importScenario, rounds int) {
	// Each run gets a simulator of its own, seeded alike: the very same
	// messages byte for byte, in the same process, with fresh throttling
	// windows (a delete run spends most of a mailbox's 10,000 requests per
	// 10 minutes; the next run must not inherit that).
	const mailbox = "bench@contoso.com"
	rcv := newPerfReceiver(b)
	var bridgeRuns, bareRuns []importRun
	for r := range rounds {
		order := []bool{true, false}
		if r%2 == 1 {
			order = []bool{false, true} // alternate who goes first
		}
		for _, bridge := range order {
			ps := newPerfSim(b, []string{mailbox}, sc.n, 1)
			run := runImport(b, bin, ps, rcv, sc, mailbox, bridge, r)
			ps.close()
			b.Logf("%s round %d %-6s wall %6.1fs (startup %.1fs) cpu %6.1fs peak %4.0f MiB req/msg %.3f 429s %d lost %d dup %d delivered %5.0f MiB disk %5.0f MiB (proc %5.0f) state %4.0f MiB",
				sc.name, r+1, kindName(bridge), run.wall.Seconds(), run.startup.Seconds(), run.cost.CPU.Seconds(), mib(run.peakRSS),
				float64(run.requests)/float64(sc.n), run.throttled, run.lost, run.dups, mib(run.delivered),
				mib(run.cost.DiskWritten), mib(run.procWritten), mib(run.stateBytes))
			if run.lost != 0 || run.dups != 0 {
				b.Errorf("%s %s round %d: lost %d, duplicates %d", sc.name, kindName(bridge), r+1, run.lost, run.dups)
			}
			if bridge && run.throttled != 0 {
				b.Errorf("%s round %d: the simulator answered the bridge %d throttling 429s (invariant 6)", sc.name, r+1, run.throttled)
			}
			if bridge {
				bridgeRuns = append(bridgeRuns, run)
			} else {
				bareRuns = append(bareRuns, run)
			}
		}
	}
	perK := 1000 / float64(sc.n)
	ratio := func(f func(importRun) float64) float64 {
		var rs []float64
		for i := range bridgeRuns {
			rs = append(rs, f(bridgeRuns[i])/f(bareRuns[i]))
		}
		return median(rs)
	}
	med := func(runs []importRun, f func(importRun) float64) float64 {
		var vs []float64
		for _, r := range runs {
			vs = append(vs, f(r))
		}
		return median(vs)
	}
	wall := func(r importRun) float64 { return r.wall.Seconds() }
	cpu := func(r importRun) float64 { return r.cost.CPU.Seconds() }
	b.ReportMetric(ratio(wall), "bridge/bare-wall")
	b.ReportMetric(ratio(cpu), "bridge/bare-cpu")
	b.ReportMetric(med(bridgeRuns, wall), "bridge-s")
	b.ReportMetric(med(bareRuns, wall), "bare-s")
	b.ReportMetric(med(bridgeRuns, cpu)*perK, "bridge-cpu-s/1k")
	b.ReportMetric(med(bareRuns, cpu)*perK, "bare-cpu-s/1k")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return mib(r.peakRSS) }), "bridge-peak-MiB")
	b.ReportMetric(med(bareRuns, func(r importRun) float64 { return mib(r.peakRSS) }), "bare-peak-MiB")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return float64(r.requests) / float64(sc.n) }), "graph-req/msg")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return float64(r.throttled) }), "429s")
	b.ReportMetric(med(append(bridgeRuns, bareRuns...), func(r importRun) float64 { return float64(r.lost + r.dups) }), "lost+dup")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return mib(r.cost.DiskWritten) }), "disk-MiB")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return mib(r.delivered) }), "delivered-MiB")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return float64(r.cost.DiskWritten) / float64(r.delivered) }), "disk/delivered")
	b.ReportMetric(med(bridgeRuns, func(r importRun) float64 { return mib(r.stateBytes) }), "state-MiB")
}

// runImport runs one child over mailbox and waits until every message's
// event was accepted (and, with delete, every message left the Inbox).
func runImport(b *testing.B, bin string, ps *perfSim, rcv *perfReceiver, sc importScenario, mailbox string, bridge bool, round int) importRun {
	want := map[string]bool{}
	for _, mi := range ps.srv.Sim.Messages(mailbox, "Inbox") {
		want[webhooks.EventID(perfTenant, mailbox, mi.ImmutableID)] = true
	}
	if len(want) != sc.n {
		b.Fatalf("%s holds %d messages, want %d", mailbox, len(want), sc.n)
	}
	signal := make(chan struct{}, 1)
	rcv.reset(want, kick(signal))
	ps.mu.Lock()
	ps.onMoved = kick(signal)
	ps.mu.Unlock()
	defer func() {
		ps.mu.Lock()
		ps.onMoved = nil
		ps.mu.Unlock()
	}()
	ps.srv.Sim.ResetCounters()
	done := func() bool {
		distinct, _, _, _ := rcv.tally()
		return distinct == sc.n && (!sc.delete || ps.movedFrom(mailbox) == sc.n)
	}
	// A safety net far above any run (the 40k bridge run takes minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	after := "keep"
	if sc.delete {
		after = "delete"
	}

	run := importRun{bridge: bridge}
	start := time.Now()
	if bridge {
		var env []string
		if dir := os.Getenv("M365BRIDGE_BENCH_PROFILE_DIR"); dir != "" {
			prefix := filepath.Join(dir, fmt.Sprintf("%s-r%d-", sc.name, round+1))
			env = append(env, cpuProfileEnv+"="+prefix+"cpu.pprof", memProfileEnv+"="+prefix+"heap.pprof")
		}
		env = append(env, strings.Fields(os.Getenv("M365BRIDGE_BENCH_BRIDGE_ENV"))...)
		// M365BRIDGE_BENCH_STATE_BUDGET=<bytes>: state_budget_bytes (the
		// state directory's size at the end follows it, not the import's).
		cfg := perfBridgeConfig{Mailbox: mailbox, AfterImport: after, StateBudget: os.Getenv("M365BRIDGE_BENCH_STATE_BUDGET")}
		bc := startBridge(b, bin, ps, rcv, b.TempDir(), cfg, env...)
		run.startup = time.Since(start)
		if err := waitFor(ctx, signal, done); err != nil {
			b.Fatalf("%s bridge: %v\n%s", sc.name, err, bc.out)
		}
		run.wall = time.Since(start)
		pid := bc.cmd.Process.Pid
		run.procWritten, run.peakRSS = procIO(pid, "write_bytes"), procHWM(pid)
		run.cost = bc.stop(b)
		run.stateBytes = dirSize(bc.state)
	} else {
		tok, err := ps.srv.Sim.IssueTokens(perfAgent, ps.srv.Seeded.ClientID, "offline_access Mail.ReadWrite Mail.ReadWrite.Shared")
		if err != nil {
			b.Fatal(err)
		}
		bare := startBareLoop(b, bareSpec{GraphURL: ps.srv.URL + "/v1.0", Token: tok.AccessToken, Mailbox: mailbox,
			Tenant: perfTenant, PageSize: 100, Receiver: rcv.srv.URL + "/hooks", Secret: rcv.secret, Delete: sc.delete})
		// The loop ends by itself: what it did not deliver by then is lost.
		go func() {
			waitFor(ctx, bare.out.wrote, bare.finished)
			kick(signal)()
		}()
		if err := waitFor(ctx, signal, func() bool { return done() || bare.finished() }); err != nil {
			b.Fatalf("%s bare loop: %v\n%s", sc.name, err, bare.out)
		}
		run.wall = time.Since(start)
		// The goroutine above is the only reader of bare.out.wrote (a
		// second reader could take its one wake-up and leave the other
		// waiting for good); it kicks signal once the child is finished.
		if err := waitFor(ctx, signal, bare.finished); err != nil {
			b.Fatalf("%s bare loop did not finish after its work: %v\n%s", sc.name, err, bare.out)
		}
		pid := bare.cmd.Process.Pid
		run.procWritten, run.peakRSS = procIO(pid, "write_bytes"), procHWM(pid)
		bare.stdin.Close()
		select {
		case <-bare.exited:
		case <-ctx.Done():
			b.Fatalf("%s bare loop did not exit\n%s", sc.name, bare.out)
		}
		if !bare.cmd.ProcessState.Success() {
			b.Fatalf("%s bare loop: %v\n%s", sc.name, bare.cmd.ProcessState, bare.out)
		}
		run.cost = statsOf(bare.cmd.ProcessState)
	}
	c := ps.srv.Sim.Counters()
	run.requests, run.throttled = c.Requests, c.Throttled
	_, run.dups, run.lost, run.delivered = rcv.tally()
	return run
}

// BenchmarkNewMailLatency measures new mail -> webhook with the daemon
// idle: after the first sync, it injects mails at random moments over a
// span and reports p50, p95 and max of the time from injection to the
// receiver's first accepted delivery, and the Graph requests the idle
// daemon spent per hour. The wait between injections is pacing, the point
// of the scenario.
func BenchmarkNewMailLatency(b *testing.B) {
	n := envInt(b, "M365BRIDGE_BENCH_LATENCY_MAILS", 50)
	span := 3 * time.Minute
	if v := os.Getenv("M365BRIDGE_BENCH_LATENCY_SPAN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("M365BRIDGE_BENCH_LATENCY_SPAN=%q: want a duration such as 3m", v)
		}
		span = d
	}
	poll := os.Getenv("M365BRIDGE_BENCH_POLL")
	kind := cmpOr(os.Getenv("M365BRIDGE_BENCH_LATENCY_MAILBOX"), "user")
	if kind != "user" && kind != "shared" {
		b.Fatalf("M365BRIDGE_BENCH_LATENCY_MAILBOX=%q: want user or shared", kind)
	}
	bin := buildBridge(b)
	for range b.N {
		runLatency(b, bin, n, span, poll, kind)
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runLatency(b *testing.B, bin string, n int, span time.Duration, poll, kind string) {
	const shared = "latency@contoso.com"
	ps := newPerfSim(b, []string{shared}, 0, 1)
	mailbox, cfgMailbox := perfAgent, ""
	if kind == "shared" {
		mailbox, cfgMailbox = shared, shared
	}
	// A first mail, so that the daemon's first sync has something to show
	// for itself: once it arrived, the daemon is idle.
	if _, err := ps.srv.Sim.InjectMessage(mailbox, latencyMessage("warm-up")); err != nil {
		b.Fatal(err)
	}
	want := map[string]bool{}
	for _, mi := range ps.srv.Sim.Messages(mailbox, "Inbox") {
		want[webhooks.EventID(perfTenant, mailbox, mi.ImmutableID)] = true
	}
	rcv := newPerfReceiver(b)
	signal := make(chan struct{}, 1)
	rcv.reset(want, kick(signal))
	ctx, cancel := context.WithTimeout(context.Background(), span+30*time.Minute) // a safety net
	defer cancel()
	bc := startBridge(b, bin, ps, rcv, b.TempDir(), perfBridgeConfig{Mailbox: cfgMailbox, AfterImport: "keep", PollInterval: poll})
	defer bc.stop(b)
	if err := waitFor(ctx, signal, func() bool { d, _, _, _ := rcv.tally(); return d == len(want) }); err != nil {
		b.Fatalf("first sync: %v\n%s", err, bc.out)
	}
	b.Logf("first sync done: %d mails delivered; the daemon is idle", len(want))

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = time.Duration(rng.Int64N(int64(span)))
	}
	slices.Sort(at)
	ps.srv.Sim.ResetCounters()
	start := time.Now()
	injected := map[string]time.Time{}
	for i, d := range at {
		time.Sleep(time.Until(start.Add(d))) // pacing: the mails arrive at random moments
		mi, err := ps.srv.Sim.InjectMessage(mailbox, latencyMessage(fmt.Sprintf("latency %d", i)))
		if err != nil {
			b.Fatal(err)
		}
		id := webhooks.EventID(perfTenant, mailbox, mi.ImmutableID)
		injected[id] = time.Now()
		rcv.expect(id)
	}
	// want is the receiver's map, which expect extended: it holds all.
	if err := waitFor(ctx, signal, func() bool { d, _, _, _ := rcv.tally(); return d == len(want) }); err != nil {
		b.Fatalf("latency mails: %v\n%s", err, bc.out)
	}
	elapsed := time.Since(start)
	c := ps.srv.Sim.Counters()
	var lat []float64
	for id, t := range injected {
		got, _ := rcv.firstArrival(id)
		lat = append(lat, got.Sub(t).Seconds())
	}
	slices.Sort(lat)
	_, dups, lost, _ := rcv.tally()
	if lost != 0 || dups != 0 {
		b.Errorf("lost %d, duplicates %d", lost, dups)
	}
	perHour := float64(c.Requests) / elapsed.Hours()
	b.Logf("%s mailbox, poll %s: %d mails over %s: p50 %.1fs p95 %.1fs max %.1fs; %d Graph requests in %s (%.0f/h)",
		kind, cmpOr(poll, "default"), n, span, percentile(lat, 50), percentile(lat, 95), lat[len(lat)-1], c.Requests,
		elapsed.Round(time.Second), perHour)
	b.ReportMetric(percentile(lat, 50), "p50-s")
	b.ReportMetric(percentile(lat, 95), "p95-s")
	b.ReportMetric(lat[len(lat)-1], "max-s")
	b.ReportMetric(perHour, "graph-req/h")
}

// expect adds an event id the run must deliver.
func (r *perfReceiver) expect(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want[id] = true
}

func kindName(bridge bool) string {
	if bridge {
		return "bridge"
	}
	return "bare"
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// median of vs; the mean of the middle two for an even count.
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	switch n := len(s); {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencyMessage is a small new mail.
func latencyMessage(subject string) m365sim.NewMessage {
	return m365sim.NewMessage{Folder: "Inbox", Subject: subject, From: "customer@example.com", Body: "Hello"}
}
