package mailsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// The sync tests run the real pieces over real HTTP on loopback: the
// simulator (Graph), the Graph client, a SQLite file, and a receiver that
// verifies Standard Webhooks signatures. Events go through the store's
// outbox; the end-to-end test delivers them with the real dispatcher, the
// others with a synchronous pass (deliver) over the same queue, so a test
// decides exactly when acknowledgements happen.

const (
	simAgent   = "agent@contoso.com"
	simSupport = "support@contoso.com"
)

// recorder is the helpdesk: it verifies and records every event.
type recorder struct {
	mu     sync.Mutex
	posts  int
	byID   map[string]int // deliveries per event id
	events map[string]webhooks.MailData
	types  map[string]string
	bodies map[string][]byte // first body per id, to compare replays
	down   atomic.Bool       // answer 503 to everything
}

func (rc *recorder) count(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.byID[id]
}

func (rc *recorder) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.byID)
}

type harness struct {
	t      testing.TB
	sim    *m365sim.Server
	client *graph.Client
	db     *store.DB
	queue  *store.Outbox // db's outbox with the ledger hooks, as the daemon wires it
	dbPath string
	tenant string
	secret string
	rec    *recorder
	recv   *httptest.Server
	token  string
}

func newHarness(t testing.TB, opts m365sim.Options) *harness {
	t.Helper()
	srv, err := m365sim.StartServer(opts, m365sim.DefaultSeed())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts, err := srv.Sim.IssueTokens(simAgent, m365sim.DefaultClientID, "offline_access Mail.ReadWrite Mail.ReadWrite.Shared")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, sim: srv, tenant: srv.Seeded.TenantID, token: ts.AccessToken,
		client: &graph.Client{BaseURL: srv.URL, Sleep: fastSleep, Logger: slog.New(slog.DiscardHandler)}}
	h.dbPath = filepath.Join(t.TempDir(), store.FileName)
	h.openDB()
	h.secret, _ = webhooks.GenerateSecret()
	h.rec = &recorder{byID: map[string]int{}, events: map[string]webhooks.MailData{}, types: map[string]string{}, bodies: map[string][]byte{}}
	rcv := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{h.secret}}}
	rcv.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		if h.rec.down.Load() {
			return &webhooks.StatusError{Code: http.StatusServiceUnavailable, Err: fmt.Errorf("down")}
		}
		var md webhooks.MailData
		if err := json.Unmarshal(d.Event.Data, &md); err != nil {
			return &webhooks.StatusError{Code: 400, Err: err}
		}
		if md.ID != d.ID {
			return &webhooks.StatusError{Code: 400, Err: fmt.Errorf("data.id %q != webhook-id %q", md.ID, d.ID)}
		}
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		h.rec.posts++
		h.rec.byID[d.ID]++
		h.rec.events[d.ID] = md
		h.rec.types[d.ID] = d.Event.Type
		if _, ok := h.rec.bodies[d.ID]; !ok {
			h.rec.bodies[d.ID] = d.Body
		}
		return nil
	}
	h.recv = httptest.NewServer(rcv)
	t.Cleanup(h.recv.Close)
	return h
}

