package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
	"github.com/m365bridge/m365bridge/webhooks/recipes"
)

// TestKillNineRecipes is issue 16's acceptance for each shipped recipe
// against its helpdesk fake: 200 mails (150 new, 15 customer replies, 5
// auto-replies, 30 archived), the daemon killed five times inside recipe
// steps: exactly 180 tickets, every reply on its ticket, no notification to
// archived or auto-submitted senders, attachments byte-identical. Under the
// race detector (the suite's `go test -race ./...`) it runs one recipe,
// turning daily over the four, with 40 mails; .ci/run runs all four at
// full size without the detector. M365BRIDGE_RECIPE_KILL=name picks one.
func TestKillNineRecipes(t *testing.T) {
	desks := []string{"zammad", "zendesk", "rt5", "freshdesk"}
	originals, replies, autos, archived := 150, 15, 5, 30
	if testing.Short() || raceEnabled {
		originals, replies, autos, archived = 30, 3, 1, 6
		desks = desks[time.Now().YearDay()%len(desks):][:1]
	}
	if only := os.Getenv("M365BRIDGE_RECIPE_KILL"); only != "" {
		desks = []string{only}
	}
	for _, desk := range desks {
		t.Run(desk, func(t *testing.T) { recipeKill(t, desk, originals, replies, autos, archived, 5) })
	}
}

// The recipe kill test: the real daemon (`m365bridge serve` on a
// bridge.yaml, the test binary re-executed as in TestKillNineDuringImport)
// imports a folder from the simulator into a helpdesk fake through a
// shipped recipe, and is killed with SIGKILL five times in the middle of a
// recipe step: before the request reaches the helpdesk, or after the
// helpdesk stored what it asked for and before the answer is written (the
// lost answer a re-run must find by its lookup).

// recipeMail is one message of the scenario.
type recipeMail struct {
	i        int
	msgID    string
	customer string
	archive  bool
	auto     bool
	parent   int               // index of the mail answered, -1 for none
	files    map[string][]byte // filename → bytes
}

// marker is in the body of mail i and nowhere else: how the helpdesk's
// entries are told apart.
func marker(i int) string { return fmt.Sprintf("kill-mail-%04d.", i) }

// recipeScenario injects originals, then replies (In-Reply-To and
// References), auto-replies (Auto-Submitted) to earlier originals, and
// archived mail received before the archive cut-off. Every 5th original
// has a file, every 10th an inline image, every 25th a file above
// max_attachment_bytes (the recipe fetches it through the bridge's link).
func recipeScenario(t *testing.T, sim *m365sim.Server, cutoff time.Time, originals, replies, autos, archived int) []*recipeMail {
	t.Helper()
	var ms []*recipeMail
	at := cutoff.Add(time.Hour)
	inject := func(m *recipeMail, nm m365sim.NewMessage) {
		m.i = len(ms)
		ms = append(ms, m)
		nm.Folder, nm.MessageID, nm.From = killSource, m.msgID, "Customer <"+m.customer+">"
		nm.Body = marker(m.i) + " The customer writes." + nm.Body
		if m.archive {
			nm.Received = cutoff.Add(-time.Duration(1000-m.i) * time.Minute)
		} else {
			nm.Received = at.Add(time.Duration(m.i) * time.Second)
		}
		if _, err := sim.Sim.InjectMessage(killMailbox, nm); err != nil {
			t.Fatal(err)
		}
	}
	for i := range originals {
		m := &recipeMail{msgID: fmt.Sprintf("<orig%d@customer.example>", i), customer: fmt.Sprintf("c%d@customer.example", i), parent: -1, files: map[string][]byte{}}
		nm := m365sim.NewMessage{Subject: fmt.Sprintf("Question %d", i)}
		if i%5 == 0 {
			b := fill(3000+i, i)
			name := fmt.Sprintf("report%d.pdf", i)
			nm.Attachments = append(nm.Attachments, m365sim.NewAttachment{Name: name, ContentType: "application/pdf", Content: string(b)})
			m.files[name] = b
		}
		if i%10 == 0 {
			b := fill(500+i, i+1)
			cid := fmt.Sprintf("img%d@customer.example", i)
			nm.Attachments = append(nm.Attachments, m365sim.NewAttachment{Name: "image.png", ContentType: "image/png", Content: string(b), ContentID: cid, Inline: true})
			m.files["image.png"] = b
			// The HTML body references the inline image by its Content-ID.
			nm.HTML, nm.Body = true, fmt.Sprintf(`<p>see <img src="cid:%s"></p>`, cid)
		}
		if i%25 == 0 {
			b := fill(70000+i, i+2)
			name := fmt.Sprintf("large%d.zip", i)
			nm.Attachments = append(nm.Attachments, m365sim.NewAttachment{Name: name, ContentType: "application/zip", Content: string(b)})
			m.files[name] = b
		}
		inject(m, nm)
	}
	for k := range replies {
		p := ms[(k*7)%originals]
		inject(&recipeMail{msgID: fmt.Sprintf("<reply%d@customer.example>", k), customer: p.customer, parent: p.i, files: map[string][]byte{}},
			m365sim.NewMessage{Subject: fmt.Sprintf("Re: Question %d", p.i), InReplyTo: p.msgID, Headers: []m365sim.MessageHeader{{Name: "References", Value: p.msgID}}})
	}
	for k := range autos {
		p := ms[(k*11+3)%originals]
		inject(&recipeMail{msgID: fmt.Sprintf("<ooo%d@colleague.example>", k), customer: fmt.Sprintf("ooo%d@colleague.example", k), auto: true, parent: p.i, files: map[string][]byte{}},
			m365sim.NewMessage{Subject: fmt.Sprintf("Automatic reply: Question %d", p.i), InReplyTo: p.msgID,
				Headers: []m365sim.MessageHeader{{Name: "References", Value: p.msgID}, {Name: "Auto-Submitted", Value: "auto-replied"}}})
	}
	for k := range archived {
		inject(&recipeMail{msgID: fmt.Sprintf("<old%d@archive.example>", k), customer: fmt.Sprintf("a%d@archive.example", k), archive: true, parent: -1, files: map[string][]byte{}},
			m365sim.NewMessage{Subject: fmt.Sprintf("Old question %d", k)})
	}
	return ms
}

