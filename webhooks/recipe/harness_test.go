package recipe_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
	"github.com/m365bridge/m365bridge/webhooks/recipe"
	"github.com/m365bridge/m365bridge/webhooks/recipe/helpdeskfake"
	"github.com/m365bridge/m365bridge/webhooks/recipes"
)

// mapEnv resolves ${VAR} from a map; files are read from disk.
type mapEnv map[string]string

func (e mapEnv) LookupEnv(name string) (string, bool) { v, ok := e[name]; return v, ok }
func (e mapEnv) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// loadShipped parses a shipped recipe file as part of a whole bridge.yaml
// (so config validation runs on it), pointing it at baseURL.
func loadShipped(t *testing.T, file, baseURL string, env mapEnv) *config.Config {
	t.Helper()
	entry, err := fs.ReadFile(recipes.Files, file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(entry)
	for _, ex := range []string{"https://zammad.example.com", "https://example.zendesk.com", "https://rt.example.com", "https://example.freshdesk.com"} {
		text = strings.ReplaceAll(text, ex, baseURL)
	}
	var name string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "- name: ") {
			name = strings.TrimPrefix(line, "- name: ")
			break
		}
	}
	doc := fmt.Sprintf(`public_url: https://bridge.example.com
microsoft:
  client_id: 00000000-0000-0000-0000-000000000001
  client_secret: ${M365_CLIENT_SECRET}
  tenant: contoso.onmicrosoft.com
webhooks:
%s
channels:
  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    group: Support L1
    webhook: %s
    archive: {mode: "on", before: 2026-01-01T00:00:00Z, state: closed}
`, indent(text, "  "), name)
	env["M365_CLIENT_SECRET"] = "s3cret-value-for-tests"
	cfg, err := config.Parse([]byte(doc), file, env)
	if err != nil {
		t.Fatalf("shipped recipe %s does not pass config validation:\n%v", file, err)
	}
	return cfg
}

func indent(s, pre string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}

// mail is one synthetic message of a scenario.
type mail struct {
	i            int
	id           string // event id
	msgID        string
	customer     string
	archive      bool
	auto         bool
	parent       int // index of the mail answered, -1 for none
	byConv       bool
	conversation string
	files        []webhooks.Attachment
	raw          map[string][]byte // filename → bytes
	html         string
}

// linkServer serves attachment bytes by path, like the bridge's signed
// attachment links.
type linkServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newLinkServer(t *testing.T) *linkServer {
	ls := &linkServer{files: map[string][]byte{}}
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls.mu.Lock()
		b, ok := ls.files[r.URL.Path]
		ls.mu.Unlock()
		if !ok {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(ls.Close)
	return ls
}

func (ls *linkServer) put(path string, b []byte) string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.files[path] = b
	return ls.URL + path
}

func fill(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed*7) % 251)
	}
	return b
}

// scenario builds the acceptance mail set: originals, then replies (by
// In-Reply-To, or by the Graph conversation only), auto-replies to known
// tickets and archived mail. Every 5th original has a file, every 10th an
// inline image, every 25th a file reachable only by its link.
func scenario(ls *linkServer, originals, replies, autoReplies, archived int) []*mail {
	var ms []*mail
	add := func(m *mail) { m.i = len(ms); m.id = fmt.Sprintf("msg_%04d", m.i); ms = append(ms, m) }
	for i := range originals {
		m := &mail{msgID: fmt.Sprintf("<orig%d@customer.example>", i), customer: fmt.Sprintf("c%d@customer.example", i), parent: -1,
			conversation: fmt.Sprintf("conv-%d", i), raw: map[string][]byte{}}
		if i%5 == 0 {
			b := fill(3000+i, i)
			m.files = append(m.files, webhooks.Attachment{Filename: fmt.Sprintf("report%d.pdf", i), ContentType: "application/pdf", Size: int64(len(b)), Included: true, ContentBase64: base64.StdEncoding.EncodeToString(b)})
			m.raw[fmt.Sprintf("report%d.pdf", i)] = b
		}
		if i%10 == 0 {
			b := fill(500+i, i+1)
			cid := fmt.Sprintf("img%d@customer.example", i)
			m.files = append(m.files, webhooks.Attachment{Filename: "image.png", ContentType: "image/png", Size: int64(len(b)), ContentID: cid, Inline: true, Included: true, ContentBase64: base64.StdEncoding.EncodeToString(b)})
			m.raw["image.png"] = b
			m.html = fmt.Sprintf(`<p>see <img src="cid:%s"></p>`, cid)
		}
		if i%25 == 0 {
			b := fill(70000+i, i+2)
			sum := sha256.Sum256(b)
			name := fmt.Sprintf("large%d.zip", i)
			url := ls.put("/att/"+name, b)
			m.files = append(m.files, webhooks.Attachment{Filename: name, ContentType: "application/zip", Size: int64(len(b)), Included: false, Reason: "larger than max_attachment_bytes", URL: url, SHA256: hex.EncodeToString(sum[:])})
			m.raw[name] = b
		}
		add(m)
	}
	for k := range replies {
		p := ms[(k*7)%originals]
		add(&mail{msgID: fmt.Sprintf("<reply%d@customer.example>", k), customer: p.customer, parent: p.i, byConv: k%4 == 3, conversation: p.conversation, raw: map[string][]byte{}})
	}
	for k := range autoReplies {
		p := ms[(k*11+3)%originals]
		add(&mail{msgID: fmt.Sprintf("<ooo%d@colleague.example>", k), customer: fmt.Sprintf("ooo%d@colleague.example", k), auto: true, parent: p.i, conversation: p.conversation, raw: map[string][]byte{}})
	}
	for k := range archived {
		add(&mail{msgID: fmt.Sprintf("<old%d@archive.example>", k), customer: fmt.Sprintf("a%d@archive.example", k), archive: true, parent: -1,
			conversation: fmt.Sprintf("old-conv-%d", k), raw: map[string][]byte{}})
	}
	return ms
}

