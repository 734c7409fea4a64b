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

// checkOnline is `check --online`, the FQDN check: Entra ID sends the
// browser back to {public_url}/oauth/callback, so public_url must reach this
// very daemon. The daemon's admin listener (local) tells its per-process
// nonce; public_url/healthz must answer the same nonce. A proxy pointing at
// another instance, a stale DNS name or a firewall is found here, before a
// consent fails half way.
func checkOnline(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	client := &http.Client{Timeout: 10 * time.Second}
	local := cfg.Admin.Listen
	if strings.HasPrefix(local, ":") {
		local = "127.0.0.1" + local
	}
	want, err := healthNonce(ctx, client, "http://"+local+"/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "online check: the daemon's admin listener %s did not answer (%v).\nStart `m365bridge serve` first; the check compares it with what public_url reaches.\n", local, err)
		return exitError{code: 1}
	}
	public := strings.TrimRight(cfg.PublicURL, "/") + "/healthz"
	got, err := healthNonce(ctx, client, public)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "online check FAILED: %s is not reachable (%v).\nFix public_url in bridge.yaml, or the DNS name, reverse proxy or firewall in front of listen (%s); the redirect URI %s must reach this daemon.\n", public, err, cfg.Listen, cfg.RedirectURI())
		return exitError{code: 1}
	case got != want:
		fmt.Fprintf(stderr, "online check FAILED: %s answered, but from another m365bridge instance (instance %s, this one is %s).\nPoint the DNS name or reverse proxy behind public_url at this daemon's listen address %s.\n", public, got, want, cfg.Listen)
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "\nOnline check passed: %s reaches this daemon (instance %s).\n", public, want)
	return nil
}

func healthNonce(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var h struct {
		Status   string `json:"status"`
		Instance string `json:"instance"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h); err != nil || h.Instance == "" {
		return "", fmt.Errorf("the answer is not an m365bridge health check")
	}
	return h.Instance, nil
}
