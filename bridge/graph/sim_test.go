package graph

// End-to-end tests against the simulator over loopback HTTP: the real
// request shapes, paging links, error envelopes and throttling.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

func TestSimResolveFolder(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	for _, p := range []string{"Inbox/Support/Tier2", "Inbox/Sales", "Projects/2026", "Inbox/Dup", "Inbox/Dup "} {
		if _, err := srv.Sim.CreateFolder(support, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 120 {
		if _, err := srv.Sim.CreateFolder(support, fmt.Sprintf("Inbox/Many/Child-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()

	tests := []struct {
		in, wantPath, simPath string
	}{
		{"", "Inbox", "Inbox"},
		{"Inbox/Support", "Inbox/Support", "Inbox/Support"},
		{"inbox/SUPPORT/tier2", "Inbox/Support/Tier2", "Inbox/Support/Tier2"},
		{"/Inbox/ Sales /", "Inbox/Sales", "Inbox/Sales"},
		{"Deleted Items", "Deleted Items", "Deleted Items"},
		{"deleteditems", "Deleted Items", "Deleted Items"},
		{"projects/2026", "Projects/2026", "Projects/2026"},
		{"Inbox/Many/child-115", "Inbox/Many/Child-115", "Inbox/Many/Child-115"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := mc.ResolveFolder(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			wantID, err := srv.Sim.FolderID(support, tt.simPath)
			if err != nil {
				t.Fatal(err)
			}
			if f.ID != wantID || f.Path != tt.wantPath {
				t.Errorf("got %s %q, want %s %q", f.ID, f.Path, wantID, tt.wantPath)
			}
			again, err := mc.GetFolder(ctx, f.ID)
			if err != nil || again.ID != f.ID {
				t.Errorf("GetFolder(%s) = %+v, %v", f.ID, again, err)
			}
		})
	}

	t.Run("ambiguous", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/dup")
		var fe *FolderError
		if !errors.Is(err, ErrFolderAmbiguous) || !errors.As(err, &fe) || len(fe.Matches) != 2 {
			t.Fatalf("err = %v, want an ambiguity naming two folders", err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"Dup"`) || !strings.Contains(msg, `"Dup "`) {
			t.Errorf("message %q does not name both folders", msg)
		}
	})
	t.Run("missing lists what exists", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/Suport")
		var fe *FolderError
		if !errors.Is(err, ErrFolderNotFound) || !errors.As(err, &fe) {
			t.Fatalf("err = %v, want a FolderError not found", err)
		}
		if fe.Segment != "Suport" || fe.Parent != "Inbox" {
			t.Errorf("segment %q parent %q", fe.Segment, fe.Parent)
		}
		for _, name := range []string{"Support", "Sales", "Many"} {
			if !slices.Contains(fe.Existing, name) {
				t.Errorf("Existing %v lacks %q", fe.Existing, name)
			}
		}
		if !strings.Contains(err.Error(), `"Support"`) {
			t.Errorf("message %q does not list the existing names", err)
		}
	})
	t.Run("missing top level", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Nowhere/Support")
		var fe *FolderError
		if !errors.As(err, &fe) || fe.Parent != "" || !slices.Contains(fe.Existing, "Projects") {
			t.Errorf("err = %v, want the top level listed", err)
		}
	})
	t.Run("leaf has no children", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/Support/Tier2/Deeper")
		if !errors.Is(err, ErrFolderNotFound) || !strings.Contains(err.Error(), "no folders there") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("paging over 100 children", func(t *testing.T) {
		children, err := mc.ListChildFolders(ctx, mustFolderID(t, srv, support, "Inbox/Many"))
		if err != nil {
			t.Fatal(err)
		}
		if len(children) != 120 {
			t.Errorf("%d children, want 120", len(children))
		}
	})
	t.Run("folder gone", func(t *testing.T) {
		_, err := mc.GetFolder(ctx, "AAMkNoSuchFolder")
		if !errors.Is(err, ErrFolderNotFound) {
			t.Errorf("err = %v, want ErrFolderNotFound", err)
		}
	})
}

func mustFolderID(t *testing.T, srv *m365sim.Server, mailbox, path string) string {
	t.Helper()
	id, err := srv.Sim.FolderID(mailbox, path)
	if err != nil {
		t.Fatal(err)
	}
	return id
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
	srv, c, _ := startSim(t, m365sim.Options{Throttle: true}, func(s *m365sim.Seed) {
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

	run := func(t *testing.T, c *Client) Stats {
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
		for err := range errs {
			t.Error(err)
		}
		return mc.Stats()
	}

	t.Run("4 in flight", func(t *testing.T) {
		srv.Sim.ResetCounters()
		st := run(t, c)
		if got := srv.Sim.Counters().Throttled; got != 0 || st.Throttled != 0 {
			t.Errorf("sim throttled %d, client saw %d 429s; want none", got, st.Throttled)
		}
	})
	t.Run("control: 8 in flight is throttled", func(t *testing.T) {
		srv.Sim.ResetCounters()
		loose := &Client{BaseURL: c.BaseURL, Sleep: (&sleepRecorder{}).sleep, MaxInFlight: 8, MaxRetries: 50,
			Logger: slog.New(slog.DiscardHandler)}
		st := run(t, loose)
		if st.Throttled == 0 || srv.Sim.Counters().Throttled == 0 {
			t.Errorf("no 429 with 8 in flight (stats %+v): the sim's limit is not exercised", st)
		}
	})
}

func TestSimMessagesAttachmentsMIME(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	base := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	var infos []m365sim.MessageInfo
	for i := range 3 {
		nm := m365sim.NewMessage{Folder: "Inbox/Support", Subject: fmt.Sprintf("m%d", i), From: "Cust <c@example.com>",
			Body: "<p>hello</p>", HTML: true, Received: base.Add(time.Duration(i) * time.Hour)}
		if i == 1 {
			nm.Attachments = []m365sim.NewAttachment{
				{Name: "a.txt", ContentType: "text/plain", Content: "attachment body"},
				{Name: "logo.png", ContentType: "image/png", Size: 3000, ContentID: "logo@x", Inline: true},
			}
		}
		info, err := srv.Sim.InjectMessage(support, nm)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()
	f, err := mc.ResolveFolder(ctx, "Inbox/Support")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("list oldest newest and count", func(t *testing.T) {
		oldest, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, OrderBy: "receivedDateTime asc", Select: []string{"id", "receivedDateTime"}})
		if err != nil {
			t.Fatal(err)
		}
		newest, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, OrderBy: "receivedDateTime desc", Select: []string{"id", "receivedDateTime"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(oldest.Messages) != 1 || !oldest.Messages[0].ReceivedDateTime.Equal(base) {
			t.Errorf("oldest = %+v", oldest.Messages)
		}
		if len(newest.Messages) != 1 || !newest.Messages[0].ReceivedDateTime.Equal(base.Add(2*time.Hour)) {
			t.Errorf("newest = %+v", newest.Messages)
		}
		before, err := mc.ListMessages(ctx, f.ID, ListOptions{Top: 1, ReceivedBefore: base.Add(90 * time.Minute), Count: true,
			OrderBy: "receivedDateTime desc", Select: []string{"id"}})
		if err != nil {
			t.Fatal(err)
		}
		if before.Count != 2 {
			t.Errorf("count before the cut-off = %d, want 2", before.Count)
		}
	})
	t.Run("attachments", func(t *testing.T) {
		id := infos[1].ImmutableID
		m, err := mc.GetMessage(ctx, id, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if !m.HasAttachments || len(m.Attachments) != 2 {
			t.Fatalf("hasAttachments %v, %d expanded", m.HasAttachments, len(m.Attachments))
		}
		atts, err := mc.Attachments(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var txt, png *Attachment
		for i := range atts {
			switch atts[i].Name {
			case "a.txt":
				txt = &atts[i]
			case "logo.png":
				png = &atts[i]
			}
		}
		if txt == nil || string(txt.ContentBytes) != "attachment body" {
			t.Fatalf("text attachment = %+v", txt)
		}
		if png == nil || !png.IsInline || png.ContentID != "logo@x" || len(png.ContentBytes) != 3000 {
			t.Fatalf("inline attachment = %+v", png)
		}
		meta, err := mc.AttachmentsMeta(ctx, id)
		if err != nil || len(meta) != 2 || meta[0].ContentBytes != nil {
			t.Errorf("meta = %+v, %v", meta, err)
		}
		var sb strings.Builder
		if n, err := mc.WriteAttachment(ctx, id, png.ID, &sb, 1<<20); err != nil || n != 3000 {
			t.Errorf("WriteAttachment = %d, %v", n, err)
		}
		if _, err := mc.WriteAttachment(ctx, id, png.ID, &sb, 100); !errors.Is(err, ErrTooLarge) {
			t.Errorf("WriteAttachment over the cap: %v", err)
		}
	})
	t.Run("mime", func(t *testing.T) {
		raw, err := mc.MIME(ctx, infos[0].ImmutableID, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "Subject: m0") {
			t.Errorf("MIME lacks the subject header: %.200q", raw)
		}
		if _, err := mc.MIME(ctx, infos[0].ImmutableID, 10); !errors.Is(err, ErrTooLarge) {
			t.Errorf("MIME over the cap: %v", err)
		}
	})
	t.Run("message gone", func(t *testing.T) {
		if err := srv.Sim.DeleteMessage(support, infos[2].ImmutableID, true); err != nil {
			t.Fatal(err)
		}
		_, err := mc.GetMessage(ctx, infos[2].ImmutableID, nil, false)
		if !errors.Is(err, ErrItemNotFound) {
			t.Errorf("err = %v, want ErrItemNotFound", err)
		}
	})
	t.Run("expired token refreshed once", func(t *testing.T) {
		tokens := tokensFor(t, srv, agent)
		mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokens)
		if _, err := mc.GetFolder(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		srv.Sim.Advance(2 * time.Hour) // the access token expires
		if _, err := mc.GetFolder(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		if tokens.invalidated != 1 {
			t.Errorf("invalidated %d times, want 1", tokens.invalidated)
		}
	})
}

func TestSimAttachmentsOf(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, func(s *m365sim.Seed) {
		s.SharedMailboxes[0].Mail = m365sim.MailSeed{Generate: &m365sim.GenerateSpec{Count: 25, Size: 256,
			Attachments: []m365sim.AttachmentMix{{Percent: 100, Size: 2048}}}}
	})
	var ids []string
	for _, m := range srv.Sim.Messages(support, "Inbox") {
		ids = append(ids, m.ImmutableID)
	}
	gone := ids[3]
	if err := srv.Sim.DeleteMessage(support, gone, true); err != nil {
		t.Fatal(err)
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	srv.Sim.ResetCounters()
	atts, failed, err := mc.AttachmentsOf(context.Background(), append(ids, ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Sim.Counters(); got.Requests != 2 || got.BatchInner != 25 {
		t.Errorf("counters %+v, want 2 batch calls for 25 distinct messages", got)
	}
	if len(atts) != 24 || len(failed) != 1 || !errors.Is(failed[gone], ErrItemNotFound) {
		t.Fatalf("%d with attachments, failed %v; want 24 and %s gone", len(atts), failed, gone)
	}
	for id, list := range atts {
		if len(list) != 1 || len(list[0].ContentBytes) != 2048 || list[0].Size == 0 {
			t.Errorf("%s: attachments %+v", id, list)
		}
	}
}