// event renders m as the bridge's mail event.
func (m *mail) event(t *testing.T, ms []*mail) store.OutboxEvent {
	t.Helper()
	received := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(m.i) * time.Minute)
	typ, state := webhooks.TypeMailReceived, "new"
	if m.archive {
		typ, state = webhooks.TypeMailArchived, "closed"
	}
	subject := fmt.Sprintf("Question %d", m.i)
	a := webhooks.Article{InternetMessageID: m.msgID, ConversationID: m.conversation, GraphID: "AAMk" + m.id,
		From: webhooks.Address{Name: "Customer", Address: m.customer}, To: []webhooks.Address{{Address: "support@contoso.com"}},
		Subject: subject, SentAt: received, ReceivedAt: received, BodyType: "text", BodyText: fmt.Sprintf("Mail %d", m.i),
		AutoSubmitted: m.auto, Attachments: m.files}
	if m.html != "" {
		a.BodyType, a.BodyHTML = "html", m.html
	}
	if m.parent >= 0 {
		p := ms[m.parent]
		a.Subject = "Re: " + fmt.Sprintf("Question %d", p.i)
		if !m.byConv {
			a.InReplyTo, a.References = p.msgID, []string{p.msgID}
		}
	}
	d := webhooks.MailData{ID: m.id, Version: 1, Channel: "support", Mailbox: webhooks.Mailbox{Type: "shared", Address: "support@contoso.com"},
		Folder: "Inbox", Group: "Support L1", Archive: m.archive,
		Ticket:  webhooks.Ticket{Title: a.Subject, State: state, CreatedAt: received, Customer: webhooks.Address{Address: m.customer}, SuppressAutomations: m.archive},
		Article: a}
	ev, err := webhooks.NewEvent(typ, received, d)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ev)
	return store.OutboxEvent{EventID: m.id, Endpoint: "", Channel: "support", Type: typ, Body: body}
}

// deliverAll enqueues ms for the webhook of cfg and runs a real dispatcher
// over a real SQLite outbox until every row is finished; it returns the
// rows' final states.
func deliverAll(t *testing.T, cfg *config.Config, ms []*mail, opts recipe.Options) []deliver.Row {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := cfg.Webhooks[0]
	var batch []store.OutboxEvent
	for _, m := range ms {
		e := m.event(t, ms)
		e.Endpoint = w.Name
		batch = append(batch, e)
	}
	if err := db.Enqueue(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	ep := deliver.Endpoint{Name: w.Name, URL: w.URL, Headers: map[string]string{}, Concurrency: 1,
		Schedule: []time.Duration{5 * time.Millisecond}, MaxAttempts: 100, Timeout: 10 * time.Second}
	for k, v := range w.Headers {
		ep.Headers[k] = v.Value()
	}
	eps := []deliver.Endpoint{ep}
	opts.Tickets = db.Tickets()
	if err := recipe.Attach(eps, cfg, opts); err != nil {
		t.Fatal(err)
	}
	finished := make(chan string, len(ms)*4)
	d, err := deliver.New(db.Outbox(), eps, deliver.Options{
		Jitter: func(d time.Duration) time.Duration { return d },
		OnResult: func(_ string, row deliver.Row, res deliver.Result) {
			// A transient failure on the last attempt makes a dead
			// letter: finished too (the test then fails on its state
			// at once instead of at the safety net).
			if res.Outcome != deliver.Transient || row.Attempts+1 >= ep.MaxAttempts {
				finished <- row.EventID
			} else if testing.Verbose() {
				t.Logf("%s: transient: %s", row.EventID, res.Excerpt)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	d.Wake()
	safety := time.After(120 * time.Second) // safety net only: the run takes a few seconds
	for n := 0; n < len(ms); n++ {
		select {
		case <-finished:
		case <-safety:
			cancel()
			t.Fatalf("only %d of %d events finished", n, len(ms))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := db.Outbox().List(ctx, deliver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func checkAllDelivered(t *testing.T, rows []deliver.Row, want int) {
	t.Helper()
	if len(rows) != want {
		t.Fatalf("outbox has %d rows, want %d", len(rows), want)
	}
	for _, r := range rows {
		if r.State != deliver.StateDelivered {
			t.Errorf("%s: %s after %d attempts: %s", r.EventID, r.State, r.Attempts, r.LastError)
		}
	}
}

func newRequest(url, body string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", helpdeskfake.FreshdeskAuth(freshdeskKey))
	return req, nil
}