func fill(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed*7) % 251)
	}
	return b
}

// deskEntry is one thing the helpdesk stored from a mail: a ticket's
// first article, a reply, a note.
type deskEntry struct {
	ticket  int
	private bool // an internal note or comment, which notifies nobody
	body    string
	files   []helpdeskfake.Attachment
}

// deskView is the fake's record in one shape for the four helpdesks.
type deskView struct {
	closed   map[int]bool // ticket id → created closed (resolved, solved)
	entries  []deskEntry
	notified []string // addresses the helpdesk mailed
}

// recipeDesk is one helpdesk fake and how the daemon reaches it.
type recipeDesk struct {
	file    string // the shipped recipe
	example string // the recipe's example URL, replaced by the fake's
	handler http.Handler
	env     []string
	view    func() deskView
}

const (
	killZammadToken  = "zammad-kill-token-0123456789"
	killZendeskAgent = "agent@contoso.example"
	killZendeskToken = "zendesk-kill-token-0123456789"
	killRTToken      = "1-14-rt-kill-token-0123456789"
	killFreshdeskKey = "fd-kill-key-0123456789"
)

func newRecipeDesk(t *testing.T, name string) recipeDesk {
	t.Helper()
	switch name {
	case "zammad":
		z := helpdeskfake.NewZammad(killZammadToken, "Support")
		t.Cleanup(z.Close)
		return recipeDesk{file: "zammad.yaml", example: "https://zammad.example.com", handler: z.Config.Handler,
			env: []string{"ZAMMAD_TOKEN=" + killZammadToken}, view: func() deskView {
				v := deskView{closed: map[int]bool{}}
				for _, tk := range z.Tickets() {
					v.closed[tk.ID] = tk.State == "closed"
				}
				for _, a := range z.Articles() {
					v.entries = append(v.entries, deskEntry{ticket: a.TicketID, private: a.Internal, body: a.Body, files: a.Files})
				}
				for _, n := range z.Notifications() {
					v.notified = append(v.notified, n.To)
				}
				return v
			}}
	case "zendesk":
		z := helpdeskfake.NewZendesk(killZendeskAgent, killZendeskToken)
		t.Cleanup(z.Close)
		return recipeDesk{file: "zendesk.yaml", example: "https://example.zendesk.com", handler: z.Config.Handler,
			env: []string{"ZENDESK_AUTH=" + helpdeskfake.BasicAuth(killZendeskAgent, killZendeskToken)}, view: func() deskView {
				v := deskView{closed: map[int]bool{}}
				for _, tk := range z.Tickets() {
					v.closed[tk.ID] = tk.Status == "closed" || tk.Status == "solved"
					for _, c := range tk.Comments {
						v.entries = append(v.entries, deskEntry{ticket: tk.ID, private: !c.Public, body: c.Body + "\n" + c.HTMLBody, files: c.Attachments})
					}
				}
				for _, n := range z.Notifications() {
					v.notified = append(v.notified, n.To)
				}
				return v
			}}
	case "rt5":
		rt := helpdeskfake.NewRT(killRTToken, []string{"General"}, []string{"M365 Message-ID"}, []string{"M365 Reply Message-ID"})
		t.Cleanup(rt.Close)
		return recipeDesk{file: "rt5.yaml", example: "https://rt.example.com", handler: rt.Config.Handler,
			env: []string{"RT_TOKEN=" + killRTToken}, view: func() deskView {
				v := deskView{closed: map[int]bool{}}
				for _, tk := range rt.Tickets() {
					v.closed[tk.ID] = tk.Status == "resolved"
				}
				for _, tx := range rt.Transactions() {
					v.entries = append(v.entries, deskEntry{ticket: tx.TicketID, private: tx.Type == "Comment", body: tx.Content, files: tx.Files})
				}
				for _, n := range rt.Notifications() {
					v.notified = append(v.notified, n.To)
				}
				return v
			}}
	case "freshdesk":
		f := helpdeskfake.NewFreshdesk(killFreshdeskKey, "cf_m365_message_id")
		t.Cleanup(f.Close)
		// The placeholder contact freshdesk.yaml asks the operator to create.
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/api/v2/contacts", strings.NewReader(`{"name":"Archive","email":"archive-placeholder@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", helpdeskfake.FreshdeskAuth(killFreshdeskKey))
		resp, err := f.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("placeholder contact: %v %v", err, resp)
		}
		resp.Body.Close()
		return recipeDesk{file: "freshdesk.yaml", example: "https://example.freshdesk.com", handler: f.Config.Handler,
			env: []string{"FRESHDESK_AUTH=" + helpdeskfake.FreshdeskAuth(killFreshdeskKey)}, view: func() deskView {
				v := deskView{closed: map[int]bool{}}
				for _, tk := range f.Tickets() {
					v.closed[tk.ID] = tk.Status == helpdeskfake.FreshdeskClosed
					v.entries = append(v.entries, deskEntry{ticket: tk.ID, body: tk.Description, files: tk.Files})
				}
				for _, n := range f.Notes() {
					v.entries = append(v.entries, deskEntry{ticket: n.TicketID, private: n.Private, body: n.Body + "\n" + n.BodyText, files: n.Files})
				}
				for _, n := range f.Notifications() {
					v.notified = append(v.notified, n.To)
				}
				return v
			}}
	}
	t.Fatalf("no helpdesk fake %q", name)
	return recipeDesk{}
}

