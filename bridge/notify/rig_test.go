package notify

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

const (
	agent    = "agent@contoso.com"   // a user mailbox in the sim's default seed
	support  = "support@contoso.com" // a shared one, agent has Full Access
	simScope = "offline_access openid profile Mail.ReadWrite Mail.Send Mail.ReadWrite.Shared Mail.Send.Shared"
	// waitFor is the safety net for signals; normal durations are
	// milliseconds.
	waitFor = 10 * time.Second
)

// clock is the one clock of a test: the sim and the manager both read it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// simTokens issues sim access tokens, again after Invalidate (a 401 once
// the clock passed their 75 minutes), as the Entra refresh path would.
type simTokens struct {
	sim *m365sim.Sim
	upn string
	mu  sync.Mutex
	tok string
}

func (s *simTokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == "" {
		ts, err := s.sim.IssueTokens(s.upn, m365sim.DefaultClientID, simScope)
		if err != nil {
			return "", err
		}
		s.tok = ts.AccessToken
	}
	return s.tok, nil
}

func (s *simTokens) Invalidate() {
	s.mu.Lock()
	s.tok = ""
	s.mu.Unlock()
}

type wake struct {
	channel string
	why     Reason
}

// rig is the simulator and a Manager whose Handler listens on loopback
// HTTP, exactly as the daemon's public listener would serve it.
type rig struct {
	clk     *clock
	sim     *m365sim.Server
	mgr     *Manager
	gc      *graph.Client
	public  *httptest.Server
	wakes   chan wake
	events  chan [2]string
	attempt chan m365sim.NotifyAttempt
	// serving is the manager the public listener hands requests to (a
	// restarted daemon replaces it).
	serving atomic.Pointer[Manager]
}

func newRig(t testing.TB, mutate func(*Options)) *rig {
	t.Helper()
	r := &rig{
		clk:     &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
		wakes:   make(chan wake, 64),
		events:  make(chan [2]string, 256),
		attempt: make(chan m365sim.NotifyAttempt, 256),
	}
	sim, err := m365sim.StartServer(m365sim.Options{
		Now: r.clk.Now, AllowHTTPLoopback: true, NoThrottle: "notify tests count no requests",
		OnNotify: func(a m365sim.NotifyAttempt) { r.attempt <- a },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	r.sim = sim
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, req *http.Request) { r.serving.Load().Handler().ServeHTTP(w, req) })
	r.public = httptest.NewServer(mux)
	t.Cleanup(r.public.Close)
	r.mgr = r.newManager(t, mutate)
	r.gc = &graph.Client{BaseURL: sim.GraphURL(), Logger: slog.New(slog.DiscardHandler), Now: r.clk.Now,
		Sleep: func(context.Context, time.Duration) error { return nil }}
	return r
}

// newManager makes a Manager on the rig's clock and public listener and
// makes it the one serving (as a daemon start does).
func (r *rig) newManager(t testing.TB, mutate func(*Options)) *Manager {
	t.Helper()
	opts := Options{
		PublicURL: r.public.URL,
		Wake:      func(ch string, why Reason) { r.wakes <- wake{ch, why} },
		Now:       r.clk.Now,
		// Run's timer never fires by itself: tests move the clock and
		// kick, so nothing depends on the wall clock.
		After:   func(time.Duration) <-chan time.Time { return nil },
		Logger:  slog.New(slog.DiscardHandler),
		OnEvent: func(ch, ev string) { r.events <- [2]string{ch, ev} },
	}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.serving.Store(m)
	return m
}

func (r *rig) mailbox(addr string, shared bool) *graph.MailboxClient {
	return r.gc.Mailbox(graph.Mailbox{Address: addr, Shared: shared}, &simTokens{sim: r.sim.Sim, upn: agent})
}

// addAgentInbox registers channel "agent" on the agent's Inbox.
func (r *rig) addAgentInbox(t testing.TB) *graph.MailboxClient {
	t.Helper()
	mc := r.mailbox(agent, false)
	f, err := mc.ResolveFolder(context.Background(), "Inbox")
	if err != nil {
		t.Fatal(err)
	}
	r.mgr.Add(Channel{Name: "agent", Graph: mc, FolderID: f.ID})
	return mc
}

func (r *rig) nextWake(t testing.TB) wake {
	t.Helper()
	select {
	case w := <-r.wakes:
		return w
	case <-time.After(waitFor):
		t.Fatal("no wake-up")
		return wake{}
	}
}

// noWake checks that no wake-up is queued. Callers first wait for the
// signal that everything that could have woken has happened.
func (r *rig) noWake(t testing.TB) {
	t.Helper()
	select {
	case w := <-r.wakes:
		t.Fatalf("unexpected wake-up %+v", w)
	default:
	}
}

// waitEvent waits for the manager to report event ev for channel ch,
// skipping others.
func (r *rig) waitEvent(t testing.TB, ch, ev string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-r.events:
			if e == [2]string{ch, ev} {
				return
			}
		case <-deadline:
			t.Fatalf("no event %s for %q", ev, ch)
		}
	}
}

// waitAttempt waits for the sim to report a request to the handler of kind
// (validation, change, lifecycle) and returns it.
func (r *rig) waitAttempt(t testing.TB, kind string) m365sim.NotifyAttempt {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case a := <-r.attempt:
			if a.Kind == kind {
				return a
			}
		case <-deadline:
			t.Fatalf("no %s request from the sim", kind)
			return m365sim.NotifyAttempt{}
		}
	}
}

// inject delivers a mail into the agent's Inbox.
func (r *rig) inject(t testing.TB, subject string) m365sim.MessageInfo {
	t.Helper()
	mi, err := r.sim.Sim.InjectMessage(agent, m365sim.NewMessage{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

// subscribe runs one tick and waits for the subscription and the catch-up
// wake-up that follows it.
func (r *rig) subscribe(t testing.TB) m365sim.SubscriptionInfo {
	t.Helper()
	r.mgr.Tick(context.Background())
	r.waitEvent(t, "agent", "created")
	if w := r.nextWake(t); w != (wake{"agent", ReasonSubscribed}) {
		t.Fatalf("wake %+v, want the catch-up after subscribing", w)
	}
	subs := r.sim.Sim.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("subscriptions %+v", subs)
	}
	return subs[0]
}
