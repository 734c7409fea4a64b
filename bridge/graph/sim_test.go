package graph

// End-to-end tests against the simulator over loopback HTTP: the real
// request shapes, paging links, error envelopes and throttling.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

const (
	agent    = "agent@contoso.com"
	support  = "support@contoso.com"
	simScope = "offline_access openid profile Mail.ReadWrite Mail.Send Mail.ReadWrite.Shared Mail.Send.Shared"
)

// startSim runs a sim with the default seed, changed by mutate, and returns
// it with a Client pointed at it (recording sleeps, so retries cost no time).
func startSim(t *testing.T, opts m365sim.Options, mutate func(*m365sim.Seed)) (*m365sim.Server, *Client, *sleepRecorder) {
	t.Helper()
	seed := m365sim.DefaultSeed()
	if mutate != nil {
		mutate(seed)
	}
	srv, err := m365sim.StartServer(opts, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rec := &sleepRecorder{}
	c := &Client{BaseURL: srv.GraphURL(), Sleep: rec.sleep, Logger: slog.New(slog.DiscardHandler)}
	return srv, c, rec
}

// simTokens is a TokenSource backed by the sim's direct token issuing; it
// re-issues after Invalidate, as the Entra refresh path would.
type simTokens struct {
	t   *testing.T
	sim *m365sim.Sim
	upn string

	mu          sync.Mutex
	tok         string
	invalidated int
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
	defer s.mu.Unlock()
	s.tok = ""
	s.invalidated++
}

func tokensFor(t *testing.T, srv *m365sim.Server, upn string) *simTokens {
	return &simTokens{t: t, sim: srv.Sim, upn: upn}
}

func TestSimDeltaPagingAndIncremental(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.Users[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 1000, Folder: "Inbox/Support", Size: 512}}
	})
	mc := c.Mailbox(Mailbox{Address: agent}, tokensFor(t, srv, agent))
	ctx := context.Background()
	f, err := mc.ResolveFolder(ctx, "Inbox/Support")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := mc.CountMessages(ctx, f.ID); err != nil || n != 1000 {
		t.Fatalf("CountMessages = %d, %v; want 1000", n, err)
	}

	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, err := mc.Delta(ctx, f.ID, cursor, DeltaOptions{PageSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Messages) > 50 || len(page.Undecodable) > 0 {
			t.Fatalf("page %d: %d messages, %d undecodable", pages, len(page.Messages), len(page.Undecodable))
		}
		for _, m := range page.Messages {
			if seen[m.ID] {
				t.Errorf("message %s delivered twice", m.ID)
			}
			seen[m.ID] = true
			if _, ok := m.Header("Message-ID"); !ok || m.InternetMessageID == "" || m.ReceivedDateTime.IsZero() || m.Body == nil {
				t.Fatalf("message %s lacks selected fields: %+v", m.ID, m)
			}
		}
		if page.DeltaLink != "" {
			cursor = page.DeltaLink
			break
		}
		cursor = page.NextLink
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct messages, want 1000", len(seen))
	}
	if pages < 20 || pages > 21 {
		t.Errorf("%d pages, want 20 (or 21 with an empty last page)", pages)
	}

	// Incremental round: two arrivals, one moved out of the folder.
	for i := range 2 {
		if _, err := srv.Sim.InjectMessage(agent, m365sim.NewMessage{Folder: "Inbox/Support", Subject: fmt.Sprintf("new %d", i), From: "c@example.com", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	moved := srv.Sim.Messages(agent, "Inbox/Support")[5]
	if _, err := srv.Sim.MoveMessage(agent, moved.ID, "Inbox"); err != nil {
		t.Fatal(err)
	}
	var added, removed []string
	for {
		page, err := mc.Delta(ctx, f.ID, cursor, DeltaOptions{PageSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if m.Removed != nil {
				removed = append(removed, m.ID)
			} else {
				added = append(added, m.ID)
			}
		}
		cursor = page.Cursor()
		if page.DeltaLink != "" {
			break
		}
	}
	if len(added) != 2 || len(removed) != 1 || removed[0] != moved.ImmutableID {
		t.Errorf("incremental round: added %v removed %v, want 2 added and %s removed", added, removed, moved.ImmutableID)
	}

	t.Run("expired cursor", func(t *testing.T) {
		if err := srv.Sim.ExpireDeltaTokens(agent); err != nil {
			t.Fatal(err)
		}
		_, err := mc.Delta(ctx, f.ID, cursor, DeltaOptions{PageSize: 50})
		if !errors.Is(err, ErrSyncStateNotFound) {
			t.Errorf("err = %v, want ErrSyncStateNotFound", err)
		}
		var ge *Error
		if errors.As(err, &ge) && ge.Location == "" {
			t.Errorf("410 without Location: %+v", ge)
		}
	})
	t.Run("504 shrinks the page", func(t *testing.T) {
		if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: "**/messages/delta", MaxPageSize: 25}); err != nil {
			t.Fatal(err)
		}
		defer srv.Sim.ClearFaults()
		page, err := mc.Delta(ctx, f.ID, "", DeltaOptions{PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if page.PageSize != 25 || len(page.Messages) != 25 {
			t.Errorf("page size %d with %d messages, want 25", page.PageSize, len(page.Messages))
		}
	})
}

func TestSimBatchPostActions(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 45, Folder: "Inbox/Support", Size: 256}}
	})
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()
	var ids []string
	for _, m := range srv.Sim.Messages(support, "Inbox/Support") {
		ids = append(ids, m.ImmutableID)
	}
	if len(ids) != 45 {
		t.Fatalf("%d messages seeded", len(ids))
	}

	srv.Sim.ResetCounters()
	for id, err := range mc.MarkRead(ctx, ids) {
		if err != nil {
			t.Errorf("mark read %s: %v", id, err)
		}
	}
	cnt := srv.Sim.Counters()
	if cnt.Batches != 3 || cnt.BatchInner != 45 || cnt.Requests != 3 {
		t.Errorf("counters %+v, want 3 batch calls carrying 45 requests", cnt)
	}
	for _, m := range srv.Sim.Messages(support, "Inbox/Support") {
		if !m.IsRead {
			t.Errorf("%s not read", m.ImmutableID)
		}
	}

	// One message vanishes before the move: reported as done, not an error.
	if err := srv.Sim.DeleteMessage(support, ids[7], true); err != nil {
		t.Fatal(err)
	}
	for id, err := range mc.Move(ctx, ids, "deleteditems") {
		if err != nil {
			t.Errorf("move %s: %v", id, err)
		}
	}
	if n := len(srv.Sim.Messages(support, "Inbox/Support")); n != 0 {
		t.Errorf("%d messages left in Inbox/Support", n)
	}
	if n := len(srv.Sim.Messages(support, "Deleted Items")); n != 44 {
		t.Errorf("%d messages in Deleted Items, want 44", n)
	}
	// Immutable ids survive the move: the same ids still address them.
	res := mc.MarkRead(ctx, ids[:3])
	for id, err := range res {
		if err != nil {
			t.Errorf("mark read after move %s: %v", id, err)
		}
	}
}