// recipeRig is the daemon rig (the simulator, one daemon on SQLite) with
// a helpdesk fake behind a front that counts requests and kills the daemon
// at drawn ones.
type recipeRig struct {
	*daemonProc
	sim     *m365sim.Server
	desk    recipeDesk
	webhook string // the recipe webhook's name
	front   *httptest.Server
	reqs    atomic.Int64
	writes  atomic.Int64   // requests other than GET: creates, replies, updates
	killAt  map[int64]bool // write number → kill after the helpdesk stored it (true) or before it saw it (false)
	killed  chan chan struct{}
}

// serveFront passes a request to the fake, or kills the daemon at it.
func (rr *recipeRig) serveFront(w http.ResponseWriter, r *http.Request) {
	rr.reqs.Add(1)
	var after, kill bool
	if r.Method != http.MethodGet {
		after, kill = rr.killAt[rr.writes.Add(1)]
	}
	if !kill {
		rr.desk.handler.ServeHTTP(w, r)
		return
	}
	if after {
		rr.desk.handler.ServeHTTP(httptest.NewRecorder(), r) // stored; the answer never leaves
	}
	done := make(chan struct{})
	rr.killed <- done
	<-done // the daemon is gone: nobody reads what follows
	http.Error(w, "killed", http.StatusServiceUnavailable)
}

