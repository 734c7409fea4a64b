package entra

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
)

// probeMailbox proves, with the new access token, that the mailbox can be
// read: GET {graph}/v1.0/users/{address}/mailFolders/inbox for a shared
// mailbox, /me/mailFolders/inbox for the user's own. On failure it returns
// guidance for the page, a detail line (Graph's code and message) and the
// error.
func (m *Manager) probeMailbox(ctx context.Context, accessToken string, shared bool, address string) (Guidance, string, error) {
	if m.GraphURL == "" {
		return Guidance{}, "", nil
	}
	path := "/v1.0/me/mailFolders/inbox"
	if shared {
		path = "/v1.0/users/" + url.PathEscape(address) + "/mailFolders/inbox"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.GraphURL, "/")+path, nil)
	if err != nil {
		return Guidance{Reason: "The mailbox address is not usable in a URL.", Fix: "Check mailbox.address in bridge.yaml."}, "", err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	hc := m.Client.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Guidance{Reason: "Microsoft Graph could not be reached to check the mailbox.", Fix: startAgain}, "", fmt.Errorf("probe mailbox: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return Guidance{}, "", nil
	}
	ge := graph.ParseError(resp.StatusCode, resp.Header, body)
	code, msg := ge.Code, firstLine(ge.Message)
	detail := fmt.Sprintf("Graph answered HTTP %d %s: %s", resp.StatusCode, code, msg)
	err = fmt.Errorf("probe mailbox: HTTP %d %s", resp.StatusCode, code)
	g := Guidance{Code: code}
	g.Reason, g.Fix = graph.ExplainMailboxAccess(resp.StatusCode, code, shared, address)
	if g.Fix == "" {
		g.Fix = startAgain
	}
	if g.Code == "" {
		g.Code = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return g, detail, err
}