func TestSimMailboxAccessErrors(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes = append(s.SharedMailboxes,
			m365sim.SeedSharedMailbox{Address: "billing@contoso.com", DisplayName: "Billing"},
			m365sim.SeedSharedMailbox{Address: "old@contoso.com", DisplayName: "Old", FullAccess: []string{agent}, Disabled: true})
	})
	tokens := tokensFor(t, srv, agent)
	tests := []struct {
		address string
		want    error
	}{
		{"billing@contoso.com", ErrAccessDenied},
		{"ghost@contoso.com", ErrMailboxNotFound},
		{"old@contoso.com", ErrMailboxNotEnabled},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			mc := c.Mailbox(Mailbox{Shared: true, Address: tt.address}, tokens)
			_, err := mc.ResolveFolder(context.Background(), "Inbox/Support")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if reason, fix := Explain(err); reason == "" || fix == "" {
				t.Errorf("Explain = %q, %q", reason, fix)
			}
		})
	}
}

func TestSimThrottlingNeverTriggered(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 45, Size: 256}}
	})
	// Every request takes a little while, so requests surely overlap.
	if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: "**", Latency: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range srv.Sim.Messages(support, "Inbox") {
		ids = append(ids, m.ImmutableID)
	}
	tokens := tokensFor(t, srv, agent)
	ctx := context.Background()

	run := func(c *Client) (Stats, []error) {
		mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokens)
		var wg sync.WaitGroup
		errs := make(chan error, 101)
		for i := range 100 {
			wg.Go(func() {
				if _, err := mc.GetMessage(ctx, ids[i%len(ids)], nil, false); err != nil {
					errs <- err
				}
			})
		}
		// A batch of 45 runs alongside: its items count against the limit too.
		wg.Go(func() {
			for id, err := range mc.MarkRead(ctx, ids) {
				if err != nil {
					errs <- fmt.Errorf("mark read %s: %w", id, err)
				}
			}
		})
		wg.Wait()
		close(errs)
		var out []error
		for err := range errs {
			out = append(out, err)
		}
		return mc.Stats(), out
	}

	t.Run("4 in flight", func(t *testing.T) {
		srv.Sim.ResetCounters()
		st, errs := run(c)
		for _, err := range errs {
			t.Error(err)
		}
		if got := srv.Sim.Counters().Throttled; got != 0 || st.Throttled != 0 {
			t.Errorf("sim throttled %d, client saw %d 429s; want none", got, st.Throttled)
		}
	})
	t.Run("control: 8 in flight is throttled", func(t *testing.T) {
		srv.Sim.ResetCounters()
		loose := &Client{BaseURL: c.BaseURL, Sleep: (&sleepRecorder{}).sleep, MaxInFlight: 8,
			Logger: slog.New(slog.DiscardHandler)}
		st, _ := run(loose) // some calls may run out of retries here
		if st.Throttled == 0 || srv.Sim.Counters().Throttled == 0 {
			t.Errorf("no 429 with 8 in flight (stats %+v): the sim's limit is not exercised", st)
		}
	})
}