// fastSleep keeps Graph retries (429, 503 with Retry-After) short in tests
// while still yielding.
func fastSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(min(d, 5*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *harness) openDB() {
	db, err := store.Open(context.Background(), h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db, h.queue = db, db.OutboxWith(LedgerHooks(db, nil))
	h.t.Cleanup(func() { db.Close() })
}

// deliver is one synchronous dispatcher pass over the real outbox: it posts
// every due row, signed, and acknowledges 2xx answers through MarkDelivered
// (whose hook moves the ledger row to delivered in the same transaction).
// It returns how many were acknowledged.
func (h *harness) deliver(ctx context.Context) int {
	h.t.Helper()
	return h.deliverN(ctx, 100000)
}

// deliverN is deliver of at most n due rows, oldest first.
func (h *harness) deliverN(ctx context.Context, n int) int {
	h.t.Helper()
	return h.deliverEndpoint(ctx, "helpdesk", n)
}

// deliverEndpoint posts at most n due rows of endpoint to the receiver,
// oldest first, and acknowledges the 2xx answers.
func (h *harness) deliverEndpoint(ctx context.Context, endpoint string, n int) int {
	h.t.Helper()
	q := h.queue
	rows, err := q.Due(ctx, endpoint, time.Now().Add(time.Hour), n, false)
	if err != nil {
		h.t.Fatal(err)
	}
	acked := 0
	for _, x := range rows {
		now := time.Now()
		sig, err := webhooks.Sign(h.secret, x.EventID, now, x.Body)
		if err != nil {
			h.t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.recv.URL, bytes.NewReader(x.Body))
		req.Header.Set(webhooks.HeaderID, x.EventID)
		req.Header.Set(webhooks.HeaderTimestamp, fmt.Sprint(now.Unix()))
		req.Header.Set(webhooks.HeaderSignature, sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			h.t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			continue
		}
		if err := q.MarkDelivered(ctx, x.Seq, res.StatusCode, now); err != nil {
			h.t.Fatal(err)
		}
		acked++
	}
	return acked
}

// dispatcher runs the real webhook dispatcher against the receiver until
// the test ends; wake it with the returned function.
func (h *harness) dispatcher() *deliver.Dispatcher {
	h.t.Helper()
	d, err := deliver.New(h.queue, []deliver.Endpoint{{Name: "helpdesk", URL: h.recv.URL, Secrets: []string{h.secret},
		Schedule: []time.Duration{10 * time.Millisecond}}}, deliver.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
	return d
}

// waitDelivered polls the outbox until n rows are delivered, or fails.
func (h *harness) waitDelivered(n int) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := h.db.Outbox().Counts(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if got := c["helpdesk"][deliver.StateDelivered]; got >= n {
			return
		} else if time.Now().After(deadline) {
			h.t.Fatalf("outbox delivered %d rows, want %d (all: %v)", got, n, c)
		}
		time.Sleep(5 * time.Millisecond) // pacing: polling the outbox with a deadline, not waiting for a guess
	}
}

func (h *harness) outboxLen() int {
	rows, err := h.db.Outbox().List(context.Background(), deliver.Filter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(rows)
}

// channel returns a channel config with the defaults a loaded bridge.yaml
// would have.
func testChannel(name, mailboxType, address, folder string) config.Channel {
	c := config.Config{Webhooks: []config.Webhook{{Name: "helpdesk"}}, Channels: []config.Channel{{
		Name: name, Mailbox: config.Mailbox{Type: mailboxType, Address: address}, Folder: folder,
	}}}
	c.SetDefaults()
	return c.Channels[0]
}

func (h *harness) runner(ch config.Channel) *Runner { return NewRunner(h.runnerConfig(ch)) }

// runnerConfig is the configuration of h.runner, for a test that changes
// a part (its store, its Graph) before NewRunner binds the rest to it.
func (h *harness) runnerConfig(ch config.Channel) RunnerConfig {
	mb := graph.Mailbox{Shared: ch.Mailbox.Type == config.MailboxShared, Address: ch.Mailbox.Address}
	tok := h.token
	return RunnerConfig{
		Channel: ch, Tenant: h.tenant, DB: h.db,
		Graph: h.client.Mailbox(mb, graph.TokenFunc(func(context.Context) (string, error) { return tok, nil })),
		Auth:  func(context.Context) (bool, error) { return true, nil },
	}
}

func (h *harness) inject(mailbox string, nm m365sim.NewMessage) m365sim.MessageInfo {
	h.t.Helper()
	mi, err := h.sim.Sim.InjectMessage(mailbox, nm)
	if err != nil {
		h.t.Fatal(err)
	}
	return mi
}

func (h *harness) syncOnce(r *Runner) Stats {
	h.t.Helper()
	st, err := r.SyncOnce(context.Background())
	if err != nil {
		h.t.Fatalf("SyncOnce(%s): %v", r.ch.Name, err)
	}
	return st
}

func (h *harness) ledger(channel, immutableID string) store.LedgerEntry {
	h.t.Helper()
	e, err := h.db.LedgerEntryByID(context.Background(), channel, immutableID)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *harness) eventID(mailbox, immutableID string) string {
	return webhooks.EventID(h.tenant, mailbox, immutableID)
}

func deliverFilterAll() deliver.Filter { return deliver.Filter{WithBody: true} }

// decodeEvent decodes an outbox body into its envelope and data.
func decodeEvent(t testing.TB, body []byte, data any) webhooks.Event {
	t.Helper()
	var ev webhooks.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	if err := json.Unmarshal(ev.Data, data); err != nil {
		t.Fatalf("decode event data: %v", err)
	}
	return ev
}
