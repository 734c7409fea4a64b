package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// sendAnswer is the send endpoint's JSON answer.
type sendAnswer struct {
	ID                string `json:"id"`
	Status            string `json:"status"`
	Attempts          int    `json:"attempts"`
	InternetMessageID string `json:"internet_message_id"`
	Code              string `json:"code"`
	Reason            string `json:"reason"`
	Fix               string `json:"fix"`
	Error             string `json:"error"`
}

// runSend posts a signed send request to the running daemon's public
// listener, the way a helpdesk does, prints its id and waits for the
// outcome: for operators testing a channel's sending.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", stderr)
	path := fs.String("config", "bridge.yaml", "configuration `file` (the channel's send secret and the listen address)")
	var to, cc, bcc, attach listFlag
	fs.Var(&to, "to", "recipient `address` (repeatable; \"Name <a@b>\" works)")
	fs.Var(&cc, "cc", "cc `address` (repeatable)")
	fs.Var(&bcc, "bcc", "bcc `address` (repeatable)")
	fs.Var(&attach, "attach", "attach a `file` (repeatable; at most 35 MB in total)")
	subject := fs.String("subject", "", "subject `line`")
	text := fs.String("text", "", "plain-text `body`")
	html := fs.String("html", "", "HTML `body` (sent instead of --text when both are given)")
	replyEvent := fs.String("reply-to-event", "", "reply to the message of this mail.received/mail.archived event `id` (threads in Outlook)")
	inReplyTo := fs.String("in-reply-to", "", "reply to this `Message-ID` (<id@host>) when the channel imported it")
	key := fs.String("key", "", "Idempotency-Key (default: a new random `key`; reuse one to retry without sending twice)")
	base := fs.String("url", "", "the daemon's public base `URL` (default: http:// plus the listen address)")
	noWait := fs.Bool("no-wait", false, "print the id and return without waiting for the outcome")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the outcome")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"send: give exactly one CHANNEL (see m365bridge channels)"}
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return usageError{"send: give at least one --to, --cc or --bcc"}
	}
	if *text == "" && *html == "" {
		return usageError{"send: give --text or --html"}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	ch, ok := findChannel(cfg, pos[0])
	if !ok {
		return usageError{fmt.Sprintf("send: no channel %q in %s", pos[0], *path)}
	}
	if !ch.SendEnabled() {
		return fmt.Errorf("channel %s cannot send: add a send: section with a secret to it in %s, then reload the daemon", ch.Name, *path)
	}
	secret := ch.Send.AllSecrets()[0].Value()
	raw, err := sendBody(map[string]any{"to": []string(to), "subject": *subject, "cc": []string(cc), "bcc": []string(bcc),
		"text": *text, "html": *html, "reply_to_event_id": *replyEvent, "in_reply_to": *inReplyTo}, attach)
	if err != nil {
		return err
	}
	if *key == "" {
		*key = newIdempotencyKey()
	}
	root := strings.TrimRight(*base, "/")
	if root == "" {
		root = "http://" + dialable(cfg.Listen)
	}
	client := &http.Client{Timeout: time.Minute}
	url := root + "/v1/channels/" + ch.Name + "/messages"
	var ans sendAnswer
	status, err := signedCall(ctx, client, http.MethodPost, url, secret, raw, map[string]string{"Idempotency-Key": *key}, &ans)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		fmt.Fprintf(stderr, "send refused (%d): %s\n", status, ans.Error)
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "accepted %s (%s), Idempotency-Key %s\n", ans.ID, ans.Status, *key)
	if *noWait {
		return nil
	}
	if err := waitSent(ctx, client, url, secret, &ans, *timeout, stderr); err != nil {
		return err
	}
	if ans.Status == "failed" {
		fmt.Fprintf(stderr, "failed after %d attempt(s): %s %s\nfix: %s\n", ans.Attempts, ans.Code, ans.Reason, ans.Fix)
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "sent %s\n", ans.InternetMessageID)
	return nil
}

// sendBody is the send request's JSON: fields with empty values are left
// out; attach names the files to attach.
func sendBody(fields map[string]any, attach []string) ([]byte, error) {
	body := map[string]any{"to": fields["to"], "subject": fields["subject"]}
	for name, v := range fields {
		switch v := v.(type) {
		case string:
			if v != "" {
				body[name] = v
			}
		case []string:
			if len(v) > 0 {
				body[name] = v
			}
		}
	}
	var atts []map[string]any
	for _, f := range attach {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read attachment: %w", err)
		}
		ct := mime.TypeByExtension(filepath.Ext(f))
		if ct == "" {
			ct = "application/octet-stream"
		}
		atts = append(atts, map[string]any{"filename": filepath.Base(f), "content_type": ct, "content_base64": base64.StdEncoding.EncodeToString(data)})
	}
	if len(atts) > 0 {
		body["attachments"] = atts
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return raw, nil
}

// waitSent polls the request's status until it is sent or failed, or
// timeout passed (an exit error then).
func waitSent(ctx context.Context, client *http.Client, url, secret string, ans *sendAnswer, timeout time.Duration, stderr io.Writer) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for ans.Status != "sent" && ans.Status != "failed" {
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "still %s after %s; check later: the request is kept and retried by the daemon\n", ans.Status, timeout)
			return exitError{code: 1}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		id := ans.ID
		status, err := signedCall(ctx, client, http.MethodGet, url+"/"+id, secret, nil, nil, ans)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			fmt.Fprintf(stderr, "status of %s (%d): %s\n", id, status, ans.Error)
			return exitError{code: 1}
		}
	}
	return nil
}

func findChannel(cfg *config.Config, name string) (config.Channel, bool) {
	for _, ch := range cfg.Channels {
		if ch.Name == name {
			return ch, true
		}
	}
	return config.Channel{}, false
}

// dialable turns a listen address into one a client can dial: an empty or
// unspecified host becomes loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// signedCall sends one request signed per Standard Webhooks and decodes
// the JSON answer into out.
func signedCall(ctx context.Context, client *http.Client, method, url, secret string, body []byte, headers map[string]string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	id := webhooks.NewID("req")
	now := time.Now()
	sig, err := webhooks.Sign(secret, id, now, body)
	if err != nil {
		return 0, fmt.Errorf("sign request: %w", err)
	}
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(webhooks.HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no daemon answered at %s (is `m365bridge serve` running?): %w", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("the daemon answered %d with unreadable JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}

var _ flag.Value = (*listFlag)(nil)

// newIdempotencyKey is a random Idempotency-Key for a request sent once.
func newIdempotencyKey() string {
	var b [12]byte
	rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}