func newRecipeRig(t *testing.T, desk string, seed uint64, kills, n int) *recipeRig {
	t.Helper()
	rr := &recipeRig{desk: newRecipeDesk(t, desk), killAt: map[int64]bool{}, killed: make(chan chan struct{})}
	rng := rand.New(rand.NewPCG(seed, 5))
	// Every mail takes at least one write (create, reply or note): the
	// kills land on the first pass's writes, alternately after the
	// helpdesk stored it (a lost answer: the re-run's lookup must find it)
	// and before it saw it (the crash between a lookup and its write).
	for after := true; len(rr.killAt) < kills; {
		if w := 1 + rng.Int64N(int64(n*9/10)); !slices.Contains(slices.Collect(maps.Keys(rr.killAt)), w) {
			rr.killAt[w] = after
			after = !after
		}
	}
	rr.front = httptest.NewServer(http.HandlerFunc(rr.serveFront))
	t.Cleanup(rr.front.Close)

	rr.daemonProc = newDaemonProc(t, "")
	rr.env = rr.desk.env
	rr.sim = startRigSim(t, rr.public, m365sim.Options{}, nil)
	rr.secrets = rigSecrets(rr.sim, "")

	entry, err := fs.ReadFile(recipes.Files, rr.desk.file)
	if err != nil {
		t.Fatal(err)
	}
	hook := strings.ReplaceAll(string(entry), rr.desk.example, rr.front.URL)
	name := strings.TrimPrefix(strings.SplitN(hook[strings.Index(hook, "- name: "):], "\n", 2)[0], "- name: ")
	rr.webhook = name
	// Retries at once: a kill's interrupted run is taken up by the restart.
	hook = strings.Replace(hook, "\n  url: ", "\n  schedule: [50ms]\n  max_attempts: 200\n  timeout: 10s\n  url: ", 1)

	dir := t.TempDir()
	rr.writeConfig(filepath.Join(dir, "bridge.yaml"), filepath.Join(dir, "data"), rigConfig{
		log: "warn", sim: rr.sim, webhooks: indentLines(hook, "  "),
		channels: fmt.Sprintf(`  - name: support
    mailbox: {type: shared, address: %s}
    folder: %s
    group: Support
    webhook: %s
    poll_interval: 10s
    max_attachment_bytes: 50000
    archive: {mode: "on", before: %s, state: closed}
`, killMailbox, killSource, name, recipeCutoff().Format(time.RFC3339))})
	return rr
}

// recipeCutoff is the archive cut-off: mail received before it is
// imported as archive. It follows the wall clock, which the simulator and
// the daemon use too.
func recipeCutoff() time.Time { return time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second) }

// recipeKill runs the scenario through desk's recipe with kills SIGKILLs
// and checks the helpdesk's record.
func recipeKill(t *testing.T, desk string, originals, replies, autos, archived, kills int) {
	seed := uint64(time.Now().UnixNano())
	n := originals + replies + autos + archived
	t.Logf("seed %d: %s, %d mails, %d kills", seed, desk, n, kills)
	began := time.Now()
	rr := newRecipeRig(t, desk, seed, kills, n)
	ms := recipeScenario(t, rr.sim, recipeCutoff(), originals, replies, autos, archived)
	rr.start()
	rr.consent("support", nil)
	for k := range kills {
		select {
		case done := <-rr.killed:
			rr.kill()
			close(done)
			t.Logf("kill %d at helpdesk write %d", k+1, rr.writes.Load())
			rr.start()
		case <-rr.exited:
			t.Fatalf("the daemon exited by itself\n%s", rr.tail())
		case <-time.After(2 * time.Minute): // safety net: the kills come within seconds
			t.Fatalf("kill %d never came (%d helpdesk requests)\n%s", k+1, rr.reqs.Load(), rr.tail())
		}
	}
	rr.waitDelivered(n)
	rr.kill()
	rr.checkNoRaceOrPanic()
	ticketOf := checkDesk(t, rr.desk.view(), ms, originals+archived)
	rr.checkTicketMap(ms, ticketOf)
	t.Logf("%s: %d mails, %d kills, %d helpdesk requests in %v", desk, n, kills, rr.reqs.Load(), time.Since(began).Round(time.Millisecond))
}

// waitDelivered waits until every mail's ledger row is done, failing at
// once on a dead letter.
func (rr *recipeRig) waitDelivered(n int) {
	t := rr.t
	t.Helper()
	ctx := context.Background()
	// Polling another process's store, with 5 minutes as a safety net: the
	// import takes seconds.
	rr.waitUntil(50*time.Millisecond, 5*time.Minute, func() bool {
		if done, _ := rr.ledger(ctx, "support"); done == n {
			return true
		}
		if bad := rr.deadRows(ctx); len(bad) > 0 {
			t.Fatalf("%d events failed for good, e.g. %s: %s\n%s", len(bad), bad[0].EventID, bad[0].LastError, rr.tail())
		}
		return false
	}, func() string {
		_, counts := rr.ledger(ctx, "support")
		return fmt.Sprintf("the import did not finish: ledger %v", counts)
	})
}

