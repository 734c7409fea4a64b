package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// runVerify checks the Standard Webhooks signature of a captured request:
// headers, a blank line, the body (what `nc -l` prints, with or without the
// request line). Exit 0 when valid; otherwise the specific reason.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	var secrets idListFlag
	fs.Var(&secrets, "secret", "a whsec_… `secret` (repeatable during a rotation; default $M365BRIDGE_WEBHOOK_SECRET)")
	tolerance := fs.Duration("tolerance", webhooks.DefaultTolerance, "how far webhook-timestamp may be from --at")
	at := fs.String("at", "", "check the timestamp as of `T` (RFC 3339 or Unix seconds) instead of now, for old captures")
	in := fs.String("in", "-", "the captured request `file` (- for standard input)")
	if err := parseWebhookFlags(fs, args); err != nil {
		return err
	}
	if len(secrets) == 0 {
		if env := os.Getenv("M365BRIDGE_WEBHOOK_SECRET"); env != "" {
			secrets = idListFlag{env}
		} else {
			return usageError{"verify: --secret is required (or set M365BRIDGE_WEBHOOK_SECRET)"}
		}
	}
	now := time.Now()
	if *at != "" {
		t, err := parseInstant(*at)
		if err != nil {
			return usageError{"verify: --at: " + err.Error()}
		}
		now = t
	}
	var raw []byte
	var err error
	if *in == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(*in)
	}
	if err != nil {
		return fmt.Errorf("read captured request: %w", err)
	}
	header, body, err := parseCapturedRequest(raw)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	err = webhooks.Verify(header, body, secrets, webhooks.WithTolerance(*tolerance), webhooks.WithNow(func() time.Time { return now }))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	unix, _ := strconv.ParseInt(header.Get(webhooks.HeaderTimestamp), 10, 64)
	fmt.Fprintf(stdout, "signature ok: webhook-id %s, signed %s", header.Get(webhooks.HeaderID), time.Unix(unix, 0).UTC().Format(time.RFC3339))
	var ev webhooks.Event
	if json.Unmarshal(body, &ev) == nil && ev.Type != "" {
		fmt.Fprintf(stdout, ", event %s", ev.Type)
		if id := ev.ID(); id != header.Get(webhooks.HeaderID) {
			fmt.Fprintf(stdout, " (warning: data.id %q differs from webhook-id)", id)
		}
	}
	fmt.Fprintln(stdout)
	return nil
}

func parseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix seconds", s)
}

var requestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/\d(\.\d)?\r?\n`)

// parseCapturedRequest splits a captured request into headers and the exact
// body bytes. Content-Length, when present, trims what a capture tool or an
// editor appended; chunked bodies are decoded.
func parseCapturedRequest(raw []byte) (http.Header, []byte, error) {
	raw = bytes.TrimLeft(raw, "\r\n")
	if loc := requestLine.FindIndex(raw); loc != nil {
		raw = raw[loc[1]:]
	}
	end, sep := bytes.Index(raw, []byte("\r\n\r\n")), 4
	if lf := bytes.Index(raw, []byte("\n\n")); lf >= 0 && (end < 0 || lf < end) {
		end, sep = lf, 2
	}
	if end < 0 {
		return nil, nil, fmt.Errorf("no blank line between headers and body: capture the whole request (headers, blank line, body)")
	}
	mime, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(raw[:end:end], "\r\n\r\n"...)))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, fmt.Errorf("read captured headers: %w", err)
	}
	header, body := http.Header(mime), raw[end+sep:]
	if strings.EqualFold(header.Get("Transfer-Encoding"), "chunked") {
		b, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
		if err != nil {
			return nil, nil, fmt.Errorf("decode chunked body: %w", err)
		}
		return header, b, nil
	}
	if cl := header.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("Content-Length %q is not a number", cl)
		}
		if n > len(body) {
			return nil, nil, fmt.Errorf("body is %d bytes, Content-Length says %d: the capture is truncated", len(body), n)
		}
		body = body[:n]
	}
	return header, body, nil
}
