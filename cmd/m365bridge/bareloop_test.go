package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The bare loop is the baseline of BenchmarkImportVsBareLoop: the least a
// program must do to bring a folder's mail to the receiver. It pages the
// folder's delta with the bridge's request (same $select, $expand of
// attachments, same page size and Prefer headers), reading the next page
// while it POSTs the current one (the bridge, too, reads Graph while its
// dispatcher delivers), POSTs each message's Graph JSON as it came, signed,
// one at a time (the daemon's default webhook concurrency is 1), and with
// `delete` moves the delivered messages to Deleted Items in $batch calls of
// 20. It stores nothing and does not retry a delivery beyond a few
// attempts: the receiver always answers 204.

// bareLoopEnv carries a bareSpec to the re-executed test binary.
const bareLoopEnv = "M365BRIDGE_BARE_LOOP"

type bareSpec struct {
	GraphURL string `json:"graph_url"` // ending in /v1.0
	Token    string `json:"token"`
	Mailbox  string `json:"mailbox"`
	Tenant   string `json:"tenant"`
	PageSize int    `json:"page_size"`
	Receiver string `json:"receiver"`
	Secret   string `json:"secret"`
	Delete   bool   `json:"delete"`
}

// bareResult is the child's last line.
type bareResult struct {
	Posts     int `json:"posts"`
	Throttled int `json:"throttled"`
}

// bareChild is the running bare loop. It prints its bareResult when its
// work is done, then waits until stdin closes, so that the parent can read
// its peak RSS (VmHWM) first.
type bareChild struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{}
	out    *signalBuffer
}

// startBareLoop runs the bare loop as a child process.
func startBareLoop(tb testing.TB, spec bareSpec) *bareChild {
	tb.Helper()
	raw, _ := json.Marshal(spec)
	bc := &bareChild{cmd: exec.Command(os.Args[0], "-test.run=^TestBareLoopChild$"), exited: make(chan struct{}),
		out: &signalBuffer{wrote: make(chan struct{}, 1)}}
	bc.cmd.Env = append(os.Environ(), bareLoopEnv+"="+string(raw))
	bc.cmd.Stdout, bc.cmd.Stderr = bc.out, bc.out
	bc.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := bc.cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	bc.stdin = stdin
	if err := bc.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { bc.cmd.Wait(); close(bc.exited) }()
	tb.Cleanup(func() {
		select {
		case <-bc.exited:
		default:
			bc.cmd.Process.Kill()
			<-bc.exited
		}
	})
	return bc
}

// finished reports whether the child printed its result.
func (bc *bareChild) finished() bool { return strings.Contains(bc.out.String(), `"posts":`) }

// signalBuffer is a syncBuffer that signals each write.
type signalBuffer struct {
	syncBuffer
	wrote chan struct{}
}

func (s *signalBuffer) Write(p []byte) (int, error) {
	n, err := s.syncBuffer.Write(p)
	kick(s.wrote)()
	return n, err
}

