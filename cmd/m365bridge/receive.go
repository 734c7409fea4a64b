package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// runReceive is a development receiver: it verifies each request, prints
// one line per event and answers honestly (204, 401 with the reason, 400
// for a malformed body, 503 for a simulated failure).
func runReceive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("receive", stderr)
	listen := fs.String("listen", "127.0.0.1:8367", "the `address` to listen on")
	var secrets idListFlag
	fs.Var(&secrets, "secret", "a whsec_… `secret` (repeatable during a rotation)")
	path := fs.String("path", "/hooks/m365", "the URL `path` to accept events on")
	failRate := fs.Float64("fail-rate", 0, "answer this `fraction` of valid requests with 503, to watch retries")
	asJSON := fs.Bool("json", false, "print each event's JSON instead of a summary line")
	tolerance := fs.Duration("tolerance", webhooks.DefaultTolerance, "accepted webhook-timestamp skew")
	if err := parseWebhookFlags(fs, args); err != nil {
		return err
	}
	if len(secrets) == 0 {
		return usageError{"receive: --secret is required (the webhook's whsec_… secret)"}
	}
	for i, s := range secrets {
		if _, err := webhooks.DecodeSecret(s); err != nil {
			return usageError{fmt.Sprintf("receive: --secret %d: %v", i+1, err)}
		}
	}
	if *failRate < 0 || *failRate > 1 {
		return usageError{"receive: --fail-rate must be between 0 and 1"}
	}

	var mu sync.Mutex // one line at a time
	printf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format, a...)
	}
	rc := &webhooks.Receiver{
		Verifier: webhooks.Verifier{Secrets: secrets, Tolerance: *tolerance},
		OnEvent: func(ctx context.Context, d *webhooks.Delivery) error {
			stamp := time.Now().UTC().Format("15:04:05")
			if *failRate > 0 && rand.Float64() < *failRate {
				printf("%s %s %s attempt=%d signature ok → 503 (simulated failure)\n", stamp, d.Event.Type, d.ID, d.Attempt)
				return &webhooks.StatusError{Code: http.StatusServiceUnavailable, Err: errors.New("simulated failure (--fail-rate)")}
			}
			if *asJSON {
				printf("%s\n", d.Body)
				return nil
			}
			printf("%s %s\n", stamp, summarize(d))
			return nil
		},
		OnReject: func(r *http.Request, status int, err error) {
			printf("%s REJECTED %d %s %s: %v\n", time.Now().UTC().Format("15:04:05"), status, r.Method, r.URL.Path, err)
		},
	}
	mux := http.NewServeMux()
	mux.Handle(*path, rc)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("events are accepted on %s", *path), http.StatusNotFound)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("receive: listen on %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	printf("listening on http://%s%s (Ctrl-C to stop)\n", ln.Addr(), *path)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("receive: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// summarize is the one-line view of a delivery.
func summarize(d *webhooks.Delivery) string {
	var data struct {
		Channel string `json:"channel"`
		Archive bool   `json:"archive"`
		State   string `json:"state"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Article struct {
			Subject string `json:"subject"`
			From    struct {
				Address string `json:"address"`
			} `json:"from"`
		} `json:"article"`
	}
	json.Unmarshal(d.Event.Data, &data)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", d.Event.Type, d.ID)
	if data.Channel != "" {
		fmt.Fprintf(&b, " channel=%s", data.Channel)
	}
	switch {
	case strings.HasPrefix(d.Event.Type, "mail.received"), strings.HasPrefix(d.Event.Type, "mail.archived"):
		fmt.Fprintf(&b, " from=%s subject=%q archive=%v", data.Article.From.Address, data.Article.Subject, data.Archive)
	case strings.HasPrefix(d.Event.Type, "channel."):
		fmt.Fprintf(&b, " state=%s code=%s", data.State, data.Code)
	case d.Event.Type == webhooks.TypeWebhookTest:
		fmt.Fprintf(&b, " message=%q", data.Message)
	}
	fmt.Fprintf(&b, " attempt=%d signature ok", d.Attempt)
	if d.Duplicate {
		b.WriteString(" duplicate")
	}
	return b.String()
}
