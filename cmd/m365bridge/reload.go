package main

import (
	"context"
	"encoding/json"
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
	status, err := adminCall(ctx, cfg, http.MethodPost, "/api/reload", &out)
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

// adminCall sends one request to the running daemon's admin API and
// decodes its JSON answer into out.
func adminCall(ctx context.Context, cfg *config.Config, method, path string, out any) (int, error) {
	addr := cfg.Admin.Listen
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	if tok := cfg.Admin.Token.Value(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("no daemon answered on admin.listen %s (is `m365bridge serve` running? it also reloads on SIGHUP): %w", addr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("admin API answered %d with unreadable JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