func (rr *recipeRig) deadRows(ctx context.Context) []deliver.Row {
	db := rr.openState(ctx)
	defer db.Close()
	rows, err := db.Outbox().List(ctx, deliver.Filter{States: []deliver.State{deliver.StateDead, deliver.StateRejected}})
	if err != nil {
		rr.t.Fatal(err)
	}
	return rows
}

// checkDesk asserts the acceptance: exactly one ticket per mail that is no
// reply, every mail stored once (a reply on its parent's ticket, an
// auto-reply as a private note), archived mail closed, nobody archived or
// auto-submitted mailed, attachments byte-identical.
func checkDesk(t *testing.T, v deskView, ms []*recipeMail, wantTickets int) map[int]int {
	t.Helper()
	if len(v.closed) != wantTickets {
		t.Errorf("the helpdesk has %d tickets, want %d", len(v.closed), wantTickets)
	}
	ticketOf := map[int]int{}
	owner := map[int]int{} // ticket → the mail that opened it
	for _, m := range ms {
		var got []deskEntry
		for _, e := range v.entries {
			if strings.Contains(e.body, marker(m.i)) {
				got = append(got, e)
			}
		}
		if len(got) != 1 {
			t.Errorf("mail %d (%s): stored %d times, want once", m.i, m.msgID, len(got))
			continue
		}
		e := got[0]
		ticketOf[m.i] = e.ticket
		switch {
		case m.parent >= 0 && e.ticket != ticketOf[m.parent]:
			t.Errorf("reply %d is on ticket %d, its parent %d on %d", m.i, e.ticket, m.parent, ticketOf[m.parent])
		case m.auto && !e.private:
			t.Errorf("auto-reply %d is not a private note", m.i)
		case m.parent < 0 && owner[e.ticket] != 0:
			t.Errorf("mail %d and mail %d share ticket %d", m.i, owner[e.ticket]-1, e.ticket)
		case m.archive && !v.closed[e.ticket]:
			t.Errorf("archived mail %d: ticket %d is not closed", m.i, e.ticket)
		}
		if m.parent < 0 {
			owner[e.ticket] = m.i + 1
		}
		for name, want := range m.files {
			if !slices.ContainsFunc(e.files, func(a helpdeskfake.Attachment) bool { return bytes.Equal(a.Data, want) }) {
				t.Errorf("mail %d: attachment %s not stored byte-identical (%d files stored)", m.i, name, len(e.files))
			}
		}
	}
	for _, to := range v.notified {
		for _, m := range ms {
			if (m.archive || m.auto) && strings.EqualFold(to, m.customer) {
				t.Errorf("mail %d: %s (archived %t, auto-submitted %t) was notified", m.i, to, m.archive, m.auto)
			}
		}
	}
	return ticketOf
}

// checkTicketMap asserts that the daemon recorded every mail's ticket in
// its store's ticket map (the map the wiring hands the recipe), and that
// it is the ticket the helpdesk has the mail on.
func (rr *recipeRig) checkTicketMap(ms []*recipeMail, ticketOf map[int]int) {
	t := rr.t
	t.Helper()
	ctx := context.Background()
	db := rr.openState(ctx)
	defer db.Close()
	for _, m := range ms {
		want, ok := ticketOf[m.i]
		if !ok {
			continue // reported by checkDesk
		}
		got, err := db.Tickets().FindTicket(ctx, rr.webhook, "support", []string{m.msgID}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got != strconv.Itoa(want) {
			t.Errorf("mail %d: the ticket map has ticket %q, the helpdesk %d", m.i, got, want)
		}
	}
}

// TestRecipeReload reloads the configuration of a daemon whose webhook is
// a recipe (POST /api/reload, as `m365bridge reload` and SIGHUP do) before
// its channel is signed in: the reload is accepted, and the mail imported
// after it goes through the reloaded recipe, replies threaded.
func TestRecipeReload(t *testing.T) {
	rr := newRecipeRig(t, "zammad", 1, 0, 14)
	ms := recipeScenario(t, rr.sim, recipeCutoff(), 10, 2, 0, 2)
	rr.start()
	req, _ := http.NewRequest(http.MethodPost, "http://"+rr.admin+"/api/reload", nil)
	req.Header.Set("Authorization", "Bearer "+killAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	rr.consent("support", nil)
	rr.waitDelivered(len(ms))
	rr.kill()
	rr.checkTicketMap(ms, checkDesk(t, rr.desk.view(), ms, 12))
}
