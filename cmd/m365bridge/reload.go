package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/config"
)

// runReload asks the running daemon (through its admin listener) to re-read
// bridge.yaml and apply it; SIGHUP does the same.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", stderr)
	path := fs.String("config", "bridge.yaml", "configuration `file` (for the admin listener's address and token)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s is not valid; the daemon would reject it too:\n%v\n", *path, err)
		return exitError{code: 1}
	}
	var out struct {
		Status  string `json:"status"`
		Warning string `json:"warning"`
		Error   string `json:"error"`
	}
	status, err := adminCall(ctx, cfg, http.MethodPost, "/api/reload", nil, &out)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		fmt.Fprintf(stderr, "reload rejected (%d): %s\n", status, out.Error)
		return exitError{code: 1}
	}
	fmt.Fprintln(stdout, "reloaded")
	if out.Warning != "" {
		fmt.Fprintln(stderr, "warning:", out.Warning)
	}
	return nil
}

// errNoDaemon: nothing answered on the admin listener.
var errNoDaemon = errors.New("no daemon answered")

// adminCall sends one request (in, when not nil, as JSON) to the running
// daemon's admin API and decodes its JSON answer into out. When nothing
// answers, the error wraps errNoDaemon.
func adminCall(ctx context.Context, cfg *config.Config, method, path string, in, out any) (int, error) {
	addr := cfg.Admin.Listen
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := cfg.Admin.Token.Value(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w on admin.listen %s (is `m365bridge serve` running?): %v", errNoDaemon, addr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("admin API answered %d with unreadable JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