// TestBareLoopChild is the bare loop's process; it runs only when started
// by startBareLoop.
func TestBareLoopChild(t *testing.T) {
	raw := os.Getenv(bareLoopEnv)
	if raw == "" {
		t.Skip("runs only as the bare-loop child of BenchmarkImportVsBareLoop")
	}
	var spec bareSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	res, err := runBareLoop(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	// Stay until the parent has read VmHWM and closes stdin.
	io.Copy(io.Discard, os.Stdin)
}

type barePage struct {
	ids  []string
	msgs []json.RawMessage
	err  error
}

// bareMessage is what the bare loop reads of a message.
type bareMessage struct {
	ID             string          `json:"id"`
	HasAttachments bool            `json:"hasAttachments"`
	Removed        json.RawMessage `json:"@removed"`
}

func runBareLoop(ctx context.Context, spec bareSpec) (bareResult, error) {
	var res bareResult
	bl := &bareLoop{spec: spec, client: &http.Client{Timeout: 2 * time.Minute}, res: &res}
	q := url.Values{"$select": {strings.Join(graph.EventFields(), ",")}, "$expand": {"attachments"}}
	link := spec.GraphURL + "/users/" + url.PathEscape(spec.Mailbox) + "/mailFolders/inbox/messages/delta?" + q.Encode()

	pages := make(chan barePage, 1) // one page read ahead
	go func() {
		defer close(pages)
		for link != "" {
			var body struct {
				Value    []json.RawMessage `json:"value"`
				NextLink string            `json:"@odata.nextLink"`
			}
			err := bl.graphJSON(ctx, http.MethodGet, link, nil,
				[]string{"odata.maxpagesize=" + strconv.Itoa(spec.PageSize), `IdType="ImmutableId"`}, &body)
			var p barePage
			if p.err = err; err == nil {
				p.ids, p.msgs, p.err = bl.withAttachments(ctx, body.Value)
			}
			pages <- p
			if err != nil {
				return
			}
			link = body.NextLink
		}
	}()
	for p := range pages {
		if p.err != nil {
			return res, p.err
		}
		var delivered []string
		for i, m := range p.msgs {
			if err := bl.post(ctx, webhooks.EventID(spec.Tenant, spec.Mailbox, p.ids[i]), m); err != nil {
				return res, err
			}
			delivered = append(delivered, p.ids[i])
		}
		if spec.Delete {
			var items []bareBatchItem
			for _, id := range delivered {
				items = append(items, bareBatchItem{Method: http.MethodPost,
					URL:     "/users/" + url.PathEscape(spec.Mailbox) + "/messages/" + url.PathEscape(id) + "/move",
					Headers: map[string]string{"Content-Type": "application/json"},
					Body:    map[string]string{"destinationId": "deleteditems"}})
			}
			if _, err := bl.batch(ctx, items); err != nil {
				return res, fmt.Errorf("move: %w", err)
			}
		}
	}
	return res, nil
}

// withAttachments reads the attachments of the page's messages that have
// some through $batch (as the bridge does: delta carries none) and returns
// each message as {"id", "message", "attachments"}, the attachments as
// Graph sent them, with the message ids; removed entries are dropped.
func (bl *bareLoop) withAttachments(ctx context.Context, msgs []json.RawMessage) ([]string, []json.RawMessage, error) {
	heads := make([]bareMessage, len(msgs))
	var items []bareBatchItem
	var which []int
	for i, m := range msgs {
		if err := json.Unmarshal(m, &heads[i]); err != nil {
			return nil, nil, fmt.Errorf("decode message: %w", err)
		}
		if heads[i].HasAttachments && heads[i].Removed == nil {
			items = append(items, bareBatchItem{Method: http.MethodGet,
				URL:     "/users/" + url.PathEscape(bl.spec.Mailbox) + "/messages/" + url.PathEscape(heads[i].ID) + "/attachments",
				Headers: map[string]string{"Prefer": `IdType="ImmutableId"`}})
			which = append(which, i)
		}
	}
	atts := make([]json.RawMessage, len(msgs))
	bodies, err := bl.batch(ctx, items)
	if err != nil {
		return nil, nil, fmt.Errorf("attachments: %w", err)
	}
	for k, i := range which {
		atts[i] = bodies[k]
	}
	out := msgs[:0]
	var ids []string
	for i, m := range msgs {
		if heads[i].Removed != nil {
			continue
		}
		ids = append(ids, heads[i].ID)
		a := atts[i]
		if a == nil {
			a = json.RawMessage("null")
		}
		b := make([]byte, 0, len(m)+len(a)+len(heads[i].ID)+48)
		b = append(b, `{"id":`...)
		b = strconv.AppendQuote(b, heads[i].ID)
		b = append(b, `,"message":`...)
		b = append(b, m...)
		b = append(b, `,"attachments":`...)
		b = append(b, a...)
		out = append(out, append(b, '}'))
	}
	return ids, out, nil
}

type bareLoop struct {
	spec   bareSpec
	client *http.Client
	res    *bareResult
}

// graphJSON sends one Graph request, waiting out 429 and 503 as Graph's
// Retry-After says, and decodes the answer into out.
func (bl *bareLoop) graphJSON(ctx context.Context, method, link string, body []byte, prefer []string, out any) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, link, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+bl.spec.Token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for _, p := range prefer {
			req.Header.Add("Prefer", p)
		}
		resp, err := bl.client.Do(req)
		if err != nil {
			return fmt.Errorf("graph %s: %w", method, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("graph %s: %w", method, err)
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 10 {
			bl.res.Throttled++
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second) // Graph's Retry-After
			continue
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("graph %s %s: %d %.300s", method, link, resp.StatusCode, b)
		}
		return json.Unmarshal(b, out)
	}
}

// post delivers one message, signed.
func (bl *bareLoop) post(ctx context.Context, id string, body []byte) error {
	for attempt := 0; ; attempt++ {
		now := time.Now()
		sig, err := webhooks.Sign(bl.spec.Secret, id, now, body)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, bl.spec.Receiver, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhooks.HeaderID, id)
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhooks.HeaderSignature, sig)
		resp, err := bl.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				bl.res.Posts++
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if attempt == 3 {
			return fmt.Errorf("post %s: %w", id, err)
		}
	}
}

// bareBatchItem is one request inside a $batch.
type bareBatchItem struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// batch runs items through $batch, 20 per request, again for the items
// Graph throttled (after their Retry-After), and returns each item's
// response body; 404 (already gone) counts as done with a null body.
func (bl *bareLoop) batch(ctx context.Context, items []bareBatchItem) ([]json.RawMessage, error) {
	bodies := make([]json.RawMessage, len(items))
	todo := make([]int, len(items))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 10 {
			return nil, fmt.Errorf("%d requests still throttled", len(todo))
		}
		var again []int
		wait := 0
		for len(todo) > 0 {
			chunk := todo[:min(len(todo), 20)]
			todo = todo[len(chunk):]
			var req struct {
				Requests []bareBatchItem `json:"requests"`
			}
			for _, i := range chunk {
				it := items[i]
				it.ID = strconv.Itoa(i)
				req.Requests = append(req.Requests, it)
			}
			body, _ := json.Marshal(req)
			var out struct {
				Responses []struct {
					ID      string            `json:"id"`
					Status  int               `json:"status"`
					Headers map[string]string `json:"headers"`
					Body    json.RawMessage   `json:"body"`
				} `json:"responses"`
			}
			if err := bl.graphJSON(ctx, http.MethodPost, bl.spec.GraphURL+"/$batch", body, nil, &out); err != nil {
				return nil, err
			}
			for _, r := range out.Responses {
				i, err := strconv.Atoi(r.ID)
				if err != nil || i < 0 || i >= len(items) {
					return nil, fmt.Errorf("unexpected $batch response id %q", r.ID)
				}
				switch {
				case r.Status/100 == 2:
					bodies[i] = r.Body
				case r.Status == http.StatusNotFound:
				case r.Status == http.StatusTooManyRequests:
					bl.res.Throttled++
					again = append(again, i)
					w, _ := strconv.Atoi(r.Headers["Retry-After"])
					wait = max(wait, w, 1)
				default:
					return nil, fmt.Errorf("%s %s: status %d %.200s", items[i].Method, items[i].URL, r.Status, r.Body)
				}
			}
		}
		if len(again) > 0 {
			time.Sleep(time.Duration(wait) * time.Second) // Graph's Retry-After
		}
		todo = again
	}
	return bodies, nil
}