func TestSimFaultsAreRetried(t *testing.T) {
	srv, c, rec := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 30, Size: 256}}
	})
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()
	f, err := mc.ResolveFolder(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	delta := "**/messages/delta"

	t.Run("503 with Retry-After", func(t *testing.T) {
		defer srv.Sim.ClearFaults()
		if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: delta, Status: 503, RetryAfter: 3, Count: 2}); err != nil {
			t.Fatal(err)
		}
		before := len(rec.get())
		if _, err := mc.Delta(ctx, f.ID, "", DeltaOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := rec.get()[before:]; fmt.Sprint(got) != "[3s 3s]" {
			t.Errorf("waits = %v, want [3s 3s]", got)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		defer srv.Sim.ClearFaults()
		if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: delta, Drop: true, Count: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.Delta(ctx, f.ID, "", DeltaOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("429 storm", func(t *testing.T) {
		defer srv.Sim.ClearFaults()
		if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: "**", Status: 429, RetryAfter: 1, Rate: 0.4}); err != nil {
			t.Fatal(err)
		}
		storm := &Client{BaseURL: c.BaseURL, Sleep: rec.sleep, MaxRetries: 30, Logger: c.Logger}
		sc := storm.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
		seen := 0
		for cursor := ""; ; {
			page, err := sc.Delta(ctx, f.ID, cursor, DeltaOptions{PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			seen += len(page.Messages)
			if cursor = page.NextLink; cursor == "" {
				break
			}
		}
		if seen != 30 || sc.Stats().Throttled == 0 {
			t.Errorf("saw %d messages with %d 429s; want all 30 through a storm", seen, sc.Stats().Throttled)
		}
	})
	t.Run("persistent 500 gives up", func(t *testing.T) {
		defer srv.Sim.ClearFaults()
		if _, err := srv.Sim.AddFault(m365sim.FaultRule{Path: delta, Status: 500}); err != nil {
			t.Fatal(err)
		}
		srv.Sim.ResetCounters()
		_, err := mc.Delta(ctx, f.ID, "", DeltaOptions{})
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != 500 || !ge.Temporary() {
			t.Fatalf("err = %v, want a temporary 500", err)
		}
		if got := srv.Sim.Counters().Requests; got != DefaultMaxRetries+1 {
			t.Errorf("%d requests, want %d", got, DefaultMaxRetries+1)
		}
	})
}
